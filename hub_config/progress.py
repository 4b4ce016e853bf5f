"""Learners' progress per course module, pure: the messages the progress service takes (a passed instant check,
an assignment's graded scores), which instant checks a module has, the formula of a module's progress, and the
CSV and HTML views of a course. No I/O here: the database is `progress_store`, the hub service `progress_service`.

Where progress comes from:
- an instant check that passed in a learner's kernel (aifw.extensions.kernel.checks posts it; only the checks a
  module's published notebooks define count, so a made-up title changes nothing);
- the graded score of the module's nbgrader assignment (the module id is the assignment name), posted by
  `aifw grade` after a run.

The progress of a module is ``max(checks passed / checks in the module, graded score / graded maximum)``, each
part 0 when the module has no checks or no graded score yet, and at most 1. The larger of the two, not a mix:
instant checks are the learner's own signal while they work, the graded score the trainer's after a submission;
either alone can show a module done, and a later grade never lowers what the checks showed.
"""
from __future__ import annotations

import ast
import csv
import html
import io
import json
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from aifw.names import NBGRADER_ID, NOTEBOOK_FILE, SLURM_NAME, UNIX_USER, course_group
from aifw.site import Site

from .lti_grades import first_error  # noqa: F401 - the same words for a refused body as the grades service

SERVICE_NAME = "aifw-progress"
CONFIG_ENV = "AIFW_PROGRESS"
#: The most checks a module may hold, and scores one post may carry (bounds on what a body can make us store).
MAX_CHECKS = 500
MAX_SCORES = 10_000

CourseId = Annotated[str, StringConstraints(pattern=SLURM_NAME)]
ModuleId = Annotated[str, StringConstraints(pattern=NBGRADER_ID)]
UserName = Annotated[str, StringConstraints(pattern=UNIX_USER)]
NotebookFile = Annotated[str, StringConstraints(pattern=NOTEBOOK_FILE, max_length=255)]
#: A check's title, as `@check("...")` names it: one line of printable text.
CheckTitle = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CheckPassed(_Frozen):
    """POST api/checks: an instant check passed in the learner's notebook ~/courses/<course>/<module>/<notebook>."""

    course: CourseId
    module: ModuleId
    notebook: NotebookFile
    check: CheckTitle


class Score(_Frozen):
    score: float = Field(ge=0)
    maximum: float = Field(gt=0)

    @model_validator(mode="after")
    def _not_above(self) -> "Score":
        if self.score > self.maximum * (1 + 1e-9):
            raise ValueError(f"the score {self.score:g} is above the maximum {self.maximum:g}")
        return self


class ScoresPosted(_Frozen):
    """POST api/scores: every learner's graded score of one assignment (= module), from `aifw grade`."""

    course: CourseId
    assignment: ModuleId
    scores: dict[UserName, Score] = Field(max_length=MAX_SCORES)


class ModuleChecks(_Frozen):
    """The instant checks a module's published notebooks define: (notebook, title) pairs."""

    module: ModuleId
    title: str = ""
    checks: frozenset[tuple[NotebookFile, CheckTitle]] = Field(default=frozenset(), max_length=MAX_CHECKS)


class ServiceConfig(_Frozen):
    """What the hub gives the service (JSON in $AIFW_PROGRESS)."""

    state_dir: Path
    shared_courses: Path  # <prefix>/share/courses: the learners' published copies (world-readable)
    courses: tuple[CourseId, ...]
    grader_services: tuple[str, ...] = ()  # hub services that may post scores (the scripts' admin service)
    #: The hub's public URL (the site's hub.bind_url): completion records name the service by it.
    public_url: str = Field(pattern=r"^https?://[^/\s]+(/.*)?$")

    def to_env(self) -> str:
        return self.model_dump_json()


class ModuleProgress(_Frozen):
    module: str
    checks_passed: int
    checks_total: int
    score: float | None
    maximum: float | None
    progress: float  # 0..1, module_progress()


def module_progress(checks_passed: int, checks_total: int, score: float | None, maximum: float | None) -> float:
    """The module's progress in 0..1: the larger of the fraction of its instant checks passed and its graded
    fraction (see the module docstring)."""
    by_checks = min(checks_passed, checks_total) / checks_total if checks_total > 0 else 0.0
    by_grade = score / maximum if score is not None and maximum else 0.0
    return round(min(1.0, max(by_checks, by_grade, 0.0)), 4)


def progress_of(modules: list[ModuleChecks], passed: set[tuple[str, str, str]],
                scores: dict[str, Score]) -> list[ModuleProgress]:
    """One learner's progress in one course: `passed` holds (module, notebook, check) of their passed checks,
    `scores` module -> graded score. Only checks the module defines count."""
    out = []
    for m in modules:
        got = sum((m.module, nb, title) in passed for nb, title in m.checks)
        s = scores.get(m.module)
        out.append(ModuleProgress(module=m.module, checks_passed=got, checks_total=len(m.checks),
                                  score=s.score if s else None, maximum=s.maximum if s else None,
                                  progress=module_progress(got, len(m.checks), s.score if s else None,
                                                           s.maximum if s else None)))
    return out


def service_port(site: Site) -> int:
    """The service's port (`Site.service_port`: after the formgraders and the LTI grades service)."""
    return site.service_port(SERVICE_NAME)


def service_url(site: Site) -> str:
    """Where the service listens (`Site.progress_service_url`)."""
    return site.progress_service_url


def progress_service(site: Site, *, home: str, admin_service: str | None) -> tuple[list[dict], list[dict]]:
    """The JupyterHub-managed service `aifw-progress` and its roles (pure). It runs as the hub's user, its database
    and the key that signs completion records under the hub's state dir (progress/). Roles: the service reads the
    hub's groups (who is in which course); every course's trainers and learners may open it through the hub's
    OAuth (the trainers' progress pages, a learner's completion record: each page says who may see it); the API
    needs no role (any token of a user identifies them). No courses, no service."""
    if not site.courses:
        return [], []
    state_dir = Path(home) / "state" / "hub" / "progress"
    config = ServiceConfig(state_dir=state_dir, shared_courses=Path(home) / "share" / "courses",
                           courses=tuple(site.course_ids), grader_services=(admin_service,) if admin_service else (),
                           public_url=site.hub.bind_url)
    venv_bin = site.paths.venv / "bin"
    service = {
        "name": SERVICE_NAME,
        "display": False,
        "info": {"what": "learners' progress per course module (instant checks and graded scores)"},
        "url": service_url(site),
        "command": [str(venv_bin / "python"), "-m", "aifw.hub_config.progress_service"],
        "environment": {"PATH": f"{venv_bin}:/usr/local/bin:/usr/bin:/bin", CONFIG_ENV: config.to_env()},
        "oauth_no_confirm": True,
    }
    roles = [{"name": f"{SERVICE_NAME}-service", "description": "Who is in which course group",
              "scopes": ["read:groups"], "services": [SERVICE_NAME]}]
    trainers = [course_group(c, "trainer") for c in site.course_ids]
    if trainers:
        roles.append({"name": f"{SERVICE_NAME}-trainers", "description": "Trainers open the progress pages",
                      "scopes": [f"access:services!service={SERVICE_NAME}"], "groups": trainers})
        roles.append({"name": f"{SERVICE_NAME}-learners", "description": "Learners open their completion records",
                      "scopes": [f"access:services!service={SERVICE_NAME}"],
                      "groups": [course_group(c, "learner") for c in site.course_ids]})
    if admin_service:
        roles.append({"name": f"{SERVICE_NAME}-graders", "description": "aifw grade posts graded scores",
                      "scopes": [f"access:services!service={SERVICE_NAME}"], "services": [admin_service]})
    return [service], roles


# --------------------------------------------------------------------------- which checks a module has
def _check_titles(source: str) -> list[str]:
    """The titles of the checks a code cell defines, named as aifw.extensions.kernel.checks.check names them:
    `@check("Title", ...)`, or a bare `@check` / `@check()` after the function's name."""
    try:
        tree = ast.parse(source)
    except SyntaxError:  # IPython magics and the like: such a cell defines no check we can read
        return []
    titles = []
    for node in ast.walk(tree):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for deco in node.decorator_list:
            call = deco if isinstance(deco, ast.Call) else None
            target = call.func if call else deco
            if not (isinstance(target, ast.Name) and target.id == "check"
                    or isinstance(target, ast.Attribute) and target.attr == "check"):
                continue
            first = call.args[0] if call and call.args else None
            if isinstance(first, ast.Constant) and isinstance(first.value, str) and first.value:
                titles.append(first.value)
            else:
                titles.append(node.name.replace("_", " ").strip() or "check")
    return titles


def notebook_checks(notebook: dict) -> list[str]:
    """The check titles a notebook (nbformat 4 JSON) defines, in order."""
    titles = []
    for cell in notebook.get("cells", []):
        if cell.get("cell_type") == "code":
            source = cell.get("source", "")
            titles += _check_titles("".join(source) if isinstance(source, list) else str(source))
    return titles


def module_checks(module: str, folder: Path) -> ModuleChecks:
    """The checks of the notebooks in a module's published folder (share/courses/<course>/<module>/)."""
    checks = set()
    for path in sorted(folder.glob("*.ipynb")):
        try:
            nb = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # not a notebook we can read: it defines no check
        checks.update((path.name, t) for t in notebook_checks(nb) if len(t) <= 200)
    return ModuleChecks(module=module, checks=frozenset(checks))


def course_modules(shared_courses: Path, course: str) -> list[ModuleChecks]:
    """Every module of a published course, by folder name order (module ids sort in course order: m1-, m2-...)."""
    root = shared_courses / course
    if not root.is_dir():
        return []
    return [module_checks(d.name, d) for d in sorted(root.iterdir()) if d.is_dir() and not d.name.startswith(".")]


# --------------------------------------------------------------------------- views of a course
def course_csv(course: str, rows: dict[str, list[ModuleProgress]]) -> str:
    """learner, module, checks passed, checks, score, maximum, progress (0..1): one row per learner and module."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["course", "learner", "module", "checks_passed", "checks_total", "score", "maximum", "progress"])
    for user in sorted(rows):
        for m in rows[user]:
            writer.writerow([course, user, m.module, m.checks_passed, m.checks_total,
                             "" if m.score is None else f"{m.score:g}", "" if m.maximum is None else f"{m.maximum:g}",
                             f"{m.progress:.4f}"])
    return out.getvalue()


def course_page(course: str, modules: list[str], rows: dict[str, list[ModuleProgress]], csv_href: str) -> str:
    """The trainers' HTML page: a table of learners x modules, each cell a bar with its percentage."""
    esc = html.escape
    head = "".join(f"<th>{esc(m)}</th>" for m in modules)
    body = []
    for user in sorted(rows):
        cells = []
        by_module = {m.module: m for m in rows[user]}
        for module in modules:
            m = by_module.get(module)
            pct = round(100 * m.progress) if m else 0
            detail = (f"{m.checks_passed}/{m.checks_total} checks" + (f", graded {m.score:g}/{m.maximum:g}"
                                                                       if m.score is not None else "")) if m else ""
            cells.append(f'<td title="{esc(detail)}"><div class="bar"><div style="width:{pct}%"></div></div>'
                         f"<span>{pct}%</span></td>")
        body.append(f"<tr><th>{esc(user)}</th>{''.join(cells)}</tr>")
    rows_html = "".join(body) or f'<tr><td colspan="{len(modules) + 1}">no learner has progress yet</td></tr>'
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Progress: {esc(course)}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left}}
.bar{{display:inline-block;width:80px;height:10px;background:#eee;margin-right:6px}}
.bar div{{height:100%;background:#2e7d32}}</style></head>
<body><h1>Progress in {esc(course)}</h1>
<p>Per module: the larger of the share of its instant checks passed and its graded score.
<a href="{esc(csv_href)}" download>Download CSV</a></p>
<table><thead><tr><th>learner</th>{head}</tr></thead><tbody>{rows_html}</tbody></table></body></html>
"""
