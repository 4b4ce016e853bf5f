"""The end of the session's walltime: when JupyterLab warns, how often it asks, and Slurm's signal.

- `EndPlan` (pure): the site's warnings (minutes before the end) and the lead of Slurm's signal, from the
  environment the session's batch script exports (`WARNINGS_ENV`, `END_SIGNAL_ENV`; see
  aifw.spawners.batch_script); `due_warning`, `next_warning_in` and `next_poll_s` are the schedule's
  arithmetic, so the browser only shows what the server names and asks again when the server says.
- `Ending`: whether Slurm has sent `END_SIGNAL` (``--signal=B:USR2@<seconds>``: the job is about to be
  killed) and since when. `Ending.install` sets the handler in the server's process; the batch script
  ignores the signal until then, so it never ends the server.

What the server can save: nothing the browser has not sent it. JupyterLab keeps a document's unsaved
edits in the browser (the workbench does not install real-time collaboration, which would keep them on
the server); the kernels' state cannot be saved at all. So on the signal the server says so in its log
and in ``GET aifw/session`` (``ending``), and JupyterLab saves every open document.
"""
from __future__ import annotations

import logging
import signal
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable, Mapping

_log = logging.getLogger(__name__)

#: The batch script's exports (aifw.spawners.batch_script), read here.
WARNINGS_ENV = "AIFW_WALLTIME_WARNINGS_MINUTES"
END_SIGNAL_ENV = "AIFW_END_SIGNAL_SECONDS"
#: The signal Slurm sends ahead of the end (jupyter_server itself handles SIGUSR1, SIGINT and SIGTERM).
END_SIGNAL = signal.SIGUSR2

#: Without the batch script's exports (a server started by hand in a job): the site file's defaults.
DEFAULT_WARNINGS_MIN = (10, 2)
DEFAULT_END_SIGNAL_S = 60
#: How often JupyterLab asks at most and at least (seconds): once a minute, and every 5 s near the end.
SLOW_POLL_S = 60
FAST_POLL_S = 5
#: Slurm may send the signal up to this much earlier than asked (it checks time limits every 30 s).
SIGNAL_EARLY_S = 60


@dataclass(frozen=True)
class EndPlan:
    """The warnings (minutes before the end, largest first) and the signal's lead (seconds)."""

    warnings_min: tuple[int, ...] = DEFAULT_WARNINGS_MIN
    end_signal_s: int = DEFAULT_END_SIGNAL_S
    notes: tuple[str, ...] = ()

    def view(self, left_s: int | None, ending: "Ending") -> dict:
        """The end-of-walltime part of ``GET aifw/session`` at `left_s` seconds before the end."""
        return {
            "walltime_warnings_min": list(self.warnings_min),
            "end_signal_s": self.end_signal_s,
            "warning_due_min": None if left_s is None else due_warning(left_s, self.warnings_min),
            "ending": ending.since is not None,
            "ending_since": ending.since.isoformat(timespec="seconds") if ending.since else None,
            "next_poll_s": next_poll_s(left_s, self, ending=ending.since is not None),
        }


def plan_from_environment(env: Mapping[str, str]) -> EndPlan:
    """The plan the batch script exported; a value that fails its check keeps the default, with a note."""
    notes: list[str] = []
    warnings = DEFAULT_WARNINGS_MIN
    raw = env.get(WARNINGS_ENV)
    if raw is not None:
        parts = [p.strip() for p in raw.split(",") if p.strip()]
        if all(p.isdigit() and 1 <= int(p) <= 1440 for p in parts) and len(set(parts)) == len(parts) <= 6:
            warnings = tuple(sorted((int(p) for p in parts), reverse=True))
        else:
            notes.append(f"{WARNINGS_ENV} is {raw[:60]!r}, not distinct minutes 1 to 1440; warning at "
                         f"{', '.join(map(str, DEFAULT_WARNINGS_MIN))} minutes")
    lead = DEFAULT_END_SIGNAL_S
    raw = env.get(END_SIGNAL_ENV)
    if raw is not None:
        if raw.strip().isdigit() and 30 <= int(raw) <= 900:
            lead = int(raw)
        else:
            notes.append(f"{END_SIGNAL_ENV} is {raw[:20]!r}, not 30 to 900 seconds; taking {DEFAULT_END_SIGNAL_S}")
    return EndPlan(warnings, lead, tuple(notes))


def due_warning(left_s: int, warnings_min: tuple[int, ...]) -> int | None:
    """The warning whose time has come with `left_s` seconds left: the smallest lead at or above what is
    left (two minutes left, warnings at 10 and 2: the 2-minute one); None before the first."""
    due = [m for m in warnings_min if left_s <= m * 60]
    return min(due) if due else None


def next_warning_in(left_s: int, warnings_min: tuple[int, ...]) -> int | None:
    """Seconds until the next warning's time comes; None when none is ahead."""
    ahead = [left_s - m * 60 for m in warnings_min if left_s > m * 60]
    return min(ahead) if ahead else None


def next_poll_s(left_s: int | None, plan: EndPlan, *, ending: bool) -> int:
    """When JupyterLab should ask again: every `FAST_POLL_S` once the job is ending or within reach of
    Slurm's signal (its lead, up to a minute early, and a poll's margin), just after the next warning's
    time, else once a minute."""
    if ending:
        return FAST_POLL_S
    if left_s is None:
        return SLOW_POLL_S
    if left_s <= plan.end_signal_s + SIGNAL_EARLY_S + SLOW_POLL_S:
        return FAST_POLL_S
    ahead = next_warning_in(left_s, plan.warnings_min)
    soonest = SLOW_POLL_S if ahead is None else min(SLOW_POLL_S, ahead + 1)
    return max(FAST_POLL_S, soonest)


@dataclass
class Ending:
    """Whether Slurm said the job is about to end (`END_SIGNAL`), and when."""

    job_id: str = ""
    since: datetime | None = None
    log: logging.Logger = field(default=_log, repr=False)  # the server's own log, once installed
    _clock: Callable[[], datetime] = field(default=lambda: datetime.now(timezone.utc), repr=False)

    def signalled(self, signum: int = END_SIGNAL, frame=None) -> None:
        """The signal handler: records the first signal (a later one changes nothing)."""
        if self.since is None:
            self.since = self._clock()
            # Logging from a signal handler is safe in Python: the handler runs between bytecodes.
            self.log.warning("aifw session panel: Slurm signalled (%s) that job %s is about to reach its walltime; "
                        "JupyterLab is told to save every open document", signal.Signals(signum).name,
                        self.job_id or "?")

    def install(self, server_log: logging.Logger | None = None) -> None:
        """Handle `END_SIGNAL` in this process (the server's main thread, at extension load), saying it in
        `server_log` (the server's log, so the job's log)."""
        if server_log is not None:
            self.log = server_log
        signal.signal(END_SIGNAL, self.signalled)
