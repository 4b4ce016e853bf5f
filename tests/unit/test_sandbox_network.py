"""The cluster network's bookkeeping (aifw.sandbox.network) against a fake `ip`: a node is rebuilt, never
duplicated; teardown removes everything with the sandbox's prefix and nothing of anyone else's."""
from __future__ import annotations

import subprocess

import pytest

from aifw.sandbox import network
from aifw.site import example_site_path, load_site, site_from_dict


class FakeIp:
    """Namespaces, host links and addresses, changed by the `ip` argv the module sends."""

    def __init__(self, namespaces=(), links=()):
        self.ns = set(namespaces)
        self.links = set(links) | {"lo", "eth0"}
        self.addrs: dict[tuple[str, str], str] = {}  # (netns or "", dev) -> cidr
        self.calls: list[tuple[str, ...]] = []
        self.pids: dict[str, list[int]] = {}  # netns -> processes inside it

    def __call__(self, *args, check=True):
        self.calls.append(args)
        out, rc = "", 0
        match args:
            case ("netns", "list"):
                out = "".join(f"{n} (id: 0)\n" for n in sorted(self.ns))
            case ("netns", "add", name):
                rc = 1 if name in self.ns else 0
                self.ns.add(name)
            case ("netns", "del", name):
                self.ns.discard(name)
            case ("netns", "pids", name):
                out, rc = ("".join(f"{pid}\n" for pid in self.pids.get(name, ())), 0) if name in self.ns else ("", 1)
            case ("-o", "link", "show"):
                out = "".join(f"{i}: {n}: <UP>\n" for i, n in enumerate(sorted(self.links)))
            case ("link", "add", name, "type", "bridge"):
                self.links.add(name)
            case ("link", "add", name, "type", "veth", "peer", "name", _peer, "netns", _ns):
                rc = 1 if name in self.links else 0
                self.links.add(name)
            case ("link", "del", name):
                self.links.discard(name)
            case ("addr", "add", cidr, "dev", dev):
                self.addrs[("", dev)] = cidr
            case ("-n", ns, "addr", "add", cidr, "dev", dev):
                self.addrs[(ns, dev)] = cidr
            case ("-o", "-4", "addr", "show", "dev", dev):
                cidr = self.addrs.get(("", dev))
                out, rc = (f"5: {dev} inet {cidr} scope global\n", 0) if cidr and dev in self.links else ("", 1)
            case ("-n", ns, "-o", "-4", "addr", "show", "dev", dev):
                cidr = self.addrs.get((ns, dev))
                out, rc = (f"2: {dev} inet {cidr} scope global\n", 0) if cidr and ns in self.ns else ("", 1)
        if check and rc:
            raise network.SandboxError(f"ip {' '.join(args)} failed")
        return subprocess.CompletedProcess(args, rc, out, "")


@pytest.fixture
def plan():
    data = load_site(example_site_path("sandbox")).model_dump(mode="json")
    data["sandbox"].update(network="198.18.0.128/25", netns_prefix="aifwt")
    return network.network_plan(site_from_dict(data).sandbox)


def test_a_node_left_by_a_crashed_run_is_rebuilt_not_duplicated(plan, monkeypatch):
    fake = FakeIp(namespaces={"aifwt-node2"}, links={"aifwt-v2"})
    monkeypatch.setattr(network, "_ip", fake)
    network.ensure_bridge(plan)
    node2 = plan.nodes[1]
    network.build_node(plan, node2)
    assert fake.ns == {"aifwt-node2"} and {"aifwt-br", "aifwt-v2"} <= fake.links
    assert network.node_ready(plan, node2) and network.bridge_ready(plan)
    assert fake.addrs[("aifwt-node2", "eth0")] == "198.18.0.140/25"
    assert fake.addrs[("", "aifwt-br")] == "198.18.0.129/25"
    # the old veth went before its namespace (a namespace drops its veth only seconds later)
    deletes = [c for c in fake.calls if c[:2] in (("link", "del"), ("netns", "del"))]
    assert deletes == [("link", "del", "aifwt-v2"), ("netns", "del", "aifwt-node2")]


def test_teardown_removes_everything_with_the_prefix_and_nothing_else(plan, monkeypatch):
    fake = FakeIp(namespaces={"aifwt-node1", "aifwt-node2", "aifwt-node7", "aifw-node1", "other"},
                  links={"aifwt-br", "aifwt-v1", "aifwt-v2", "aifwt-v7", "aifw-br", "aifw-v1", "docker0"})
    monkeypatch.setattr(network, "_ip", fake)
    assert sorted(network.remove_stale(plan)) == ["aifwt-node7", "aifwt-v7"]  # not in the plan (3 nodes once)
    removed = network.remove_network(plan)
    assert set(removed) == {"aifwt-br", "aifwt-v1", "aifwt-v2", "aifwt-node1", "aifwt-node2"}
    assert fake.ns == {"aifw-node1", "other"}  # the sandbox's own (prefix aifw) and others' are untouched
    assert fake.links == {"lo", "eth0", "aifw-br", "aifw-v1", "docker0"}
    # the bridge goes last, after its veths
    link_dels = [c[2] for c in fake.calls if c[:2] == ("link", "del")]
    assert link_dels[-1] == "aifwt-br"


def test_a_machine_without_namespaces_is_told_to_use_single_node_mode(plan, monkeypatch):
    def refuse(args, **kw):
        return subprocess.CompletedProcess(args, 2, "", "mount --make-shared /run/netns failed: Operation not permitted")

    monkeypatch.setattr(network.subprocess, "run", refuse)
    with pytest.raises(network.SandboxError, match="Operation not permitted.*sandbox.mode: single-node"):
        network.build_node(plan, plan.nodes[0])


def test_a_process_left_in_a_namespace_is_ended_before_the_namespace_goes(plan, monkeypatch):
    """A job's slurmstepd that outlived its slurmd would lose its network with the namespace and keep its job
    completing forever: rebuilding the node and tearing the network down both kill what is still inside."""
    fake = FakeIp(namespaces={"aifwt-node2", "aifwt-node9"}, links={"aifwt-v2"})
    monkeypatch.setattr(network, "_ip", fake)
    inside = [subprocess.Popen(["sleep", "60"]) for _ in range(2)]
    try:
        fake.pids = {"aifwt-node2": [inside[0].pid], "aifwt-node9": [inside[1].pid]}
        network.ensure_bridge(plan)
        network.build_node(plan, plan.nodes[1])   # node2 rebuilt: its old namespace's process is killed
        assert inside[0].wait(timeout=5) == -9 and inside[1].poll() is None
        network.remove_stale(plan)                # node9 is no node of the plan
        assert inside[1].wait(timeout=5) == -9
        pids_then_del = [c[:2] for c in fake.calls if c[:2] in (("netns", "pids"), ("netns", "del"))]
        assert pids_then_del[:2] == [("netns", "pids"), ("netns", "del")]
    finally:
        for p in inside:
            p.kill()
            p.wait()
