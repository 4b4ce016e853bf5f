"""Slurm accounting's words as typed values (pure): a project's GPU-hour budget as slurmctld's association
manager reports it, and the arithmetic a form needs ("1.5 GPU-hours left; 2 GPUs for 60 min need 2").

Budgets are Slurm's own: GrpTRESMins=gres/gpu=<limit> on the account's association. slurmctld keeps the
usage (charged once per PriorityCalcPeriod) and shows it as ``limit(used)`` in ``scontrol -o show assoc_mgr
accounts=A flags=assoc``; GrpTRESRunMins shows, the same way, the GPU-minutes that running jobs' time
limits still hold. ``scontrol -o show assoc_mgr users=U flags=users,assoc`` answers, in one call from
slurmctld's memory, everything a form needs about a user: their default account, their associations and
every account's budget. No I/O here; `SlurmClient.project_budgets` and `user_associations` run the commands.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from aifw.names import SLURM_NAME, matches

from .parse import SlurmUnavailable, parse_scontrol_records

#: One TRES in a list like ``cpu=N(0),mem=N(0),gres/gpu=180(45)``: limit (N: none) and the value in use.
_TRES_ITEM = re.compile(r"(?:^|,)(?P<tres>[\w/:.-]+)=(?P<limit>N|\d+)\((?P<used>\d+)\)")
GPU_TRES = "gres/gpu"


@dataclass(frozen=True)
class ProjectBudget:
    """A project's (Slurm account's) GPU budget in GPU-minutes, as slurmctld counts it."""

    account: str
    limit_minutes: int | None  # None: no GPU budget (GrpTRESMins has no gres/gpu limit)
    used_minutes: int = 0  # charged so far (this reset period)
    running_minutes: int = 0  # still held by running jobs' time limits (GrpTRESRunMins)

    @property
    def limited(self) -> bool:
        return self.limit_minutes is not None

    @property
    def left_minutes(self) -> int | None:
        """GPU-minutes not yet charged (None: unlimited). Running jobs' reservations are not subtracted."""
        return None if self.limit_minutes is None else max(0, self.limit_minutes - self.used_minutes)

    @property
    def used_hours(self) -> float:
        return self.used_minutes / 60

    @property
    def left_hours(self) -> float | None:
        left = self.left_minutes
        return None if left is None else left / 60

    @property
    def limit_hours(self) -> float | None:
        return None if self.limit_minutes is None else self.limit_minutes / 60

    def refusal(self, gpus: int, minutes: int) -> str | None:
        """Why a request of `gpus` GPUs for `minutes` cannot fit what is left, or None when it fits."""
        left = self.left_minutes
        if left is None or gpus <= 0:
            return None
        need = gpus * minutes
        if need <= left:
            return None
        return (f"project {self.account} has {format_hours(left)} GPU-hours left; {gpus} GPU{'s' if gpus != 1 else ''} "
                f"for {minutes} min need {format_hours(need)}")


def format_hours(minutes: int) -> str:
    """GPU-minutes as GPU-hours for people: 90 -> '1.5', 120 -> '2', 5 -> '0.08'."""
    hours = minutes / 60
    text = f"{hours:.2f}".rstrip("0").rstrip(".")
    return text or "0"


def parse_tres_usage(text: str) -> dict[str, tuple[int | None, int]]:
    """``cpu=N(0),gres/gpu=180(45)`` -> {'cpu': (None, 0), 'gres/gpu': (180, 45)}."""
    out: dict[str, tuple[int | None, int]] = {}
    for m in _TRES_ITEM.finditer(text or ""):
        limit = None if m.group("limit") == "N" else int(m.group("limit"))
        out[m.group("tres")] = (limit, int(m.group("used")))
    return out


def parse_assoc_mgr_budgets(text: str) -> dict[str, ProjectBudget]:
    """``scontrol -o show assoc_mgr accounts=... flags=assoc`` -> the GPU budget of each account.

    Only account associations count (UserName empty); user associations of the same account repeat the
    account's usage for their own share and are skipped. Lines without Account= are skipped."""
    budgets: dict[str, ProjectBudget] = {}
    for rec in parse_scontrol_records(text):
        account = rec.get("Account", "")
        if not account or rec.get("UserName", ""):
            continue
        mins = parse_tres_usage(rec.get("GrpTRESMins", "")).get(GPU_TRES, (None, 0))
        run = parse_tres_usage(rec.get("GrpTRESRunMins", "")).get(GPU_TRES, (None, 0))
        budgets[account] = ProjectBudget(account=account, limit_minutes=mins[0], used_minutes=mins[1],
                                         running_minutes=run[1])
    return budgets


@dataclass(frozen=True)
class UserAssociations:
    """A user's projects as slurmctld's association manager holds them: the accounts they have an
    association with (sorted), their default account ("" when none) and each of those accounts' budget."""

    accounts: tuple[str, ...]
    default: str
    budgets: dict[str, ProjectBudget]


def _bare_user(value: str) -> str:
    """``test-learner1(1002)`` -> ``test-learner1``."""
    return value.split("(", 1)[0]


def parse_assoc_mgr_user(text: str, user: str) -> UserAssociations:
    """``scontrol -o show assoc_mgr users=USER flags=users,assoc`` -> the user's associations.

    The user record gives DefAccount; association records with UserName=USER give the accounts; account
    records (UserName empty) give the budgets, kept for the user's accounts only. A user slurmctld does
    not know is in no project. No association at all (not even root's) means slurmctld has no accounting
    data (no slurmdbd, or not reached yet): that is SlurmUnavailable, not "no projects"."""
    records = parse_scontrol_records(text)
    if not any("Account" in rec for rec in records):
        raise SlurmUnavailable("slurmctld holds no associations: accounting (slurmdbd) is not in use or "
                               "has not been reached yet")
    default, accounts = "", set()
    for rec in records:
        if "Account" not in rec and _bare_user(rec.get("UserName", "")) == user:
            default = rec.get("DefAccount", "")
        elif rec.get("UserName") and _bare_user(rec["UserName"]) == user and matches(SLURM_NAME, rec.get("Account", "")):
            accounts.add(rec["Account"])
    budgets = {a: b for a, b in parse_assoc_mgr_budgets(text).items() if a in accounts}
    return UserAssociations(tuple(sorted(accounts)), default if default in accounts else "", budgets)
