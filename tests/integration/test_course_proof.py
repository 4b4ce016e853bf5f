"""The grading proof, through nbgrader itself, of every module of every shipped course - and of a broken one.

For each module: the release leaks nothing, the instructor's solution autogrades to full marks, the blank
release to 0 without hanging, every planted wrong answer loses exactly its own test cell, and no cheating
submission (always-equal objects, patched comparisons, hard-coded outputs) earns more than 10% of the points. The whole
catalogue is proved once per session, modules in parallel (about 4 minutes of 2 cores), in the background at
idle priority while the other tests run (tests/proof_in_background.py); each module is then its own test,
run last. No Slurm is needed: the notebooks' Dask clusters are local here.
"""
from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
import yaml

from aifw.commands import main as aifw_main
from aifw.courses import cells as nbcells
from aifw.courses.catalogue import load_catalogue
from aifw.courses.proof import ProofOptions
from aifw.courses.submissions import CHEAT_KINDS, CHEAT_LIMIT

import proof_in_background

pytestmark = pytest.mark.timeout(1500)

SHIPPED = [(c, m.id) for c in load_catalogue() for m in c.modules]
IDS = [f"{c.id}/{m}" for c, m in SHIPPED]


@pytest.fixture(scope="session")
def course_proofs():
    # Started at collection and run at idle priority beside the other tests (tests/proof_in_background.py).
    proofs = proof_in_background.result(timeout_s=1400)
    return {f"{p.course}/{p.module}": p for p in proofs}


def _report(proof) -> str:
    return "\n\n".join(f"{c.check}: expected {c.expected}; got {c.got}\n{c.message}" for c in proof.failures)


@pytest.mark.parametrize("key", IDS)
def test_every_check_of_the_module_passes(course_proofs, key):
    proof = course_proofs[key]
    assert proof.ok, f"{key} fails its grading proof:\n{_report(proof)}"


@pytest.mark.parametrize("key", IDS)
def test_no_cheat_earns_more_than_a_tenth_of_the_points(course_proofs, key):
    cheats = [c for c in course_proofs[key].checks if c.check.startswith("cheat:")]
    assert len(cheats) == len(CHEAT_KINDS)
    for c in cheats:
        earned, full = (float(x) for x in c.got.split(" ")[0].split("/"))
        assert full > 0 and earned <= CHEAT_LIMIT * full, f"{key} {c.check}: {c.got}\n{c.message}"


@pytest.mark.parametrize(("course", "module_id"), SHIPPED, ids=IDS)
def test_every_test_cell_was_proved_by_its_own_wrong_answer(course_proofs, course, module_id):
    proof = course_proofs[f"{course.id}/{module_id}"]
    tests = {
        c.grade_id
        for name in course.module(module_id).notebooks
        for c in nbcells.cells(nbcells.read_notebook(course.notebook_path(module_id, name)))
        if c.kind == "test"
    }
    checks = {c.check for c in proof.checks}
    assert {"consistency", "release", "solution", "blank"} <= checks
    assert {c for c in checks if c.startswith("cheat:")} == {f"cheat:{k}" for k in CHEAT_KINDS}
    assert {c[len("wrong:"):] for c in checks if c.startswith("wrong:")} == tests
    solution = next(c for c in proof.checks if c.check == "solution")
    got, full = solution.got.split(",")[0].split("/")
    assert float(got) == float(full) > 0


# --------------------------------------------------------------------------- a broken course is reported
def _cell(kind: str, source: str, grade_id: str | None = None):
    cell = nbformat.v4.new_code_cell(source) if kind != "md" else nbformat.v4.new_markdown_cell(source)
    if kind in ("solution", "test"):
        meta = {"solution": True, "grade": False, "locked": False} if kind == "solution" else \
            {"solution": False, "grade": True, "locked": True, "points": 1}
        cell.metadata["nbgrader"] = {**meta, "grade_id": grade_id, "schema_version": 3, "task": False}
    return cell


BROKEN_CELLS = [
    _cell("md", "# A course with every mistake the proof must catch"),
    _cell("solution", "def add(a, b):\n    ### BEGIN SOLUTION\n    total = a + b\n    return total\n    ### END SOLUTION", "ex1"),
    _cell("test", 'assert add(1, 2) == 3\n### BEGIN HIDDEN TESTS\nassert add(-5, 5) == 0, "hidden"\n### END HIDDEN TESTS', "ex1-a"),
    _cell("test", 'assert add("a", "b") == "ab"', "ex1-b"),
    _cell("solution", "def double(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION", "ex2"),
    # depends on ex1 too, so a wrong add() also costs this cell
    _cell("test", "assert double(2) == 4 and add(2, 2) == 4", "ex2-a"),
    # gives its point to anybody, and has no planted wrong answer
    _cell("test", "assert isinstance(3, int)", "ex3-free"),
    # hangs when the learner has not answered yet
    _cell("code", "try:\n    add(0, 0)\nexcept NotImplementedError:\n    import time\n    time.sleep(600)"),
]
BROKEN_WRONG = {
    "m1-broken": {
        "01-broken.ipynb": {
            "ex1-a": {"cell": "ex1", "source": "def add(a, b):\n    return a - b\n"},
            "ex1-b": {"cell": "ex1", "source": "def add(a, b):\n    return int(a) + int(b)\n"},
            # x + 2 == 2 * x for x == 2: the planted answer does not lose the point
            "ex2-a": {"cell": "ex2", "source": "def double(x):\n    return x + 2\n"},
        }
    },
    # a section for a module that course.yaml does not list (it belongs to no module's proof)
    "m9-gone": {"01-gone.ipynb": {"ex1-a": {"cell": "ex1", "source": "pass\n"}}},
}


def write_broken_course(root: Path) -> Path:
    folder = root / "broken"
    src = folder / "source" / "m1-broken"
    src.mkdir(parents=True)
    course = {
        "id": "broken", "title": "Broken", "summary": "Every mistake at once.",
        "modules": [{"id": "m1-broken", "title": "Broken", "goals": ["catch mistakes"], "minutes": 5,
                     "partition": "cpu", "gpus": 0, "notebooks": ["01-broken.ipynb"]}],
    }
    (folder / "course.yaml").write_text(yaml.safe_dump(course, sort_keys=False))
    (folder / "wrong_answers.yaml").write_text(yaml.safe_dump(BROKEN_WRONG))
    nb = nbformat.v4.new_notebook(cells=BROKEN_CELLS)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, str(src / "01-broken.ipynb"))
    # a "cheat sheet" shipped with the module: nbgrader copies it into the release
    (src / "cheatsheet.md").write_text("Exercise 1: `total = a + b`\nWe also check: assert add(-5, 5) == 0, \"hidden\"\n")
    return folder


def test_a_broken_course_is_reported_with_what_to_fix(tmp_path, capsys):
    write_broken_course(tmp_path)
    out_json = tmp_path / "proof.json"
    rc = aifw_main(["courses", "check", "broken", "--root", str(tmp_path), "--timeout", "5", "--jobs", "1",
                    "--json", str(out_json)])
    printed = capsys.readouterr().out
    assert rc == 1
    course_files, proof = json.loads(out_json.read_text())
    checks = {c["check"]: c for c in proof["checks"]}
    assert not proof["ok"]

    # a wrong-answer section for a module course.yaml does not list, reported once for the course
    assert course_files["module"] == "(course files)" and not course_files["ok"]
    assert "module 'm9-gone' is not in course.yaml" in course_files["checks"][0]["message"]
    assert "broken/(course files) consistency" in printed
    assert "m9-gone" not in checks["consistency"]["message"]

    # a test cell without a planted wrong answer
    assert not checks["consistency"]["ok"]
    assert "test cell 'ex3-free' has no planted wrong answer" in checks["consistency"]["message"]

    # the solution and a hidden test leak into the release through the shipped file
    assert not checks["release"]["ok"]
    assert "cheatsheet.md: total = a + b" in checks["release"]["message"]
    assert 'cheatsheet.md: assert add(-5, 5) == 0, "hidden"' in checks["release"]["message"]

    # the instructor's solution is fine
    assert checks["solution"]["ok"], checks["solution"]

    # the blank notebook earns a point and hangs - and the proof still finishes
    assert not checks["blank"]["ok"]
    assert "ex3-free gives 1/1 to the blank notebook" in checks["blank"]["message"]
    assert "hangs on the blank notebook (timed out after 5 s)" in checks["blank"]["message"]

    # a wrong answer that does not lose its point, and one that costs another exercise as well
    assert not checks["wrong:ex2-a"]["ok"]
    assert "still passes ex2-a" in checks["wrong:ex2-a"]["message"]
    assert checks["wrong:ex2-a"]["got"] == "ex2-a 1/1"
    assert not checks["wrong:ex1-a"]["ok"]
    assert "also fails ex2-a" in checks["wrong:ex1-a"]["message"]
    assert checks["wrong:ex1-b"]["ok"], checks["wrong:ex1-b"]

    # every cheat scores on this course (ex3-free gives anyone its point: 1 of 4 is over 10%), and the
    # failure names the cheat, the notebook and the cells it fooled
    for kind in CHEAT_KINDS:
        assert not checks[f"cheat:{kind}"]["ok"], checks[f"cheat:{kind}"]
    always = checks["cheat:always-equal"]
    assert always["got"] == "4/4 (100%)"
    assert "cheat-always-equal (every answer is an object equal to anything" in always["message"]
    assert "01-broken.ipynb: ex1-a (1/1), ex1-b (1/1), ex2-a (1/1), ex3-free (1/1)" in always["message"]
    assert checks["cheat:patched"]["got"] == "1/4 (25%)" and "ex3-free (1/1)" in checks["cheat:patched"]["message"]
    # copied outputs pass the cells without hidden tests on fresh inputs, not ex1-a
    hard = checks["cheat:hard-coded"]
    assert hard["got"] == "3/4 (75%)" and "ex1-b (1/1), ex2-a (1/1), ex3-free (1/1)" in hard["message"]
    assert "cheat:always-equal" in printed and "fresh inputs" in printed

    # the summary says so, with the fixes
    assert "check(s) failed" in printed and "strengthen ex2-a's tests" in printed


# --------------------------------------------------------------------------- the Dask module on real Slurm


def test_the_dask_exercises_grade_the_same_with_slurm_workers(slurm, tmp_path):
    """m3's cluster-dependent exercise, graded with Dask workers that are Slurm jobs: the solution gets full
    marks, the blank release 0, and one planted wrong answer of the cluster exercise loses its points, as in
    the local proof (which proves every wrong answer and every cheat). One, not all three, and no cheat: each
    costs a Slurm Dask cluster."""
    from aifw.courses.catalogue import find_course
    from aifw.courses.proof import prove_module

    course = find_course("aif-foundations")
    module_id, notebook = "m3-dask-on-slurm", "01-dask-on-slurm.ipynb"
    cluster_wrongs = [t for t in course.wrong_answers[module_id][notebook] if t.startswith("ex2")]
    assert len(cluster_wrongs) == 3
    on_cluster = tuple(cluster_wrongs[:1])
    proof = prove_module(course.root, module_id,
                         ProofOptions(dask_backend="slurm", only_wrong=on_cluster, cheats=False, keep=True,
                                      workdir=str(tmp_path)))
    assert proof.ok, _report(proof)
    assert {c.check for c in proof.checks} == {"consistency", "release", "solution", "blank",
                                                *(f"wrong:{t}" for t in on_cluster)}
    graded = Path(proof.workdir) / "autograded" / "solution" / module_id / notebook
    assert "Backend: slurm | workers: 2" in nbcells.notebook_text(json.loads(graded.read_text()))


def test_aifw_courses_check_exits_0_and_prints_the_summary_when_a_module_passes(capsys):
    rc = aifw_main(["courses", "check", "aif-foundations", "--module", "m1-first-steps",
                    "--wrong", "ex6-gflops-test", "--jobs", "1"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "aif-foundations/m1-first-steps" in out and "all checks pass" in out
    assert "1/1 lose exactly their test" in out
