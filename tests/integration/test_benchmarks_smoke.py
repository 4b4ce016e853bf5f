"""Tiny runs of benchmarks/spawn_overhead.py (one spawn of each kind) and benchmarks/server_startup.py (one
start of each configuration, one extension turned off, one profiled start) on the test stack, so that they do not rot: each
runs, prints its table, writes its JSON and ends with its headline. No figure is asserted: they are
benchmarks, not timed tests."""
from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def run_benchmark(name: str, *args: str, timeout: float) -> subprocess.CompletedProcess:
    run = subprocess.run([sys.executable, str(BENCHMARKS / name), *args], capture_output=True, text=True, timeout=timeout)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return run


def answers(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def test_spawn_overhead_runs_once_of_each_kind(stack, tmp_path):
    out = tmp_path / "spawn.json"
    user = stack.learners()[0]
    run = run_benchmark("spawn_overhead.py", "--home", str(stack.home), "--runs", "1", "--user", user, "--settle", "0",
                        "--timeout", "90", "--json", str(out), timeout=300)
    lines = run.stdout.strip().splitlines()
    assert lines[-1].startswith("headline: ours ") and "ours/floor" in lines[-1] and "ours/stock" in lines[-1], lines[-1]
    assert any(line.startswith("ours (AIFSlurmSpawner)") for line in lines), run.stdout
    assert any(line.strip().startswith("Slurm scheduling (submitted -> allocated)") for line in lines), run.stdout
    result = json.loads(out.read_text())
    assert [r["kind"] for r in result["runs"]] == ["ours", "stock", "floor"]
    assert all(not r.get("error") and r["total_s"] > 0 for r in result["runs"]), result["runs"]
    ours = result["runs"][0]
    # Our spawn is broken down from the hub's, Slurm's and the session's logs: every event of the chain seen.
    assert set(ours["events"]) >= {"request", "submitted", "allocated", "launched", "reported", "listening",
                                   "hub_ready", "answered"}, ours["events"]
    assert abs(sum(ours["segments_s"].values()) - ours["total_s"]) < 0.01
    # Nothing is left behind: the stock hub and its proxy are gone, and so is every job of the user.
    assert not answers("127.0.0.1", 18400) and not answers("127.0.0.1", 18401)
    assert stack.squeue(user) == []


def test_server_startup_runs_once_of_each_configuration(stack, tmp_path):
    out = tmp_path / "startup.json"
    run = run_benchmark("server_startup.py", "--home", str(stack.home), "--runs", "1", "--extensions", "jupyter_lsp",
                        "--block", "", "--json", str(out), timeout=240)
    lines = run.stdout.strip().splitlines()
    assert lines[-1].startswith("headline: server start as sessions "), lines[-1]
    assert any(line.startswith("bare (no optional extension)") for line in lines), run.stdout
    assert any("imports each extension brought in" in line for line in lines), run.stdout
    result = json.loads(out.read_text())
    rows = {r["configuration"]: r for r in result["configurations"]}
    assert set(rows) == {"as sessions", "without jupyter_lsp", "bare (no optional extension)"}
    assert all(r["start_s"] and r["start_s"] > 0 and r["cpu_s"] is not None for r in rows.values()), rows
    # The profiled start says what each extension imported, and what the server itself did, within its time.
    imports = result["extension_import_s"]
    assert set(imports) == {*result["extensions_on"], "(the server itself)"} and imports["jupyterlab"] > 0
    assert 0 < sum(imports.values()) <= result["profiled_start_s"]
    assert result["import_self_s_by_package"] and not result["failures"]
