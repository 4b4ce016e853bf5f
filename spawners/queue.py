"""Why a job waits, or why it ended, in plain words (pure over parsed squeue data).

A reason from a limit or a budget names the project (the job's account) when it is known and says what
unblocks the job."""
from __future__ import annotations

from typing import TYPE_CHECKING, Mapping

from aifw.slurm import JobInfo, PartitionInfo

if TYPE_CHECKING:
    from .request import Limits

# Slurm's pending reasons (squeue %r) in words a learner understands. "{project}" becomes "project
# proj-llm" (or "your project" when the account is not known).
REASONS = {
    "Resources": "waiting for free resources (the CPUs, memory or GPUs you asked for are in use)",
    "Priority": "waiting behind jobs with higher priority",
    "ReqNodeNotAvail": "a node it needs is not available (down, drained or reserved)",
    "NodeDown": "a node it needs is down; it starts when the node is back or another one is free",
    "Reservation": "waiting for its reservation to start",
    "PartitionTimeLimit": "its walltime is above the partition's limit",
    "PartitionDown": "the partition is down",
    "PartitionNodeLimit": "it asks for more nodes than the partition allows",
    "BeginTime": "its start time is in the future",
    "Dependency": "waiting for another job to finish",
    "JobHeldUser": "held by you (scontrol release to start it)",
    "JobHeldAdmin": "held by an administrator",
    "None": "being scheduled",
    # Budgets and limits of the project (the association).
    "AssocGrpGRESMinutes": (
        "{project} has not enough GPU-hours left for it (GPUs x walltime must fit what is left of the budget "
        "after its running jobs): it starts when the project's running jobs end and leave enough, or when an "
        "administrator raises the budget; to start sooner, stop it and ask for fewer GPUs or a shorter walltime"),
    "AssocGrpGRESRunMinutes": (
        "{project}'s running jobs already hold the most GPU-minutes it may have in use at once; it starts when "
        "some of them end (or ask for fewer GPUs or a shorter walltime)"),
    "AssocGrpGRES": (
        "{project} already uses all the GPUs it may use at once; it starts when one of its GPU jobs ends"),
    "AssocGrpCPUMinutes": (
        "{project} has used up its CPU-hours budget; it starts only when an administrator raises the budget"),
    "AssocGrpCPURunMinutes": (
        "{project}'s running jobs already hold the most CPU-minutes it may have in use at once; it starts when "
        "some of them end"),
    "AssocGrpCpuLimit": "{project} already uses all the CPUs it may use at once; it starts when one of its jobs ends",
    "AssocGrpMemLimit": "{project} already uses all the memory it may use at once; it starts when one of its jobs ends",
    "AssocGrpJobsLimit": "{project} already runs the most jobs it may run at once; it starts when one of them ends",
    "AssocGrpSubmitJobsLimit": "{project} already has the most jobs it may have queued",
    "AssocMaxJobsLimit": (
        "you already run the most jobs {project} allows each member at once; it starts when one of them ends"),
    "AssocMaxWallDurationPerJobLimit": (
        "its walltime is above what {project} allows per job: it will not start; stop it and ask for a "
        "shorter walltime"),
    "AssocMaxGRESPerJob": (
        "it asks for more GPUs than {project} allows per job: it will not start; stop it and ask for fewer"),
    "QOSMaxGRESPerUser": (
        "you already use the most GPUs your QOS allows per user; it starts when one of your GPU jobs ends"),
    "QOSMaxJobsPerUserLimit": "you already run the most jobs your QOS allows; it starts when one of them ends",
    "QOSMaxWallDurationPerJobLimit": (
        "its walltime is above what its QOS allows per job: it will not start; stop it and ask for a shorter "
        "walltime"),
    "QOSGrpGRES": "the jobs of its QOS already use all the GPUs the QOS may use at once; it starts when one ends",
    "QOSGrpGRESMinutes": "its QOS has used up its GPU-hours budget; it starts only when an administrator raises it",
    "QOSMaxGRESPerJob": "it asks for more GPUs than its QOS allows per job: it will not start; stop it and ask for fewer",
    "InvalidAccount": "its account (project) is not valid: it will not start; stop it and choose one of your projects",
    "InvalidQOS": "its QOS is not valid for you: it will not start",
}

# Slurm's end states (squeue %T / scontrol JobState) in words.
ENDINGS = {
    "NODE_FAIL": "its compute node {node} failed (Slurm lost contact with it)",
    "TIMEOUT": "it reached its walltime",
    "OUT_OF_MEMORY": "it ran out of memory (ask for more memory next time)",
    "CANCELLED": "it was cancelled (scancel, or an administrator)",
    "PREEMPTED": "it was preempted by a job with higher priority",
    "FAILED": "it failed",
    "BOOT_FAIL": "its node {node} failed to boot",
    "DEADLINE": "it reached its deadline",
    "COMPLETED": "its server exited",
    "GONE": "Slurm no longer knows the job",
}


def _project(account: str) -> str:
    return f"project {account}" if account else "your project"


def explain_reason(reason: str, account: str = "") -> str:
    """Slurm's pending reason in words; `account`: the job's project, named where a limit is its own."""
    if not reason:
        return "being scheduled"
    words = REASONS.get(reason)
    if words is None:
        if reason.startswith("Assoc"):
            return f"held by a limit of {_project(account)} (Slurm says: {reason}); ask your project's administrator"
        if reason.startswith("QOS"):
            return f"held by a limit of its QOS (Slurm says: {reason})"
        return f"Slurm says: {reason}"
    return words.replace("{project}", _project(account))


def explain_end(info: JobInfo) -> str:
    """Why a job ended, in words: "its compute node node2 failed (Slurm lost contact with it)"."""
    node = info.node.split(",")[0] if info.node else "?"
    return ENDINGS.get(info.state, f"it ended ({info.state})").replace("{node}", node)


def describe_job(info: JobInfo, position: int | None = None, estimated_start: str = "", account: str = "") -> str:
    """One progress line: job id, state, reason in words (naming the project `account` where a limit or
    budget of it holds the job), position and estimated start when known."""
    text = (f"Job {info.job_id} is {info.state.lower()} in partition {info.partition or '?'}: "
            f"{explain_reason(info.reason, account)}")
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
