"""The hub service `aifw-progress` (JupyterHub-managed, `python -m aifw.hub_config.progress_service`): learners'
progress per course module, in its own database (`progress_store`, under the hub's state dir: progress/), so it
survives sessions. What counts and the formula: `aifw.hub_config.progress`.

    GET  <prefix>                            what is where (the hub checks that it answers)
    POST <prefix>api/checks                  a passed instant check (progress.CheckPassed), for the token's user
                                             (any hub token of theirs: the session's, which their kernel has)
    GET  <prefix>api/progress                the token's user's progress, per course they are in
    GET  <prefix>api/courses/<id>/progress   a course's progress of every learner: JSON, or CSV with ?format=csv
                                             (trainers of the course: hub group course-<id>-trainers; hub admins)
    POST <prefix>api/scores                  an assignment's graded scores (progress.ScoresPosted), from `aifw grade`
                                             (the scripts' admin service or a hub admin)
    GET  <prefix>course/<id>                 the trainers' page: learners x modules, bars, a CSV download
    GET  <prefix>oauth_callback              the hub's OAuth login of that page
    ...  <prefix>api/completion, completion/<id>, verify, .well-known/jwks.json, keys/<kid>: completion records
                                             (aifw.hub_config.completion_service; verify and the keys are public)

Who a request is comes from the hub (HubOAuth: a token in the Authorization header, or the page's OAuth cookie);
who may read a course comes from the hub's groups, asked with the service's own token (role: read:groups) and
kept GROUP_CACHE_S. Writes take a token only (no cookie), so another site cannot post in a learner's name.
"""
from __future__ import annotations

import json
import logging
import os
import time
from urllib.parse import quote, urlsplit

from pydantic import BaseModel, ValidationError
from jupyterhub.services.auth import HubOAuth, HubOAuthCallbackHandler, HubOAuthenticated
from tornado import httpclient, ioloop, web

from aifw.names import course_group

from .completion import PublishedCourse, read_published, standing
from .progress import (CONFIG_ENV, SERVICE_NAME, CheckPassed, ModuleChecks, ScoresPosted, ServiceConfig, course_csv,
                       course_modules, course_page, first_error, progress_of)
from .progress_store import ProgressStore

log = logging.getLogger(SERVICE_NAME)
DB_FILE = "progress.sqlite"
MAX_BODY = 4 << 20
GROUP_CACHE_S = 30
MODULES_CACHE_S = 60
HUB_TIMEOUT_S = 5
PARENT_CHECK_S = 2


class Directory:
    """Who is in which course group (asked from the hub, cached) and which checks each course's modules have
    (read from the published copies, cached)."""

    def __init__(self, config: ServiceConfig, api_url: str, api_token: str):
        self.config = config
        self.api_url = api_url.rstrip("/")
        self.api_token = api_token
        self._groups: dict[str, tuple[float, frozenset[str]]] = {}
        self._modules: dict[str, tuple[float, list[ModuleChecks]]] = {}
        self._published: dict[str, tuple[float, PublishedCourse | None]] = {}

    async def members(self, group: str) -> frozenset[str]:
        hit = self._groups.get(group)
        if hit and time.monotonic() - hit[0] < GROUP_CACHE_S:
            return hit[1]
        request = httpclient.HTTPRequest(f"{self.api_url}/groups/{quote(group, safe='')}",
                                         headers={"Authorization": f"token {self.api_token}"},
                                         request_timeout=HUB_TIMEOUT_S, connect_timeout=HUB_TIMEOUT_S)
        try:
            reply = await httpclient.AsyncHTTPClient().fetch(request, raise_error=False)
        except OSError as err:
            raise web.HTTPError(503, f"the hub did not answer who is in {group} ({err}); try again") from None
        if reply.code == 404:
            users: frozenset[str] = frozenset()
        elif reply.code != 200:
            raise web.HTTPError(503, f"the hub refused to say who is in {group} (HTTP {reply.code})")
        else:
            users = frozenset(json.loads(reply.body).get("users", []))
        self._groups[group] = (time.monotonic(), users)
        return users

    async def role(self, user: dict, course: str) -> str | None:
        """'trainer', 'learner' or None: the user's place in the course (hub admins count as trainers)."""
        if user.get("kind") == "user" and user.get("admin"):
            return "trainer"
        name = user.get("name", "")
        if name in await self.members(course_group(course, "trainer")):
            return "trainer"
        if name in await self.members(course_group(course, "learner")):
            return "learner"
        return None

    def modules(self, course: str) -> list[ModuleChecks]:
        hit = self._modules.get(course)
        if hit and time.monotonic() - hit[0] < MODULES_CACHE_S:
            return hit[1]
        modules = course_modules(self.config.shared_courses, course)
        self._modules[course] = (time.monotonic(), modules)
        return modules

    def published(self, course: str) -> PublishedCourse | None:
        """The course's published catalogue entry (its completion rule), or None when there is none we can use
        (said in the log when that changes)."""
        hit = self._published.get(course)
        if hit and time.monotonic() - hit[0] < MODULES_CACHE_S:
            return hit[1]
        try:
            published = read_published(self.config.shared_courses, course)
        except ValueError as err:
            if hit is None or hit[1] is not None:
                log.warning("course %s issues no completion record: %s", course, err)
            published = None
        self._published[course] = (time.monotonic(), published)
        return published


class _Base(web.RequestHandler):
    """Errors as JupyterHub's JSON ({status, message}); the caller from the hub; bodies validated into models."""

    @property
    def hub_auth(self):
        return self.settings["hub_auth"]

    @property
    def directory(self) -> Directory:
        return self.settings["directory"]

    @property
    def store(self) -> ProgressStore:
        return self.settings["store"]

    def write_error(self, status_code, **kwargs):
        exc = kwargs.get("exc_info", (None, None))[1]
        message = exc.log_message if isinstance(exc, web.HTTPError) and exc.log_message else self._reason
        self.finish({"status": status_code, "message": message})

    async def caller(self, *, token_only: bool = False) -> dict:
        """The hub's model of whoever sent the request; 403 when the hub knows no one by it."""
        model = await self.hub_auth.get_user(self, sync=False)
        if model is None:
            raise web.HTTPError(403, "send a hub token of yours (Authorization: token ...); the hub knows none here")
        if token_only and not getattr(self, "_token_authenticated", False):
            raise web.HTTPError(403, "changes need a hub token in the Authorization header, not a browser cookie")
        return model

    def body_as(self, model: type[BaseModel]):
        if len(self.request.body) > MAX_BODY:
            raise web.HTTPError(413, "the request is too large")
        try:
            return model.model_validate_json(self.request.body)
        except ValidationError as err:
            raise web.HTTPError(400, first_error(err)) from None

    def known_course(self, course: str) -> str:
        if course not in self.settings["config"].courses:
            raise web.HTTPError(404, f"no course {course!r} here (courses: {', '.join(self.settings['config'].courses)})")
        return course

    def course_rows(self, course: str, user: str | None = None) -> dict[str, list]:
        modules = self.directory.modules(course)
        passed, scores = self.store.passed(course, user), self.store.scores(course, user)
        users = sorted(set(passed) | set(scores) | ({user} if user else set()))
        return {u: progress_of(modules, passed.get(u, set()), scores.get(u, {})) for u in users}

    def json(self, value) -> None:
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(value))


class InfoHandler(_Base):
    def get(self):
        prefix = self.settings["prefix"]
        self.finish({"service": SERVICE_NAME, "courses": list(self.settings["config"].courses),
                     "checks": prefix + "api/checks", "mine": prefix + "api/progress",
                     "course": prefix + "api/courses/<id>/progress", "page": prefix + "course/<id>",
                     "completion": prefix + "api/completion", "record": prefix + "completion/<id>",
                     "verify": prefix + "verify", "jwks": prefix + ".well-known/jwks.json"})


class ChecksHandler(_Base):
    async def post(self):
        user = await self.caller(token_only=True)
        if user.get("kind") != "user":
            raise web.HTTPError(403, "checks are posted by a learner's own token (their session's)")
        passed = self.body_as(CheckPassed)
        self.known_course(passed.course)
        if await self.directory.role(user, passed.course) is None:
            raise web.HTTPError(403, f"{user['name']} is not in course {passed.course}")
        module = next((m for m in self.directory.modules(passed.course) if m.module == passed.module), None)
        if module is None:
            raise web.HTTPError(400, f"course {passed.course} has no module {passed.module!r}")
        if (passed.notebook, passed.check) not in module.checks:
            raise web.HTTPError(400, f"{passed.notebook} of module {passed.module} has no instant check "
                                     f"titled {passed.check!r}")
        self.store.add_check(user["name"], passed)
        self.set_status(204)
        self.finish()


class MineHandler(_Base):
    async def get(self):
        user = await self.caller()
        if user.get("kind") != "user":
            raise web.HTTPError(403, "this is a user's own progress: send a user's token")
        courses = {}
        for course in self.settings["config"].courses:
            if await self.directory.role(user, course) is not None:
                rows = self.course_rows(course, user["name"])
                courses[course] = [m.model_dump() for m in rows[user["name"]]]
        self.json({"user": user["name"], "courses": courses, "completion": self.completion(user["name"], courses)})

    def completion(self, user: str, courses) -> dict[str, dict]:
        """Per course: does it issue records, does the rule hold, is the learner's record issued (details:
        api/completion)."""
        out = {}
        for course in courses:
            held = standing(course, self.directory.published(course), self.store.scores(course, user).get(user, {}))
            out[course] = {"offered": held.offered, "holds": held.holds,
                           "issued": self.store.record_of(user, course) is not None}
        return out


class CourseHandler(_Base):
    async def get(self, course: str):
        self.known_course(course)
        user = await self.caller()
        if await self.directory.role(user, course) != "trainer":
            raise web.HTTPError(403, f"only trainers of {course} (hub group {course_group(course, 'trainer')}) and "
                                     "hub admins read a course's progress")
        rows = self.course_rows(course)
        if self.get_argument("format", "json") == "csv":
            self.set_header("Content-Type", "text/csv; charset=utf-8")
            self.set_header("Content-Disposition", f'attachment; filename="progress-{course}.csv"')
            self.finish(course_csv(course, rows))
            return
        self.json({"course": course, "learners": {u: [m.model_dump() for m in ms] for u, ms in rows.items()}})


class ScoresHandler(_Base):
    async def post(self):
        model = await self.caller(token_only=True)
        allowed = (model.get("kind") == "user" and model.get("admin")) or (
            model.get("kind") == "service" and model.get("name") in self.settings["config"].grader_services)
        if not allowed:
            raise web.HTTPError(403, "graded scores come from `aifw grade`: the scripts' admin token or a hub admin's")
        posted = self.body_as(ScoresPosted)
        self.known_course(posted.course)
        self.store.put_scores(posted)
        log.info("scores of %s/%s for %d learner(s)", posted.course, posted.assignment, len(posted.scores))
        self.set_status(204)
        self.finish()


class PageHandler(HubOAuthenticated, _Base):
    """HubOAuthenticated for its login redirect (OAuth with a state cookie); who may see the page is ours to say."""

    @property
    def hub_auth(self):
        return self.settings["hub_auth"]

    def check_hub_user(self, model):
        return model

    async def get(self, course: str):
        self.known_course(course)
        user = await self.hub_auth.get_user(self, sync=False)
        if user is None:
            self.redirect(self.get_login_url())
            return
        if await self.directory.role(user, course) != "trainer":
            raise web.HTTPError(403, f"only trainers of {course} and hub admins see its progress")
        rows = self.course_rows(course)
        modules = [m.module for m in self.directory.modules(course)]
        csv_href = f"{self.settings['prefix']}api/courses/{quote(course)}/progress?format=csv"
        self.finish(course_page(course, modules, rows, csv_href))


def make_app(config: ServiceConfig, prefix: str, hub_auth) -> web.Application:
    config.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(config.state_dir, 0o700)
    from .completion_service import completion_routes, completion_settings  # its handlers build on _Base

    store = ProgressStore(config.state_dir / DB_FILE)
    directory = Directory(config, hub_auth.api_url, hub_auth.api_token)
    course = r"([A-Za-z0-9][A-Za-z0-9_.\-]{0,63})"
    return web.Application([
        (prefix, InfoHandler),
        (prefix + "api/checks", ChecksHandler),
        (prefix + "api/progress", MineHandler),
        (prefix + rf"api/courses/{course}/progress", CourseHandler),
        (prefix + "api/scores", ScoresHandler),
        (prefix + rf"course/{course}", PageHandler),
        (prefix + "oauth_callback", HubOAuthCallbackHandler),
        *completion_routes(prefix),
    ], config=config, store=store, directory=directory, hub_auth=hub_auth, prefix=prefix,
        cookie_secret=os.urandom(32), **completion_settings(config.state_dir, config.public_url, prefix))


def main() -> None:
    hub_pid = os.getppid()
    logging.basicConfig(level=logging.INFO, format=f"[%(levelname).1s %(asctime)s {SERVICE_NAME}] %(message)s")
    config = ServiceConfig.model_validate_json(os.environ[CONFIG_ENV])
    prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", f"/services/{SERVICE_NAME}/")
    url = urlsplit(os.environ["JUPYTERHUB_SERVICE_URL"])
    app = make_app(config, prefix, HubOAuth.instance(cache_max_age=60))  # the one the OAuth callback uses
    app.listen(url.port, address=url.hostname, max_body_size=MAX_BODY + (64 << 10))
    log.info("listening on %s:%s%s; database %s", url.hostname, url.port, prefix, config.state_dir / DB_FILE)
    loop = ioloop.IOLoop.current()

    def exit_with_the_hub() -> None:
        # A hub killed before it stopped its services leaves this process behind, holding the port with a token
        # the next hub does not know: it goes when the hub that started it is gone.
        if os.getppid() != hub_pid:
            log.warning("the hub that started this service (pid %d) is gone: stopping", hub_pid)
            loop.stop()

    ioloop.PeriodicCallback(exit_with_the_hub, PARENT_CHECK_S * 1000).start()
    loop.start()


if __name__ == "__main__":
    main()
