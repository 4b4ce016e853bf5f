"""What a trainer reads after ``aifw grade``: the summary, the exports and the plots.

Written to ``<course dir>/reports/<assignment>/`` (the formgrader shows that folder):
  grades.csv             nbgrader's own CSV export, this assignment only
  exercises.csv          one row per student and graded cell: score, max score
  exercise-summary.csv   per graded cell: mean score, success rate (full marks), submissions
  grading-summary.json   what happened to every submission of the run (state, reasons, times)
  grades.png             grade distribution and per-exercise success rate
  report.html            all of the above on one page (the plot embedded)
  logs/                  per-submission logs of the run
"""
from __future__ import annotations

import base64
import csv
import html
import io
import json
import shutil
from pathlib import Path

from aifw.gradebook import CellScore, cell_scores, export_csv


STATES = ("graded", "timed_out", "failed", "not_run")
STATE_WORDS = {"graded": "graded", "timed_out": "timed out", "failed": "failed", "not_run": "not run"}


# Outcomes reach this module as dicts (Outcome.to_json()): it runs in the merge service, as the grader.
def counts(outcomes: list[dict]) -> dict[str, int]:
    out = {s: 0 for s in STATES}
    for o in outcomes:
        out[o["state"]] = out.get(o["state"], 0) + 1
    return out


def summary_line(outcomes: list[dict]) -> str:
    c = counts(outcomes)
    return ", ".join(f"{c[s]} {STATE_WORDS[s]}" for s in STATES if c[s] or s == "graded")


def exercise_summary(rows: list[CellScore]) -> list[dict]:
    by_cell: dict[tuple[str, str], list[CellScore]] = {}
    for r in rows:
        by_cell.setdefault((r.notebook, r.cell), []).append(r)
    out = []
    for (notebook, cell), rs in sorted(by_cell.items()):
        max_score = rs[0].max_score
        full = sum(1 for r in rs if max_score and r.points >= max_score)
        out.append({
            "notebook": notebook, "cell": cell, "max_score": max_score, "submissions": len(rs),
            "mean_score": round(sum(r.points for r in rs) / len(rs), 3),
            "success_rate": round(full / len(rs), 3) if max_score else None,
        })
    return out


def totals(rows: list[CellScore]) -> dict[str, tuple[float, float]]:
    out: dict[str, tuple[float, float]] = {}
    for r in rows:
        s, m = out.get(r.student, (0.0, 0.0))
        out[r.student] = (s + r.points, m + r.max_score)
    return out


def plot_png(rows: list[CellScore], summary: list[dict], assignment: str) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    tot = totals(rows)
    percents = [100 * s / m for s, m in tot.values() if m]
    graded_cells = [e for e in summary if e["success_rate"] is not None]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, max(3.5, 0.32 * len(graded_cells) + 1.5)))
    ax1.hist(percents, bins=[0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100.001], color="#3465a4", edgecolor="white")
    ax1.set_xlabel("grade (% of the points)")
    ax1.set_ylabel("submissions")
    ax1.yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax1.set_title(f"{assignment}: grade distribution ({len(percents)} submissions)")
    labels = [f"{e['notebook'][:18]} / {e['cell']}" for e in graded_cells]
    rates = [100 * e["success_rate"] for e in graded_cells]
    ax2.barh(range(len(rates)), rates, color=["#c4a000" if r < 50 else "#4e9a06" for r in rates])
    ax2.set_yticks(range(len(rates)), labels, fontsize=8)
    ax2.invert_yaxis()
    ax2.set_xlim(0, 100)
    ax2.set_xlabel("submissions with full marks (%)")
    ax2.set_title("success rate per exercise")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


def _rate(rate: float | None) -> str:
    return "" if rate is None else f"{100 * rate:.0f}%"


def _html(assignment: str, course: str, outcomes: list[dict], summary: list[dict], png: bytes, tot) -> str:
    e = html.escape
    problems = [o for o in outcomes if o["state"] != "graded" or o["reasons"]]
    rows_problems = "".join(
        f"<tr><td>{e(o['student'])}</td><td>{e(STATE_WORDS.get(o['state'], o['state']))}</td><td>{e('; '.join(o['reasons']))}</td></tr>"
        for o in problems
    ) or "<tr><td colspan=3>none</td></tr>"
    rows_ex = "".join(
        f"<tr><td>{e(x['notebook'])}</td><td>{e(x['cell'])}</td><td>{x['max_score']:g}</td><td>{x['mean_score']:g}</td>"
        f"<td>{_rate(x['success_rate'])}</td><td>{x['submissions']}</td></tr>"
        for x in summary
    )
    rows_students = "".join(
        f"<tr><td>{e(s)}</td><td>{sc:g} / {mx:g}</td></tr>" for s, (sc, mx) in sorted(tot.items())
    )
    img = base64.b64encode(png).decode()
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>{e(course)} / {e(assignment)}: grades</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1100px}}table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:left}}th{{background:#eee}}</style></head><body>
<h1>{e(course)} / {e(assignment)}</h1>
<p>This run: {e(summary_line(outcomes)) if outcomes else 'nothing was graded'}. Files: grades.csv, exercises.csv,
exercise-summary.csv, grading-summary.json, logs/.</p>
<img alt="grade distribution and success rate per exercise" src="data:image/png;base64,{img}" style="max-width:100%">
<h2>Submissions that need a look</h2><table><tr><th>student</th><th>state</th><th>what happened</th></tr>{rows_problems}</table>
<h2>Per exercise</h2><table><tr><th>notebook</th><th>cell</th><th>points</th><th>mean</th><th>full marks</th><th>submissions</th></tr>{rows_ex}</table>
<h2>Per student (all graded submissions)</h2><table><tr><th>student</th><th>score</th></tr>{rows_students}</table>
</body></html>"""


def write_reports(course_dir: Path, course: str, assignment: str, outcomes: list[dict], results_dir: str | None) -> Path:
    out = course_dir / "reports" / assignment
    out.mkdir(parents=True, exist_ok=True)
    rows = cell_scores(course_dir, assignment)
    summary = exercise_summary(rows)
    export_csv(course_dir, assignment, out / "grades.csv")
    with open(out / "exercises.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["student", "notebook", "cell", "score", "max_score"])
        for r in rows:
            w.writerow([r.student, r.notebook, r.cell, f"{r.points:g}", f"{r.max_score:g}"])
    with open(out / "exercise-summary.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["notebook", "cell", "max_score", "mean_score", "success_rate", "submissions"])
        w.writeheader()
        w.writerows(summary)
    (out / "grading-summary.json").write_text(json.dumps(
        {"course": course, "assignment": assignment, "counts": counts(outcomes), "submissions": outcomes}, indent=1))
    png = plot_png(rows, summary, assignment)
    (out / "grades.png").write_bytes(png)
    (out / "report.html").write_text(_html(assignment, course, outcomes, summary, png, totals(rows)))
    if results_dir:
        logs = out / "logs"
        logs.mkdir(exist_ok=True)
        for o in outcomes:
            for suffix in (".log", ".kernel.log"):
                src = Path(results_dir) / o["student"] / f"{o['student']}{suffix}"
                if src.is_file() and not src.is_symlink():
                    shutil.copyfile(src, logs / f"{o['student']}{suffix}")
    return out
