"""Parsing Slurm's output into typed values (the client's pure half)."""
from __future__ import annotations

import pytest

from aifw.slurm import (
    SlurmRejected, format_slurm_minutes, parse_gpus_in_use, parse_gres_gpus, parse_partitions,
    parse_sbatch_job_id, parse_scontrol_job, parse_slurm_minutes, parse_squeue_jobs,
)

SCONTROL_PARTS = """PartitionName=cpu AllowGroups=ALL Default=YES MaxTime=08:00:00 Nodes=localhost State=UP TotalCPUs=16
PartitionName=gpu AllowGroups=ALL Default=NO MaxTime=04:00:00 Nodes=localhost State=UP TotalCPUs=16
PartitionName=debug AllowGroups=ALL Default=NO MaxTime=00:30:00 Nodes=localhost State=DOWN TotalCPUs=16
"""
SINFO_NODES = """localhost|cpu*|mix|16|3/13/0/16|16000|gpu:2|up
localhost|gpu|mix|16|3/13/0/16|16000|gpu:2|up
localhost|debug|mix|16|3/13/0/16|16000|gpu:2|up
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
