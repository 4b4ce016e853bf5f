"""``aifw courses list`` and ``aifw courses check``: the catalogue as a table, and the grading proof.

    aifw courses list                          # every course and module, with its launch link
    aifw courses check                         # prove every module of every course through nbgrader
    aifw courses check aif-foundations --module m2-training-loop
    aifw courses check --json proof.json       # also write the structured results

``check`` exits with 1 when any check fails, and prints for each failure what was expected, what
happened and what to fix. Both read the installed courses (``<runtime prefix>/course-sources``, root-only)
unless ``--root`` names another folder of courses, such as a checkout's ``courses/``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from .catalogue import ROOT_HELP, CourseFileError, load_catalogue, module_summary


def register(subparsers: argparse._SubParsersAction) -> None:
    courses = subparsers.add_parser("courses", help="list the course catalogue and prove its grading")
    sub = courses.add_subparsers(dest="courses_command", metavar="ACTION")
    courses.set_defaults(func=lambda args: (courses.print_help(), 2)[1])

    p_list = sub.add_parser("list", help="the catalogue: courses, modules, launch links")
    p_list.add_argument("--root", type=Path, default=None, help=ROOT_HELP)
    p_list.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p_list.set_defaults(func=cmd_list)

    p_check = sub.add_parser(
        "check",
        help="prove every module through nbgrader: release leaks nothing, solution full marks, blank 0, "
        "each planted wrong answer loses exactly its test, no cheating submission earns more than 10%",
    )
    p_check.add_argument("course", nargs="?", help="course id (default: every course)")
    p_check.add_argument("--module", "-m", action="append", default=None, help="only this module (repeatable)")
    p_check.add_argument("--root", type=Path, default=None, help=ROOT_HELP)
    p_check.add_argument("--jobs", "-j", type=int, default=None, help="modules proved in parallel (default: CPUs + 1)")
    p_check.add_argument("--timeout", type=int, default=60, help="seconds a notebook cell may run (default 60)")
    p_check.add_argument("--keep", action="store_true", help="keep the nbgrader course directories")
    p_check.add_argument("--workdir", default=None, help="where to create them (default: a temporary folder)")
    p_check.add_argument(
        "--dask-backend",
        default="local",
        choices=["local", "auto", "slurm", "inherit"],
        help="AIFW_DASK_BACKEND for the notebooks (default local; inherit = keep the environment's)",
    )
    p_check.add_argument(
        "--wrong", action="append", default=None, metavar="TEST_ID",
        help="plant only this test cell's wrong answer (repeatable; for quick iteration on one exercise)",
    )
    p_check.add_argument("--json", dest="json_out", default=None, help="write the results as JSON to this file")
    p_check.set_defaults(func=cmd_check)

    from .publish import register_publish_commands

    register_publish_commands(sub)


def _console() -> Console:
    console = Console(highlight=False, soft_wrap=False)
    if not console.is_terminal:  # logs and CI: wide enough for a table row per module
        console = Console(highlight=False, soft_wrap=False, width=max(console.width, 160))
    return console


def _load(console: Console, root) -> list | None:
    """The catalogue, or None after printing what is wrong with a course file."""
    try:
        return load_catalogue(root)
    except CourseFileError as err:
        console.print(f"[red]{err}[/red]")
        return None


def cmd_list(args: argparse.Namespace) -> int:
    console = _console()
    courses = _load(console, args.root)
    if courses is None:
        return 1
    rows = [module_summary(c, m) for c in courses for m in c.modules]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    table = Table(title="Course catalogue", show_lines=False)
    for col in ("Course", "Module", "Title", "Min", "Partition/GPUs", "Exercises", "Launch link"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(
            r["course"], r["module"], r["title"], str(r["minutes"]), f"{r['partition']}/{r['gpus']}",
            str(r["exercises"]), r["launch_link"],
        )
    console.print(table)
    total = sum(r["exercises"] for r in rows)
    console.print(f"{len(courses)} course(s), {len(rows)} module(s), {total} graded exercise(s)")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from .proof import ModuleProof, ProofOptions, module_key, planned_steps, prove, prove_course_files

    console = _console()
    courses = _load(console, args.root)
    if courses is None:
        return 1
    if args.course:
        courses = [c for c in courses if c.id == args.course]
        if not courses:
            known = ", ".join(c.id for c in load_catalogue(args.root)) or "none"
            console.print(f"[red]no course {args.course!r}; the courses are: {known}[/red]")
            return 2
    targets = []
    for course in courses:
        wanted = args.module or [m.id for m in course.modules]
        for module_id in wanted:
            try:
                course.module(module_id)
            except KeyError as err:
                console.print(f"[red]{err.args[0]}[/red]")
                return 2
            targets.append((course, module_id))
    if not targets:
        console.print("nothing to check")
        return 0

    options = ProofOptions(
        cell_timeout=args.timeout,
        jobs=args.jobs,
        keep=args.keep,
        workdir=args.workdir,
        dask_backend=None if args.dask_backend == "inherit" else args.dask_backend,
        only_wrong=tuple(args.wrong) if args.wrong else None,
    )
    start = time.monotonic()
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[last]}"),
        TimeElapsedColumn(),
        console=console,
        transient=not console.is_terminal,
        disable=not console.is_terminal and not os.environ.get("AIFW_FORCE_PROGRESS"),
    ) as bar:
        tasks = {
            module_key(c.id, m): bar.add_task(
                module_key(c.id, m), total=planned_steps(c, m, options.only_wrong), last="queued"
            )
            for c, m in targets
        }

        def progress(key: str, what: str) -> None:
            if key in tasks:
                bar.update(tasks[key], advance=1, last=what)

        def done(p: ModuleProof) -> None:
            key = module_key(p.course, p.module)
            total = planned_steps(*_find(targets, p), options.only_wrong)
            bar.update(tasks[key], completed=total, last="ok" if p.ok else "FAILED")
            if not console.is_terminal:
                console.print(f"{key}: {'ok' if p.ok else 'FAILED'} ({p.seconds:.1f} s)")

        proofs = prove(targets, options, progress=progress, on_done=done)
    # what belongs to no module (a wrong_answers.yaml section for a module course.yaml does not list)
    course_files = [p for p in (prove_course_files(c) for c in courses) if not p.ok]
    proofs = course_files + proofs
    elapsed = time.monotonic() - start
    _summary(console, proofs, elapsed)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps([p.to_dict() for p in proofs], indent=2), encoding="utf-8")
    return 0 if all(p.ok for p in proofs) else 1


def _find(targets, proof):
    for c, m in targets:
        if c.id == proof.course and m == proof.module:
            return c, m
    raise KeyError(proof.module)


def _cheats(proof) -> str:
    """The cheat checks of a module in one cell: how many earn at most 10%, and each one that earns more."""
    cheats = [c for c in proof.checks if c.check.startswith("cheat:")]
    if not cheats:
        return "-"
    bad = [c for c in cheats if not c.ok]
    if not bad:
        return f"[green]{len(cheats)}/{len(cheats)} earn ≤ 10%[/green]"
    return "[red]" + ", ".join(f"{c.check[len('cheat:'):]} {c.got}" for c in bad) + "[/red]"


def _summary(console: Console, proofs, elapsed: float) -> None:
    from .proof import COURSE_FILES

    table = Table(title="Grading proof")
    for col in ("Module", "Checks", "Release", "Solution", "Blank", "Wrong answers", "Cheats", "Time", "Result"):
        table.add_column(col)

    def cell(p, name):
        c = next((c for c in p.checks if c.check == name), None)
        if c is None:
            return "-"
        return f"[green]✓[/green] {c.got}" if c.ok else f"[red]✗ {c.got}[/red]"

    for p in proofs:
        wrong = [c for c in p.checks if c.check.startswith("wrong:")]
        bad = sum(not c.ok for c in wrong)
        wa = f"{len(wrong) - bad}/{len(wrong)} lose exactly their test" if wrong or p.module != COURSE_FILES else "-"
        table.add_row(
            f"{p.course}/{p.module}",
            f"{sum(c.ok for c in p.checks)}/{len(p.checks)}",
            cell(p, "release"),
            cell(p, "solution"),
            cell(p, "blank"),
            ("[green]" if not bad else "[red]") + wa + ("[/green]" if not bad else "[/red]"),
            _cheats(p),
            f"{p.seconds:.0f} s",
            "[green]ok[/green]" if p.ok else "[red]FAILED[/red]",
        )
    console.print(table)
    failures = [c for p in proofs for c in p.failures]
    for c in failures:
        console.print(f"\n[red]✗ {c.course}/{c.module} {c.check}[/red]: expected {c.expected}; got {c.got}")
        console.print(c.message, markup=False)
    total = sum(len(p.checks) for p in proofs)
    verdict = "[green]all checks pass[/green]" if not failures else f"[red]{len(failures)} check(s) failed[/red]"
    modules = sum(p.module != COURSE_FILES for p in proofs)
    console.print(f"\n{modules} module(s), {total} checks, {verdict} in {elapsed:.0f} s")
    for p in proofs:
        if p.workdir:
            console.print(f"kept {p.course}/{p.module} course directory: {p.workdir}")
    sys.stdout.flush()
