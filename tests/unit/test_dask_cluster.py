"""dask_cluster(): the Slurm-or-local decision, the probe (through aifw.slurm, with fake sinfo commands), the
checks of our #SBATCH text, the scheduler host, and the clusters it builds (no worker is ever submitted;
the one LocalCluster with a worker process starts in about a second)."""
from __future__ import annotations

import os
import stat
import sys
import textwrap

import pytest

from aifw.extensions.kernel import dask_cluster as dc
from aifw.names import UnsafeName
from aifw.slurm import parse_nodes, partitions_from_nodes

# sinfo -N -h -o NODE_FORMAT ("%N|%P|%t|%c|%C|%m|%G|%a|%o")
SINFO_ONE_NODE = textwrap.dedent(
    """\
    localhost|cpu*|idle|16|0/16/0/16|24000|(null)|up|127.0.0.1
    localhost|gpu|mix|16|4/12/0/16|24000|gpu:1|up|127.0.0.1
    localhost|debug|idle|16|0/16/0/16|24000|(null)|up|127.0.0.1
    """
)
SINFO_TWO_NODES = textwrap.dedent(
    """\
    n1|batch*|idle|8|0/8/0/8|1|(null)|up|10.0.0.11
    n2|batch*|alloc|8|8/0/0/8|1|(null)|up|10.0.0.12
    n3|broken|down*|8|0/0/8/8|4000|(null)|up|10.0.0.13
    n4|broken|drain|8|0/0/8/8|4000|(null)|up|10.0.0.14
    """
)


def probe(text: str) -> dc.SlurmProbe:
    return dc.SlurmProbe(True, "Slurm answered", partitions_from_nodes(parse_nodes(text)))


DOWN = dc.SlurmProbe(False, "'sinfo' failed: could not establish a configuration source")


# ---------------------------------------------------------------- decide
def test_local_when_slurm_does_not_answer_with_reason():
    d = dc.decide(DOWN)
    assert d.backend == "local"
    assert "Slurm is not available" in d.reason and "configuration source" in d.reason


def test_slurm_when_it_answers_uses_default_partition():
    d = dc.decide(probe(SINFO_ONE_NODE))
    assert d.backend == "slurm" and d.partition.name == "cpu"
    assert "'cpu' (the default)" in d.reason and not d.skip_mem_directive


def test_named_partition():
    d = dc.decide(probe(SINFO_ONE_NODE), partition="gpu")
    assert d.backend == "slurm" and d.partition.name == "gpu"


def test_unknown_partition_is_an_error_listing_the_real_ones():
    with pytest.raises(ValueError, match=r"no partition 'gpus'.*cpu, gpu, debug"):
        dc.decide(probe(SINFO_ONE_NODE), partition="gpus")


def test_partition_without_usable_nodes_falls_back_to_local():
    d = dc.decide(probe(SINFO_TWO_NODES), partition="broken")
    assert d.backend == "local" and "no node that takes jobs" in d.reason and "down*" in d.reason


def test_partition_without_usable_nodes_with_forced_slurm_raises():
    with pytest.raises(RuntimeError, match="no node that takes jobs"):
        dc.decide(probe(SINFO_TWO_NODES), partition="broken", backend="slurm")


def test_forced_local_never_looks_at_slurm():
    d = dc.decide(probe(SINFO_ONE_NODE), backend="local")
    assert d.backend == "local" and "backend='local'" in d.reason


def test_forced_slurm_without_slurm_raises_with_the_reason():
    with pytest.raises(RuntimeError, match="configuration source"):
        dc.decide(DOWN, backend="slurm")


def test_unknown_backend():
    with pytest.raises(ValueError, match="backend must be"):
        dc.decide(DOWN, backend="kubernetes")


def test_too_many_cores_is_an_error():
    with pytest.raises(ValueError, match="at most 16 CPUs per node; you asked for cores=32"):
        dc.decide(probe(SINFO_ONE_NODE), cores=32)


def test_nodes_without_real_memory_skip_the_mem_directive():
    d = dc.decide(probe(SINFO_TWO_NODES), memory="1GiB")
    assert d.backend == "slurm" and d.skip_mem_directive and "no --mem" in d.reason


# ---------------------------------------------------------------- pick_scheduler_host
@pytest.mark.parametrize(
    "addresses, local, route, expected",
    [
        (["127.0.0.1"], [], None, "127.0.0.1"),
        (["localhost"], [], None, "127.0.0.1"),
        (["::1"], [], None, "127.0.0.1"),
        (["node7"], ["node7", "10.1.1.7"], None, "127.0.0.1"),
        (["10.1.1.7"], ["node7", "10.1.1.7"], None, "127.0.0.1"),
        (["10.0.0.11", "10.0.0.12"], ["login1"], "10.0.0.2", "10.0.0.2"),
    ],
)
def test_pick_scheduler_host(addresses, local, route, expected):
    assert dc.pick_scheduler_host(addresses, local, route) == expected


def test_pick_scheduler_host_remote_without_route_asks_for_it():
    with pytest.raises(RuntimeError, match="scheduler_host="):
        dc.pick_scheduler_host(["10.0.0.11"], ["login1"], "127.0.0.1")


@pytest.mark.parametrize(
    "nodes, held, route, expected, asked",
    [
        # the kernel on the login node, workers on two compute nodes: the login node's cluster address
        (["198.18.0.139", "198.18.0.140"], set(), {"198.18.0.139": "198.18.0.129"}, "198.18.0.129", ["198.18.0.139"]),
        # the kernel in a session on node1 (it holds .139): the route towards node2 gives node1's own address
        (["198.18.0.139", "198.18.0.140"], {"198.18.0.139"}, {"198.18.0.140": "198.18.0.139"}, "198.18.0.139",
         ["198.18.0.140"]),
        # every node is this machine (single-node mode, or a partition of the kernel's own node)
        (["127.0.0.1"], set(), {}, "127.0.0.1", []),
        (["198.18.0.139"], {"198.18.0.139"}, {}, "127.0.0.1", []),
    ],
)
def test_scheduler_host_from_where_the_kernel_runs(monkeypatch, nodes, held, route, expected, asked):
    monkeypatch.setattr(dc, "_local_names", lambda: {"node1"})  # names do not resolve: only the hostname
    monkeypatch.setattr(dc, "_holds", lambda address: address in held)
    seen = []
    monkeypatch.setattr(dc, "_route_address", lambda target: seen.append(target) or route.get(target))
    assert dc._scheduler_host(nodes) == expected
    assert seen == asked


def test_this_machine_holds_loopback_but_not_a_foreign_address():
    assert dc._holds("127.0.0.1")
    assert not dc._holds("198.18.0.254")  # never on this machine's interfaces in the tests
    assert dc._route_address("127.0.0.1") == "127.0.0.1"


# ---------------------------------------------------------------- probe_slurm with fake sinfo commands
def fake_sinfo(tmp_path, body: str) -> str:
    """A folder whose `sinfo` is a shell script (the probe's bin_dir); it records its arguments."""
    path = tmp_path / "sinfo"
    path.write_text(f'#!/bin/sh\necho "$@" > {tmp_path}/argv\n' + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(tmp_path)


def test_probe_missing_command(tmp_path):
    p = dc.probe_slurm(bin_dir=str(tmp_path / "nope"))
    assert not p.available and p.reason == "the Slurm command 'sinfo' is not installed on this machine"


def test_probe_missing_command_on_path(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    p = dc.probe_slurm()
    assert not p.available and "not installed" in p.reason


def test_probe_failing_command_gives_the_last_line(tmp_path):
    bin_dir = fake_sinfo(tmp_path, "echo 'sinfo: warning: x' >&2; echo 'sinfo: error: invalid format' >&2; exit 1")
    p = dc.probe_slurm(bin_dir=bin_dir)
    assert not p.available and p.reason == "'sinfo' failed: sinfo: error: invalid format"


def test_probe_controller_down(tmp_path):
    p = dc.probe_slurm(bin_dir=fake_sinfo(tmp_path, "echo 'sinfo: error: Unable to contact slurm controller' >&2; exit 1"))
    assert not p.available and p.reason == "'sinfo' failed: sinfo: error: Unable to contact slurm controller"


def test_probe_hanging_command_times_out(tmp_path):
    p = dc.probe_slurm(bin_dir=fake_sinfo(tmp_path, "exec sleep 30"), timeout=0.5)
    assert not p.available and p.reason == "'sinfo' did not answer within 0.5 s"


def test_probe_empty_answer(tmp_path):
    p = dc.probe_slurm(bin_dir=fake_sinfo(tmp_path, "exit 0"))
    assert not p.available and p.reason == "'sinfo' answered but lists no partition"


def test_probe_asks_for_nodes_and_passes_slurm_conf(tmp_path):
    bin_dir = fake_sinfo(tmp_path, 'echo "n1|cpu*|idle|2|0/2/0/2|100|(null)|up|$SLURM_CONF"\n'
                                   'echo "n1|gpu|mix|2|1/1/0/2|100|gpu:1|up|$SLURM_CONF"')
    p = dc.probe_slurm(bin_dir=bin_dir, slurm_conf="/etc/x/slurm.conf")
    assert p.available and p.reason == "Slurm answered"
    assert list(p.partitions) == ["cpu", "gpu"] and p.default_partition.name == "cpu"
    assert p.partitions["cpu"].nodes[0].address == "/etc/x/slurm.conf"
    assert (tmp_path / "argv").read_text().split() == ["-N", "-h", "-o", "%N|%P|%t|%c|%C|%m|%G|%a|%o"]


def test_a_probe_with_nodes_drives_the_decision(tmp_path):
    bin_dir = fake_sinfo(tmp_path, "printf '%s\\n' 'n1|cpu*|down*|2|0/0/2/2|100|(null)|up|n1' "
                                   "'n2|cpu*|idle|4|0/4/0/4|100|(null)|up|n2'")
    p = dc.probe_slurm(bin_dir=bin_dir)
    assert [n.name for n in p.partitions["cpu"].usable_nodes] == ["n2"]
    with pytest.raises(ValueError, match="at most 4 CPUs"):
        dc.decide(p, cores=8)


# ---------------------------------------------------------------- our #SBATCH text
def test_checked_job_text_passes_good_values():
    assert dc.check_job_text(partition="gpu-a100", account="proj.x_1", walltime="1-00:00:00",
                             job_extra_directives=("--gres=gpu:1", "--constraint=a100"),
                             log_directory="/home/u/logs") == ["--gres=gpu:1", "--constraint=a100"]
    assert dc.check_job_text() == []


@pytest.mark.parametrize("kwargs, message", [
    ({"partition": "cpu\n#SBATCH --qos=high"}, "partition .* is not a Slurm name"),
    ({"partition": "cpu gpu"}, "partition .* is not a Slurm name"),
    ({"account": "-Aother"}, "account .* is not a Slurm name"),
    ({"account": ""}, "account .* is not a Slurm name"),
    ({"walltime": "00:10:00\n#SBATCH --qos=high"}, "walltime .* is not a Slurm time"),
    ({"walltime": "ten minutes"}, "walltime .* is not a Slurm time"),
    ({"job_extra_directives": ["--gres=gpu:1\n#SBATCH --qos=high"]}, "is not one line"),
    ({"job_extra_directives": ["--gres=gpu:1\rx"]}, "is not one line"),
    ({"job_extra_directives": ["--gres=gpu:1\u2028x"]}, "is not one line"),
    ({"job_extra_directives": [3]}, "is not one line"),
    ({"job_extra_directives": ["#SBATCH --gres=gpu:1"]}, "is not an sbatch option"),
    ({"job_extra_directives": [""]}, "is not an sbatch option"),
    ({"job_extra_directives": "--gres=gpu:1"}, "must be a list"),
    ({"log_directory": "/tmp/x\n#SBATCH --qos=high"}, "contains a line break"),
])
def test_unsound_job_text_is_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        dc.check_job_text(**kwargs)


def test_names_are_checked_with_the_project_patterns():
    with pytest.raises(UnsafeName):
        dc.check_job_text(partition="bad;name")


def test_dask_cluster_refuses_unsound_text_before_asking_slurm(monkeypatch):
    def boom(**kw):
        raise AssertionError("sinfo must not be asked")

    monkeypatch.setattr(dc, "probe_slurm", boom)
    with pytest.raises(ValueError, match="is not one line"):
        dc.dask_cluster(job_extra_directives=["--gres=gpu:1\n#SBATCH --qos=high"], quiet=True)
    with pytest.raises(ValueError, match="not a Slurm name"):
        dc.dask_cluster(backend="local", partition="a b", quiet=True)


# ---------------------------------------------------------------- dask_cluster()
def test_dask_cluster_falls_back_to_local_and_says_why(monkeypatch, capsys):
    monkeypatch.setattr(dc, "probe_slurm", lambda **kw: DOWN)
    monkeypatch.delenv(dc.BACKEND_ENV, raising=False)
    from distributed import Client, LocalCluster

    cluster = dc.dask_cluster(n_workers=1)
    try:
        assert isinstance(cluster, LocalCluster)
        assert cluster.aifw_backend == "local"
        assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")
        out = capsys.readouterr().out
        assert "Slurm is not available here" in out and "LocalCluster" in out
        with Client(cluster) as client:
            assert client.submit(sum, [1, 2, 3]).result(timeout=30) == 6
    finally:
        cluster.close()


def test_env_variable_forces_local(monkeypatch, capsys):
    def boom(**kw):
        raise AssertionError("sinfo must not be asked")

    monkeypatch.setattr(dc, "probe_slurm", boom)
    monkeypatch.setenv(dc.BACKEND_ENV, "local")
    cluster = dc.dask_cluster(n_workers=0, quiet=True)
    try:
        assert cluster.aifw_backend == "local"
        assert capsys.readouterr().out == ""
    finally:
        cluster.close()


def test_dask_cluster_builds_the_slurm_job(monkeypatch, capsys, tmp_path):
    """With Slurm answering (faked), the SLURMCluster gets the right job script; nothing is submitted."""
    monkeypatch.setattr(dc, "probe_slurm", lambda **kw: probe(SINFO_ONE_NODE))
    monkeypatch.delenv(dc.BACKEND_ENV, raising=False)
    from dask_jobqueue import SLURMCluster

    cluster = dc.dask_cluster(
        n_workers=0, partition="debug", cores=2, memory="2GiB", walltime="00:10:00",
        job_extra_directives=["--gres=gpu:1"], log_directory=str(tmp_path / "logs"),
    )
    try:
        assert isinstance(cluster, SLURMCluster)
        assert cluster.aifw_backend == "slurm"
        assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")
        script = cluster.job_script()
        for line in ("#SBATCH -p debug", "#SBATCH -n 1", "#SBATCH --cpus-per-task=2", "#SBATCH --mem=2G",
                     "#SBATCH -t 00:10:00", "#SBATCH --gres=gpu:1", "#SBATCH -J aifw-dask"):
            assert line in script
        assert f"{sys.executable} -m distributed.cli.dask_worker" in script
        assert str(tmp_path / "logs") in script
        assert "Slurm answered" in capsys.readouterr().out
    finally:
        cluster.close()


def test_dask_cluster_skips_mem_on_nodes_without_memory(monkeypatch, tmp_path):
    monkeypatch.setattr(dc, "probe_slurm", lambda **kw: probe(SINFO_TWO_NODES))
    monkeypatch.setattr(dc, "_local_names", lambda: {"login1"})
    monkeypatch.setattr(dc, "_route_address", lambda target: "127.0.0.1")
    # the nodes are remote; a loopback route is refused, so the caller's scheduler_host is required
    with pytest.raises(RuntimeError, match="scheduler_host"):
        dc.dask_cluster(n_workers=0, quiet=True, log_directory=str(tmp_path))
    cluster = dc.dask_cluster(n_workers=0, quiet=True, scheduler_host="127.0.0.1", log_directory=str(tmp_path))
    try:
        script = cluster.job_script()
        assert "#SBATCH --mem" not in script and "#SBATCH -p" not in script  # default partition: no -p
    finally:
        cluster.close()


def test_slurm_conf_argument_goes_into_the_environment(monkeypatch):
    seen = {}

    def fake_probe(**kw):
        seen["conf"] = os.environ.get("SLURM_CONF")
        return DOWN

    monkeypatch.setattr(dc, "probe_slurm", fake_probe)
    monkeypatch.delenv(dc.BACKEND_ENV, raising=False)
    monkeypatch.setenv("SLURM_CONF", "/old")
    cluster = dc.dask_cluster(n_workers=0, quiet=True, slurm_conf="/srv/slurm/slurm.conf")
    cluster.close()
    assert seen["conf"] == "/srv/slurm/slurm.conf"


@pytest.mark.parametrize("kwargs", [{"n_workers": -1}, {"cores": 0}, {"cores": 1, "processes": 2}])
def test_bad_shapes(kwargs):
    with pytest.raises(ValueError):
        dc.dask_cluster(backend="local", quiet=True, **kwargs)
