"""The trainer's whole round on the real hub's course, Slurm and unix users: the grader account releases a
module of the bundled course; two learners fetch it, work (one right, one with a planted wrong answer) and
submit; the grader collects; `aifw grade` grades on Slurm as an array job; the grader releases feedback;
each learner fetches their own feedback; the grades are the expected ones and the same as stock nbgrader's.
"""
from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from aifw_testing import assert_denied, run_as

COURSE = "aif-foundations"
MODULE = "m1-first-steps"
RIGHT, WRONG = "test-learner1", "test-learner2"


def _write_as(user: str, path: Path, text: str) -> None:
    path.write_text(text)
    pw = pwd.getpwnam(user)
    os.chown(path, pw.pw_uid, pw.pw_gid)


@pytest.fixture(scope="module")
def flow(stack):
    from aifw.courses.catalogue import load_catalogue
    from aifw.courses.submissions import build_submissions

    site = stack.stack.site
    entry = site.course(COURSE)
    venv, grader, course_dir = site.paths.venv, entry.grader_account, site.paths.course_dir(COURSE)

    def nbgrader(user, *args, cwd=None):
        p = run_as(user, ["nbgrader", *args], venv=venv, cwd=cwd or str(course_dir), timeout=300)
        assert p.returncode == 0, f"nbgrader {' '.join(args)} as {user}:\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}"
        return p

    nbgrader(grader, "release_assignment", MODULE, "--force")
    course = next(c for c in load_catalogue() if c.id == COURSE)
    variants = {s.student: s for s in build_submissions(course, MODULE, course_dir / "release" / MODULE)}
    planted = next(s for s in variants.values() if s.planted)  # (notebook, test id, answer cell)
    work = {RIGHT: variants["solution"], WRONG: planted}
    dirs = {}
    for learner, sub in work.items():
        d = Path(pwd.getpwnam(learner).pw_dir) / f".aifw-flow-{uuid.uuid4().hex[:8]}"
        assert run_as(learner, ["mkdir", "-p", str(d / "courses")]).returncode == 0
        dirs[learner] = d
        args = ["--course", COURSE, f"--Exchange.assignment_dir={d / 'courses'}"]
        nbgrader(learner, "fetch_assignment", MODULE, *args, cwd=str(d))
        fetched = d / "courses" / COURSE / MODULE
        solution = variants["solution"].notebooks
        for name in course.module(MODULE).notebooks:  # the learner's work: their answers typed in
            nb = sub.notebooks.get(name, solution[name])
            _write_as(learner, fetched / name, json.dumps(nb, indent=1))
        nbgrader(learner, "submit", MODULE, *args, cwd=str(d))
    nbgrader(grader, "collect", MODULE, "--update")

    # Stock serial nbgrader on a copy of the collected submissions, for comparison.
    serial = Path(stack.home) / "state" / f"serial-{uuid.uuid4().hex[:6]}"
    serial.mkdir(parents=True)
    for part in ("source", "release", "gradebook.db", "nbgrader_config.py"):
        src = course_dir / part
        if src.is_dir():
            shutil.copytree(src, serial / part)
        elif src.exists():
            shutil.copy(src, serial / part)
    for learner in work:
        shutil.copytree(course_dir / "submitted" / learner / MODULE, serial / "submitted" / learner / MODULE)

    res = subprocess.run(
        [str(venv / "bin" / "aifw"), "grade", COURSE, MODULE, "--site", str(stack.stack.site_file), "--force",
         "--student", RIGHT, "--student", WRONG, "--workers", "2"],
        capture_output=True, text=True, timeout=400,
    )
    env = {**os.environ, "PATH": f"{venv / 'bin'}:{os.environ['PATH']}"}
    stock = subprocess.run([str(venv / "bin" / "nbgrader"), "autograde", MODULE, f"--CourseDirectory.root={serial}"],
                           capture_output=True, text=True, timeout=400, cwd=serial, env=env)
    nbgrader(grader, "release_feedback", MODULE)
    fetched = {}
    for learner, d in dirs.items():
        nbgrader(learner, "fetch_feedback", MODULE, "--course", COURSE, f"--Exchange.assignment_dir={d / 'courses'}", cwd=str(d))
        fetched[learner] = sorted((d / "courses" / COURSE / MODULE / "feedback").rglob("*.html"))
    yield {"res": res, "stock": stock, "course_dir": course_dir, "serial": serial, "planted": planted.planted,
           "fetched": fetched, "grader": grader, "dirs": dirs}
    shutil.rmtree(serial, ignore_errors=True)
    for d in dirs.values():
        shutil.rmtree(d, ignore_errors=True)


def _grades(course_dir: Path) -> dict:
    """(learner, notebook, grade cell) -> (automatic score, max score) of both learners."""
    from aifw.gradebook import cell_scores

    rows = cell_scores(course_dir, MODULE, (RIGHT, WRONG))
    assert {r.student for r in rows} == {RIGHT, WRONG}, "a learner's submission is not in the gradebook"
    return {(r.student, r.notebook, r.cell): (r.auto_score, r.max_score) for r in rows}


def test_aifw_grade_ran_on_slurm_and_graded_both(flow):
    res = flow["res"]
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "Slurm array job" in res.stdout
    assert "2 graded" in res.stdout


def test_the_grades_are_the_expected_ones(flow):
    grades = _grades(flow["course_dir"])
    nb_name, test_id, _ = flow["planted"]
    notebook = nb_name.removesuffix(".ipynb")
    auto = {k: v for k, v in grades.items() if v[0] is not None}
    right = {k[1:]: v for k, v in auto.items() if k[0] == RIGHT}
    wrong = {k[1:]: v for k, v in auto.items() if k[0] == WRONG}
    assert right and all(score == max_score for score, max_score in right.values())  # every test passes
    lost = {k for k, (score, max_score) in wrong.items() if score < max_score}
    assert lost == {(notebook, test_id)}  # exactly the planted test


def test_the_grades_are_stock_nbgraders(flow):
    assert flow["stock"].returncode == 0, flow["stock"].stderr[-2000:]
    assert _grades(flow["course_dir"]) == _grades(flow["serial"])


def test_the_gradebook_stays_the_graders(flow):
    owner = pwd.getpwuid(flow["course_dir"].joinpath("gradebook.db").stat().st_uid).pw_name
    assert owner == flow["grader"]
    report = flow["course_dir"] / "reports" / MODULE / "report.html"
    assert pwd.getpwuid(report.stat().st_uid).pw_name == flow["grader"]
    assert_denied(RIGHT, ["cat", str(report)])


def test_each_learner_fetches_their_own_feedback(flow):
    for learner in (RIGHT, WRONG):
        files = flow["fetched"][learner]
        assert files, f"{learner} got no feedback"
        for f in files:
            assert pwd.getpwuid(f.stat().st_uid).pw_name == learner
    text = "".join(f.read_text() for f in flow["fetched"][WRONG])
    assert flow["planted"][1] in text  # the feedback names the test that failed
