"""The usage plot: a bar of GPU-hours per project, stacked by user, written as a PNG. matplotlib's Agg
canvas, drawn on a Figure of its own (no pyplot, no display, no global backend switched)."""
from __future__ import annotations

from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .render import format_hours, window_text
from .report import UsageReport


def stacks(report: UsageReport) -> tuple[list[str], list[tuple[str, list[float]]]]:
    """The bars (projects, largest first) and, per user, the GPU-hours each bar holds of theirs (pure)."""
    projects = [p.project for p in report.projects]
    users = sorted({r.user or "" for r in report.rows},
                   key=lambda u: (-sum(r.gpu_hours for r in report.rows if r.user == u), u))
    layers = []
    for user in users:
        per = {r.project: r.gpu_hours for r in report.rows if (r.user or "") == user}
        layers.append((user, [per.get(p, 0.0) for p in projects]))
    return projects, layers


def write_plot(report: UsageReport, path: Path) -> Path:
    """Draw the report and write it to `path` (PNG). Raises OSError when the file cannot be written."""
    projects, layers = stacks(report)
    fig = Figure(figsize=(max(6.0, 1.4 * len(projects) + 3), 4.8), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.set_title(f"GPU-hours by project, stacked by user\n{window_text(report)}", fontsize=10)
    ax.set_ylabel("GPU-hours (hours x allocated GPUs)")
    if report.total.gpu_hours <= 0:
        ax.text(0.5, 0.5, "no GPU-hours in this window", ha="center", va="center", transform=ax.transAxes)
        ax.set_xticks([])
        ax.set_yticks([])
    else:
        cmap = _colours(len(layers))
        bottom = [0.0] * len(projects)
        x = list(range(len(projects)))
        for (user, heights), colour in zip(layers, cmap):
            if not any(heights):
                continue
            ax.bar(x, heights, bottom=bottom, label=user, color=colour, edgecolor="white", linewidth=0.5)
            bottom = [b + h for b, h in zip(bottom, heights)]
        for i, height in enumerate(bottom):
            ax.annotate(format_hours(height), (i, height), ha="center", va="bottom", fontsize=8,
                        xytext=(0, 2), textcoords="offset points")
        ax.set_xticks(x, projects, rotation=20 if len(projects) > 4 else 0)
        ax.set_ylim(0, max(bottom) * 1.12)
        ax.legend(title="user", fontsize=8, title_fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.savefig(path, format="png", dpi=110)
    return path


def _colours(n: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["tab20" if n > 10 else "tab10"]
    return [cmap(i % cmap.N) for i in range(n)]
