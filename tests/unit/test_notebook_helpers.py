"""Helpers the notebooks share: pick_device(), the synchronising timers, grading-safe interact(), and the
torch.distributed rendezvous of aifw.extensions.kernel.distributed (its pure parts, and its I/O on files and
fakes: no process group is started here)."""
from __future__ import annotations

import re
import sys

import ipywidgets as widgets
import pytest
import torch

from aifw.extensions.kernel import device as dev
from aifw.extensions.kernel import distributed as dist
from aifw.extensions.kernel import timing
from aifw.extensions.kernel.widgets import interact


# --------------------------------------------------------------------------- pick_device
def test_pick_device_prefers_a_gpu_and_falls_back_to_the_cpu(monkeypatch):
    monkeypatch.delenv(dev.DEVICE_ENV, raising=False)
    monkeypatch.setattr(dev, "_mps_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert dev.pick_device() == torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert dev.pick_device() == torch.device("cpu")


def test_pick_device_honours_an_explicit_choice_and_the_environment(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert dev.pick_device("cpu") == torch.device("cpu")
    monkeypatch.setenv(dev.DEVICE_ENV, "cuda:1")
    assert dev.pick_device() == torch.device("cuda:1")
    with pytest.raises(RuntimeError, match="only 2 GPU"):
        dev.pick_device("cuda:5")


def test_asking_for_a_missing_gpu_says_so(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    with pytest.raises(RuntimeError, match="no CUDA GPU is visible here"):
        dev.pick_device("cuda")


def test_device_summary_of_the_cpu():
    assert dev.device_summary("cpu").startswith("cpu - ") and "threads" in dev.device_summary("cpu")


# --------------------------------------------------------------------------- timing
def test_time_it_warms_up_then_synchronises_around_every_timed_run(monkeypatch):
    events: list[str] = []
    monkeypatch.setattr(timing, "synchronize", lambda device=None: events.append("sync"))

    def clock():
        events.append("clock")
        return float(len(events))

    result = timing.time_it(lambda: events.append("fn"), device="cpu", repeat=2, warmup=1, clock=clock)
    assert events == ["fn"] + ["sync", "clock", "fn", "sync", "clock"] * 2
    assert result.seconds == (3.0, 3.0) and result.median == 3.0 and result.best == 3.0
    assert str(result) == "median 3 s over 2 runs (best 3 s)"


def test_stopwatch_synchronises_before_both_clock_reads(monkeypatch):
    events: list[str] = []
    monkeypatch.setattr(timing, "synchronize", lambda device=None: events.append("sync"))
    ticks = iter([10.0, 10.25])

    def clock():
        events.append("clock")
        return next(ticks)

    with timing.Stopwatch("cpu", clock=clock) as sw:
        events.append("work")
    assert events == ["sync", "clock", "work", "sync", "clock"]
    assert sw.seconds == 0.25


def test_time_it_refuses_nonsense_and_times_real_work():
    with pytest.raises(ValueError):
        timing.time_it(lambda: None, repeat=0)
    a = torch.randn(64, 64)
    t = timing.time_it(lambda: a @ a, device="cpu", repeat=3)
    assert len(t.seconds) == 3 and all(s > 0 for s in t.seconds)
    timing.synchronize("cpu")  # a no-op on the CPU


# --------------------------------------------------------------------------- interact
def test_interact_while_grading_calls_the_function_once_with_the_initial_values(monkeypatch, capsys):
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    calls = []

    @interact(lr=widgets.FloatLogSlider(value=0.1, base=10, min=-3, max=0), n=(1, 24), kind=["a", "b"],
              seed=widgets.fixed(7), flag=True)
    def show(lr, n, kind, seed, flag):
        calls.append((lr, n, kind, seed, flag))

    assert calls == [(0.1, 12, "a", 7, True)]  # ipywidgets' own starting values
    assert callable(show)
    interact(lambda x: calls.append(x), x=(0.5, 1.0, 0.05))
    assert calls[-1] == pytest.approx(0.75)


def test_interact_in_a_session_is_ipywidgets_interact(monkeypatch):
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    seen = []
    monkeypatch.setattr(widgets, "interact", lambda f=None, **kw: seen.append((f, kw)) or "widget")
    f = lambda n: n  # noqa: E731
    assert interact(f, n=(1, 3)) == "widget"
    assert seen == [(f, {"n": (1, 3)})]


# --------------------------------------------------------------------------- torch.distributed rendezvous
# /proc/net/route of a node (little-endian): default via 198.18.0.1 on eth0, its /24 on eth0, an ib0 /16,
# a more specific /28 on ib1 inside it, and a route that is not up (flags 0) which must be ignored.
ROUTES = (
    "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
    "eth0\t00000000\t010012C6\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
    "eth0\t000012C6\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"
    "ib0\t0000000A\t00000000\t0001\t0\t0\t100\t0000FFFF\t0\t0\t0\n"
    "ib1\t1000000A\t00000000\t0001\t0\t0\t0\tF0FFFFFF\t0\t0\t0\n"
    "dead0\t0005000A\t00000000\t0000\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"
)


@pytest.mark.parametrize("nodelist, first", [
    ("node1", "node1"), ("node[1-2]", "node1"), (" node[2,5-7] ", "node2"), ("gpu[03-04,07],cpu1", "gpu03"),
    ("r[1-2]n[5-6]", "r1n5"), ("login,node[1-2]", "login"), ("n[10-12]-ib", "n10-ib"),
])
def test_first_node_of_a_slurm_node_list(nodelist, first):
    assert dist.first_node(nodelist) == first


@pytest.mark.parametrize("nodelist, message", [
    ("", "not a Slurm node list"), ("node[1-2", "without its ']'"), ("node[a-b]", "not a range of numbers"),
    ("node;reboot", "not a Slurm node list"), ("[1-2", "without"),
])
def test_first_node_refuses_what_is_no_node_list(nodelist, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        dist.first_node(nodelist)


def test_tasks_per_node_reads_slurms_compressed_counts():
    assert [dist.tasks_per_node("2(x3),1", i) for i in range(4)] == [2, 2, 2, 1]
    assert dist.tasks_per_node("4", 0) == 4
    with pytest.raises(ValueError, match="'2\\(x3\\),1'"):
        dist.tasks_per_node("two", 0)


SRUN_TASK = {"SLURM_PROCID": "3", "SLURM_NTASKS": "4", "SLURM_STEP_NUM_TASKS": "4", "SLURM_LOCALID": "1",
             "SLURM_NODEID": "1", "SLURM_STEP_TASKS_PER_NODE": "2(x2)", "SLURM_JOB_ID": "41"}


def test_rank_env_translates_srun_and_leaves_torchrun_alone():
    assert dist.rank_env(SRUN_TASK) == {"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"}
    assert dist.rank_env({**SRUN_TASK, "RANK": "0"}) == {}  # torchrun (or you) set it: kept
    assert dist.rank_env({"SLURM_JOB_ID": "41"}) == {}  # a batch script, not an srun task
    with pytest.raises(ValueError, match="SLURM_NODEID"):
        dist.rank_env({**SRUN_TASK, "SLURM_NODEID": "x"})


def test_port_for_job_is_the_same_on_every_node_and_in_range():
    assert dist.port_for_job("41") == 20041
    assert dist.port_for_job("123456_7") == dist.port_for_job("123456") == 23456
    assert all(20000 <= dist.port_for_job(str(j)) < 32768 for j in (0, 11999, 12000, 10**9 + 7))
    with pytest.raises(ValueError, match="job id"):
        dist.port_for_job("x1")


def test_routes_are_parsed_and_the_longest_prefix_wins():
    routes = dist.parse_routes(ROUTES, byteorder="little")
    assert [(r.interface, str(r.network), r.metric) for r in routes] == [
        ("eth0", "0.0.0.0/0", 0), ("eth0", "198.18.0.0/24", 0), ("ib0", "10.0.0.0/16", 100), ("ib1", "10.0.0.16/28", 0),
    ]
    assert dist.route_interface(routes, "198.18.0.140") == "eth0"
    assert dist.route_interface(routes, "10.0.3.4") == "ib0"
    assert dist.route_interface(routes, "10.0.0.17") == "ib1"
    assert dist.route_interface(routes, "8.8.8.8") == "eth0"  # the default route
    assert dist.route_interface(routes[1:], "8.8.8.8") is None
    big = "eth0\t000012C6\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n".replace("000012C6", "C6120000").replace("00FFFFFF", "FFFFFF00")
    assert str(dist.parse_routes(big, byteorder="big")[0].network) == "198.18.0.0/24"


def test_socket_interface_reads_the_routing_table(tmp_path, monkeypatch):
    table = tmp_path / "route"
    table.write_text(ROUTES if sys.byteorder == "little" else "")
    if sys.byteorder == "little":
        assert dist.socket_interface("198.18.0.139", route_table=str(table)) == "eth0"  # rank 0's own address too
    assert dist.socket_interface("127.0.0.1", route_table=str(table)) == "lo"
    table.write_text(ROUTES.splitlines()[0] + "\n")
    with pytest.raises(RuntimeError, match="no route to MASTER_ADDR 198.18.0.139.*GLOO_SOCKET_IFNAME"):
        dist.socket_interface("198.18.0.139", route_table=str(table))
    with pytest.raises(RuntimeError, match="cannot read the routing table .*GLOO_SOCKET_IFNAME"):
        dist.socket_interface("198.18.0.139", route_table=str(tmp_path / "missing"))

    def unresolvable(name):
        raise OSError("Name or service not known")

    monkeypatch.setattr(dist.socket, "gethostbyname", unresolvable)
    with pytest.raises(RuntimeError, match="MASTER_ADDR 'node1' does not resolve"):
        dist.socket_interface("node1", route_table=str(table))


class FakeSlurm:
    def __init__(self, addresses):
        self.addresses, self.asked = addresses, []

    def node_address_sync(self, node):
        self.asked.append(node)
        if node not in self.addresses:
            raise dist.SlurmError(f"no node {node}")
        return self.addresses[node]


def test_rendezvous_is_the_first_nodes_address():
    slurm = FakeSlurm({"node1": "198.18.0.250"})  # an address this machine does not hold
    env = {"SLURM_JOB_ID": "77", "SLURM_JOB_NODELIST": "node[1-2]"}
    assert dist.rendezvous_env(env, client=slurm) == {"MASTER_ADDR": "198.18.0.250", "MASTER_PORT": "20077"}
    assert slurm.asked == ["node1"]
    assert dist.rendezvous_env({**env, "MASTER_PORT": "29501"}, client=slurm)["MASTER_PORT"] == "29501"
    # on the first node itself (here: loopback, which this machine holds) a free port is picked
    port = int(dist.rendezvous_env(env, client=FakeSlurm({"node1": "127.0.0.1"}))["MASTER_PORT"])
    assert 0 < port < 65536
    with pytest.raises(RuntimeError, match="not inside a Slurm allocation"):
        dist.rendezvous_env({}, client=slurm)
    with pytest.raises(RuntimeError, match="address of node node1 .*set MASTER_ADDR"):
        dist.rendezvous_env(env, client=FakeSlurm({}))


def test_process_env_adds_only_what_is_missing(tmp_path):
    if sys.byteorder != "little":
        pytest.skip("the route table fixture is little-endian")
    table = tmp_path / "route"
    table.write_text(ROUTES)
    env = {**SRUN_TASK, "MASTER_ADDR": "198.18.0.139", "MASTER_PORT": "20041"}
    assert dist.process_env(env, route_table=str(table)) == {
        "RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2",
        "GLOO_SOCKET_IFNAME": "eth0", "NCCL_SOCKET_IFNAME": "eth0",
    }
    chosen = dist.process_env({**env, "GLOO_SOCKET_IFNAME": "ib0", "RANK": "3"}, route_table=str(table))
    assert chosen == {"NCCL_SOCKET_IFNAME": "eth0"}
    assert dist.process_env(SRUN_TASK, route_table=str(tmp_path / "missing"))["RANK"] == "3"  # no MASTER_ADDR: no route read


def test_the_command_prints_export_lines_for_a_batch_script(monkeypatch, capsys):
    monkeypatch.setattr(dist, "rendezvous_env", lambda: {"MASTER_ADDR": "198.18.0.139", "MASTER_PORT": "20041"})
    assert dist.main([]) == 0
    assert capsys.readouterr().out == "export MASTER_ADDR=198.18.0.139\nexport MASTER_PORT=20041\n"
    assert dist.export_lines({"A": "x y;z"}) == "export A='x y;z'\n"

    def outside():
        raise RuntimeError("not inside a Slurm allocation (no SLURM_JOB_NODELIST)")

    monkeypatch.setattr(dist, "rendezvous_env", outside)
    assert dist.main([]) == 2
    assert "error: not inside a Slurm allocation" in capsys.readouterr().err
