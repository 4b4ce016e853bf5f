"""When a session that was started for someone (a class pre-start, `aifw class start`) counts as unused, and
when an unused one stops (pure).

A pre-started session asks to stop when no one has used it `stop_if_unused_s` seconds after it became
ready (the request's `stop_if_unused_s`). "Used" is what JupyterHub records as activity after that moment:
the learner's own requests to the hub (their login, their home page: the user's `last_activity`) and
traffic to their server through the proxy (the server's `last_activity`). The start itself stamps both
with the start time, and the proxy's route is added just after the server is ready, so activity counts
only from `USED_AFTER_S` after the server became ready.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Iterable

#: Activity within this many seconds after the server became ready is the start's own (the route being
#: added, the hub's first request to the server), not the learner's.
USED_AFTER_S = 10.0


def epoch(moment: datetime | None) -> float | None:
    """A JupyterHub activity time (naive UTC in its database, or aware) as seconds since the epoch."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def was_used(ready_at: float, activity: Iterable[float | None]) -> bool:
    """Whether any activity time (epoch seconds; None: none recorded) lies after the start's own."""
    return any(t is not None and t > ready_at + USED_AFTER_S for t in activity)


def stops_unused(now: float, ready_at: float, stop_if_unused_s: int, activity: Iterable[float | None]) -> bool:
    """True when a session that asked to stop unused (`stop_if_unused_s` > 0) has been ready that long and
    no one has used it. A session never seen ready (`ready_at` 0) is not stopped here."""
    if stop_if_unused_s <= 0 or ready_at <= 0:
        return False
    return now >= ready_at + stop_if_unused_s and not was_used(ready_at, activity)


def unused_message(job_id: str, stop_if_unused_s: int) -> str:
    """What the learner reads on their next form (the spawner's `last_end`)."""
    return (f"The session your trainer started for you (Slurm job {job_id}) was not used within "
            f"{_duration(stop_if_unused_s)} of being ready, so it was stopped to free its place. Files saved in "
            "your home are kept; start a new session below.")


def _duration(seconds: int) -> str:
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    if seconds % 60 == 0:
        return f"{seconds // 60} min"
    return f"{seconds} s"
