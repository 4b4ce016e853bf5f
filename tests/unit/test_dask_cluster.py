"""dask_cluster(): the Slurm-or-local decision, sinfo parsing, scheduler host, and the clusters it builds."""
from __future__ import annotations

import os
import stat
import sys
import textwrap

import pytest

from aifw.extensions.kernel import dask_cluster as dc

SINFO_ONE_NODE = textwrap.dedent(
    """\
    cpu*|localhost|127.0.0.1|16|24000|idle
    gpu|localhost|127.0.0.1|16|24000|mix
    debug|localhost|127.0.0.1|16|24000|idle
    """
)
SINFO_TWO_NODES = textwrap.dedent(
    """\
    batch*|n1|10.0.0.11|8|1|idle
    batch*|n2|10.0.0.12|8|1|alloc
    broken|n3|10.0.0.13|8|4000|down*
    broken|n4|10.0.0.14|8|4000|drain
    """
)


def probe(text: str) -> dc.SlurmProbe:
    return dc.SlurmProbe(True, "Slurm answered", dc.parse_sinfo(text))


DOWN = dc.SlurmProbe(False, "'sinfo' failed: could not establish a configuration source")


# ---------------------------------------------------------------- parse_sinfo
def test_parse_sinfo_partitions_default_and_nodes():
    parts = dc.parse_sinfo(SINFO_ONE_NODE)
    assert list(parts) == ["cpu", "gpu", "debug"]
    assert parts["cpu"].default and not parts["gpu"].default
    node = parts["cpu"].nodes[0]
    assert (node.name, node.address, node.cpus, node.memory_mb, node.state) == ("localhost", "127.0.0.1", 16, 24000, "idle")


@pytest.mark.parametrize(
    "state, usable",
    [("idle", True), ("mix", True), ("alloc", True), ("idle*", False), ("down*", False), ("drain", False),
     ("drng", False), ("mix~", True), ("comp", True), ("fail", False), ("unk", False)],
)
def test_node_state_usable(state, usable):
    # "idle*" = not responding: jobs would wait forever
    assert dc.NodeInfo("n", "n", 1, 1, state).usable is usable


def test_parse_sinfo_ignores_garbage_lines():
    assert dc.parse_sinfo("\nnot a line\n|a|b|c|d|e\n") == {}


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


# ---------------------------------------------------------------- probe_slurm with fake sinfo commands
def fake_command(tmp_path, body: str) -> str:
    path = tmp_path / "sinfo"
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


def test_probe_missing_command(tmp_path):
    p = dc.probe_slurm(sinfo=str(tmp_path / "nope"))
    assert not p.available and "not installed" in p.reason


def test_probe_failing_command(tmp_path):
    p = dc.probe_slurm(sinfo=fake_command(tmp_path, "echo 'sinfo: error: Unable to contact slurm controller' >&2; exit 1"))
    assert not p.available and "Unable to contact slurm controller" in p.reason


def test_probe_hanging_command_times_out(tmp_path):
    p = dc.probe_slurm(sinfo=fake_command(tmp_path, "exec sleep 30"), timeout=0.5)
    assert not p.available and "did not answer within 0.5 s" in p.reason


def test_probe_empty_answer(tmp_path):
    p = dc.probe_slurm(sinfo=fake_command(tmp_path, "exit 0"))
    assert not p.available and "no partition" in p.reason


def test_probe_passes_slurm_conf(tmp_path):
    cmd = fake_command(tmp_path, 'echo "cpu*|localhost|$SLURM_CONF|2|100|idle"')
    p = dc.probe_slurm(sinfo=cmd, slurm_conf="/etc/x/slurm.conf")
    assert p.available and p.partitions["cpu"].nodes[0].address == "/etc/x/slurm.conf"


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
