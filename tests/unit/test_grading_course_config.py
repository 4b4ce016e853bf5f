"""`aifw grade ASSIGNMENT` inside an nbgrader course directory: its nbgrader_config.py read with traitlets'
loader and nbgrader's translation of outdated keys (in this process here; `aifw grade` reads it in a child),
what is refused and why, who reads it as root, and the options of a run whose course is not in the site file.
No child process, no kernel, no Slurm (tests/integration/test_grading_sandbox.py grades from a course
directory for real)."""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import pytest

from aifw.grading.course_config import (CONFIG, CourseConfig, CourseConfigError, course_from_values, read_config,
                                        read_config_as, reader_account)
from aifw.site import example_site_path, load_site


def _course(tmp_path: Path, text: str, name: str = "course") -> Path:
    here = tmp_path / name
    here.mkdir()
    (here / CONFIG).write_text(text)
    return here


def _course_of(here: Path) -> CourseConfig:
    return course_from_values(read_config(here), here, here / CONFIG)


def test_a_plain_config_names_the_course_and_its_directory_is_where_it_lies(tmp_path):
    here = _course(tmp_path, 'c = get_config()  # noqa\nc.CourseDirectory.course_id = "ML101_2026"\n')
    assert read_config(here) == {"course_id": "ML101_2026"}
    assert _course_of(here) == CourseConfig("ML101_2026", here, here / CONFIG)


def test_root_may_be_absolute_or_relative_to_the_course_directory(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    here = _course(tmp_path, f'c.CourseDirectory.course_id = "ml"\nc.CourseDirectory.root = {str(elsewhere)!r}\n')
    assert _course_of(here).root == elsewhere
    rel = _course(tmp_path, 'c.CourseDirectory.course_id = "ml"\nc.CourseDirectory.root = "../elsewhere"\n', "rel")
    assert _course_of(rel).root == elsewhere


def test_outdated_keys_are_translated_as_nbgrader_does(tmp_path):
    """nbgrader moves Exchange.course_id (and NbGrader.course_id) to CourseDirectory.course_id, over it."""
    (tmp_path / "old-root").mkdir()
    here = _course(tmp_path, 'c.Exchange.course_id = "ml-old"\nc.CourseDirectory.course_id = "ml-new"\n'
                             'c.NbGrader.course_directory = "../old-root"\n')
    course = _course_of(here)
    assert (course.course_id, course.root) == ("ml-old", tmp_path / "old-root")
    only_exchange = _course(tmp_path, 'c.Exchange.course_id = "ex"\n', "ex")
    assert _course_of(only_exchange).course_id == "ex"


@pytest.mark.parametrize("text, message", [
    ("c = get_config()\n", r"names no course id: add c.CourseDirectory.course_id"),
    ("c.CourseDirectory.course_id = '  '\n", "names no course id"),
    ("c.CourseDirectory.course_id = '../etc'\n", r"course id '../etc' is not an id of letters"),
    ("c.CourseDirectory.course_id = 'ml 101'\n", "is not an id of letters"),
    ("c.CourseDirectory.course_id = 'ml'\nc.CourseDirectory.root = 'missing'\n", r"root .*/missing does not exist"),
    ("c.CourseDirectory.course_id = 'ml'\nc.CourseDirectory.root = 'nbgrader_config.py'\n", "is not a directory"),
    ("c.CourseDirectory.course_id = 'ml'\nc.CourseDirectory.root = 5\n", "root must be a text, not int"),
    ("import os\nc.CourseDirectory.course_id = 'ml'\nraise RuntimeError('no database here')\n",
     r"raised RuntimeError: no database here \(line 3\); fix it"),
    ("c.CourseDirectory.course_id = 'ml'\nc.CourseDirectory.course_id +=\n", r"raised SyntaxError: .*line 2"),
    ("c.NbGrader.logfile = 5\nc.CourseDirectory.course_id = 'ml'\n", "nbgrader refuses a value in it"),
])
def test_what_cannot_name_a_course_says_what_to_fix(tmp_path, text, message):
    here = _course(tmp_path, text)
    with pytest.raises(CourseConfigError, match=message):
        _course_of(here)


def test_no_config_here_says_how_to_grade_instead(tmp_path):
    with pytest.raises(CourseConfigError, match=r"no nbgrader_config.py in .*: run aifw grade ASSIGNMENT inside an "
                                                r"nbgrader course directory .* aifw grade COURSE ASSIGNMENT"):
        reader_account(tmp_path, os.geteuid())
    with pytest.raises(CourseConfigError, match="no nbgrader_config.py"):
        read_config(tmp_path)
    (tmp_path / "real.py").write_text("c.CourseDirectory.course_id = 'x'\n")
    (tmp_path / CONFIG).symlink_to(tmp_path / "real.py")
    with pytest.raises(CourseConfigError, match="not a regular file"):
        reader_account(tmp_path, os.geteuid())


def test_as_root_the_config_is_read_as_the_directory_owner_and_only_if_no_one_else_could_write_it(tmp_path):
    here = _course(tmp_path, "c.CourseDirectory.course_id = 'ml'\n")
    here.chmod(0o755)
    (here / CONFIG).chmod(0o644)
    assert reader_account(here, euid=1000) is None  # not root: read with one's own rights
    owner = here.stat().st_uid
    expected = None if owner == 0 else __import__("pwd").getpwuid(owner).pw_name
    assert reader_account(here, euid=0) == expected  # root: as the directory's owner (root itself: in the child)
    (here / CONFIG).chmod(0o664)
    with pytest.raises(CourseConfigError, match=r"nbgrader_config.py is writable by its group or others.*chmod go-w"):
        reader_account(here, euid=0)
    (here / CONFIG).chmod(0o644)
    here.chmod(0o777)
    with pytest.raises(CourseConfigError, match=r"course is writable by its group or others"):
        reader_account(here, euid=0)
    here.chmod(0o755)
    if os.geteuid() == 0:  # someone else's file in the owner's directory: not their code to run as the owner
        os.chown(here, 4242, 4242)
        os.chown(here / CONFIG, 4343, 4343)
        with pytest.raises(CourseConfigError, match=r"belongs to uid 4343, not to the owner of .* \(uid 4242\).*chown"):
            reader_account(here, euid=0)
        os.chown(here / CONFIG, 4242, 4242)
        with pytest.raises(CourseConfigError, match="owned by uid 4242, which has no account"):
            reader_account(here, euid=0)


def test_a_reader_that_answers_nothing_is_an_error(tmp_path):
    with pytest.raises(CourseConfigError, match=r"reading .*nbgrader_config.py failed \(exit 1\)"):
        read_config_as(tmp_path, None, python="/bin/false")


# --------------------------------------------------------------------------- the options of the run
def _args(**kw) -> argparse.Namespace:
    base = dict(course=None, assignment="ps1", local=None, workers=None, partition=None, student=None,
                force=False, cell_timeout=None, timeout=None, memory_gb=None, max_processes=None, no_sandbox=False,
                no_feedback=False, no_reports=False, site=None, course_dir=None, runs_dir=None)
    return argparse.Namespace(**{**base, **kw})


def test_a_course_named_by_its_config_takes_the_rest_from_the_site_file(tmp_path):
    from aifw.grading.cli import grade_options

    site = load_site(example_site_path("sandbox"))
    here = CourseConfig("ML101_2026", tmp_path, tmp_path / CONFIG)
    assert site.course("ML101_2026") is None
    opts = grade_options(_args(), site, here)
    assert (opts.course, opts.course_dir, opts.assignment) == ("ML101_2026", tmp_path.resolve(), "ps1")
    assert opts.mode == "slurm" and opts.partition == site.default_partition.name
    assert opts.workers == site.grading.workers and opts.limits.cell_timeout_s == site.grading.cell_timeout_s
    assert opts.runs_root == Path(site.paths.runtime_prefix, "state", "grading").resolve()
    local = grade_options(_args(local=2, memory_gb=1.0, runs_dir=tmp_path / "runs"), site, here)
    assert (local.mode, local.workers, local.limits.memory_mb, local.runs_root) == ("local", 2, 1024, tmp_path / "runs")


def test_a_course_neither_in_the_site_file_nor_named_here_says_the_three_ways():
    from aifw.grading.cli import grade_options
    from aifw.grading.plan import GradeError

    site = load_site(example_site_path("sandbox"))
    with pytest.raises(GradeError, match="add it there, pass --course-dir, or run aifw grade ASSIGNMENT inside"):
        grade_options(_args(course="ml101"), site)
    with pytest.raises(GradeError, match=r"--publish: course 'ml101' is not in the site file"):
        grade_options(_args(publish=True), site, CourseConfig("ml101", Path("/"), Path("/") / CONFIG))


def test_the_command_line_takes_an_assignment_alone_or_a_course_and_an_assignment():
    from aifw.grading.cli import register

    parser = argparse.ArgumentParser(prog="aifw")
    register(parser.add_subparsers(dest="command"))
    alone = parser.parse_args(["grade", "ps1", "--local", "2"])
    assert (alone.course, alone.assignment, alone.local) == (None, "ps1", 2)
    both = parser.parse_args(["grade", "aif-foundations", "m1-first-steps", "--course-dir", "/srv/c"])
    assert (both.course, both.assignment, both.course_dir) == ("aif-foundations", "m1-first-steps", Path("/srv/c"))
    with pytest.raises(SystemExit):
        parser.parse_args(["grade"])


def test_without_course_the_config_of_the_course_dir_option_is_read(tmp_path, monkeypatch):
    from aifw.grading import cli

    seen = []
    monkeypatch.setattr(cli, "load_course_config",
                        lambda where: seen.append(where) or CourseConfig("ml", tmp_path, tmp_path / CONFIG))
    opts = cli.options_from_args(_args(course_dir=tmp_path, local=1))
    assert seen == [tmp_path] and opts.course == "ml"
    monkeypatch.chdir(tmp_path)
    cli.options_from_args(_args(local=1))
    assert seen[-1] == tmp_path
