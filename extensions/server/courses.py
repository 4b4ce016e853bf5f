"""The course navigator's server side: ``GET <base_url>aifw/courses`` (JSON) for the server's owner.

What it answers, per course the learner is in (the hub's progress service says which, with the session's own
token; without an answer from it, the courses in the learner's ~/courses that are published):

- the course and its modules from the published catalogue, ``$AIFW_HOME/share/courses/<course>/``: the
  module's title, goals, minutes, partition, GPUs, notebooks and launch link from the course's public entry
  ``.catalogue.json`` (aifw.courses.publish.catalogue_entry: no answers, no tests), read as untrusted input;
  without a usable one, the module folders and their notebooks;
- each module's notebooks, as paths of the learner's own copy (``courses/<course>/<module>/<notebook>``,
  relative to the server's root, the home) and whether it is there yet;
- each module's progress (aifw.hub_config.progress's formula), from the service.

``POST <base_url>aifw/courses/<course>/copy`` copies the course's published files the learner lacks into
~/courses/<course>/ (aifw.courses.publish.sync: never overwrites a learner's file), so "Open" always opens the
learner's own copy.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from tornado import web
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from aifw.extensions.kernel.progress_report import SERVICE_NAME
from aifw.names import NBGRADER_ID, NOTEBOOK_FILE, SLURM_NAME, matches

PROGRESS_TIMEOUT_S = 3.0
COURSE_RE = r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}"


class _View(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")  # the publisher may write more than we show


class ModuleView(_View):
    id: str = Field(pattern=NBGRADER_ID)
    title: str = Field("", max_length=300)
    goals: list[str] = Field(default_factory=list, max_length=50)
    minutes: int | None = Field(None, ge=0)
    partition: str | None = Field(None, pattern=SLURM_NAME)
    gpus: int | None = Field(None, ge=0)
    # the hub's spawn page with the module's preset, relative to the hub's root: nothing that could lead elsewhere
    launch_link: str | None = Field(None, max_length=500, pattern=r"^/hub/spawn\?[A-Za-z0-9=&_.%\-]*$")
    notebooks: list[str] = Field(default_factory=list, max_length=100)


class CourseView(_View):
    id: str = Field(pattern=SLURM_NAME)
    title: str = Field("", max_length=300)
    modules: list[ModuleView] = Field(default_factory=list, max_length=200)


def shared_courses(env: dict[str, str]) -> Path | None:
    home = env.get("AIFW_HOME")
    return Path(home) / "share" / "courses" if home else None


def published_course(share: Path, course: str) -> CourseView | None:
    """The course as the publisher left it in the share (its .catalogue.json, else its folders)."""
    from aifw.courses.publish import CATALOGUE

    root = share / course
    if not matches(SLURM_NAME, course) or not root.is_dir():
        return None
    try:
        return CourseView.model_validate_json((root / CATALOGUE).read_text(encoding="utf-8"))
    except (OSError, ValidationError):
        pass  # no catalogue (or one we cannot trust): the folders say which modules and notebooks there are
    modules = []
    for folder in sorted(d for d in root.iterdir() if d.is_dir() and matches(NBGRADER_ID, d.name)):
        notebooks = sorted(p.name for p in folder.glob("*.ipynb") if matches(NOTEBOOK_FILE, p.name))
        modules.append(ModuleView(id=folder.name, title=folder.name, notebooks=notebooks))
    return CourseView(id=course, title=course, modules=modules)


def navigator_view(share: Path | None, home: Path, courses: list[str],
                   progress: dict[str, list[dict]] | None, progress_error: str | None,
                   completion: dict[str, dict] | None = None) -> dict[str, Any]:
    """What the navigator shows (pure but for reading the share and checking the learner's files). A course
    whose completion rule holds for the learner (or whose record they have) links to their completion record;
    the link is made here from the course id, not taken from the answer."""
    out = []
    for course_id in courses:
        course = published_course(share, course_id) if share else None
        if course is None:
            continue
        by_module = {m.get("module"): m for m in (progress or {}).get(course_id, [])}
        modules = []
        for m in course.modules:
            notebooks = [{"name": nb, "path": f"courses/{course.id}/{m.id}/{nb}",
                          "exists": (home / "courses" / course.id / m.id / nb).is_file()}
                         for nb in m.notebooks if matches(NOTEBOOK_FILE, nb)]
            modules.append({**m.model_dump(exclude={"notebooks"}), "notebooks": notebooks,
                            "progress": by_module.get(m.id)})
        done = (completion or {}).get(course_id) or {}
        record = (f"/services/{SERVICE_NAME}/completion/{course.id}"
                  if done.get("holds") is True or done.get("issued") is True else None)
        out.append({"id": course.id, "title": course.title or course.id, "modules": modules, "completion_link": record})
    return {"courses": out, "progress_error": progress_error}


async def my_progress(env: dict[str, str]) -> tuple[dict[str, list[dict]] | None, dict[str, dict], str | None]:
    """(course -> module progress, course -> completion standing, None) from the progress service, or
    (None, {}, why not in words)."""
    from aifw.extensions.kernel.progress_report import service_base

    token = env.get("JUPYTERHUB_API_TOKEN")
    try:
        base = service_base(env)
    except Exception as err:  # noqa: BLE001 - a site file we cannot read is "no service", said in words
        return None, {}, f"the progress service's address is unknown ({err})"
    if not token or base is None:
        return None, {}, "no progress service here (this server was not started by the hub)"
    request = HTTPRequest(base + "api/progress", headers={"Authorization": f"token {token}"},
                          request_timeout=PROGRESS_TIMEOUT_S, connect_timeout=PROGRESS_TIMEOUT_S)
    try:
        answer = json.loads((await AsyncHTTPClient().fetch(request)).body)
        courses = answer["courses"]
    except (HTTPClientError, OSError, ValueError, KeyError, TypeError) as err:
        return None, {}, f"the progress service did not answer ({err}); progress shows again when it does"
    completion = answer.get("completion") if isinstance(answer.get("completion"), dict) else {}
    return (({c: m for c, m in courses.items() if isinstance(m, list)} if isinstance(courses, dict) else {}),
            {c: v for c, v in completion.items() if isinstance(v, dict)}, None)


def _home(handler: APIHandler) -> Path:
    return Path(handler.settings.get("server_root_dir") or os.path.expanduser("~")).expanduser()


class CoursesHandler(APIHandler):
    @web.authenticated
    async def get(self) -> None:
        env = dict(os.environ)
        share, home = shared_courses(env), _home(self)
        progress, completion, error = await my_progress(env)
        if progress is not None:
            courses = sorted(progress)
        else:  # the learner's own copies tell which courses they have
            mine = home / "courses"
            courses = sorted(d.name for d in mine.iterdir() if d.is_dir()) if mine.is_dir() else []
        self.finish(navigator_view(share, home, courses, progress, error, completion))


class CopyHandler(APIHandler):
    @web.authenticated
    def post(self, course: str) -> None:
        from aifw.courses.publish import sync

        share = shared_courses(dict(os.environ))
        if share is None or published_course(share, course) is None:
            raise web.HTTPError(404, f"course {course!r} is not published here")
        added = sync(share, _home(self), [course])
        self.finish({"added": [str(p.relative_to(_home(self))) for p in added]})


def courses_handlers(base_url: str) -> list[tuple[str, type, dict]]:
    return [
        (url_path_join(base_url, "aifw", "courses"), CoursesHandler, {}),
        (url_path_join(base_url, "aifw", "courses", f"({COURSE_RE})", "copy"), CopyHandler, {}),
    ]
