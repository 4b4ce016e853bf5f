"""Parsing Slurm's output into typed values (the client's pure half)."""
from __future__ import annotations

import pytest

from aifw.slurm import (
    SlurmRejected, format_slurm_minutes, node_state_base, node_takes_jobs, parse_gpus_in_use,
    parse_gres_gpus, parse_nodes, parse_partitions, parse_sbatch_job_id, parse_scontrol_job, parse_slurm_minutes,
    parse_squeue_jobs, parse_start_estimates, partitions_from_nodes,
)

SCONTROL_PARTS = """PartitionName=cpu AllowGroups=ALL Default=YES MaxTime=08:00:00 Nodes=localhost State=UP TotalCPUs=16
PartitionName=gpu AllowGroups=ALL Default=NO MaxTime=04:00:00 Nodes=localhost State=UP TotalCPUs=16
PartitionName=debug AllowGroups=ALL Default=NO MaxTime=00:30:00 Nodes=localhost State=DOWN TotalCPUs=16
"""
SINFO_NODES = """localhost|cpu*|mix|16|3/13/0/16|16000|gpu:2|up|127.0.0.1
localhost|gpu|mix|16|3/13/0/16|16000|gpu:2|up|127.0.0.1
localhost|debug|mix|16|3/13/0/16|16000|gpu:2|up|127.0.0.1
"""


@pytest.mark.parametrize("text, minutes", [("30", 30), ("1:00:00", 60), ("2-00:00:00", 2880), ("00:30:00", 30), ("UNLIMITED", None), ("1:30", 2)])
def test_slurm_time_strings(text, minutes):
    assert parse_slurm_minutes(text) == minutes


def test_minutes_round_trip():
    for m in (1, 59, 60, 61, 1439, 1440, 4321):
        assert parse_slurm_minutes(format_slurm_minutes(m)) == m


@pytest.mark.parametrize("gres, n", [("gpu:2", 2), ("gpu:a100:4(S:0-1)", 4), ("gpu:mi250:8,craynetwork:4", 8), ("(null)", 0), ("", 0)])
def test_gres_gpu_counts(gres, n):
    assert parse_gres_gpus(gres) == n


def test_partitions_merge_scontrol_and_sinfo():
    parts = {p.name: p for p in parse_partitions(SCONTROL_PARTS, SINFO_NODES)}
    assert parts["cpu"].default and parts["cpu"].max_time_minutes == 480
    assert parts["gpu"].gpus_per_node == 2 and parts["gpu"].cpus_idle == 13
    assert not parts["debug"].available and parts["debug"].max_time_minutes == 30


def test_gpus_in_use_per_node():
    assert parse_gpus_in_use("localhost|gres/gpu:1\nlocalhost|gres:gpu:1\nlocalhost|N/A\n|x\n") == {"localhost": 2}


def test_squeue_and_scontrol_job_records():
    [job] = parse_squeue_jobs("12|PENDING|Resources||gpu|2026-11-25T14:00:00\n")
    assert job.is_pending and job.reason == "Resources" and job.start_time.startswith("2026")
    [job] = parse_squeue_jobs("13|RUNNING|None|localhost|cpu|N/A\n")
    assert job.is_running and job.reason == "" and job.node == "localhost"
    info = parse_scontrol_job("JobId=14 JobName=x JobState=FAILED Reason=NonZeroExitCode ExitCode=1:0 BatchHost=localhost Partition=cpu", "14")
    assert info.is_finished and info.reason == "NonZeroExitCode" and info.exit_code == "1:0"
    assert parse_scontrol_job("", "15").state == "GONE"


def test_sbatch_job_id():
    assert parse_sbatch_job_id("42\n") == "42"
    assert parse_sbatch_job_id("warning: x\n43;cluster\n") == "43"
    with pytest.raises(SlurmRejected):
        parse_sbatch_job_id("sbatch: error: Batch job submission failed")


@pytest.mark.parametrize("state, base, takes", [
    ("idle", "idle", True), ("mix", "mix", True), ("alloc", "alloc", True), ("idle~", "idle", True),
    ("idle*", "idle", False), ("down*", "down", False), ("drain", "drain", False), ("drng", "drng", False),
    ("MIX", "mix", True), ("maint", "maint", False),
])
def test_node_states_one_rule(state, base, takes):
    assert node_state_base(state) == base
    assert node_takes_jobs(state) is takes


def test_nodes_with_addresses_and_the_default_partition():
    nodes = parse_nodes("n1|cpu*|idle|4|0/4/0/4|8000|(null)|up|198.18.0.11\n"
                        "n2|gpu|down*|8|0/0/8/8|16000|gpu:2(S:0)|up|\nshort|line\n")
    assert [(n.name, n.partition, n.default_partition, n.address, n.gpus, n.takes_jobs) for n in nodes] == [
        ("n1", "cpu", True, "198.18.0.11", 0, True), ("n2", "gpu", False, "n2", 2, False)]
    assert nodes[0].cpus == 4 and nodes[0].cpus_idle == 4 and nodes[1].memory_mb == 16000


def test_partitions_count_only_nodes_that_take_jobs():
    parts = {p.name: p for p in parse_partitions("", "n1|cpu*|idle|4|0/4/0/4|8000|gpu:1|up|n1\n"
                                                     "n2|cpu*|down*|4|0/0/4/4|8000|gpu:1|up|n2\n")}
    cpu = parts["cpu"]
    assert cpu.default and cpu.node_names == ("n1", "n2") and [n.name for n in cpu.usable_nodes] == ["n1"]
    assert cpu.cpus_idle == 4 and cpu.gpus_idle == 1


def test_partitions_from_nodes_group_in_sinfo_order_with_the_default():
    parts = partitions_from_nodes(parse_nodes("n1|gpu|mix|8|2/6/0/8|16000|gpu:2|up|10.0.0.1\n"
                                              "n1|cpu*|mix|8|2/6/0/8|16000|gpu:2|up|10.0.0.1\n"
                                              "n2|cpu*|drain|4|0/0/4/4|8000|(null)|up|10.0.0.2\n"))
    assert list(parts) == ["gpu", "cpu"]
    assert parts["cpu"].default and not parts["gpu"].default
    assert parts["cpu"].node_names == ("n1", "n2") and [n.name for n in parts["cpu"].usable_nodes] == ["n1"]
    assert parts["cpu"].cpus_per_node == 8 and parts["cpu"].cpus_idle == 6 and parts["gpu"].gpus_idle == 2
    assert partitions_from_nodes([]) == {}


def test_start_estimates():
    assert parse_start_estimates("7|2026-12-01T10:00:00\n8|N/A\nx\n") == {"7": "2026-12-01T10:00:00"}


@pytest.mark.parametrize("text", ["x;cluster", "4 2", "-1", "42abc"])
def test_sbatch_output_that_is_no_job_id_is_refused(text):
    with pytest.raises(SlurmRejected):
        parse_sbatch_job_id(text)


def test_job_ids_are_each_job_once_and_nothing_else():
    from aifw.slurm import parse_job_ids

    # An array's running and pending tasks all print its base id (%F): scancel of that id stops them all.
    assert parse_job_ids("41\n42\n42\n42\n43\n") == ["41", "42", "43"]
    assert parse_job_ids("") == []
    with pytest.raises(SlurmRejected, match="where a job id belongs"):
        parse_job_ids("41\n42_[1-3]\n")


def test_a_given_environment_is_the_commands_whole_environment(monkeypatch):
    # sbatch exports its environment into the job: the hub's own secrets must not ride along.
    from aifw.slurm import SlurmClient

    monkeypatch.setenv("AIFW_ADMIN_TOKEN", "hub-secret")
    client = SlurmClient(bin_dir="/usr/bin", conf="/etc/slurm/test.conf")
    given = client.run_sync("env", [], env={"JUPYTERHUB_USER": "learner1"}).stdout.splitlines()
    assert sorted(given) == ["JUPYTERHUB_USER=learner1", "SLURM_CONF=/etc/slurm/test.conf"]
    inherited = client.run_sync("env", []).stdout.splitlines()
    assert "AIFW_ADMIN_TOKEN=hub-secret" in inherited and "SLURM_CONF=/etc/slurm/test.conf" in inherited


SDIAG = """*******************************************************
sdiag output at Wed Dec 02 01:45:32 2026 (1796175932)
*******************************************************
Server thread count:  3
Jobs submitted: 18

Remote Procedure Call statistics by message type
	REQUEST_PARTITION_INFO                  ( 2009) count:239    ave_time:288    total_time:68984
	REQUEST_FED_INFO                        ( 2049) count:177    ave_time:306    total_time:54167
	REQUEST_JOB_INFO_SINGLE                 ( 2021) count:168    ave_time:335    total_time:56339
	REQUEST_STATS_INFO                      ( 2035) count:4      ave_time:100    total_time:400

Remote Procedure Call statistics by user
	root            (       0) count:573    ave_time:344    total_time:254783
	test-researcher1(    1004) count:15     ave_time:987    total_time:987

Pending RPC statistics
	No pending RPCs
"""


def test_sdiag_rpc_counters_and_the_requests_between_two_readings():
    from aifw.slurm.parse import parse_sdiag_rpcs

    before = parse_sdiag_rpcs(SDIAG)
    assert before.by_type == {"REQUEST_PARTITION_INFO": 239, "REQUEST_FED_INFO": 177,
                              "REQUEST_JOB_INFO_SINGLE": 168, "REQUEST_STATS_INFO": 4}
    assert before.by_user == {"root": 573, "test-researcher1": 15} and before.total == 588
    after = parse_sdiag_rpcs(SDIAG.replace("count:168 ", "count:200 ").replace("count:4 ", "count:5 ")
                             .replace("count:573 ", "count:606 "))
    between = after.since(before)
    assert between.by_type == {"REQUEST_JOB_INFO_SINGLE": 32, "REQUEST_STATS_INFO": 1}
    assert between.by_user == {"root": 33} and between.total == 33
    # Counters reset in between (sdiag -r): the new reading counts from zero.
    assert parse_sdiag_rpcs(SDIAG.replace("count:239 ", "count:3 ")).since(before).by_type == {"REQUEST_PARTITION_INFO": 3}
    with pytest.raises(SlurmRejected, match="no RPC statistics"):
        parse_sdiag_rpcs("sdiag: error: Unable to contact slurm controller")
