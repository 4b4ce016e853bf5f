"""``aifw class``: a trainer starts the whole class before a workshop, and watches it get ready.

    aifw class start aif-foundations --module m3-dask-on-slurm --stop-unused 45m
    aifw class start aif-foundations --partition gpu --gpus 1 --reservation workshop
    aifw class status aif-foundations [--watch 120]

`start` asks the hub to start a session for every learner of the course (its hub group
course-<id>-learners; nobody else), on the module's preset or the options given, and then shows a progress
bar until every session is ready or --wait seconds have passed. A learner who then logs in finds their lab
running. A session no one uses within --stop-unused stops by itself (the spawner sees to it, even if this
command is gone). `status` shows each learner's session: ready (and where), starting, waiting in Slurm's
queue (and why, in words), or not started.

The hub is reached at the site's URL with a token: --token-file, else $JUPYTERHUB_API_TOKEN, else (as root,
in the sandbox) the sandbox's admin token. A trainer's token needs their course's `course-<id>-class` role
(every trainer of the course has it): make one on the hub's Token page.

Exit status: 0 every learner's session is ready (start) or the status was shown; 3 some sessions are not
ready when --wait ends (the table says why); 2 a wrong option, site or course; 1 the hub or Slurm failed.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

from .plan import DURATION_FORMS, ClassError, LearnerState, Preset, learner_states, session_job_name, summary

EXIT_NOT_ALL_READY = 3
EXIT_USAGE = 2
EXIT_FAILED = 1
POLL_S = 1.0
MAX_PARALLEL_STARTS = 16


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("class", help="start a course's whole class before a workshop, and watch it get ready",
                              description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="class_command", metavar="ACTION")
    start = sub.add_parser("start", help="start a session for every learner of a course")
    _common(start)
    start.add_argument("--module", default=None, help="the module whose preset (partition, GPUs, session length) "
                       "the sessions get (from the installed course's course.yaml)")
    start.add_argument("--partition", default=None, help="partition (default: the module's, else the site's default)")
    start.add_argument("--gpus", type=int, default=None, help="GPUs per session (default: the module's, else 0)")
    start.add_argument("--cpus", type=int, default=None, help="CPUs per session (default: the site's)")
    start.add_argument("--memory-gb", type=int, default=None, help="memory per session in GB (default: the site's)")
    start.add_argument("--runtime", type=int, default=None, metavar="MINUTES",
                       help="walltime of each session (default: the module's session length, else the partition's)")
    start.add_argument("--reservation", default=None, help="the Slurm reservation of the event (one the site offers)")
    start.add_argument("--account", default=None, help="the project the sessions are billed to (default: each "
                       "learner's default project)")
    start.add_argument("--stop-unused", default="0", metavar="DURATION",
                       help=f"stop a session no one has used this long after it became ready: {DURATION_FORMS}; "
                       "0 keeps them until their walltime ends (default)")
    start.add_argument("--wait", type=int, default=300, metavar="SECONDS",
                       help="how long to show the progress before returning (default 300; 0: do not wait)")
    start.set_defaults(func=cmd_start)
    status = sub.add_parser("status", help="where each learner's session stands")
    _common(status)
    status.add_argument("--watch", type=int, default=0, metavar="SECONDS",
                        help="show a progress bar until every session is ready or this many seconds passed")
    status.set_defaults(func=cmd_status)
    p.set_defaults(func=lambda args: (p.print_help(), EXIT_USAGE)[1])


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("course", help="course id (from the site file)")
    p.add_argument("--site", default=None, help="site file (default: $AIFW_SITE, else the sandbox's)")
    p.add_argument("--token-file", type=Path, default=None,
                   help="file holding a hub API token (default: $JUPYTERHUB_API_TOKEN, else as root the sandbox's)")


def _fail(message: str, code: int) -> int:
    print(f"aifw class: {message}", file=sys.stderr)
    return code


class _Class:
    """The site, the course's learners, the hub and Slurm, for one command."""

    def __init__(self, args: argparse.Namespace):
        from aifw.hubapi import HubApi
        from aifw.names import course_group
        from aifw.site import load_site
        from aifw.slurm import SlurmClient

        self.site = load_site(args.site)
        self.course = args.course
        if self.site.course(self.course) is None:
            raise ClassError(f"course {self.course!r} is not in the site file (courses: "
                             f"{', '.join(self.site.course_ids) or 'none'})")
        self.hub = HubApi(self.site.hub.bind_url.rstrip("/") + "/hub/api", _token(args.token_file, self.site))
        self.group = course_group(self.course, "learner")
        self.slurm = SlurmClient.for_site(self.site.slurm)

    def learners(self) -> list[str]:
        from aifw.hubapi import path_part

        return sorted((self.hub.call("GET", f"/groups/{path_part(self.group)}") or {}).get("users", []))

    def states(self, learners: list[str], refused: dict[str, str] | None = None) -> list[LearnerState]:
        from aifw.hubapi import path_part

        users = {u: self.hub.call("GET", f"/users/{path_part(u)}") or {} for u in learners}
        named = getattr(self.slurm, "named_jobs_sync", None)  # the CLI client; through REST no reasons yet
        jobs = named([session_job_name(u) for u in learners]) if named and learners else {}
        return learner_states(learners, users, jobs, refused)


def _token(token_file: Path | None, site) -> str:
    if token_file is not None:
        try:
            token = token_file.read_text().strip()
        except OSError as err:
            raise ClassError(f"cannot read the token file {token_file}: {err.strerror}") from None
        if not token:
            raise ClassError(f"the token file {token_file} is empty; put a hub API token in it")
        return token
    if os.environ.get("JUPYTERHUB_API_TOKEN"):
        return os.environ["JUPYTERHUB_API_TOKEN"]
    sandbox_json = Path(site.paths.runtime_prefix) / "sandbox.json"
    if os.geteuid() == 0 and sandbox_json.is_file():
        import json

        token = json.loads(sandbox_json.read_text()).get("api_token", "")
        if token:
            return token
    raise ClassError(f"no hub API token: make one on {site.hub.bind_url.rstrip('/')}/hub/token (your trainer role "
                     "lets it start your learners' sessions) and pass it with --token-file FILE, or set "
                     "JUPYTERHUB_API_TOKEN")


def _preset(args: argparse.Namespace) -> tuple[Preset, Any]:
    from .plan import parse_duration

    module = None
    if args.module:
        from aifw.courses.catalogue import CourseFileError, find_course

        try:
            module = find_course(args.course).module(args.module)
        except (KeyError, CourseFileError) as err:
            raise ClassError(f"module {args.module!r} of course {args.course!r}: {err}") from None
    unused = parse_duration(args.stop_unused, "--stop-unused") if args.stop_unused not in ("0", "") else 0
    return Preset(partition=args.partition, gpus=args.gpus, cpus=args.cpus, memory_gb=args.memory_gb,
                  runtime_minutes=args.runtime, reservation=args.reservation, account=args.account,
                  stop_if_unused_s=unused), module


def _run(args: argparse.Namespace, body: Callable[["_Class"], int]) -> int:
    from aifw.hubapi import HubApiError
    from aifw.site import SiteError
    from aifw.slurm import SlurmError

    try:
        return body(_Class(args))
    except (ClassError, SiteError) as err:
        return _fail(str(err), EXIT_USAGE)
    except HubApiError as err:
        hint = (" (the token lacks the scopes: a trainer's token needs the course's class role; make one on the "
                "hub's Token page)") if err.status == 403 else ""
        return _fail(f"{err}{hint}", EXIT_FAILED)
    except SlurmError as err:
        return _fail(f"Slurm did not tell where the sessions stand: {err}", EXIT_FAILED)


def cmd_start(args: argparse.Namespace) -> int:
    from .plan import class_options

    def body(c: _Class) -> int:
        preset, module = _preset(args)
        options = class_options(c.site, preset, module)
        learners = c.learners()
        if not learners:
            print(f"Course {c.course} has no learners (hub group {c.group} is empty): nothing to start.")
            return 0
        refused = _start_all(c, learners, options)
        started = len(learners) - len(refused)
        print(f"Asked the hub to start {started} of {len(learners)} sessions of {c.course} "
              f"({', '.join(f'{k}={v}' for k, v in options.items() if v not in ('', None))}).")
        return _watch(c, learners, args.wait, refused)

    return _run(args, body)


def _start_all(c: _Class, learners: list[str], options: dict[str, Any]) -> dict[str, str]:
    """Start every learner's session that is not running already; returns why the hub refused some."""
    from aifw.hubapi import HubApiError, path_part

    def start(user: str) -> tuple[str, str]:
        model = c.hub.call("GET", f"/users/{path_part(user)}") or {}
        if (model.get("servers") or {}).get(""):
            return user, ""  # running or starting already: theirs is kept as it is
        try:
            c.hub.call("POST", f"/users/{path_part(user)}/server", {"user_options": options})
        except HubApiError as err:
            if err.status in (0, 401, 403):
                raise
            return user, str(err)
        return user, ""

    with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL_STARTS, len(learners))) as pool:
        results = list(pool.map(start, learners))
    return {user: why for user, why in results if why}


def cmd_status(args: argparse.Namespace) -> int:
    def body(c: _Class) -> int:
        learners = c.learners()
        if args.watch > 0:
            code = _watch(c, learners, args.watch, {})
            return 0 if code == EXIT_NOT_ALL_READY else code
        states = c.states(learners)
        _table(c.course, states)
        return 0

    return _run(args, body)


def _watch(c: _Class, learners: list[str], wait_s: int, refused: dict[str, str]) -> int:
    """A progress bar of ready sessions until all are ready or `wait_s` passed; then the table."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    states = c.states(learners, refused)
    hopeful = len(learners) - len(refused)
    deadline = time.monotonic() + max(0, wait_s)
    console = Console(stderr=True)
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=False, disable=wait_s <= 0) as bar:
        task = bar.add_task("sessions ready", total=len(learners))
        while True:
            ready = sum(1 for s in states if s.state == "ready")
            bar.update(task, completed=ready, description=f"{c.course}: sessions ready")
            if ready >= hopeful or time.monotonic() >= deadline:
                break
            time.sleep(POLL_S)
            states = c.states(learners, refused)
    _table(c.course, states)
    return 0 if all(s.state == "ready" for s in states) else EXIT_NOT_ALL_READY


def _table(course: str, states: list[LearnerState]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Class {course}", title_justify="left")
    for col in ("learner", "session", "where / why"):
        table.add_column(col)
    style = {"ready": "green", "starting": "cyan", "waiting": "yellow", "not started": "red"}
    for s in states:
        table.add_row(s.user, f"[{style[s.state]}]{s.state}[/]", s.detail)
    console = Console(width=max(100, Console().width))
    console.print(table)
    console.print(summary(states))
