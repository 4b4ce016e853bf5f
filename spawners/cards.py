"""A session as the hub's home page shows it (pure): one `SessionCard` per server of a person, from what the
spawner knows (its validated request, the last Slurm job state it saw, the node, when the server became
ready, how the last session ended). The page (hub_config/templates/home.html) renders it; nothing here asks
Slurm.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from aifw.slurm import JobInfo

from .queue import explain_reason
from .request import SessionRequest

State = Literal["running", "starting", "waiting", "stopping", "stopped"]


@dataclass(frozen=True)
class SessionCard:
    name: str  # the server's name ("" for the default one)
    state: State
    partition: str = ""
    cluster: str = ""  # on a site with several clusters: the session's
    node: str = ""
    cpus: int = 0
    memory_gb: int = 0
    gpus: int = 0
    runtime_minutes: int = 0
    job_id: str = ""
    ends_at: float | None = None  # epoch seconds the walltime ends (running), for the page's countdown
    detail: str = ""  # why it waits, or how the last one ended
    restart_options: dict | None = None  # the last request that started, for "start again with my last settings"

    @property
    def title(self) -> str:
        return self.name or "Session"


def _start_epoch(start_time: str) -> float | None:
    """squeue's %S (local time, ISO without zone) of a running job as epoch seconds."""
    try:
        return datetime.fromisoformat(start_time).timestamp() if start_time else None
    except ValueError:
        return None


def session_card(name: str, *, active: bool, ready: bool, pending: str | None, request: SessionRequest | None,
                 last_request: SessionRequest | None, info: JobInfo | None, job_id: str, node: str,
                 ready_at: float, last_end: str) -> SessionCard:
    """The card of one server. `pending`: JupyterHub's pending action ("spawn", "stop", or None)."""
    restart = last_request.as_user_options() if last_request is not None else None
    if not active:
        return SessionCard(name, "stopped", detail=last_end, restart_options=restart)
    req = request or last_request
    shape = dict(partition=req.partition, cluster=req.cluster, cpus=req.cpus, memory_gb=req.memory_gb, gpus=req.gpus,
                 runtime_minutes=req.runtime_minutes) if req is not None else {}
    if pending == "stop":
        return SessionCard(name, "stopping", node=node, job_id=job_id, **shape)
    if ready:
        start = _start_epoch(info.start_time) if info is not None and info.is_running else None
        start = start or (ready_at or None)
        ends = start + req.runtime_minutes * 60 if start and req is not None else None
        return SessionCard(name, "running", node=node, job_id=job_id, ends_at=ends, **shape)
    if info is not None and info.is_pending:
        account = req.account if req is not None else ""
        return SessionCard(name, "waiting", job_id=job_id, detail=explain_reason(info.reason, account), **shape)
    return SessionCard(name, "starting", node=node, job_id=job_id, **shape)
