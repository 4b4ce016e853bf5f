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

from dataclasses import dataclass
from typing import Any, Literal, Mapping, Sequence

from aifw.slurm import JobInfo
# The options of the class's sessions live beside the spawner's request, so that the hub's class page
# (aifw.hub_config.class_page) builds them the same way; re-exported here for `aifw class`.
from aifw.spawners.class_options import DURATION_FORMS, ClassError, Preset, class_options, parse_duration
from aifw.spawners.queue import describe_job, explain_reason

__all__ = ["DURATION_FORMS", "ClassError", "LearnerState", "Preset", "State", "class_options", "learner_states",
           "parse_duration", "session_job_name", "summary"]

State = Literal["ready", "starting", "waiting", "not started"]


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
