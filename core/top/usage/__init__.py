"""`aifw usage`: GPU-hours and CPU-hours by project and user, the view a PI or a trainer wants.

Top floor. Slurm is asked through `aifw.slurm` only (`sacct_usage_sync`); the rooms here are pure but
for the command and the plot file:

- `options`: command-line strings -> `UsageOptions` (user, project, time window, output), or a
  `UsageError` saying what to write instead;
- `report`: job records -> rows by (project, user) and by project, with totals (`summarise`);
- `render`: a report as an aligned table, CSV or JSON;
- `plot`: a report as a PNG bar chart (GPU-hours by project, stacked by user; matplotlib's Agg canvas);
- `cli`: the sub-command (options -> site -> sacct -> report -> output).
"""
from .options import UsageError, UsageOptions, make_options, parse_time
from .render import render_csv, render_json, render_table
from .report import UsageReport, UsageRow, summarise

__all__ = ["UsageError", "UsageOptions", "UsageReport", "UsageRow", "make_options", "parse_time", "render_csv",
           "render_json", "render_table", "summarise"]
