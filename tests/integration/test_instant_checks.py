"""Instant checks in a real kernel, scored the way nbgrader scores them, and nbgrader's release of every
installed module: the learner's test cell is exactly the visible part of the source, nothing hidden survives.

(The checks' behaviour in plain Python: tests/unit/test_checks.py.)
"""
from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from aifw.courses import cells as nbcells
from aifw.courses.catalogue import load_catalogue
from aifw.courses.nbgrader_tools import copy_sources, generate_release, nbgrader_api, scan_release


# --------------------------------------------------------------------------- in a kernel, scored like nbgrader
TEST_CELL = """\
@check("Exercise 1", hint="Return a + b.")
def _():
    assert add(1, 2) == 3, f"add(1, 2) should be 3, got {add(1, 2)}"
"""


def _run(cells: list[str], env: dict[str, str] | None = None) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    client = NotebookClient(nb, timeout=60, kernel_name="python3", allow_errors=True)
    if env:
        import os

        old = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            client.execute()
        finally:
            for k, v in old.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    else:
        client.execute()
    return nb


def _score(cell) -> float:
    from nbgrader.utils import determine_grade

    cell.metadata["nbgrader"] = {"grade": True, "solution": False, "points": 1, "grade_id": "t", "schema_version": 3}
    return determine_grade(cell)[0]


def test_in_a_kernel_pass_gives_full_points_and_a_check_again_button_fail_gives_zero():
    setup = "from aifw.extensions.kernel.checks import check"
    nb = _run([setup, "def add(a, b):\n    return a + b", TEST_CELL, "def add(a, b):\n    return a - b", TEST_CELL])
    passed, failed = nb.cells[2], nb.cells[4]
    kinds = [o.output_type for o in passed.outputs]
    assert "error" not in kinds and not any(o.get("name") == "stderr" for o in passed.outputs)
    assert "✓ Exercise 1" in passed.outputs[0].data["text/plain"]
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in passed.outputs)
    assert _score(passed) == 1
    text = failed.outputs[0].data["text/plain"]
    assert "✗ Exercise 1: add(1, 2) should be 3, got -1" in text and "Hint: Return a + b." in text
    assert failed.outputs[-1].output_type == "error" and failed.outputs[-1].ename == "CheckFailed"
    assert _score(failed) == 0


def test_while_nbgrader_grades_there_is_no_widget():
    nb = _run(["from aifw.extensions.kernel.checks import check", "def add(a, b):\n    return a + b", TEST_CELL],
              env={"NBGRADER_EXECUTION": "autograde"})
    outputs = nb.cells[2].outputs
    assert len(outputs) == 1 and "✓ Exercise 1" in outputs[0].data["text/plain"]


# --------------------------------------------------------------------------- nothing hidden reaches the learner
def _release(tmp_path: Path, course, module_id: str) -> Path:
    """nbgrader's own release of one module, in a throw-away course directory."""
    root = tmp_path / module_id
    copy_sources(course, [module_id], root)
    return generate_release(nbgrader_api(root), module_id)  # ReleaseFailed: nbgrader's log in the message


SHIPPED = [(c, m.id) for c in load_catalogue() for m in c.modules]


@pytest.mark.parametrize(("course", "module_id"), SHIPPED, ids=[f"{c.id}/{m}" for c, m in SHIPPED])
def test_the_release_keeps_the_visible_checks_and_drops_every_hidden_test(tmp_path, course, module_id):
    release = _release(tmp_path, course, module_id)
    sources = {n: nbcells.read_notebook(course.notebook_path(module_id, n)) for n in course.module(module_id).notebooks}
    assert scan_release(release, sources.values()) == []
    for name, source in sources.items():
        released = {c.grade_id: c for c in nbcells.cells(nbcells.read_notebook(release / name)) if c.grade_id}
        for cell in nbcells.cells(source):
            if cell.kind != "test":
                continue
            learner = released[cell.grade_id].source
            hidden, visible = nbcells._regions(cell.source, nbcells.HIDDEN_BEGIN, nbcells.HIDDEN_END)
            # the learner's test cell is exactly the visible part of the source ...
            assert learner.strip() == "\n".join(visible).strip(), f"{name}:{cell.grade_id}"
            # ... and no hidden line survives in it
            for line in hidden:
                if nbcells.is_meaningful(line) and line.strip() not in "\n".join(visible):
                    assert line.strip() not in learner, f"{name}:{cell.grade_id}: {line.strip()}"
