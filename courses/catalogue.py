"""The course catalogue: load and validate every ``<course>/course.yaml`` and its ``wrong_answers.yaml``.

The courses live outside the importable package (which carries code only): ``scripts/install.sh`` copies
a checkout's ``courses/<course>/`` folders into ``<runtime prefix>/course-sources/``, readable by root
only, and that is where :func:`load_catalogue` looks unless it is given a ``root`` (``--root`` on the
command line; a checkout's ``courses/`` folder works too).

The format is described in ``docs/course-format.md``. A malformed file raises :class:`CourseFileError`,
whose message names the file, the key, what is expected and what was found. Files that are well-formed
but disagree with each other (a notebook that does not exist, a test cell without a planted wrong
answer, ...) are listed by :func:`course_problems`; the grading proof reports them as failed checks.

    >>> from aifw.courses.catalogue import load_catalogue
    >>> for course in load_catalogue():
    ...     for module in course.modules:
    ...         print(course.id, module.id, module.launch_link())
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from aifw.names import NOTEBOOK_FILE, SLUG, SLURM_NAME
from aifw.yamlfile import FileProblems, read_yaml, refuse_repeats, validation_problems

from . import cells as nbcells
from .completion_setting import CompletionSetting

COURSE_FILE = "course.yaml"
#: The folder of the runtime prefix that holds the installed course sources (see default_root).
SOURCES_DIR = "course-sources"
#: The help of every command's --root.
ROOT_HELP = ("folder with one folder per course, e.g. a checkout's courses/ "
             "(default: <runtime prefix>/course-sources, installed by scripts/install.sh)")
WRONG_ANSWERS_FILE = "wrong_answers.yaml"

Slug = Annotated[str, StringConstraints(pattern=SLUG, max_length=64)]
NotebookName = Annotated[str, StringConstraints(pattern=NOTEBOOK_FILE)]
PartitionName = Annotated[str, StringConstraints(pattern=SLURM_NAME)]
Text = Annotated[str, StringConstraints(min_length=1, strip_whitespace=True)]


class CourseFileError(FileProblems):
    """A course file that cannot be used; the message says which file, which key and what to write."""


# --------------------------------------------------------------------------- course.yaml
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Module(_Strict):
    """One module of a course = one nbgrader assignment (``source/<id>/``)."""

    id: Slug
    title: Text
    goals: list[Text] = Field(min_length=1)
    prerequisites: list[Text] = []
    minutes: int = Field(gt=0, le=1440, description="estimated time for a learner, in minutes")
    partition: PartitionName
    gpus: int = Field(ge=0, le=16)
    session_minutes: int | None = Field(
        default=None, gt=0, le=1440, description="session length to ask for; default: `minutes`"
    )
    notebooks: list[NotebookName] = Field(min_length=1)

    @field_validator("notebooks")
    @classmethod
    def _unique_notebooks(cls, value: list[str]) -> list[str]:
        refuse_repeats((Path(n).stem for n in value), "notebook names")
        return value

    def launch_link(self, base_url: str = "/") -> str:
        """The hub URL that starts a session fit for this module."""
        query = urlencode(
            {"partition": self.partition, "gpus": self.gpus, "runtime": self.session_minutes or self.minutes}
        )
        return f"{base_url.rstrip('/')}/hub/spawn?{query}"


class Course(_Strict):
    """A course file (``course.yaml``) plus where it lives (``root``, not part of the file)."""

    id: Slug
    title: Text
    summary: Text
    modules: list[Module] = Field(min_length=1)
    #: The completion record's rule and micro-credential fields; None: the course issues no record.
    completion: CompletionSetting | None = None

    @field_validator("modules")
    @classmethod
    def _unique_modules(cls, value: list[Module]) -> list[Module]:
        refuse_repeats((m.id for m in value), "module ids")
        return value

    @model_validator(mode="after")
    def _completion_modules_exist(self) -> "Course":
        if self.completion is not None:
            self.completion.counted([m.id for m in self.modules])
        return self

    # set by load_course(); excluded from the model's fields
    _root: Path | None = PrivateAttr(default=None)

    @property
    def root(self) -> Path:
        if self._root is None:
            raise RuntimeError("this Course was not loaded from a folder")
        return self._root

    def module(self, module_id: str) -> Module:
        for m in self.modules:
            if m.id == module_id:
                return m
        known = ", ".join(m.id for m in self.modules)
        raise KeyError(f"course {self.id!r} has no module {module_id!r}; its modules are: {known}")

    def source_dir(self, module_id: str) -> Path:
        return self.root / "source" / module_id

    def notebook_path(self, module_id: str, notebook: str) -> Path:
        return self.source_dir(module_id) / notebook

    @cached_property
    def wrong_answers(self) -> "WrongAnswers":
        return load_wrong_answers(self.root / WRONG_ANSWERS_FILE)

    def exercises(self, module_id: str) -> list[nbcells.Exercise]:
        """The module's exercises (counted from its source notebooks; missing notebooks count none)."""
        out: list[nbcells.Exercise] = []
        for nb_name in self.module(module_id).notebooks:
            path = self.notebook_path(module_id, nb_name)
            if path.is_file():
                out.extend(nbcells.exercises(nbcells.read_notebook(path)))
        return out


# --------------------------------------------------------------------------- wrong_answers.yaml
class WrongAnswer(_Strict):
    cell: Annotated[str, StringConstraints(min_length=1)] = Field(
        description="grade_id of the solution cell to overwrite"
    )
    source: str = Field(description="the whole planted cell")


# module id -> notebook -> test grade_id -> wrong answer
WrongAnswers = dict[str, dict[str, dict[str, WrongAnswer]]]


class _WrongAnswersFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    modules: dict[Slug, dict[NotebookName, dict[str, WrongAnswer]] | None]

    @model_validator(mode="before")
    @classmethod
    def _wrap(cls, data: Any) -> Any:
        return {"modules": data if data is not None else {}}


# --------------------------------------------------------------------------- loading
COURSE_DOC = "docs/course-format.md"


def _read_yaml(path: Path) -> Any:
    return read_yaml(path, error=CourseFileError)


def _validation_problems(err: ValidationError, data: Any, strip: int = 0) -> list[str]:
    return validation_problems(err, data, doc=COURSE_DOC, strip=strip)


def load_course(folder: str | Path) -> Course:
    """Load ``<folder>/course.yaml``; raise :class:`CourseFileError` if it is not a valid course file."""
    folder = Path(folder)
    path = folder / COURSE_FILE
    data = _read_yaml(path)
    if not isinstance(data, dict):
        raise CourseFileError(path, [f"expected a mapping with keys id, title, summary, modules; got {type(data).__name__}"])
    try:
        course = Course.model_validate(data)
    except ValidationError as err:
        raise CourseFileError(path, _validation_problems(err, data)) from None
    if course.id != folder.name:
        raise CourseFileError(path, [f"key 'id': expected the folder's name {folder.name!r}; got {course.id!r}"])
    course._root = folder.resolve()
    return course


def load_wrong_answers(path: str | Path) -> WrongAnswers:
    """Load a ``wrong_answers.yaml``; a missing file means no entries."""
    path = Path(path)
    if not path.exists():
        return {}
    data = _read_yaml(path)
    if data is not None and not isinstance(data, dict):
        raise CourseFileError(path, [f"expected a mapping of module ids; got {type(data).__name__}"])
    try:
        parsed = _WrongAnswersFile.model_validate(data)
    except ValidationError as err:
        raise CourseFileError(path, _validation_problems(err, data, strip=1)) from None
    return {m: (nbs or {}) for m, nbs in parsed.modules.items()}


def default_root() -> Path:
    """Where the installed course sources are: ``<runtime prefix>/course-sources``, the runtime prefix
    being the folder that holds the venv running this code (``scripts/install.sh PREFIX`` builds
    ``PREFIX/venv`` and installs the courses, root-only, into ``PREFIX/course-sources``)."""
    return Path(sys.prefix).parent / SOURCES_DIR


def load_catalogue(root: str | Path | None = None) -> list[Course]:
    """Every course under ``root`` (one folder per course; default: :func:`default_root`), sorted by id.

    A folder that is missing or cannot be read raises :class:`CourseFileError` saying what to do: it is
    never read as "no courses"."""
    root = Path(root) if root is not None else default_root()
    try:
        folders = sorted(p for p in root.iterdir() if (p / COURSE_FILE).is_file())
    except FileNotFoundError:
        raise CourseFileError(root, [
            "no course sources here: install them with `scripts/install.sh PREFIX` (as root), or give a "
            "folder of courses, such as a checkout's courses/, with --root"]) from None
    except NotADirectoryError:
        raise CourseFileError(root, ["not a folder: give the folder that holds one folder per course"]) from None
    except PermissionError:
        raise CourseFileError(root, [
            "cannot read the course sources: they hold the answers and hidden tests and only root may "
            "read them; run this as root, or give a checkout's courses/ with --root"]) from None
    return [load_course(p) for p in folders]


def find_course(course_id: str, root: str | Path | None = None) -> Course:
    courses = load_catalogue(root)
    for c in courses:
        if c.id == course_id:
            return c
    known = ", ".join(c.id for c in courses) or "none"
    raise KeyError(f"no course {course_id!r}; the courses are: {known}")


# --------------------------------------------------------------------------- consistency
@dataclass(frozen=True)
class Problem:
    """A disagreement between a course's files: where, and what to fix."""

    module: str
    message: str


def course_problems(course: Course) -> list[Problem]:
    """Everything that disagrees between course.yaml, the source notebooks and wrong_answers.yaml:
    :func:`unlisted_module_problems` and every module's :func:`module_problems`."""
    try:
        course.wrong_answers
    except CourseFileError as err:
        return [Problem("*", str(err))]
    problems = unlisted_module_problems(course)
    for module in course.modules:
        problems.extend(module_problems(course, module.id))
    return problems


def unlisted_module_problems(course: Course) -> list[Problem]:
    """The problems that belong to no module: a wrong_answers.yaml section for a module that course.yaml
    does not list. (An unreadable wrong_answers.yaml is a problem of every module: see module_problems.)"""
    try:
        wrong = course.wrong_answers
    except CourseFileError:
        return []
    return [
        Problem(extra, f"{WRONG_ANSWERS_FILE}: module {extra!r} is not in course.yaml; add it to the "
                       "course's modules or remove its section")
        for extra in sorted(set(wrong) - {m.id for m in course.modules})
    ]


def module_problems(course: Course, module_id: str) -> list[Problem]:
    """The consistency problems of one module (see :func:`course_problems`)."""
    module = course.module(module_id)
    out: list[Problem] = []

    def add(msg: str) -> None:
        out.append(Problem(module.id, msg))

    src = course.source_dir(module.id)
    if not src.is_dir():
        add(f"the folder {src} is missing: put the module's nbgrader source notebooks there")
        return out
    on_disk = sorted(p.name for p in src.glob("*.ipynb"))
    for name in sorted(set(on_disk) - set(module.notebooks)):
        add(f"{name} is in {src.name}/ but not in the module's `notebooks` list in course.yaml")
    try:
        wrong = course.wrong_answers.get(module.id, {})
    except CourseFileError as err:
        add(str(err))
        wrong = {}
    for name in sorted(set(wrong) - set(module.notebooks)):
        add(f"{WRONG_ANSWERS_FILE}: notebook {name!r} is not a notebook of module {module.id}")
    grade_ids: dict[str, str] = {}
    for name in module.notebooks:
        path = src / name
        if not path.is_file():
            add(f"notebook {name} is listed in course.yaml but {path} does not exist")
            continue
        try:
            nb = nbcells.read_notebook(path)
        except (OSError, ValueError) as err:
            add(f"{name}: not a readable notebook ({err})")
            continue
        cl = nbcells.cells(nb)
        by_id = {c.grade_id: c for c in cl if c.grade_id}
        for c in cl:
            if c.kind != "plain" and not c.grade_id:
                add(f"{name}: cell {c.index} is an nbgrader {c.kind} cell without a grade_id")
            if c.grade_id and c.kind != "plain":
                if c.grade_id in grade_ids:
                    add(f"{name}: grade_id {c.grade_id!r} is also used in {grade_ids[c.grade_id]}")
                grade_ids[c.grade_id] = name
            if c.kind in ("test", "manual") and c.points <= 0:
                add(f"{name}: graded cell {c.grade_id!r} has no points")
            if c.kind == "test" and nbcells.SOLUTION_BEGIN in c.source:
                add(f"{name}: test cell {c.grade_id!r} contains a solution region")
        tests = [c.grade_id for c in cl if c.kind == "test"]
        entries = wrong.get(name, {})
        for tid in tests:
            if tid not in entries:
                add(
                    f"{name}: test cell {tid!r} has no planted wrong answer; add "
                    f"{module.id} -> {name} -> {tid} to {WRONG_ANSWERS_FILE}"
                )
        for tid, entry in entries.items():
            target = by_id.get(tid)
            if target is None or target.kind != "test":
                add(f"{WRONG_ANSWERS_FILE}: {module.id} -> {name} -> {tid}: no autograded test cell has this grade_id")
            sol = by_id.get(entry.cell)
            if sol is None or sol.kind != "solution" or sol.cell_type != "code":
                add(
                    f"{WRONG_ANSWERS_FILE}: {module.id} -> {name} -> {tid}: cell {entry.cell!r} is not a "
                    "code solution cell of this notebook"
                )
    return out


def module_summary(course: Course, module: Module) -> dict[str, Any]:
    """One catalogue row: what ``aifw courses list`` shows."""
    ex = course.exercises(module.id)
    return {
        "course": course.id,
        "module": module.id,
        "title": module.title,
        "minutes": module.minutes,
        "partition": module.partition,
        "gpus": module.gpus,
        "exercises": len(ex),
        "points": sum(e.points for e in ex),
        "launch_link": module.launch_link(),
    }
