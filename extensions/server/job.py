"""The session's Slurm job as typed values (pure: no I/O).

What a JupyterLab session shows about its job comes from two places, read into one `SessionJob`:

- the job's environment (SLURM_JOB_ID, SLURM_JOB_PARTITION, SLURM_JOB_NODELIST, SLURM_CPUS_ON_NODE,
  SLURM_MEM_PER_NODE, SLURM_JOB_GPUS or CUDA_VISIBLE_DEVICES, SLURM_JOB_ACCOUNT, SLURM_JOB_END_TIME where
  Slurm sets it): fixed at the job's start, always at hand;
- Slurm's own record of the job (`scontrol show job`, a dict of its Key=Value pairs): read again every
  half minute, so a changed time limit (`scontrol update JobId=... TimeLimit=...`) shows.

Every value is checked on the way in (names against `aifw.names`, numbers as numbers, times as times);
a value that fails the check is left out and said in `notes`, never passed on as it came. `walltime_left`
and `gpu_hours` are the arithmetic; `SessionJob.view` is the JSON the server extension answers with.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Mapping

from aifw.names import JOB_ID, SLURM_NAME, matches

NOT_IN_JOB = "This server does not run in a Slurm job (its environment has no SLURM_JOB_ID)."

#: A Slurm node list such as ``node1``, ``node[1-2]`` or ``gpu[03-04,07],cpu1``.
_NODE_LIST = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-\[\],]{0,1023}$")
#: Memory as Slurm writes it: '2048' (MiB), '2G', '512M', '1.5T'.
_MEMORY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)([KMGTP]?)$")
_MEMORY_UNIT_MB = {"K": 1 / 1024, "": 1, "M": 1, "G": 1024, "T": 1024 ** 2, "P": 1024 ** 3}
#: GPU indices as the environment lists them: '0', '0,1', '0,2,3'.
_GPU_INDICES = re.compile(r"^[0-9]+(?:,[0-9]+)*$")
#: An absolute path with plain characters only (Slurm's StdOut).
_PLAIN_PATH = re.compile(r"^/[A-Za-z0-9_.\-/@+%]{0,4095}$")


@dataclass(frozen=True)
class SessionJob:
    """The Slurm job a server runs in; None where neither the environment nor Slurm said it (or what
    they said was not a valid value: see `notes`)."""

    job_id: str
    partition: str | None = None
    nodes: str | None = None
    cpus: int | None = None
    memory_mb: int | None = None
    gpus: int = 0
    project: str | None = None
    state: str | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    time_limit_s: int | None = None
    log_path: str | None = None
    from_slurm: bool = False
    notes: tuple[str, ...] = field(default_factory=tuple)

    def view(self, now: datetime, *, log_url: str | None) -> dict:
        """The typed JSON of the job at `now` (the server extension's answer)."""
        return {
            "in_slurm_job": True,
            "job_id": self.job_id,
            "partition": self.partition,
            "nodes": self.nodes,
            "cpus": self.cpus,
            "memory_mb": self.memory_mb,
            "gpus": self.gpus,
            "project": self.project,
            "state": self.state,
            "start_time": _iso(self.start_time),
            "end_time": _iso(self.end_time),
            "time_limit_s": self.time_limit_s,
            "walltime_left_s": walltime_left(self.end_time, now),
            "gpu_hours": gpu_hours(self.gpus, self.start_time, now),
            "log_url": log_url if self.log_path else None,
            "source": "slurm" if self.from_slurm else "environment",
            "notes": list(self.notes),
        }


def not_in_job_view() -> dict:
    """The answer of a server that runs outside Slurm (a laptop)."""
    return {"in_slurm_job": False, "message": NOT_IN_JOB}


def walltime_left(end_time: datetime | None, now: datetime) -> int | None:
    """Whole seconds from `now` to `end_time` (never below 0); None when the end is not known (no time
    limit, or Slurm has not said)."""
    if end_time is None:
        return None
    return max(0, int((end_time - now).total_seconds()))


def gpu_hours(gpus: int, start_time: datetime | None, now: datetime) -> float | None:
    """GPU-hours used so far: the job's allocated GPUs times the time since it started (as Slurm's
    accounting counts them: allocated, not busy), to 1/1000 h; 0 without GPUs, None while the start is not
    known."""
    if gpus == 0:
        return 0.0
    if start_time is None:
        return None
    return round(gpus * max(0.0, (now - start_time).total_seconds()) / 3600, 3)


def job_from_environment(env: Mapping[str, str]) -> SessionJob | None:
    """The job as its environment describes it; None outside Slurm (no SLURM_JOB_ID). A present but
    invalid SLURM_JOB_ID is an error: the server would show another job's numbers."""
    raw_id = env.get("SLURM_JOB_ID")
    if raw_id is None or raw_id.strip() == "":
        return None
    job_id = raw_id.strip()
    if not matches(JOB_ID, job_id):
        raise ValueError(f"SLURM_JOB_ID is {raw_id[:40]!r}, not a Slurm job id (digits only)")
    notes: list[str] = []
    take = _Taker(env, notes, "environment")
    gpus_text = env.get("SLURM_JOB_GPUS") or env.get("CUDA_VISIBLE_DEVICES") or ""
    gpus = 0
    if gpus_text.strip():
        if _GPU_INDICES.match(gpus_text.strip()):
            gpus = len(gpus_text.strip().split(","))
        else:
            notes.append(f"the environment's GPU list {gpus_text[:40]!r} is not a list of indices; left out")
    end_time = take.epoch("SLURM_JOB_END_TIME")
    start_time = take.epoch("SLURM_JOB_START_TIME")
    return SessionJob(
        job_id=job_id,
        partition=take.name("SLURM_JOB_PARTITION"),
        nodes=take.node_list("SLURM_JOB_NODELIST"),
        cpus=take.count("SLURM_CPUS_ON_NODE"),
        memory_mb=take.memory("SLURM_MEM_PER_NODE"),
        gpus=gpus,
        project=take.name("SLURM_JOB_ACCOUNT"),
        start_time=start_time,
        end_time=end_time,
        time_limit_s=int((end_time - start_time).total_seconds()) if end_time and start_time else None,
        notes=tuple(notes),
    )


def with_slurm_record(job: SessionJob, record: Mapping[str, str]) -> SessionJob:
    """`job` updated from Slurm's record of it (``scontrol show job -o`` as Key=Value pairs): what Slurm
    says wins over the environment; what it does not say (or says wrongly) keeps the environment's value."""
    # Imported here, not at the top: aifw.slurm takes 0.1 s to import (its REST client), and the server
    # extension is loaded at every server start; Slurm's record is read only once JupyterLab asks.
    from aifw.slurm import parse_gres_gpus, parse_slurm_minutes

    if record.get("JobId", job.job_id) != job.job_id:
        raise ValueError(f"Slurm answered for job {record.get('JobId')!r}, not for {job.job_id}")
    notes = [n for n in job.notes if not n.startswith("Slurm")]
    take = _Taker(record, notes, "Slurm")
    tres = _tres(record.get("AllocTRES") or record.get("TRES") or "")
    cpus = take.count("NumCPUs")
    if "cpu" in tres:
        cpus = _int_or_none(tres["cpu"]) or cpus
    memory = _memory_mb(tres["mem"]) if "mem" in tres else None
    gpus = parse_gres_gpus(",".join(f"{k.removeprefix('gres/')}:{v}" for k, v in tres.items()
                                    if k.startswith("gres/gpu") and k.count(":") == 0))
    limit_min = parse_slurm_minutes(record.get("TimeLimit", "")) if _time_limit_ok(record.get("TimeLimit", "")) else None
    nodes = take.node_list("NodeList")
    return replace(
        job,
        partition=take.name("Partition") or job.partition,
        nodes=nodes or job.nodes,
        cpus=cpus or job.cpus,
        memory_mb=memory or job.memory_mb,
        gpus=gpus if "gres/gpu" in tres else job.gpus,
        project=take.name("Account") or job.project,
        state=take.name("JobState") or job.state,
        start_time=take.local_time("StartTime") or job.start_time,
        end_time=take.local_time("EndTime") or job.end_time,
        time_limit_s=limit_min * 60 if limit_min is not None else job.time_limit_s,
        log_path=take.path("StdOut") or job.log_path,
        from_slurm=True,
        notes=tuple(notes),
    )


def _iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value else None


def _int_or_none(text: str) -> int | None:
    return int(text) if text.isdigit() else None


def _memory_mb(text: str) -> int | None:
    m = _MEMORY.match(text.strip().upper())
    if not m:
        return None
    return int(float(m.group(1)) * _MEMORY_UNIT_MB[m.group(2)])


def _tres(text: str) -> dict[str, str]:
    """'cpu=2,mem=2G,node=1,billing=2,gres/gpu=1' -> {'cpu': '2', 'mem': '2G', ..., 'gres/gpu': '1'}."""
    out = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        if sep:
            out[key.strip()] = value.strip()
    return out


def _time_limit_ok(text: str) -> bool:
    return bool(re.fullmatch(r"(?:[0-9]+-)?[0-9]+(?::[0-9]+){0,2}|UNLIMITED|INFINITE|NONE|N/A", text.strip().upper()))


class _Taker:
    """Reads one source's values by key, checks each, and notes what it had to leave out."""

    def __init__(self, source: Mapping[str, str], notes: list[str], label: str):
        self.source, self.notes, self.label = source, notes, label

    def _raw(self, key: str) -> str | None:
        value = self.source.get(key)
        if value is None or value.strip() in {"", "(null)", "None", "N/A", "Unknown"}:
            return None
        return value.strip()

    def _refuse(self, key: str, value: str, expected: str) -> None:
        self.notes.append(f"{self.label}'s {key} is {value[:40]!r}, not {expected}; left out")

    def name(self, key: str) -> str | None:
        value = self._raw(key)
        if value is not None and not matches(SLURM_NAME, value):
            self._refuse(key, value, "a Slurm name")
            return None
        return value

    def node_list(self, key: str) -> str | None:
        value = self._raw(key)
        if value is not None and not _NODE_LIST.match(value):
            self._refuse(key, value, "a Slurm node list")
            return None
        return value

    def count(self, key: str) -> int | None:
        value = self._raw(key)
        if value is not None and not value.isdigit():
            self._refuse(key, value, "a whole number")
            return None
        return int(value) if value is not None else None

    def memory(self, key: str) -> int | None:
        value = self._raw(key)
        if value is None:
            return None
        mb = _memory_mb(value)
        if mb is None:
            self._refuse(key, value, "an amount of memory such as 2048 or 2G")
        return mb

    def epoch(self, key: str) -> datetime | None:
        value = self._raw(key)
        if value is None:
            return None
        if not value.isdigit():
            self._refuse(key, value, "a Unix time")
            return None
        return datetime.fromtimestamp(int(value), tz=timezone.utc)

    def local_time(self, key: str) -> datetime | None:
        """Slurm's 'YYYY-MM-DDTHH:MM:SS' in the cluster's local time zone (that of this server)."""
        value = self._raw(key)
        if value is None:
            return None
        if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}", value):
            self._refuse(key, value, "a time such as 2026-12-02T10:30:00")
            return None
        return datetime.fromisoformat(value).astimezone()

    def path(self, key: str) -> str | None:
        value = self._raw(key)
        if value is not None and not _PLAIN_PATH.match(value):
            self._refuse(key, value, "an absolute path of plain characters")
            return None
        return value
