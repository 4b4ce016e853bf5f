"""Job usage from Slurm accounting (sacct): which user ran what, on which account, for how long, with how
many CPUs and GPUs. One typed record per job allocation; the GPU-hours and CPU-hours arithmetic on top of
it lives with `aifw usage` (aifw.usage).

- `sacct_usage_args`: the argv of ``sacct -X -P -n --noconvert -o USAGE_FIELDS`` for a time window, one
  user and one account at most (pure; every value re-checked);
- `parse_sacct_usage`: its lines into `JobUsage` records (pure). A line of another shape is kept aside in
  `SacctUsage.skipped`, never a crash and never a silent zero;
- `sacct_usage_sync`: runs it through a `SlurmClient`. A Slurm without job accounting (no slurmdbd, or a
  slurmdbd that does not answer) is `AccountingUnavailable`, with what the site has to do.

Elapsed and allocation are Slurm's own: ElapsedRaw (seconds; for a running job, up to now) and AllocTRES
(``billing=2,cpu=2,gres/gpu=1,mem=1000M,node=1``). A job that never started has no AllocTRES and 0 s.
A runaway job (ended in Slurm's words, no end time in accounting) would count up to now: it counts 0.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Sequence

from aifw.names import SLURM_NAME, UNIX_USER, require

from .parse import PENDING_STATES, RUNNING_STATES, SlurmError

#: The columns asked of sacct, in this order (``-P``: separated by '|', no trailing '|').
USAGE_FIELDS = ("JobIDRaw", "User", "Account", "Partition", "State", "ElapsedRaw", "AllocTRES", "Start", "End")
#: How a time is written to and read from sacct (local time, as sacct prints it).
SACCT_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S"
GPU_TRES = "gres/gpu"

# What sacct says when there is no job accounting to ask: storage disabled (AccountingStorageType=
# accounting_storage/none), or slurmdbd configured but not answering.
_DISABLED = re.compile(r"accounting storage is disabled|accounting_storage/none", re.I)
_NO_DBD = re.compile(r"Problem talking to the database|persistent connection|PersistInit", re.I)

_JOB_ID = re.compile(r"^[0-9]{1,20}$")
_STATE = re.compile(r"^[A-Z_]+$")
_COUNT = re.compile(r"^[0-9]+$")


class AccountingUnavailable(SlurmError):
    """Slurm keeps no job accounting that sacct can read here; the message says what the site needs."""


@dataclass(frozen=True)
class JobUsage:
    """One job allocation as sacct reports it."""

    job_id: str
    user: str
    account: str  # '' when the job ran without one
    partition: str
    state: str  # first word of sacct's State ('CANCELLED by 1001' -> 'CANCELLED')
    elapsed_s: int  # ElapsedRaw: 0 for a job that never started; up to now for a running one
    cpus: int  # AllocTRES cpu= (0 without an allocation)
    gpus: int  # AllocTRES gres/gpu= (0 without GPUs or without an allocation)
    start: datetime | None = None  # None: not started (or a time sacct could not give)
    end: datetime | None = None  # None: not ended (or, for a runaway job, an end accounting never got)

    @property
    def is_running(self) -> bool:
        return self.state in RUNNING_STATES

    @property
    def is_runaway(self) -> bool:
        """Slurm ended the job (a final state) but accounting has no end time for it, so sacct counts its
        run time up to now: a runaway job (``sacctmgr show runawayjobs``; fixing it sets its end to its
        start). Its run time is not believed: it counts 0."""
        return (self.elapsed_s > 0 and self.end is None and self.state not in RUNNING_STATES
                and self.state not in PENDING_STATES)

    def seconds_between(self, since: datetime | None = None, until: datetime | None = None) -> int:
        """The job's run time that falls inside [since, until] (the whole of it when its start is unknown:
        then it cannot be cut). A runaway job counts 0."""
        if self.elapsed_s <= 0 or self.is_runaway:
            return 0
        if self.start is None:
            return self.elapsed_s
        begin = self.start.timestamp()
        end = begin + self.elapsed_s
        if since is not None:
            begin = max(begin, since.timestamp())
        if until is not None:
            end = min(end, until.timestamp())
        return max(0, int(round(end - begin)))


@dataclass(frozen=True)
class SacctUsage:
    """What one sacct call gave: the jobs, and the lines that were not understood (left out)."""

    jobs: tuple[JobUsage, ...]
    skipped: tuple[str, ...] = ()


def sacct_usage_args(since: datetime, until: datetime, *, user: str | None = None,
                     account: str | None = None) -> list[str]:
    """The arguments of sacct for every job allocation that existed between `since` and `until`, of one
    user (else all users) and one account (else all). Raises ValueError (UnsafeName) on a bad value."""
    if since >= until:
        raise ValueError(f"the window starts ({since:%Y-%m-%d %H:%M:%S}) after it ends ({until:%Y-%m-%d %H:%M:%S})")
    args = ["-X", "-P", "-n", "--noconvert", "-o", ",".join(USAGE_FIELDS),
            "-S", since.strftime(SACCT_TIME_FORMAT), "-E", until.strftime(SACCT_TIME_FORMAT)]
    if user is not None:
        args += ["-u", require(UNIX_USER, user, "user")]
    else:
        args.append("-a")
    if account is not None:
        args += ["-A", require(SLURM_NAME, account, "project (Slurm account)")]
    return args


def parse_alloc_tres(text: str) -> dict[str, str]:
    """``billing=2,cpu=2,gres/gpu=1,mem=1000M,node=1`` -> {'billing': '2', 'cpu': '2', ...}; items without
    '=' are ignored."""
    out: dict[str, str] = {}
    for item in (text or "").split(","):
        name, sep, value = item.strip().partition("=")
        if sep and name:
            out[name] = value.strip()
    return out


def _count(value: str | None) -> int:
    """A TRES count; ValueError when it is not a whole number."""
    if value is None or value == "":
        return 0
    if not _COUNT.match(value):
        raise ValueError(value)
    return int(value)


def _gpus(tres: dict[str, str]) -> int:
    """gres/gpu= when present (Slurm lists typed GPUs, gres/gpu:a100=N, beside it); else the typed ones."""
    if GPU_TRES in tres:
        return _count(tres[GPU_TRES])
    return sum(_count(v) for k, v in tres.items() if k.startswith(GPU_TRES + ":"))


def _time(text: str) -> datetime | None:
    try:
        return datetime.strptime(text.strip(), SACCT_TIME_FORMAT)
    except ValueError:  # 'Unknown', 'None', '' for a job that has not started (or ended)
        return None


def parse_sacct_usage(text: str) -> SacctUsage:
    """Lines of ``sacct -X -P -n --noconvert -o USAGE_FIELDS`` into JobUsage records. Blank lines are
    ignored; any other line that is not of that shape (wrong number of fields, a step instead of an
    allocation, a count that is not a number) goes to `skipped`."""
    jobs: list[JobUsage] = []
    skipped: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        bits = line.split("|")
        if len(bits) != len(USAGE_FIELDS):
            skipped.append(line)
            continue
        job_id, user, account, partition, state, elapsed, alloc, start, end = (b.strip() for b in bits)
        state_word = state.split()[0].upper() if state else ""
        if not _JOB_ID.match(job_id) or not user or not _STATE.match(state_word) or not _COUNT.match(elapsed):
            skipped.append(line)
            continue
        tres = parse_alloc_tres(alloc)
        try:
            cpus, gpus = _count(tres.get("cpu")), _gpus(tres)
        except ValueError:
            skipped.append(line)
            continue
        jobs.append(JobUsage(job_id=job_id, user=user, account=account, partition=partition, state=state_word,
                             elapsed_s=int(elapsed), cpus=cpus, gpus=gpus, start=_time(start), end=_time(end)))
    return SacctUsage(jobs=tuple(jobs), skipped=tuple(skipped))


def _accounting_problem(message: str) -> AccountingUnavailable | None:
    said = " ".join(message.split())[:300]
    if _DISABLED.search(message):
        return AccountingUnavailable(
            f"this Slurm keeps no job accounting (sacct: {said!r}); job usage needs slurmdbd: set "
            "AccountingStorageType=accounting_storage/slurmdbd in slurm.conf and run slurmdbd (docs/admin.md)")
    if _NO_DBD.search(message):
        return AccountingUnavailable(
            f"Slurm's accounting database did not answer (sacct: {said!r}); job usage needs a running slurmdbd: "
            "start it, or check AccountingStorageHost/AccountingStoragePort in slurm.conf (docs/admin.md)")
    return None


def sacct_usage_sync(client, since: datetime, until: datetime, *, user: str | None = None,
                     account: str | None = None, timeout_s: float | None = None) -> SacctUsage:
    """Run sacct through `client` (a SlurmClient; as the caller, not through the exec prefix) and parse
    it. Raises AccountingUnavailable when there is no accounting to read, else the client's SlurmError."""
    args: Sequence[str] = sacct_usage_args(since, until, user=user, account=account)
    try:
        res = client.run_sync("sacct", args, timeout_s=timeout_s)
    except SlurmError as err:
        problem = _accounting_problem(str(err))
        if problem is not None:
            raise problem from None
        raise
    usage = parse_sacct_usage(res.stdout)
    problem = None if usage.jobs else _accounting_problem(res.stdout + "\n" + res.stderr)
    if problem is not None:  # the same words with exit status 0
        raise problem
    return usage
