"""A tiny nbgrader course for the grading tests and the benchmark's sanity checks: one assignment,
one notebook, three tests (2 + 3 + 1 points, one with a hidden test), built with nbgrader itself."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

ASSIGNMENT = "tiny"
NOTEBOOK = "exercises"
MAX_SCORE = 6.0

SQUARES = "def squares(n):\n    ### BEGIN SOLUTION\n    return [i * i for i in range(n)]\n    ### END SOLUTION"
MEAN = "def mean(xs):\n    ### BEGIN SOLUTION\n    return sum(xs) / len(xs)\n    ### END SOLUTION"


def _meta(grade_id: str, *, solution=False, grade=False, points=0, locked=False) -> dict:
    meta = {"grade": grade, "grade_id": grade_id, "locked": locked, "schema_version": 3, "solution": solution}
    if grade:
        meta["points"] = points
    return {"nbgrader": meta}


def source_notebook() -> nbformat.NotebookNode:
    nb = new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    nb.cells = [
        new_markdown_cell("# Tiny assignment\nTwo functions.", metadata=_meta("intro", locked=True)),
        new_code_cell(SQUARES, metadata=_meta("squares", solution=True)),
        new_code_cell("assert squares(3) == [0, 1, 4]", metadata=_meta("test_squares", grade=True, points=2, locked=True)),
        new_code_cell(MEAN, metadata=_meta("mean", solution=True)),
        new_code_cell("assert mean([1, 2, 3]) == 2\n### BEGIN HIDDEN TESTS\nassert mean([2, 4]) == 3\n### END HIDDEN TESTS",
                      metadata=_meta("test_mean", grade=True, points=3, locked=True)),
        new_code_cell("assert squares(2) == [0, 1]", metadata=_meta("test_after", grade=True, points=1, locked=True)),
    ]
    return nb


def nbgrader(course_dir: Path, *args: str) -> subprocess.CompletedProcess:
    bindir = Path(sys.executable).parent  # nbgrader runs alembic from PATH
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}"}
    res = subprocess.run([str(bindir / "nbgrader"), *args, f"--CourseDirectory.root={course_dir}"],
                         capture_output=True, text=True, cwd=course_dir, env=env)
    if res.returncode != 0:
        raise RuntimeError(f"nbgrader {' '.join(args)} failed:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}")
    return res


def make_course(course_dir: Path) -> Path:
    """A course directory with the assignment generated (gradebook + release)."""
    src = course_dir / "source" / ASSIGNMENT
    src.mkdir(parents=True)
    nbformat.write(source_notebook(), str(src / f"{NOTEBOOK}.ipynb"))
    (src / "data.txt").write_text("1 2 3\n")
    nbgrader(course_dir, "generate_assignment", ASSIGNMENT, "--force")
    return course_dir


def answer(course_dir: Path, *, squares: str | None = None, mean: str | None = None,
           edit: dict[str, dict] | None = None, extra_cells: list[str] | None = None) -> nbformat.NotebookNode:
    """The released notebook with answers typed in (None: the model answer); `edit` replaces other cells'
    source/metadata by grade id, as a student editing a test cell would."""
    nb = nbformat.read(str(course_dir / "release" / ASSIGNMENT / f"{NOTEBOOK}.ipynb"), as_version=4)
    model = {"squares": SQUARES, "mean": MEAN}
    given = {"squares": squares, "mean": mean}
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if gid in model:
            text = given[gid] if given[gid] is not None else model[gid]
            cell.source = text.replace("### BEGIN SOLUTION\n", "").replace("    ### END SOLUTION", "")
        if edit and gid in edit:
            if "source" in edit[gid]:
                cell.source = edit[gid]["source"]
            if "metadata" in edit[gid]:
                cell.metadata["nbgrader"].update(edit[gid]["metadata"])
    for i, text in enumerate(extra_cells or []):
        nb.cells.insert(2 + i, new_code_cell(text))
    return nb


def submit(course_dir: Path, student: str, nb: nbformat.NotebookNode, timestamp: str = "2026-11-25 10:00:00.000000 UTC") -> Path:
    folder = course_dir / "submitted" / student / ASSIGNMENT
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(folder / f"{NOTEBOOK}.ipynb"))
    (folder / "timestamp.txt").write_text(timestamp)
    return folder


def copy_course(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest, symlinks=True)
    return dest


def grades(course_dir: Path) -> dict[tuple[str, str], tuple[float | None, float]]:
    """(student, grade cell) -> (score, max score), read from the gradebook (aifw.gradebook)."""
    from aifw.gradebook import cell_scores

    return {(r.student, r.cell): (r.score, r.max_score) for r in cell_scores(course_dir, ASSIGNMENT)}


def totals(course_dir: Path) -> dict[str, float]:
    """student -> points of every graded cell together."""
    out: dict[str, float] = {}
    for (student, _), (score, _) in grades(course_dir).items():
        out[student] = out.get(student, 0.0) + (score or 0.0)
    return out


if __name__ == "__main__":  # build one for a look: python tests/grading_course.py DIR
    print(json.dumps(str(make_course(Path(sys.argv[1])))))
