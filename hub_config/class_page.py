"""The trainer's "Start the class" button: `/hub/api/aifw/class/<course>`, a JupyterHub API handler in the
hub's own process (registered by `settings.py` through `JupyterHub.extra_handlers`), so that every learner's
session starts through JupyterHub's own `spawn_single_user`, as `POST /hub/api/users/<learner>/server` would.

    GET   where each learner's default session stands (the spawner's `session_card()`: ready, starting,
          waiting in Slurm's queue and why, stopping, not started and why), the counts and a summary line
    POST  {"module": id?, "stop_unused": "45m"?, "reservation": name?}: start every learner's default session
          that is not running or on its way, all at once, on the module's preset; answers which it started,
          kept and which the hub refused, with the reason (a spent GPU budget, ...)

Who may: a trainer of the course (hub group course-<id>-trainers) or a hub admin, and only with a request
whose own scopes cover each learner's server (`start:servers` for POST, `read:servers` for GET) and the
learner group: a token made with fewer scopes is refused whole (403) and nothing starts. Only members of the
hub group course-<id>-learners are ever started. The body is checked by `class_request.py` (pure).
"""
from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from jupyterhub import orm
from jupyterhub.apihandlers.base import APIHandler
from tornado import web

from aifw.names import course_group
from aifw.site import Site

from .class_request import (
    CLASS_HANDLER,
    CLASS_PATH,
    ClassError,
    StartOutcome,
    learner_session,
    parse_start,
    start_options,
    status_json,
)
from .course_cards import CourseCard, read_course_card

#: Where the last refusal of each learner's start is kept (the hub's tornado settings: one hub, one dict).
_REFUSED = "aifw_class_refused"


def _reason(err: BaseException) -> str:
    """The hub's refusal in its own words (the spawner's `jupyterhub_message`, an HTTPError's message)."""
    message = getattr(err, "jupyterhub_message", None)
    if message:
        return str(message)
    if isinstance(err, web.HTTPError):
        text = err.log_message or err.reason or f"HTTP {err.status_code}"
        try:
            text = text % err.args if err.args else text
        except (TypeError, ValueError):
            pass
        return f"{text} (HTTP {err.status_code})"
    return f"{type(err).__name__}: {err}"


class ClassHandler(APIHandler):
    """GET and POST /hub/api/aifw/class/<course> (see the module's docstring)."""

    def initialize(self, site: Site, share: str) -> None:
        self.site = site
        self.share = Path(share)

    # -- who and whom ------------------------------------------------------------------------------------
    def _learners(self, course_id: str, scope: str) -> list[Any]:
        """The course's learners as the hub's users, once the requester may act on each of them with `scope`;
        404 for a course the site does not have, 403 (nothing done) for anyone else."""
        if self.current_user is None:
            raise web.HTTPError(403, "Missing or invalid credentials: log in to the hub, or send a token.")
        if self.site.course(course_id) is None:
            raise web.HTTPError(404, f"There is no course {course_id!r} on this hub.")
        requester = self.current_user
        trainers = course_group(course_id, "trainer")
        teaches = trainers in {g.name for g in (getattr(requester, "groups", None) or ())}
        if not (teaches or getattr(requester, "admin", False)):
            raise web.HTTPError(403, f"Only the trainers of {course_id} (hub group {trainers}) and hub admins may "
                                     "start or watch its class.")
        group_name = course_group(course_id, "learner")
        group = orm.Group.find(self.db, name=group_name)
        names = sorted(u.name for u in group.users) if group is not None else []
        if not self.has_scope(f"read:groups!group={group_name}"):
            raise web.HTTPError(403, f"This request may not read the hub group {group_name}: use your login or a "
                                     f"token with your course's role course-{course_id}-class.")
        uncovered = [n for n in names if not self.has_scope(f"{scope}!server={n}/")]
        if uncovered:
            raise web.HTTPError(403, f"This request's scopes do not include {scope} for the sessions of "
                                     f"{', '.join(uncovered)}; nothing was done. Use your login, or a token with "
                                     f"your course's role course-{course_id}-class (the Token page, /hub/token).")
        users = []
        for name in names:
            user = self.find_user(name)
            if user is None:  # a group member the hub has no user for cannot be: say so rather than skip
                raise web.HTTPError(500, f"The hub group {group_name} names {name}, who is no hub user.")
            users.append(user)
        return users

    def _refused(self, course_id: str) -> dict[str, str]:
        return self.settings.setdefault(_REFUSED, {}).setdefault(course_id, {})

    def _course_card(self, course_id: str) -> CourseCard:
        """The course's modules from its published catalogue entry (none when it has not been published)."""
        return read_course_card(self.share, course_id) or CourseCard(course_id, course_id, ())

    # -- GET ---------------------------------------------------------------------------------------------
    async def get(self, course_id: str) -> None:
        users = self._learners(course_id, "read:servers")
        refused = self._refused(course_id)
        sessions = []
        for user in users:
            card = getattr(user.spawner, "session_card", None)
            if card is None:
                raise web.HTTPError(500, "The hub's spawner is not aifw-slurm; the class page needs its session cards.")
            sessions.append(learner_session(user.name, card(), refused.get(user.name, "")))
        self.set_header("Content-Type", "application/json")
        self.write(json.dumps(status_json(course_id, sessions)))

    # -- POST --------------------------------------------------------------------------------------------
    async def post(self, course_id: str) -> None:
        users = self._learners(course_id, "start:servers")
        course = self._course_card(course_id)
        try:
            start = parse_start(self.get_json_body(), course, list(self.site.slurm.reservations))
            options = start_options(self.site, course, start)
        except ClassError as err:
            raise web.HTTPError(400, str(err).replace("%", "%%")) from None
        outcome = StartOutcome()
        refused = self._refused(course_id)
        await asyncio.gather(*(self._start_one(user, options, outcome, refused) for user in users))
        self.log.info("Class %s started by %s: %d started, %d kept, %d refused", course_id,
                      getattr(self.current_user, "name", "?"), len(outcome.started), len(outcome.kept),
                      len(outcome.refused))
        self.set_header("Content-Type", "application/json")
        self.write(json.dumps(outcome.as_json(options)))

    async def _start_one(self, user: Any, options: dict[str, Any], outcome: StartOutcome,
                         refused: dict[str, str]) -> None:
        """One learner's default session, with the checks of JupyterHub's `UserServerAPIHandler.post`: a spawn
        on its way or a running server is kept; a stop on its way is a refusal; else `spawn_single_user`
        (the concurrent-spawn limit, the spawner's own checks). A refusal is recorded with the hub's words."""
        name = user.name
        refused.pop(name, None)
        try:
            spawner = user.get_or_create_spawner("", "", replace_failed=True)
            if spawner.pending == "spawn":
                outcome.kept.append(name)
                return
            if spawner.pending:
                raise web.HTTPError(409, f"the session is {spawner.pending}ing; start the class again once it stopped")
            if spawner.ready:
                spawner._spawn_pending = True  # as JupyterHub does: no other start while it looks
                try:
                    state = await spawner.poll_and_notify()
                finally:
                    spawner._spawn_pending = False
                if state is None:
                    outcome.kept.append(name)
                    return
            await self.spawn_single_user(user, "", options=options)
        except Exception as err:  # noqa: BLE001 - every refusal is reported, the other learners still start
            self.log.warning("Class start: %s's session was not started: %s", name, _reason(err))
            refused[name] = outcome.refused[name] = _reason(err)
            return
        outcome.started.append(name)
        self._watch(spawner, name, refused)

    def _watch(self, spawner: Any, name: str, refused: dict[str, str]) -> None:
        """A spawn still on its way when `spawn_single_user` returned (after the hub's slow_spawn_timeout) may
        fail later (its job ends, Slurm refuses): keep the reason for GET, as the pending page would show it."""
        future = getattr(spawner, "_spawn_future", None)
        if future is None or future.done():
            return

        def done(f: asyncio.Future) -> None:
            if not f.cancelled() and f.exception() is not None:
                refused[name] = _reason(f.exception())

        future.add_done_callback(done)


__all__ = ["CLASS_HANDLER", "CLASS_PATH", "ClassHandler"]
