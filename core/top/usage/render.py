"""A usage report as text (pure): an aligned table for people, CSV and JSON for spreadsheets and scripts.
Each says the window, that running jobs count up to now, and the units (GPU-hours, CPU-hours)."""
from __future__ import annotations

import csv
import io
import json
from datetime import datetime

from .report import UsageReport, UsageRow

RUNNING_NOTE = "jobs still running count up to now"
UNITS = {
    "gpu_hours": "GPU-hours: run time inside the window x allocated GPUs (sacct AllocTRES gres/gpu)",
    "cpu_hours": "CPU-hours: run time inside the window x allocated CPUs (sacct AllocTRES cpu)",
}
CSV_COLUMNS = ("project", "user", "jobs", "running", "gpu_hours", "cpu_hours")


def runaway_note(report: UsageReport) -> str | None:
    """What to say about runaway jobs, or None when there are none."""
    n = report.runaway_jobs
    if not n:
        return None
    return (f"{n} job(s) ended in Slurm but have no end time in accounting (runaway jobs): they count 0 hours here. "
            "An admin lists them and fixes them with `sacctmgr show runawayjobs`.")


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def window_text(report: UsageReport) -> str:
    until = _when(report.until)
    if report.counted_at is not None and report.until >= report.counted_at:
        until += " (now)"
    return f"from {_when(report.since)} to {until}"


def format_hours(hours: float) -> str:
    """Hours for a table: two decimals; '<0.01' for a small amount that is not nothing."""
    if 0 < hours < 0.005:
        return "<0.01"
    return f"{hours:,.2f}"


def _table(header: list[str], lines: list[list[str]], right: set[int]) -> list[str]:
    widths = [max(len(row[i]) for row in [header, *lines]) for i in range(len(header))]

    def fmt(row: list[str]) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))).rstrip()

    return [fmt(header), *(fmt(r) for r in lines)]


def _numbers(row: UsageRow) -> list[str]:
    return [str(row.jobs), str(row.running), format_hours(row.gpu_hours), format_hours(row.cpu_hours)]


def render_table(report: UsageReport) -> str:
    who = f"user {report.user}" if report.user else "all users"
    what = f"project {report.project}" if report.project else "all projects"
    out = [f"GPU-hours and CPU-hours {window_text(report)}; {who}, {what}",
           f"From Slurm accounting (sacct); {RUNNING_NOTE}. GPU-hours = hours x allocated GPUs, "
           "CPU-hours = hours x allocated CPUs."]
    note = runaway_note(report)
    if note:
        out.append(f"Note: {note}")
    out.append("")
    if not report.rows:
        out.append("No jobs in this window.")
        return "\n".join(out) + "\n"
    numbers = ["jobs", "running", "GPU-hours", "CPU-hours"]
    out.append("By project")
    lines = [[p.project, str(p.users), *_numbers(p)] for p in report.projects]
    lines.append(["total", str(report.total.users), *_numbers(report.total)])
    out += _table(["project", "users", *numbers], lines, right={1, 2, 3, 4, 5})
    out += ["", "By project and user"]
    lines = [[r.project, r.user or "", *_numbers(r)] for r in report.rows]
    lines.append(["total", "", *_numbers(report.total)])
    out += _table(["project", "user", *numbers], lines, right={2, 3, 4, 5})
    return "\n".join(out) + "\n"


def render_csv(report: UsageReport) -> str:
    """One line per (project, user), then a `total` line; hours with 4 decimals."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in [*report.rows, report.total]:
        writer.writerow([row.project, row.user or "", row.jobs, row.running, f"{row.gpu_hours:.4f}", f"{row.cpu_hours:.4f}"])
    return buf.getvalue()


def render_json(report: UsageReport) -> str:
    data = {
        "since": report.since.isoformat(),
        "until": report.until.isoformat(),
        "counted_at": report.counted_at.isoformat() if report.counted_at else None,
        "note": f"from Slurm accounting (sacct); {RUNNING_NOTE}",
        "units": UNITS,
        "filters": {"user": report.user, "project": report.project},
        "rows": [r.to_json() for r in report.rows],
        "projects": [p.to_json() for p in report.projects],
        "total": report.total.to_json(),
        "runaway_jobs": report.runaway_jobs,
        "runaway_note": runaway_note(report),
    }
    return json.dumps(data, indent=2) + "\n"


RENDERERS = {"table": render_table, "csv": render_csv, "json": render_json}
