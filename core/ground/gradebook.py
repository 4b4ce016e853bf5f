"""The one reader of nbgrader gradebooks: what the grading run, the merge, the reports, the course proof,
the sandbox's provisioning, the benchmark and the tests need to know from a ``gradebook.db``, read through
nbgrader's own `nbgrader.api.Gradebook`. Ground floor, beside `aifw.slurm`: one layer per outside system.

Every read opens the file read-only (SQLite ``mode=ro``): opening nbgrader's Gradebook the usual way
writes (it adds a course row, and creates an empty gradebook where there was none), which a read by root,
say, must not do. A missing gradebook is an error (`NoGradebook`), never an empty one. The one copy made
here is `snapshot`: a consistent copy (SQLite's backup) for a grading run, even while the formgrader
writes.

A gradebook that exists but cannot be read (not SQLite, no nbgrader tables) is `GradebookError`, whose
message names the file. Writes are nbgrader's (``autograde`` in `aifw.grading.merge`). Imports nothing
of `aifw`.
"""
from __future__ import annotations

import contextlib
import os
import sqlite3
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Iterator
from urllib.parse import quote

if TYPE_CHECKING:  # nbgrader is imported where it is used: importing it is slow
    from nbgrader.api import Gradebook

GRADEBOOK = "gradebook.db"


class GradebookError(Exception):
    """A gradebook cannot answer; the message says what to do."""


class NoGradebook(GradebookError):
    """There is no gradebook where one was expected."""


class UnknownAssignment(GradebookError):
    """The gradebook does not know the assignment."""


def gradebook_file(where: Path) -> Path:
    """`where` is a gradebook file (``*.db``) or a course directory (its gradebook.db)."""
    where = Path(where)
    return where if where.suffix == ".db" else where / GRADEBOOK


def db_url(where: Path) -> str:
    """nbgrader's (writable) URL of a gradebook, for nbgrader's own preprocessors (a run's snapshot)."""
    return f"sqlite:///{gradebook_file(where)}"


def _existing(where: Path) -> Path:
    path = gradebook_file(where)
    if not path.is_file():
        raise NoGradebook(f"{path.parent} has no {path.name}: is this an nbgrader course directory? "
                          "(nbgrader generate_assignment creates it)")
    return path


@contextlib.contextmanager
def read_only(where: Path) -> Iterator[Gradebook]:
    """nbgrader's Gradebook on a course directory's (or a file's) gradebook, opened read-only."""
    from nbgrader.api import Gradebook  # noqa: F811 - the type above, the class here

    from sqlalchemy.exc import SQLAlchemyError

    path = _existing(where)
    url = f"sqlite:///file:{quote(str(path.resolve()))}?mode=ro&uri=true"
    with warnings.catch_warnings():
        # nbgrader's models trip SQLAlchemy 2 warnings: noise in a trainer's terminal
        warnings.filterwarnings("ignore", module=r"nbgrader\.api")
        warnings.filterwarnings("ignore", module=r"sqlalchemy")
        try:
            gb = Gradebook(url, course_id="")  # "": look up no course row, add none
        except SQLAlchemyError as err:
            raise GradebookError(f"the gradebook {path} cannot be read ({_reason(err)})") from None
        try:
            yield gb
        except SQLAlchemyError as err:
            raise GradebookError(f"the gradebook {path} cannot be read ({_reason(err)})") from None
        finally:
            gb.close()


def _reason(err: Exception) -> str:
    orig = getattr(err, "orig", None)
    return str(orig or err).splitlines()[0]


def snapshot(where: Path, dest: Path) -> None:
    """A consistent copy of the gradebook at `dest` (mode 0600), even while someone writes to it."""
    path = _existing(where)
    src = sqlite3.connect(f"file:{quote(str(path.resolve()))}?mode=ro", uri=True)
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    dst = sqlite3.connect(dest)
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()
    os.chmod(dest, 0o600)


# --------------------------------------------------------------------------- what is read
def assignments(where: Path) -> list[str]:
    """The assignments the gradebook knows, by name."""
    with read_only(where) as gb:
        return sorted(a.name for a in gb.assignments)


def assignment_notebooks(where: Path, assignment: str) -> list[str]:
    """The assignment's notebook ids, sorted; UnknownAssignment (naming the known ones) when it has none."""
    from nbgrader.api import MissingEntry

    with read_only(where) as gb:
        try:
            names = sorted(nb.name for nb in gb.find_assignment(assignment).notebooks)
        except MissingEntry:
            names = []
        known = sorted(a.name for a in gb.assignments)
    if not names:
        raise UnknownAssignment(f"assignment {assignment!r} is not in the gradebook of {gradebook_file(where).parent.name} "
                                f"(known: {', '.join(known) or 'none'}); run `nbgrader generate_assignment {assignment}` first")
    return names


def submission_scores(where: Path, assignment: str, students: Iterable[str] | None = None) -> dict[str, tuple[float, float]]:
    """student -> (score, max score) of the assignment; students without a submission are left out.
    `students` None: every submission."""
    with read_only(where) as gb:
        subs = gb.assignment_submissions(assignment)
        wanted = None if students is None else set(students)
        return {s.student.id: (float(s.score), float(s.max_score)) for s in subs
                if wanted is None or s.student.id in wanted}


@dataclass(frozen=True)
class CellScore:
    """One graded cell of one submission, as the gradebook holds it."""

    student: str
    notebook: str
    cell: str  # the grade id
    score: float | None  # the manual score where there is one, else the automatic one
    max_score: float
    auto_score: float | None = None
    needs_manual_grade: bool = False

    @property
    def points(self) -> float:
        """The score as a number (no score yet counts 0)."""
        return float(self.score or 0)


def cell_scores(where: Path, assignment: str, students: Iterable[str] | None = None) -> list[CellScore]:
    """Every graded cell of every submission of the assignment (or of `students`), sorted."""
    wanted = None if students is None else set(students)
    rows = []
    with read_only(where) as gb:
        for sub in gb.assignment_submissions(assignment):
            if wanted is not None and sub.student.id not in wanted:
                continue
            for nb in sub.notebooks:
                for g in nb.grades:
                    rows.append(CellScore(
                        student=sub.student.id, notebook=nb.name, cell=g.name,
                        score=None if g.score is None else float(g.score), max_score=float(g.max_score or 0),
                        auto_score=None if g.auto_score is None else float(g.auto_score),
                        needs_manual_grade=bool(g.needs_manual_grade)))
    rows.sort(key=lambda r: (r.student, r.notebook, r.cell))
    return rows


def export_csv(where: Path, assignment: str, to: Path) -> None:
    """nbgrader's own CSV export of the assignment's grades."""
    from nbgrader.plugins.export import CsvExportPlugin

    with read_only(where) as gb:
        CsvExportPlugin(to=str(to), assignment=[assignment]).export(gb)
