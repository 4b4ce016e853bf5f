"""GPU-hours and CPU-hours by project and user (pure): the arithmetic on top of sacct's job records.

GPU-hours of a job = its run time inside the window (s) x its allocated GPUs (AllocTRES gres/gpu) / 3600;
CPU-hours the same with its allocated CPUs. A running job counts up to now; a job that never started
counts 0 (and still counts as a job), and so does a runaway job (ended, but with no end time in accounting:
`JobUsage.is_runaway`; the report counts them so that it can say so). Rows are sorted by GPU-hours, then CPU-hours, largest first.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Iterable

from aifw.slurm import JobUsage

NO_PROJECT = "(no project)"


@dataclass(frozen=True)
class UsageRow:
    """The usage of one project (and one user, or all of the project's users when `user` is None)."""

    project: str
    user: str | None
    jobs: int
    running: int
    gpu_hours: float
    cpu_hours: float
    users: int = 1  # how many users the row adds up

    def to_json(self) -> dict:
        out = {"project": self.project, "user": self.user, "jobs": self.jobs, "running": self.running,
               "gpu_hours": self.gpu_hours, "cpu_hours": self.cpu_hours}
        if self.user is None:
            out["users"] = self.users
        return out


@dataclass(frozen=True)
class UsageReport:
    since: datetime
    until: datetime
    rows: tuple[UsageRow, ...]  # one per (project, user)
    projects: tuple[UsageRow, ...]  # one per project (user None)
    total: UsageRow  # project "total", user None
    user: str | None = None  # the filters the report was made with
    project: str | None = None
    counted_at: datetime | None = None  # when the counts were made (running jobs count up to it)
    runaway_jobs: int = 0  # jobs whose run time was not believed (JobUsage.is_runaway): they count 0


def _sort_key(row: UsageRow) -> tuple:
    return (-row.gpu_hours, -row.cpu_hours, row.project, row.user or "")


def _add(project: str, user: str | None, rows: Iterable[UsageRow]) -> UsageRow:
    rows = list(rows)
    return UsageRow(project=project, user=user, jobs=sum(r.jobs for r in rows), running=sum(r.running for r in rows),
                    gpu_hours=sum(r.gpu_hours for r in rows), cpu_hours=sum(r.cpu_hours for r in rows),
                    users=len({r.user for r in rows}))


def summarise(jobs: Iterable[JobUsage], since: datetime, until: datetime, *, user: str | None = None,
              project: str | None = None, counted_at: datetime | None = None) -> UsageReport:
    """Add up `jobs` by (project, user) inside [since, until]. `user` and `project` narrow the report to
    jobs of that user or project (sacct was asked the same; this keeps the report right on its own)."""
    acc: dict[tuple[str, str], list] = {}
    runaway = 0
    for job in jobs:
        if (user is not None and job.user != user) or (project is not None and job.account != project):
            continue
        seconds = job.seconds_between(since, until)
        runaway += 1 if job.is_runaway else 0
        entry = acc.setdefault((job.account or NO_PROJECT, job.user), [0, 0, 0, 0])
        entry[0] += 1
        entry[1] += 1 if job.is_running else 0
        entry[2] += seconds * job.gpus
        entry[3] += seconds * job.cpus
    rows = sorted((UsageRow(project=p, user=u, jobs=n, running=r, gpu_hours=g / 3600, cpu_hours=c / 3600)
                   for (p, u), (n, r, g, c) in acc.items()), key=_sort_key)
    by_project: dict[str, list[UsageRow]] = {}
    for row in rows:
        by_project.setdefault(row.project, []).append(row)
    projects = sorted((_add(p, None, rs) for p, rs in by_project.items()), key=_sort_key)
    return UsageReport(since=since, until=until, rows=tuple(rows), projects=tuple(projects),
                       total=_add("total", None, rows), user=user, project=project, counted_at=counted_at,
                       runaway_jobs=runaway)
