"""Planning an `aifw grade` run: what to grade (`GradeOptions` -> `Plan`) and the snapshot of it in a new
run directory (`prepare_run`), plus the time each Slurm array task asks for (`job_minutes`).

Reads the course directory (the gradebook through `aifw.gradebook`, the collected submissions);
writes only the new run directory. Starts nothing.
"""
from __future__ import annotations

import os
import secrets
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from aifw.names import NBGRADER_ID, matches

from aifw import gradebook
from .rundir import Limits, RunDir, RunSpec


class GradeError(Exception):
    """Grading cannot start or go on; the message says what to do."""


@dataclass(frozen=True)
class GradeOptions:
    course: str
    assignment: str
    course_dir: Path
    runs_root: Path
    students: tuple[str, ...] | None = None  # None: every collected submission
    force: bool = False  # also those already autograded (and not newer)
    mode: str = "local"  # local | slurm
    workers: int = 2
    partition: str | None = None
    limits: Limits = Limits()
    jail: bool = True
    feedback: bool = True  # nbgrader generate_feedback for every merged submission
    reports: bool = True  # CSV exports, plot, HTML report
    uid_base: int = 2_000_000
    python: str = sys.executable
    slurm_conf: str | None = None
    slurm_bin: str = "/usr/bin"


@dataclass(frozen=True)
class Plan:
    """What a run grades: `todo`, in order; `done` were graded and are unchanged; `problems` are said."""

    notebooks: tuple[str, ...]  # the assignment's notebook ids in the gradebook
    todo: tuple[str, ...]
    done: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()


def check_id(kind: str, value: str) -> str:
    if not matches(NBGRADER_ID, value):
        raise GradeError(f"{kind} {value!r} is not a valid id (letters, digits, '_', '.', '@', '-'; at most 100)")
    return value


def assignment_notebooks(course_dir: Path, assignment: str) -> list[str]:
    """The assignment's notebook ids from the course's gradebook (read-only)."""
    try:
        return gradebook.assignment_notebooks(course_dir, assignment)
    except gradebook.GradebookError as err:
        raise GradeError(str(err)) from None


def _timestamp(folder: Path) -> str | None:
    try:
        return (folder / "timestamp.txt").read_text().strip() or None
    except OSError:
        return None


def find_submissions(course_dir: Path, assignment: str, students: tuple[str, ...] | None, force: bool) -> tuple[list[str], list[str], list[str]]:
    """(to grade, already graded and unchanged, problems) among the collected submissions."""
    submitted = course_dir / "submitted"
    found = sorted(p.parent.name for p in submitted.glob(f"*/{assignment}") if p.is_dir() and not p.is_symlink())
    problems = []
    if students is not None:
        missing = [s for s in students if s not in found]
        problems += [f"{s}: no collected submission of {assignment} (nbgrader collect first)" for s in missing]
        found = [s for s in found if s in students]
    todo, done = [], []
    for student in found:
        if not matches(NBGRADER_ID, student):
            problems.append(f"{student!r}: not a valid student id; skipped")
            continue
        graded = course_dir / "autograded" / student / assignment
        if force or not graded.exists():
            todo.append(student)
            continue
        new, old = _timestamp(submitted / student / assignment), _timestamp(graded)
        (todo if new and old and new > old else done).append(student)
    return todo, done, problems


def plan_run(opts: GradeOptions) -> Plan:
    """Check the options against the course directory and find what to grade."""
    check_id("course", opts.course)
    check_id("assignment", opts.assignment)
    if not opts.course_dir.is_dir():
        raise GradeError(f"no course directory at {opts.course_dir}")
    if opts.jail and os.geteuid() != 0:
        raise GradeError("aifw grade runs each submission as a throwaway uid, which needs root: run it with sudo "
                         "(or pass --no-sandbox to run students' code as yourself, like plain nbgrader)")
    notebooks = assignment_notebooks(opts.course_dir, opts.assignment)
    todo, done, problems = find_submissions(opts.course_dir, opts.assignment, opts.students, opts.force)
    return Plan(tuple(notebooks), tuple(todo), tuple(done), tuple(problems))


def _copy_regular(src: Path, dest: Path) -> None:
    """Copy a submission: regular files and folders only; symbolic links are dropped, never followed."""
    dest.mkdir(parents=True, exist_ok=True, mode=0o700)
    for entry in os.scandir(src):
        if entry.is_symlink():
            continue
        target = dest / entry.name
        if entry.is_dir(follow_symlinks=False):
            _copy_regular(Path(entry.path), target)
        elif entry.is_file(follow_symlinks=False):
            shutil.copyfile(entry.path, target)


def prepare_run(opts: GradeOptions, plan: Plan) -> RunDir:
    """A new run directory holding the snapshot of what `plan` grades: run.json, the gradebook, the
    assignment's source files and the submissions."""
    run = RunDir.new(opts.runs_root, opts.course, opts.assignment)
    # Each run gets its own block of throwaway uids, so two runs at once never share one.
    uid_base = opts.uid_base + secrets.randbelow(10_000) * 100_000 if opts.jail else None
    run.write_spec(RunSpec(course=opts.course, assignment=opts.assignment, students=plan.todo,
                           notebooks=plan.notebooks, limits=opts.limits, uid_base=uid_base, python=opts.python))
    try:
        gradebook.snapshot(opts.course_dir, run.gradebook)
    except gradebook.GradebookError as err:
        raise GradeError(str(err)) from None
    source = opts.course_dir / "source" / opts.assignment
    if source.is_dir():
        _copy_regular(source, run.source)
    for student in plan.todo:
        _copy_regular(opts.course_dir / "submitted" / student / opts.assignment, run.submitted(student))
    return run


def job_minutes(n_submissions: int, workers: int, limits: Limits, partition_max: int | None = None) -> int:
    """Time limit of each array task: its share of submissions at their time limit, plus start-up, within
    the partition's MaxTime (a longer request would pend forever: PartitionTimeLimit)."""
    per_worker = -(-n_submissions // max(1, workers))
    wanted = max(5, min(24 * 60, -(-per_worker * limits.submission_timeout_s // 60) + 5))
    return min(wanted, partition_max) if partition_max else wanted
