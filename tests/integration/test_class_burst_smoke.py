"""A tiny run of benchmarks/class_burst.py (2 learners, 5 requests per phase, one server start for the CPU
floor) on the test stack, so that it does not rot: every learner is ready and runs its cell, the figures
are ordered as percentiles are, the headline and the JSON are written, and the stack is left as it was (no
bench learner in the course, the project or sandbox.json, no server, no job). No figure is compared with a
target: it is a benchmark, not a timed test."""
from __future__ import annotations

import grp
import json
import subprocess
import sys
from pathlib import Path

import requests

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "class_burst.py"


def test_the_class_burst_benchmark_runs_small_and_leaves_the_stack_as_it_was(stack, tmp_path):
    out = tmp_path / "burst.json"
    run = subprocess.run([sys.executable, str(BENCHMARK), "--home", str(stack.home), "--learners", "2", "--requests", "5",
                          "--cpu-runs", "1", "--timeout", "90", "--json", str(out)],
                         capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    lines = run.stdout.strip().splitlines()
    assert lines[-1].startswith("headline: 2 learners, 2 ready, 0 failed; time-to-ready p50 "), lines[-1]
    assert "all ready / CPU floor" in lines[-1] and "hub API p99" in lines[-1], lines[-1]
    assert any(line.startswith("time-to-ready (request -> 200 via proxy)") for line in lines), run.stdout

    result = json.loads(out.read_text())
    summary = result["summary"]
    assert [r["user"] for r in result["learners"]] == ["bench-learner1", "bench-learner2"]
    assert all(not r.get("error") and 0 < r["ready_s"] < r["cell_s"] for r in result["learners"]), result["learners"]
    # The Starts were pressed within the spread (under one second).
    requests_at = [r["request"] for r in result["learners"]]
    assert max(requests_at) - min(requests_at) < 1
    for key in ("time_to_ready_s", "time_to_cell_s"):
        s = summary[key]
        assert s["n"] == 2 and 0 < s["p50"] <= s["p95"] <= s["max"], (key, s)
    assert summary["cpu_s_per_server_start"] > 0 and summary["cpu_floor_s"] > 0
    assert summary["machine_cpu_s_per_learner"] > 0 and summary["daemon_cpu_s_until_all_ready"]["JupyterHub"] > 0
    assert summary["all_ready_over_cpu_floor"] == summary["all_ready_s"] / summary["cpu_floor_s"]
    for row in ("hub_api_class", "hub_api_baseline", "proxied_class", "proxied_baseline"):
        lat = summary["latency_ms"][row]
        assert lat["n"] == 5 and lat["failed"] == 0 and 0 < lat["p50"] <= lat["p99"] <= lat["max"], (row, lat)
    assert summary["load_cells"] > 0 and result["problems"] == []

    # The stack is as it was: no job, no hub user, and the course, the project and sandbox.json without them.
    bench = {"bench-learner1", "bench-learner2"}
    assert stack.squeue("bench-learner1") == [] and stack.squeue("bench-learner2") == []
    admin = {"Authorization": f"token {stack.api_token}"}
    assert all(requests.get(f"{stack.api_url}/users/{u}", headers=admin, timeout=30).status_code == 404 for u in bench)
    assert not bench & set(json.loads((stack.home / "sandbox.json").read_text())["users"])
    course = next(c for c in stack.stack.site.courses if c.id == result["course"])
    assert not bench & set(grp.getgrnam(course.unix_group).gr_mem)
    assert result["project"] and not bench & set(
        stack.slurm("sacctmgr", "-n", "-P", "show", "assoc", "format=user").split())
