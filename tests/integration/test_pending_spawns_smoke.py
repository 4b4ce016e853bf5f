"""A tiny run of benchmarks/pending_spawns.py (3 held jobs, 1.5 s windows) on the test stack, so that it does
not rot: it runs, measures both ways side by side, writes its JSON and ends with its headline."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "pending_spawns.py"


def test_the_pending_spawns_benchmark_runs_small(stack, tmp_path):
    out = tmp_path / "pending.json"
    run = subprocess.run([sys.executable, str(BENCHMARK), "--home", str(stack.home), "--spawns", "3", "--interval", "0.5",
                          "--seconds", "1.5", "--warmup", "0.5", "--hub-spawns", "0", "--json", str(out)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    assert run.stdout.strip().splitlines()[-1].startswith("3 pending spawns, slurmctld RPCs/s: old (one squeue per spawner)")
    result = json.loads(out.read_text())
    modes = {w["mode"]: w for w in result["windows"]}
    assert set(modes) == {"idle", "old", "new"} and all(w["pending_spawns"] == 3 for w in modes.values())
    # Both ways answered every spawner about once per interval; the shared one with fewer requests.
    assert modes["old"]["answers_per_spawn_per_s"] >= 0.5 and modes["new"]["answers_per_spawn_per_s"] >= 0.5
    assert 0 < result["headline"]["new_rpcs_per_s"] < result["headline"]["old_rpcs_per_s"]
    assert stack.slurm("squeue", "-h", "-n", "aifw-bench-held") == ""  # every held job cancelled
