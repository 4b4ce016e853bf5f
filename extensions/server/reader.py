"""Reads the session's job for the server extension: the environment once, Slurm at most every
`refresh_s` seconds (a cache shared by every request), and `SessionJob.view` at each request's time, with
the end of the walltime's plan and whether Slurm has signalled it (`aifw.extensions.server.ending`).

I/O only; the values are checked in `aifw.extensions.server.job`. Slurm is asked through `aifw.slurm`'s
`SlurmClient.job_record` (Slurm's whole record of the job: EndTime, TimeLimit, TRES, Account, StdOut), whose
fields `with_slurm_record` types. When Slurm does not answer, the last answer (else the environment's values)
stays, with a note saying so: "no answer" never reads as "no job".
"""
from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import replace
from datetime import datetime, timezone
from typing import Awaitable, Callable, Mapping

from .ending import Ending, EndPlan, plan_from_environment
from .job import SessionJob, job_from_environment, not_in_job_view, walltime_left, with_slurm_record

log = logging.getLogger(__name__)

RecordFetcher = Callable[[str], Awaitable[Mapping[str, str] | None]]


async def _slurm_record(job_id: str) -> Mapping[str, str] | None:
    """Slurm's record of the job (Key=Value pairs); None when Slurm no longer knows it."""
    from aifw.slurm import SlurmClient  # 0.1 s to import: at the first request, not at server start

    return await SlurmClient(timeout_s=5.0).job_record(job_id)


class JobReader:
    """The job of this server, Slurm's view refreshed at most every `refresh_s` seconds."""

    def __init__(self, env: Mapping[str, str] | None = None, *, refresh_s: float = 30.0,
                 fetch: RecordFetcher = _slurm_record, clock: Callable[[], float] = time.monotonic):
        env = os.environ if env is None else env
        self._env_job = job_from_environment(env)
        self._job = self._env_job
        #: The warnings and Slurm's signal before the end (the batch script's exports).
        self.plan: EndPlan = plan_from_environment(env)
        #: Whether Slurm has signalled the end (set by `Ending.install`'s handler).
        self.ending = Ending(job_id=self._env_job.job_id if self._env_job else "")
        self._refresh_s = refresh_s
        self._fetch = fetch
        self._clock = clock
        self._read_at: float | None = None
        self._lock = asyncio.Lock()

    @property
    def job_id(self) -> str | None:
        """The job's id from the environment; None outside Slurm."""
        return self._env_job.job_id if self._env_job else None

    async def job(self) -> SessionJob | None:
        """The job (None outside Slurm), asking Slurm only when the last answer is `refresh_s` old."""
        if self._env_job is None:
            return None
        async with self._lock:
            now = self._clock()
            if self._read_at is None or now - self._read_at >= self._refresh_s:
                self._read_at = now
                await self._refresh()
        return self._job

    async def _refresh(self) -> None:
        assert self._env_job is not None and self._job is not None
        from aifw.slurm import SlurmError  # 0.1 s to import: at the first request, not at server start

        try:
            record = await self._fetch(self._env_job.job_id)
        except (SlurmError, OSError) as err:
            log.warning("aifw session panel: Slurm did not answer for job %s: %s", self._env_job.job_id, err)
            self._job = _noted(self._job, f"Slurm did not answer ({err}); showing its last known values")
            return
        if record is None:
            self._job = _noted(self._job, "Slurm no longer lists this job")
            return
        try:
            self._job = with_slurm_record(self._env_job, record)
        except ValueError as err:
            log.warning("aifw session panel: %s", err)
            self._job = _noted(self._job, str(err))

    async def view(self, *, log_url: str | None, now: datetime | None = None) -> dict:
        job = await self.job()
        if job is None:
            return not_in_job_view()
        now = now or datetime.now(timezone.utc)
        view = job.view(now, log_url=log_url)
        view.update(self.plan.view(walltime_left(job.end_time, now), self.ending))
        view["notes"] += list(self.plan.notes)
        return view


def _noted(job: SessionJob, note: str) -> SessionJob:
    kept = tuple(n for n in job.notes if not n.startswith("Slurm"))
    return replace(job, notes=kept + (note,))
