"""Explain a queued job in plain words (pure over parsed squeue data)."""
from __future__ import annotations

from aifw.slurm import JobInfo

# Slurm's pending reasons (squeue %r) in words a learner understands.
REASONS = {
    "Resources": "waiting for free resources (the CPUs, memory or GPUs you asked for are in use)",
    "Priority": "waiting behind jobs with higher priority",
    "ReqNodeNotAvail": "a node it needs is not available (down, drained or reserved)",
    "Reservation": "waiting for its reservation to start",
    "PartitionTimeLimit": "its walltime is above the partition's limit",
    "PartitionDown": "the partition is down",
    "PartitionNodeLimit": "it asks for more nodes than the partition allows",
    "QOSMaxGRESPerUser": "you already use the most GPUs your QoS allows",
    "QOSMaxJobsPerUserLimit": "you already run the most jobs your QoS allows",
    "AssocGrpGRES": "your project has used up its GPU allowance for now",
    "Dependency": "waiting for another job to finish",
    "BeginTime": "its start time is in the future",
    "JobHeldUser": "held by you (scontrol release to start it)",
    "JobHeldAdmin": "held by an administrator",
    "None": "being scheduled",
}


def explain_reason(reason: str) -> str:
    if not reason:
        return "being scheduled"
    return REASONS.get(reason, f"Slurm says: {reason}")


def describe_job(info: JobInfo, position: int | None = None, estimated_start: str = "") -> str:
    """One progress line: job id, state, reason in words, position and estimated start when known."""
    text = f"Job {info.job_id} is {info.state.lower()} in partition {info.partition or '?'}: {explain_reason(info.reason)}"
    if position is not None:
        text += f"; position {position} in the queue"
    if estimated_start:
        text += f"; Slurm estimates it starts at {estimated_start}"
    return text
