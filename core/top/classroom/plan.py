"""A class started before it arrives (pure): the options every learner's session gets, and where each
learner's session stands.

`class_options` turns what the trainer asked for (a module's preset, a partition, a reservation, a time
after which an unused session stops) into JupyterHub `user_options`, checked by the spawner's own
boundary (`aifw.spawners.request.validate_options`) before anything is started, so that a wrong partition
or reservation is one clear error and not one refusal per learner. `learner_states` reads the hub's user
models and Slurm's jobs into one `LearnerState` per learner, and `summary` says how many are ready and why
the others wait.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal, Mapping, Sequence

from aifw.site import Site
from aifw.slurm import JobInfo
from aifw.spawners.queue import describe_job, explain_reason
from aifw.spawners.request import UNUSED_STOP_RANGE_S, OptionsError, validate_options

_DURATION = re.compile(r"^\s*(\d{1,7})\s*(s|sec|m|min|h|hours?)?\s*$")
_UNIT_S = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hour": 3600, "hours": 3600}
DURATION_FORMS = "a number with s, m or h (90s, 30m, 2h; a bare number is minutes)"

State = Literal["ready", "starting", "waiting", "not started"]


class ClassError(ValueError):
    """What the trainer asked for cannot be done as it is; the message says what to change."""


def parse_duration(text: str, what: str = "duration") -> int:
    """'90s', '30m', '2h' or '45' (minutes) as seconds."""
    m = _DURATION.match(text or "")
    if not m:
        raise ClassError(f"{what} {text!r} is not a duration; write {DURATION_FORMS}")
    return int(m.group(1)) * _UNIT_S[m.group(2) or "m"]


@dataclass(frozen=True)
class Preset:
    """What the trainer asked for; None: the module's preset, else the site's default."""

    partition: str | None = None
    gpus: int | None = None
    cpus: int | None = None
    memory_gb: int | None = None
    runtime_minutes: int | None = None
    reservation: str | None = None
    account: str | None = None
    stop_if_unused_s: int = 0


def class_options(site: Site, preset: Preset, module: Any | None = None) -> dict[str, Any]:
    """The `user_options` of every learner's session: the trainer's choices over the module's preset
    (`module`: an `aifw.courses.catalogue.Module`, or None), checked against the site. Raises ClassError."""
    low, high = UNUSED_STOP_RANGE_S
    if preset.stop_if_unused_s and not low <= preset.stop_if_unused_s <= high:
        raise ClassError(f"the time after which an unused session stops must lie between {low} s and "
                         f"{high // 86400} days; you asked for {preset.stop_if_unused_s} s")
    options: dict[str, Any] = {}
    if module is not None:
        options.update(partition=module.partition, gpus=module.gpus,
                       runtime_minutes=module.session_minutes or module.minutes)
    for key in ("partition", "gpus", "cpus", "memory_gb", "runtime_minutes", "reservation", "account"):
        value = getattr(preset, key)
        if value is not None:
            options[key] = value
    if preset.stop_if_unused_s:
        options["stop_if_unused_s"] = preset.stop_if_unused_s
    try:
        request = validate_options(options, site)
    except OptionsError as err:
        raise ClassError("the class's sessions would be refused: " + "; ".join(err.problems)) from None
    return request.as_user_options()


@dataclass(frozen=True)
class LearnerState:
    user: str
    state: State
    detail: str = ""  # where it runs, why it waits, or why it did not start
    reason: str = ""  # waiting: Slurm's pending reason in words (the same for learners held alike)


def session_job_name(user: str, prefix: str = "aifw") -> str:
    """The Slurm job name of a user's session (`aifw.spawners.batch_script.ScriptContext`)."""
    return f"{prefix}-{user}"


def learner_states(learners: Sequence[str], users: Mapping[str, Mapping[str, Any]],
                   jobs: Mapping[str, Sequence[JobInfo]], refused: Mapping[str, str] | None = None,
                   ) -> list[LearnerState]:
    """Each learner's session: `users` are the hub's user models by name, `jobs` Slurm's jobs by job name,
    `refused` why the hub refused to start a learner's session (from `aifw class start`)."""
    refused = refused or {}
    out = []
    for name in learners:
        server = ((users.get(name) or {}).get("servers") or {}).get("")
        job = _session_job(jobs.get(session_job_name(name), ()))
        if server and server.get("ready"):
            where = f"on {job.node}" if job is not None and job.node else ""
            out.append(LearnerState(name, "ready", where))
        elif server and job is not None and job.is_pending:
            out.append(LearnerState(name, "waiting", describe_job(job), explain_reason(job.reason)))
        elif server:
            out.append(LearnerState(name, "starting", f"job {job.job_id} {job.state.lower()}" if job else ""))
        else:
            out.append(LearnerState(name, "not started", refused.get(name, "")))
    return out


def _session_job(jobs: Sequence[JobInfo]) -> JobInfo | None:
    """The learner's live session job (the newest one, should there be several)."""
    live = [j for j in jobs if not j.is_finished]
    return max(live, key=lambda j: int(j.job_id.split("_")[0]) if j.job_id.split("_")[0].isdigit() else 0,
               default=None)


def summary(states: Sequence[LearnerState]) -> str:
    """'12 learners: 9 ready, 1 starting, 2 waiting in the queue (2: waiting for free resources ...)'."""
    counts = {s: sum(1 for x in states if x.state == s) for s in ("ready", "starting", "waiting", "not started")}
    parts = [f"{counts['ready']} ready"]
    if counts["starting"]:
        parts.append(f"{counts['starting']} starting")
    if counts["waiting"]:
        reasons: dict[str, int] = {}
        for x in states:
            if x.state == "waiting" and x.reason:
                reasons[x.reason] = reasons.get(x.reason, 0) + 1
        why = " (" + "; ".join(f"{n}: {r}" for r, n in sorted(reasons.items(), key=lambda i: -i[1])) + ")" if reasons else ""
        parts.append(f"{counts['waiting']} waiting in the queue{why}")
    if counts["not started"]:
        parts.append(f"{counts['not started']} not started")
    n = len(states)
    return f"{n} learner{'s' if n != 1 else ''}: " + ", ".join(parts)
