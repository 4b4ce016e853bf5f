"""Explain a queued job in plain words (pure over parsed squeue data)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Mapping

from aifw.slurm import JobInfo, PartitionInfo

if TYPE_CHECKING:
    from .request import Limits

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


def faster_option(
    request_partition: str,
    cpus: int,
    gpus: int,
    runtime_minutes: int,
    candidates: Mapping[str, PartitionInfo],
    limits: Mapping[str, "Limits"],
) -> str:
    """A partition that could run the same request now ("debug has 14 idle CPUs now"), or ""."""
    for name, info in candidates.items():
        lim = limits.get(name)
        if name == request_partition or lim is None or not info.available:
            continue
        if gpus == 0 and lim.max_gpus > 0:
            continue  # GPU partitions are for GPU work
        fits_now = info.cpus_idle >= cpus and (gpus == 0 or info.gpus_idle >= gpus)
        fits_policy = cpus <= lim.max_cpus and gpus <= lim.max_gpus and runtime_minutes <= lim.max_runtime_minutes
        if fits_now and fits_policy:
            what = f"{info.cpus_idle} idle CPUs" + (f" and {info.gpus_idle} free GPUs" if gpus else "")
            return f"{name} has {what} now (max {lim.max_runtime_minutes} min): stop this request and choose {name} to start at once"
    return ""
