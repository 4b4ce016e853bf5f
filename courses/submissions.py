"""Fake students of a module: the instructor's solution, the blank release, and each planted wrong answer.

Built from a module's source notebooks, its nbgrader release and the course's ``wrong_answers.yaml``. The
grading proof grades them (:mod:`aifw.courses.proof`); the grading benchmark and the trainer-flow tests
submit them as learners would.

- ``solution``: the release with the instructor's answers typed into its answer cells;
- ``blank``: the untouched release;
- ``wrong-NN``: the solution with one planted wrong answer, for the one notebook it changes (the module's
  other notebooks would be byte-identical to the solution student's).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from . import cells as nbcells
from .catalogue import Course

SOLUTION_STUDENT = "solution"
BLANK_STUDENT = "blank"


@dataclass(frozen=True)
class Submission:
    student: str
    notebooks: dict[str, dict]  # notebook file name -> notebook JSON
    planted: tuple[str, str, str] | None = None  # (notebook, test grade_id, solution cell)


def _by_grade_id(nb: dict) -> dict[str, dict]:
    out = {}
    for cell in nb.get("cells", []):
        gid = ((cell.get("metadata") or {}).get("nbgrader") or {}).get("grade_id")
        if gid:
            out[gid] = cell
    return out


def solution_notebook(source_nb: dict, release_nb: dict) -> dict:
    """The release with the instructor's answers typed into its answer cells (markers removed)."""
    nb = json.loads(json.dumps(release_nb))
    answers = {
        c.grade_id: nbcells.strip_solution_markers(c.source)
        for c in nbcells.cells(source_nb)
        if c.kind in ("solution", "manual") and c.grade_id
    }
    for gid, cell in _by_grade_id(nb).items():
        if gid in answers:
            cell["source"] = answers[gid]
    return nb


def plant(solution_nb: dict, cell_id: str, source: str) -> dict:
    """The solution notebook with the cell `cell_id` replaced by `source` (KeyError: no such cell)."""
    nb = json.loads(json.dumps(solution_nb))
    cell = _by_grade_id(nb).get(cell_id)
    if cell is None:
        raise KeyError(cell_id)
    cell["source"] = source
    cell["outputs"] = []
    return nb


def build_submissions(
    course: Course, module_id: str, release_dir: Path, only_wrong: Iterable[str] | None = None
) -> list[Submission]:
    """The solution, the blank release, then one submission per planted wrong answer (only those of the
    test cells in `only_wrong`, when given). An entry whose cell does not exist is skipped: the
    consistency check reports it."""
    module = course.module(module_id)
    sources = {n: nbcells.read_notebook(course.notebook_path(module_id, n)) for n in module.notebooks}
    releases = {n: nbcells.read_notebook(release_dir / n) for n in module.notebooks}
    solutions = {n: solution_notebook(sources[n], releases[n]) for n in module.notebooks}
    subs = [Submission(SOLUTION_STUDENT, solutions), Submission(BLANK_STUDENT, releases)]
    entries = course.wrong_answers.get(module_id, {})
    i = 0
    for nb_name in module.notebooks:
        for test_id, entry in entries.get(nb_name, {}).items():
            i += 1
            if only_wrong is not None and test_id not in only_wrong:
                continue
            try:
                planted = plant(solutions[nb_name], entry.cell, entry.source)
            except KeyError:
                continue  # reported by the consistency check
            subs.append(Submission(f"wrong-{i:02d}", {nb_name: planted}, (nb_name, test_id, entry.cell)))
    return subs
