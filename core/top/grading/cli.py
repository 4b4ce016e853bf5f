"""``aifw grade [COURSE] ASSIGNMENT``: autograde every collected submission in parallel, sandboxed.

    sudo aifw grade aif-foundations m1-first-steps             # Slurm array job on the grading partition
    sudo aifw grade aif-foundations m1-first-steps --local 4   # 4 local processes, no Slurm needed
    sudo aifw grade aif-foundations m1-first-steps --student alice --force
    cd ~/my-nbgrader-course && sudo aifw grade ps1 --local 4   # the course its nbgrader_config.py names

Without COURSE, the course is the one the nbgrader_config.py of the current directory (or of --course-dir)
names, as nbgrader finds it (aifw.grading.course_config); it need not be in the site file.

Then feedback (nbgrader generate_feedback) and reports/<assignment>/ in the course directory: grades.csv,
exercises.csv, exercise-summary.csv, grades.png, report.html. Exit status 0 when every submission was graded
(a student's timed-out or crashing code is a grade, not an error), 1 when some could not be graded.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from .course_config import CourseConfig, load_course_config
from .plan import GradeError, GradeOptions
from .rundir import Limits
from .run import Outcome, grade
from .workers import WorkersNotStopped

if TYPE_CHECKING:
    from aifw.site import Site

STYLE = {"graded": "green", "timed_out": "yellow", "failed": "red", "not_run": "red"}


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "grade", help="autograde a course assignment's submissions in parallel, each sandboxed",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument("course", nargs="?", default=None,
                   help="course id from the site file; leave it out inside an nbgrader course directory to grade "
                        "the course its nbgrader_config.py names")
    p.add_argument("assignment", help="assignment (module) id, as in nbgrader")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--local", type=int, metavar="N", default=None, help="grade with N local processes instead of Slurm")
    where.add_argument("--workers", type=int, default=None, help="Slurm array tasks running at once (default: site file)")
    p.add_argument("--partition", default=None, help="Slurm partition for the grading jobs (default: site file)")
    p.add_argument("--student", action="append", default=None, help="only this student (repeatable)")
    p.add_argument("--force", action="store_true", help="also grade submissions already graded and unchanged")
    p.add_argument("--cell-timeout", type=int, default=None, help="seconds a cell may run (default: site file)")
    p.add_argument("--timeout", type=int, default=None, help="seconds a whole submission may run (default: site file)")
    p.add_argument("--memory-gb", type=float, default=None, help="memory limit of a submission (default: site file)")
    p.add_argument("--max-processes", type=int, default=None, help="process limit of a submission (default: site file)")
    p.add_argument("--no-sandbox", action="store_true",
                   help="run students' code as yourself, like plain nbgrader (no root needed; only for trusted code)")
    p.add_argument("--no-feedback", action="store_true", help="skip nbgrader generate_feedback")
    p.add_argument("--no-reports", action="store_true", help="skip the CSV exports and plots")
    p.add_argument("--publish", action="store_true",
                   help="then send the assignment's scores to the LMS, as `aifw lti publish` does (docs/lti.md)")
    p.add_argument("--site", default=None, help="site file (default: $AIFW_SITE, else the sandbox's)")
    p.add_argument("--course-dir", type=Path, default=None,
                   help="nbgrader course directory (default: from the site file; without COURSE: the current "
                        "directory, whose nbgrader_config.py names the course)")
    p.add_argument("--runs-dir", type=Path, default=None, help="where run directories go (default: <prefix>/state/grading)")
    p.set_defaults(func=cmd_grade)


def options_from_args(args: argparse.Namespace) -> GradeOptions:
    """The run `args` asks for: the site file, and without COURSE the nbgrader config of the course directory."""
    from aifw.site import SiteError, load_site

    try:
        site = load_site(args.site)
    except SiteError as err:
        raise GradeError(str(err)) from None
    here = None
    if args.course is None:
        here = load_course_config(args.course_dir or Path.cwd())
    return grade_options(args, site, here)


def grade_options(args: argparse.Namespace, site: Site, here: CourseConfig | None = None) -> GradeOptions:
    """Pure: the options of a run from the command line, the site file and, for a course named by its
    nbgrader config (`here`), that course's id and directory. Everything else comes from the site file's
    `grading` section (each also an option) and its paths and Slurm, whether the course is in the site file
    or not; the course directory's owner is its grader account (the merge service runs as it)."""
    if here is None and args.course_dir is None and site.course(args.course) is None:
        raise GradeError(f"course {args.course!r} is not in the site file (courses: {', '.join(site.course_ids) or 'none'}); "
                         "add it there, pass --course-dir, or run aifw grade ASSIGNMENT inside its nbgrader course "
                         "directory")
    if here is not None and getattr(args, "publish", False) and site.course(here.course_id) is None:
        raise GradeError(f"--publish: course {here.course_id!r} is not in the site file, so no LMS course maps to it "
                         "(lti.courses names the site's courses); grade without --publish, or add the course to the "
                         "site file")
    g = site.grading
    for name in ("local", "workers", "cell_timeout", "timeout", "max_processes"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise GradeError(f"--{name.replace('_', '-')} must be at least 1 (got {value})")
    if args.memory_gb is not None and args.memory_gb <= 0:
        raise GradeError(f"--memory-gb must be positive (got {args.memory_gb})")
    limits = Limits(
        cell_timeout_s=args.cell_timeout or g.cell_timeout_s,
        submission_timeout_s=args.timeout or g.submission_timeout_s,
        memory_mb=int((args.memory_gb or g.memory_gb) * 1024),
        max_processes=args.max_processes or g.max_processes,
    )
    if here is not None:
        course, course_dir = here.course_id, here.root
    else:
        course, course_dir = args.course, args.course_dir or site.paths.course_dir(args.course)
    return GradeOptions(
        course=course,
        assignment=args.assignment,
        course_dir=course_dir.resolve(),
        runs_root=(args.runs_dir or Path(site.paths.runtime_prefix) / "state" / "grading").resolve(),
        students=tuple(args.student) if args.student else None,
        force=args.force,
        mode="local" if args.local else "slurm",
        workers=args.local or args.workers or g.workers,
        partition=args.partition or g.partition or site.default_partition.name,
        limits=limits,
        jail=not args.no_sandbox,
        feedback=not args.no_feedback,
        reports=not args.no_reports,
        uid_base=g.sandbox_uid_base,
        slurm_conf=site.slurm.conf or os.environ.get("SLURM_CONF"),
        slurm_bin=site.slurm.bin_dir,
    )


def _score(o: Outcome) -> str:
    return "" if o.score is None else f"{o.score:g} / {o.max_score:g}"


def summary_table(outcomes: list[Outcome]) -> Table:
    t = Table(title="aifw grade: summary", show_lines=False)
    for col in ("student", "state", "score", "what happened"):
        t.add_column(col)
    for o in outcomes:
        t.add_row(o.student, f"[{STYLE.get(o.state, 'white')}]{o.state.replace('_', ' ')}[/]", _score(o),
                  "; ".join(o.reasons)[:300])
    return t


def cmd_grade(args: argparse.Namespace) -> int:
    from .report import summary_line

    console = Console()
    err = Console(stderr=True)
    try:
        opts = options_from_args(args)
        interactive = console.is_terminal
        bar = Progress(TextColumn("[bold]grading"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"),
                       TimeElapsedColumn(), console=console, disable=not interactive)
        task = None

        def progress(o: Outcome, done: int, total: int) -> None:
            nonlocal task
            what = o.state.replace("_", " ")
            if not interactive:
                print(f"[{done}/{total}] {o.student}: {what}" + (f" ({'; '.join(o.reasons)[:200]})" if o.reasons else ""), flush=True)
                return
            if task is None:
                task = bar.add_task("", total=total)
            bar.update(task, completed=done, description=f"last: {o.student} {what}")

        with bar:
            result = grade(opts, progress=progress, say=lambda m: console.print(m, highlight=False))
    except WorkersNotStopped as e:  # the run ended early and its workers still run: say which, and how to stop them
        err.print(f"[red]aifw grade:[/] {escape(str(e))}; what was merged stays in the gradebook", highlight=False)
        return 130 if isinstance(e.__cause__, KeyboardInterrupt) else 2
    except GradeError as e:
        err.print(f"[red]aifw grade:[/] {escape(str(e))}", highlight=False)
        return 2
    except KeyboardInterrupt:
        err.print("[red]aifw grade: interrupted[/]; the workers were stopped; what was merged stays in the gradebook")
        return 130
    outcomes = result.outcomes
    if not outcomes:
        console.print("nothing to grade")
        return _publish(args, opts, console, err) if args.publish else 0  # what the gradebook has from before
    console.print(summary_table(outcomes))
    merged = [o for o in outcomes if o.merged]
    if opts.feedback and merged:
        console.print(f"feedback generated for {len(merged) - len(result.feedback_failed)} submission(s)"
                      + (f"; failed for {', '.join(result.feedback_failed)}" if result.feedback_failed else "")
                      + " (release it with nbgrader release_feedback or the formgrader)")
    if result.reports:
        console.print(f"reports: {result.reports}/report.html (grades.csv, exercises.csv, exercise-summary.csv, grades.png)")
    logs = result.reports / "logs" if result.reports else result.run.path / "results"
    console.print(f"{summary_line([o.to_json() for o in outcomes])}; per-submission logs in {logs}")
    failed = any(o.state == "not_run" or (o.status and o.status.notebooks and not o.merged) for o in outcomes)
    if merged:
        _progress(args, opts, console)
    published = _publish(args, opts, console, err) if args.publish else 0
    return 1 if failed or published else 0


def _progress(args: argparse.Namespace, opts: GradeOptions, console: Console) -> None:
    """The scores to the learners' progress (the hub's aifw-progress service); best effort, one line."""
    from aifw.hub_config.progress_client import post_scores
    from aifw.site import load_site

    site = load_site(args.site)
    if site.course(opts.course) is None:  # a course named only by its nbgrader config: not one of the hub's
        console.print(f"learners' progress: {escape(opts.course)} is not a course of the site file, so the hub "
                      "keeps no progress for it (nothing sent)", highlight=False)
        return
    line = post_scores(opts.course, opts.assignment, opts.course_dir, site.hub.bind_url)
    console.print(escape(line), highlight=False)


def _publish(args: argparse.Namespace, opts: GradeOptions, console: Console, err: Console) -> int:
    from aifw.commands.lti import run_publish

    return run_publish(opts.course, opts.assignment, args.site, opts.course_dir, console, err)
