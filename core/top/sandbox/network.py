"""The sandbox's cluster network (cluster mode): a bridge on the host (the login node) and, for each compute
node, a network namespace joined to it by a veth pair, with the node's own address in 198.18.0.0/24.

`network_plan` is pure (names and addresses from the site); `build_node` / `remove_node` /
`remove_network` run `ip` as root. Everything the sandbox creates carries its `netns_prefix`
(`<prefix>-br`, `<prefix>-v<i>`, `<prefix>-node<i>`), and teardown removes every namespace and interface
with that prefix, including those an earlier run left behind (a crash, or a site that had more nodes), so
a node is rebuilt, never duplicated. Nothing outside the site's network (checked by `aifw.site`) is ever
addressed. See ../shared/notes/slurm-multi-node.md for what was measured.
"""
from __future__ import annotations

import ipaddress
import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

from aifw.site import SandboxSettings

from .processes import SandboxError

IP = "/usr/sbin/ip" if Path("/usr/sbin/ip").exists() else "/sbin/ip"
#: The node end of each veth, inside its namespace.
NODE_INTERFACE = "eth0"


@dataclass(frozen=True)
class NodeNet:
    name: str  # Slurm node name (node1)
    address: str  # 198.18.0.11
    prefixlen: int
    netns: str  # aifw-node1
    veth: str  # aifw-v1 (host end)


@dataclass(frozen=True)
class NetworkPlan:
    prefix: str
    bridge: str
    login_address: str
    prefixlen: int
    nodes: tuple[NodeNet, ...]


def network_plan(sandbox: SandboxSettings) -> NetworkPlan:
    """Names and addresses of the bridge and the nodes (pure)."""
    net = ipaddress.IPv4Network(sandbox.network)
    prefix = sandbox.netns_prefix
    nodes = tuple(
        NodeNet(name=name, address=addr, prefixlen=net.prefixlen, netns=f"{prefix}-{name}", veth=f"{prefix}-v{i}")
        for i, (name, addr) in enumerate(sandbox.nodes, start=1)
    )
    return NetworkPlan(prefix=prefix, bridge=f"{prefix}-br", login_address=sandbox.login_address,
                       prefixlen=net.prefixlen, nodes=nodes)


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    try:
        p = subprocess.run([IP, *args], capture_output=True, text=True, timeout=15)
    except OSError as err:
        raise SandboxError(f"cannot run {IP}: {err.strerror}; install iproute2, or set sandbox.mode: single-node") from None
    except subprocess.TimeoutExpired:
        raise SandboxError(f"`ip {' '.join(args)}` did not finish within 15 s") from None
    if check and p.returncode != 0:
        raise SandboxError(
            f"`ip {' '.join(args)}` failed: {p.stderr.strip() or p.stdout.strip()}. Cluster mode needs root with "
            "network namespaces, veth and bridge support (a VM or a privileged container); where they are not "
            "allowed, set sandbox.mode: single-node in the site file."
        )
    return p


def namespaces() -> list[str]:
    """Names of the network namespaces that exist now."""
    out = _ip("netns", "list", check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def links() -> list[str]:
    """Names of the host's network interfaces (veth peers without their '@...' part)."""
    out = _ip("-o", "link", "show", check=False).stdout
    names = []
    for line in out.splitlines():
        parts = line.split(":", 2)
        if len(parts) >= 2:
            names.append(parts[1].strip().split("@")[0])
    return names


def bridge_ready(plan: NetworkPlan) -> bool:
    out = _ip("-o", "-4", "addr", "show", "dev", plan.bridge, check=False)
    return out.returncode == 0 and f" {plan.login_address}/{plan.prefixlen} " in out.stdout


def node_ready(plan: NetworkPlan, node: NodeNet) -> bool:
    if node.netns not in namespaces():
        return False
    out = _ip("-n", node.netns, "-o", "-4", "addr", "show", "dev", NODE_INTERFACE, check=False)
    return out.returncode == 0 and f" {node.address}/{node.prefixlen} " in out.stdout


def ensure_bridge(plan: NetworkPlan) -> bool:
    """The host's bridge with the login node's address; True when it had to be (re)made."""
    if bridge_ready(plan):
        _ip("link", "set", plan.bridge, "up")
        return False
    if plan.bridge in links():
        _ip("link", "del", plan.bridge)
    _ip("link", "add", plan.bridge, "type", "bridge")
    _ip("addr", "add", f"{plan.login_address}/{plan.prefixlen}", "dev", plan.bridge)
    _ip("link", "set", plan.bridge, "up")
    return True


def build_node(plan: NetworkPlan, node: NodeNet) -> None:
    """(Re)make one node's namespace and veth from nothing: whatever an earlier run left is removed first."""
    remove_node(node)
    _ip("netns", "add", node.netns)
    _ip("link", "add", node.veth, "type", "veth", "peer", "name", NODE_INTERFACE, "netns", node.netns)
    _ip("link", "set", node.veth, "master", plan.bridge, "up")
    _ip("-n", node.netns, "addr", "add", f"{node.address}/{node.prefixlen}", "dev", NODE_INTERFACE)
    _ip("-n", node.netns, "link", "set", NODE_INTERFACE, "up")
    _ip("-n", node.netns, "link", "set", "lo", "up")


def end_processes_in(netns: str) -> list[int]:
    """SIGKILL every process still inside a namespace about to go (a job's slurmstepd that outlived its slurmd):
    once its network is gone it can no longer reach slurmctld, and its job would stay completing on the node
    forever. Returns the pids it signalled."""
    p = _ip("netns", "pids", netns, check=False)
    pids = [int(x) for x in p.stdout.split() if x.isdigit()] if p.returncode == 0 else []
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return pids


def _del_netns(name: str, check: bool = True) -> None:
    end_processes_in(name)
    _ip("netns", "del", name, check=check)


def remove_node(node: NodeNet) -> None:
    # The veth first: deleting a namespace removes its veth only asynchronously (seconds later).
    if node.veth in links():
        _ip("link", "del", node.veth)
    if node.netns in namespaces():
        _del_netns(node.netns)


def leftovers(plan: NetworkPlan) -> tuple[list[str], list[str]]:
    """Namespaces and interfaces carrying this sandbox's prefix (those of the plan and any stale ones)."""
    ns = [n for n in namespaces() if n.startswith(f"{plan.prefix}-node")]
    ifs = [name for name in links() if name == plan.bridge or name.startswith(f"{plan.prefix}-v")]
    return ns, ifs


def remove_stale(plan: NetworkPlan) -> list[str]:
    """Remove namespaces and interfaces with this sandbox's prefix that the plan does not have (a site that
    had more nodes, or a crashed run with other names); returns what was removed."""
    ns, ifs = leftovers(plan)
    keep_ns = {n.netns for n in plan.nodes}
    keep_if = {n.veth for n in plan.nodes} | {plan.bridge}
    removed = []
    for name in ifs:
        if name not in keep_if:
            _ip("link", "del", name, check=False)
            removed.append(name)
    for name in ns:
        if name not in keep_ns:
            _del_netns(name, check=False)
            removed.append(name)
    return removed


def remove_network(plan: NetworkPlan) -> list[str]:
    """Remove every namespace and interface with this sandbox's prefix; returns what was removed."""
    ns, ifs = leftovers(plan)
    removed = []
    for name in sorted(ifs, key=lambda n: n == plan.bridge):  # veths before the bridge
        _ip("link", "del", name, check=False)
        removed.append(name)
    for name in ns:
        _del_netns(name, check=False)
        removed.append(name)
    ns, ifs = leftovers(plan)
    if ns or ifs:
        raise SandboxError(f"could not remove {', '.join(ns + ifs)}; remove them with `ip netns del` / `ip link del`")
    return removed
