"""The options of `aifw usage`, from command-line strings to typed values (pure): who, which project, which
time window, which output. Everything that reaches sacct passes here first; a bad value is a `UsageError`
saying what is wrong and what is accepted.

Times: ``YYYY-MM-DD`` (for --since the start of that day, for --until its end: both days count),
``YYYY-MM-DDTHH:MM[:SS]``, ``now``, or ``now-N<unit>`` with unit minutes, hours, days or weeks
(``now-7days``, ``now-12hours``), as sacct writes relative times.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

from aifw.names import MEANING, SLURM_NAME, UNIX_USER, matches

FORMATS = ("table", "csv", "json")
Format = Literal["table", "csv", "json"]

_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2})?$")
_RELATIVE = re.compile(r"^now(?:-(\d{1,6})(minutes?|hours?|days?|weeks?))?$")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400, "week": 7 * 86400}
TIME_FORMS = "YYYY-MM-DD, YYYY-MM-DDTHH:MM[:SS], now, or now-N followed by minutes, hours, days or weeks (now-7days)"


class UsageError(ValueError):
    """A wrong option of `aifw usage`; the message says what to write instead."""


@dataclass(frozen=True)
class UsageOptions:
    since: datetime
    until: datetime  # never after `now`: usage is counted up to now at most
    user: str | None = None
    project: str | None = None
    format: Format = "table"
    plot: Path | None = None
    site: str | None = None


def parse_time(text: str, *, now: datetime, end_of_day: bool = False, what: str = "time") -> datetime:
    """One of TIME_FORMS as a local time. A bare date is the start of that day, or with `end_of_day` the
    start of the next one (so that day counts in full)."""
    value = (text or "").strip()
    m = _DATE.match(value)
    if m:
        try:
            day = datetime(int(m.group(1)), int(m.group(2)), int(m.group(3)))
        except ValueError as err:
            raise UsageError(f"{what} {text!r} is no date ({err})") from None
        return day + timedelta(days=1) if end_of_day else day
    if _DATETIME.match(value):
        try:
            return datetime.fromisoformat(value)
        except ValueError as err:
            raise UsageError(f"{what} {text!r} is no time ({err})") from None
    m = _RELATIVE.match(value)
    if m:
        if not m.group(1):
            return now
        unit = m.group(2).rstrip("s")
        return now - timedelta(seconds=int(m.group(1)) * _UNIT_SECONDS[unit])
    raise UsageError(f"{what} {text!r} is not a time sacct's window can take; write {TIME_FORMS}")


def start_of_month(now: datetime) -> datetime:
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def make_options(*, now: datetime, user: str | None = None, project: str | None = None, since: str | None = None,
                 until: str | None = None, format: str = "table", plot: str | None = None,
                 site: str | None = None) -> UsageOptions:
    """Validated options. `now` is the time the counts are made at (running jobs count up to it)."""
    now = now.replace(microsecond=0)
    if user is not None and not matches(UNIX_USER, user):
        raise UsageError(f"--user {user!r} is not {MEANING[UNIX_USER]}")
    if project is not None and not matches(SLURM_NAME, project):
        raise UsageError(f"--project {project!r} is not {MEANING[SLURM_NAME]}")
    if format not in FORMATS:
        raise UsageError(f"--format {format!r}: choose one of {', '.join(FORMATS)}")
    start = parse_time(since, now=now, what="--since") if since else start_of_month(now)
    end = parse_time(until, now=now, end_of_day=True, what="--until") if until else now
    if start >= now:
        raise UsageError(f"--since {since!r} is not in the past ({start:%Y-%m-%d %H:%M:%S}; now is {now:%Y-%m-%d %H:%M:%S})")
    end = min(end, now)
    if start >= end:
        raise UsageError(f"--since ({start:%Y-%m-%d %H:%M:%S}) must come before --until ({end:%Y-%m-%d %H:%M:%S})")
    plot_path = None
    if plot is not None:
        plot_path = Path(plot)
        if plot_path.suffix.lower() != ".png":
            raise UsageError(f"--plot {plot!r}: the plot is a PNG image; give a file name ending in .png")
        parent = plot_path.parent if str(plot_path.parent) else Path(".")
        if not parent.is_dir():
            raise UsageError(f"--plot {plot!r}: the folder {str(parent)!r} does not exist; create it first")
    return UsageOptions(since=start, until=end, user=user, project=project, format=format,  # type: ignore[arg-type]
                        plot=plot_path, site=site)
