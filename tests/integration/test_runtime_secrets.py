"""Learners cannot read the answers: the course sources sit in a root-only folder of the runtime prefix,
the package `aifw.courses` carries code only, and the published release copies are what learners read."""
from __future__ import annotations

import json
import shutil
import stat
import sys
import tempfile
from pathlib import Path

import pytest
from aifw_testing import assert_denied, run_as

from aifw.courses import cells as nbcells
from aifw.courses.catalogue import default_root, load_catalogue

MARKERS = "BEGIN HIDDEN TESTS|BEGIN SOLUTION"


def grep_as(user: str, pattern: str, paths: list[str], *options: str) -> list[str]:
    """The files among `paths` in which `user` finds `pattern` (grep -rlE). grep's exit status 1 means
    "nowhere"; 0 lists the files; anything else (2: a file it could not read) fails the test with what
    grep said. runuser's own failures exit with 1 too, so grep's status is read from a line the shell
    prints after it: no such line means the search never ran, and that fails as well."""
    assert paths, "nothing to search"
    p = run_as(user, ["sh", "-c", 'grep "$@"; echo "grep exit status $?"', "sh",
                      "-rlE", *options, "--", pattern, *paths], timeout=300)
    lines = p.stdout.splitlines()
    assert lines and lines[-1].startswith("grep exit status "), (
        f"the search as {user} did not run (runuser exit {p.returncode}): {p.stderr[-2000:]}")
    status = int(lines[-1].rsplit(" ", 1)[1])
    assert status in (0, 1), f"the search as {user} failed (grep exit {status}): {p.stderr[-2000:]}"
    return lines[:-1] if status == 0 else []


def test_the_course_sources_are_installed_root_only(stack):
    sources = default_root()
    assert sources == stack.home / "course-sources"  # the runtime prefix of the venv these tests run in
    info = sources.stat()
    assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (0, 0, 0o700)
    courses = load_catalogue()
    assert {c.id for c in courses} >= {"aif-foundations"}
    for path in sources.rglob("*"):
        assert stat.S_IMODE(path.lstat().st_mode) & 0o077 == 0, f"{path} is open to group or others"


def test_a_learner_can_neither_list_nor_read_the_course_sources(stack):
    learner = stack.learners()[0]
    sources = default_root()
    notebook = next(sources.glob("*/source/*/*.ipynb"))
    assert nbcells.SOLUTION_BEGIN in notebook.read_text()  # root reads the answers ...
    assert_denied(learner, ["ls", str(sources)])  # ... a learner can't even see which files there are
    assert_denied(learner, ["cat", str(notebook)])
    assert_denied(learner, ["cat", str(next(sources.glob("*/wrong_answers.yaml")))])


def test_the_package_holds_no_course_content(stack):
    package = Path(sys.modules["aifw.courses"].__file__).parent
    assert package.is_relative_to(stack.home / "venv")  # the installed package, not a checkout
    content = [p for p in package.rglob("*") if p.is_file() and p.suffix not in (".py", ".pyc")]
    assert content == [], f"course content in the installed package: {content}"


def test_a_learner_can_read_the_published_copies_and_no_answer_anywhere_in_the_runtime(stack):
    learner = stack.learners()[0]
    share = stack.home / "share" / "courses"
    for course in load_catalogue():
        module = course.modules[0]
        copy = share / course.id / module.id / module.notebooks[0]
        p = run_as(learner, ["cat", str(copy)])
        assert p.returncode == 0, f"{learner} cannot read the published {copy}: {p.stderr}"
        released = json.loads(p.stdout)
        assert nbcells.cells(released), f"{copy} has no cells"
    venv_pkg = [str(p) for p in (stack.home / "venv").glob("lib/python3*/site-packages/aifw")]
    found = grep_as(learner, MARKERS, [*venv_pkg, str(share)],
                    "--include=*.ipynb", "--include=*.yaml", "--include=*.json", "--include=*.md")
    assert found == [], f"{learner} can read solutions or hidden tests in: {found}"


def test_the_search_can_fail(stack):
    """The search above finds a planted answer, and a search that cannot run fails instead of passing."""
    learner = stack.learners()[0]
    planted = Path(tempfile.mkdtemp(prefix="aifw-planted-", dir="/tmp"))  # pytest's tmp_path is root-only
    try:
        planted.chmod(0o755)
        leak = planted / "leak.ipynb"
        leak.write_text("### BEGIN SOLUTION\n")
        leak.chmod(0o644)
        assert grep_as(learner, MARKERS, [str(planted)], "--include=*.ipynb") == [str(leak)]
    finally:
        shutil.rmtree(planted)
    with pytest.raises(AssertionError, match=r"failed \(grep exit 2\).*Permission denied"):
        grep_as(learner, MARKERS, [str(default_root())])
    with pytest.raises(AssertionError, match="did not run"):
        grep_as("no-such-user-aifw", MARKERS, ["/tmp"])
