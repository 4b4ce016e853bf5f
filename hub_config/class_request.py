"""The trainer's "Start the class" button (pure): the untrusted JSON body of `POST /hub/api/aifw/class/<course>`
as typed values (`ClassStart`), the `user_options` every learner's session gets from it, and the answers of
the class page's handler (aifw.hub_config.class_page): where each learner's session stands and what a start did.

A body is refused whole, with one line per problem that says what to fix (a key it does not know, a value of
the wrong type, a module the course does not have, a duration that is none, a reservation the site does not
offer); nothing is started then.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Sequence

from aifw.site import Site
from aifw.spawners.cards import SessionCard
from aifw.spawners.class_options import DURATION_FORMS, ClassError, Preset, class_options, parse_duration

from .course_cards import CourseCard

#: The class page's path under the hub's prefix (/hub/; JupyterHub adds it to extra handlers), and its handler
#: as tornado's import path, so that `settings.py` stays pure (tornado imports it when the hub starts).
CLASS_PATH = r"/api/aifw/class/([^/]+)"
CLASS_HANDLER = "aifw.hub_config.class_page.ClassHandler"
#: What the body may hold; each is optional.
START_KEYS = ("module", "stop_unused", "reservation")
#: `stop_unused` values that keep the sessions until their walltime ends.
NEVER = ("", "0", "never")

LearnerStateName = Literal["ready", "starting", "waiting", "stopping", "not started"]
_FROM_CARD: dict[str, LearnerStateName] = {"running": "ready", "starting": "starting", "waiting": "waiting",
                                            "stopping": "stopping", "stopped": "not started"}


@dataclass(frozen=True)
class ClassStart:
    """A checked start request: the module whose preset the sessions get (None: the site's defaults), the
    seconds after which an unused session stops (0: never), the event's reservation (None: none)."""

    module: str | None = None
    stop_unused_s: int = 0
    reservation: str | None = None


def _optional_text(body: dict, key: str, problems: list[str]) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        problems.append(f"{key} must be text or null; got {type(value).__name__} {value!r:.40}")
        return None
    return value.strip() or None


def parse_start(body: Any, course: CourseCard, reservations: Sequence[str]) -> ClassStart:
    """The body of a start request (None or {} for the site's defaults) as a `ClassStart`, checked against the
    course's modules and the site's reservations. Raises ClassError with every problem, one per '; '."""
    if body is None:
        return ClassStart()
    if not isinstance(body, dict):
        raise ClassError(f"the body must be a JSON object with {', '.join(START_KEYS)} (each optional); "
                         f"got {type(body).__name__}")
    problems: list[str] = []
    unknown = sorted(str(k) for k in body if k not in START_KEYS)
    if unknown:
        problems.append(f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join(repr(k) for k in unknown)}; "
                        f"the keys are {', '.join(START_KEYS)}")
    module = _optional_text(body, "module", problems)
    ids = [m.id for m in course.modules]
    if module is not None and module not in ids:
        problems.append(f"course {course.id} has no module {module!r:.60}; its modules are {', '.join(ids) or 'none'}")
    reservation = _optional_text(body, "reservation", problems)
    if reservation is not None and reservation not in reservations:
        offered = ", ".join(reservations) if reservations else "none (slurm.reservations is empty)"
        problems.append(f"reservation {reservation!r:.60} is not one the site offers; it offers {offered}")
    stop_unused_s = 0
    text = _optional_text(body, "stop_unused", problems)
    if text is not None and text.lower() not in NEVER:
        try:
            stop_unused_s = parse_duration(text, "stop_unused")
        except ClassError as err:
            problems.append(str(err))
    if problems:
        raise ClassError("; ".join(problems))
    return ClassStart(module, stop_unused_s, reservation)


def start_options(site: Site, course: CourseCard, start: ClassStart) -> dict[str, Any]:
    """The `user_options` of every learner's session: the module's preset (partition, GPUs, session length)
    with the reservation and the unused-stop, checked as the spawner checks them. Raises ClassError."""
    module = next((m for m in course.modules if m.id == start.module), None) if start.module else None
    return class_options(site, Preset(reservation=start.reservation, stop_if_unused_s=start.stop_unused_s), module)


@dataclass(frozen=True)
class LearnerSession:
    name: str
    state: LearnerStateName
    detail: str = ""  # where it runs, Slurm's reason in words, or why the hub refused to start it
    job_id: str = ""

    def as_json(self) -> dict[str, str]:
        return {"name": self.name, "state": self.state, "detail": self.detail, "job_id": self.job_id}


def learner_session(name: str, card: SessionCard, refused: str = "") -> LearnerSession:
    """A learner's default session from its card; `refused`: why the hub refused to start it (its last start
    from the class page), shown while it is not running."""
    state = _FROM_CARD[card.state]
    if state == "ready":
        detail = f"on {card.node}" if card.node else ""
    elif state == "not started":
        detail = refused or card.detail
    else:
        detail = card.detail
    return LearnerSession(name, state, detail, card.job_id)


def status_summary(sessions: Sequence[LearnerSession]) -> str:
    """'2 learners: 1 ready, 1 waiting in the queue'."""
    n = len(sessions)
    counts = {s: sum(1 for x in sessions if x.state == s) for s in _FROM_CARD.values()}
    words = {"waiting": "waiting in the queue"}
    parts = [f"{counts['ready']} ready"] + [f"{counts[s]} {words.get(s, s)}" for s in _FROM_CARD.values()
                                            if s != "ready" and counts[s]]
    return f"{n} learner{'s' if n != 1 else ''}: " + ", ".join(parts)


def status_json(course: str, sessions: Sequence[LearnerSession]) -> dict[str, Any]:
    """The answer of GET: each learner's session, the counts and the summary line."""
    return {"course": course, "total": len(sessions), "ready": sum(1 for s in sessions if s.state == "ready"),
            "counts": {s: sum(1 for x in sessions if x.state == s) for s in _FROM_CARD.values()},
            "summary": status_summary(sessions), "learners": [s.as_json() for s in sessions]}


@dataclass
class StartOutcome:
    """What a start did: the learners whose session it started, those it kept (already running or on their
    way), and those the hub refused, each with the reason."""

    started: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)

    def as_json(self, options: dict[str, Any]) -> dict[str, Any]:
        return {"started": sorted(self.started), "kept": sorted(self.kept), "refused": dict(sorted(self.refused.items())),
                "counts": {"started": len(self.started), "kept": len(self.kept), "refused": len(self.refused)},
                "user_options": options}


__all__ = ["CLASS_HANDLER", "CLASS_PATH", "DURATION_FORMS", "NEVER", "START_KEYS", "ClassError", "ClassStart", "LearnerSession", "StartOutcome",
           "learner_session", "parse_start", "start_options", "status_json", "status_summary"]
