"""``aifw usage``: GPU-hours and CPU-hours by project and user, from Slurm accounting (sacct).

    aifw usage                                   # this month, every project and user
    aifw usage --project proj-llm --since 2026-03-01 --until 2026-03-31
    aifw usage --user researcher1 --format csv > usage.csv
    aifw usage --plot usage.png                  # also a bar chart: GPU-hours by project, stacked by user

Exit status: 0 the report was printed; 2 a wrong option or site file; 3 this Slurm keeps no job accounting
(the site needs slurmdbd); 1 Slurm did not answer, refused the query, or the plot could not be written.
"""
from __future__ import annotations

import argparse
import sys
from datetime import datetime

from .options import FORMATS, TIME_FORMS, UsageError, UsageOptions, make_options

EXIT_USAGE_ERROR = 2
EXIT_NO_ACCOUNTING = 3
EXIT_FAILED = 1


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "usage", help="GPU-hours and CPU-hours by project and user, from Slurm accounting (sacct)",
        description=__doc__.split("\n\n")[0], epilog=f"Times: {TIME_FORMS}.",
    )
    p.add_argument("--user", default=None, help="only this user's jobs (default: every user's)")
    p.add_argument("--project", default=None, help="only this project's (Slurm account's) jobs (default: every project's)")
    p.add_argument("--since", default=None, help="start of the window (default: the first day of this month)")
    p.add_argument("--until", default=None, help="end of the window; a date counts in full (default: now)")
    p.add_argument("--format", default="table", help=f"output: {', '.join(FORMATS)} (default: table)")
    p.add_argument("--plot", default=None, metavar="FILE.png", help="also write a bar chart of GPU-hours by project, stacked by user")
    p.add_argument("--site", default=None, help="site file whose Slurm to ask (default: $AIFW_SITE, else the sandbox's)")
    p.set_defaults(func=cmd_usage)


def options_from_args(args: argparse.Namespace, now: datetime) -> UsageOptions:
    return make_options(now=now, user=args.user, project=args.project, since=args.since, until=args.until,
                        format=args.format, plot=args.plot, site=args.site)


def _fail(message: str, code: int) -> int:
    print(f"aifw usage: {message}", file=sys.stderr)
    return code


def cmd_usage(args: argparse.Namespace) -> int:
    from aifw.site import SiteError, load_site
    from aifw.slurm import AccountingUnavailable, SlurmClient, SlurmError, SlurmNotInstalled, sacct_usage_sync

    from .plot import write_plot
    from .render import RENDERERS, runaway_note
    from .report import summarise

    now = datetime.now().replace(microsecond=0)
    try:
        opts = options_from_args(args, now)
    except UsageError as err:
        return _fail(str(err), EXIT_USAGE_ERROR)
    try:
        site = load_site(opts.site)
    except SiteError as err:
        return _fail(str(err), EXIT_USAGE_ERROR)
    client = SlurmClient.for_site(site.slurm)
    try:
        records = sacct_usage_sync(client, opts.since, opts.until, user=opts.user, account=opts.project)
    except AccountingUnavailable as err:
        return _fail(str(err), EXIT_NO_ACCOUNTING)
    except SlurmNotInstalled as err:
        return _fail(str(err), EXIT_FAILED)
    except SlurmError as err:
        return _fail(f"sacct failed: {err}", EXIT_FAILED)
    report = summarise(records.jobs, opts.since, opts.until, user=opts.user, project=opts.project, counted_at=now)
    sys.stdout.write(RENDERERS[opts.format](report))
    note = runaway_note(report)
    if note and opts.format == "csv":  # the table and the JSON carry it themselves
        print(f"aifw usage: {note}", file=sys.stderr)
    if records.skipped:
        print(f"aifw usage: {len(records.skipped)} line(s) of sacct's output were not understood and are left out, "
              f"e.g. {records.skipped[0][:200]!r}", file=sys.stderr)
    if opts.project and not report.rows and opts.project not in {p.name for p in site.projects}:
        known = ", ".join(p.name for p in site.projects) or "none"
        print(f"aifw usage: project {opts.project!r} is not in the site file (projects: {known})", file=sys.stderr)
    if opts.plot is not None:
        try:
            write_plot(report, opts.plot)
        except OSError as err:
            return _fail(f"cannot write the plot {str(opts.plot)!r}: {err.strerror or err}", EXIT_FAILED)
        print(f"plot: {opts.plot}", file=sys.stderr)
    return 0
