"""`aifw usage` against the test stack's Slurm accounting (slurmdbd): two short jobs of two users in two
projects, then the report's figures per user and project, the --user narrowing and the plot."""
from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="submits jobs as the test users: run as root (make test)")

RESEARCHER, LEARNER = "test-researcher1", "test-learner1"
JOBS = {  # user -> (project, sbatch options); the learner's CPU count is what the report must multiply by
    RESEARCHER: ("proj-llm", ["-p", "gpu", "--gres=gpu:1", "-c", "1"]),
    LEARNER: ("training-2026", ["-p", "cpu", "-c", "2"]),
}
LEARNER_CPUS = 2


def _slurm_env(stack) -> dict[str, str]:
    return dict(os.environ, SLURM_CONF=stack.slurm_conf)


def _wait(what: str, check, timeout_s: float = 60, every_s: float = 0.5):
    """Poll `check()` until it gives something true, at most `timeout_s`; fail naming `what` otherwise."""
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every_s)
    pytest.fail(f"{what} not within {timeout_s:g} s (last seen: {last!r})")


def _sacct_states(stack, ids: list[str]) -> dict[str, tuple[str, int]]:
    out = stack.slurm("sacct", "-X", "-P", "-n", "-j", ",".join(ids), "-o", "JobIDRaw,State,ElapsedRaw")
    states = {}
    for line in out.splitlines():
        job, state, elapsed = line.strip().split("|")
        states[job] = (state.split()[0], int(elapsed))
    return states


def _aifw_usage(stack, *args: str) -> subprocess.CompletedProcess:
    aifw = Path(sys.executable).with_name("aifw")
    return subprocess.run([str(aifw), "usage", "--site", str(stack.stack.site_file), *args],
                          capture_output=True, text=True, timeout=60)


def test_usage_reports_each_users_gpu_and_cpu_hours_by_project(stack, tmp_path):
    users = list(JOBS)
    # Nothing of these users may still run: the window below starts after their earlier jobs ended.
    _wait("the test users' earlier jobs to leave the queue", lambda: not [j for j in stack.squeue() if j["user"] in users])
    since = datetime.now().replace(microsecond=0) + timedelta(seconds=1)
    time.sleep(max(0.0, (since - datetime.now()).total_seconds()) + 0.05)

    ids: dict[str, str] = {}
    try:
        for user, (project, options) in JOBS.items():
            p = subprocess.run(["runuser", "-u", user, "--", "sbatch", "--parsable", "-A", project, *options, "-t", "1",
                                "-J", "aifw-usage-test", "-D", "/tmp", "-o", "/dev/null", "--wrap", "sleep 2"],
                               capture_output=True, text=True, env=_slurm_env(stack), cwd="/tmp", timeout=30)
            assert p.returncode == 0, f"sbatch as {user} in {project}: {p.stderr.strip()}"
            ids[user] = p.stdout.strip().split(";")[0]

        def finished():
            states = _sacct_states(stack, list(ids.values()))
            if len(states) == len(ids) and all(s not in {"PENDING", "RUNNING", "COMPLETING"} for s, _ in states.values()):
                return states
            return None

        states = _wait("both jobs to finish and reach accounting", finished, timeout_s=90)
        assert {s for s, _ in states.values()} == {"COMPLETED"}, f"{states}; queue: {stack.squeue()}"
        elapsed = {user: states[job][1] for user, job in ids.items()}
        assert all(e >= 2 for e in elapsed.values()), elapsed

        wanted = {("proj-llm", RESEARCHER), ("training-2026", LEARNER)}

        def reported():
            # slurmdbd may show a job's state a moment before the rest of its record: ask again, bounded.
            res = _aifw_usage(stack, "--since", since.strftime("%Y-%m-%dT%H:%M:%S"), "--format", "json")
            assert res.returncode == 0, res.stderr
            report = json.loads(res.stdout)
            got = {(r["project"], r["user"]): r for r in report["rows"]}
            return (report, got) if wanted <= set(got) else None

        try:
            data, rows = _wait("both jobs in the usage report", reported, timeout_s=15, every_s=1)
        finally:  # what sacct held, said with the failure
            print(stack.slurm("sacct", "-X", "-P", "-n", "-j", ",".join(ids.values()),
                              "-o", "JobIDRaw,User,Account,State,Start,End,ElapsedRaw,AllocTRES"))
        researcher, learner = rows[("proj-llm", RESEARCHER)], rows[("training-2026", LEARNER)]
        assert researcher["jobs"] == 1 and learner["jobs"] == 1
        assert researcher["gpu_hours"] > 0
        assert researcher["gpu_hours"] == pytest.approx(elapsed[RESEARCHER] / 3600, abs=1e-6)  # 1 GPU
        assert researcher["cpu_hours"] >= researcher["gpu_hours"]  # at least 1 CPU with it
        assert learner["gpu_hours"] == 0
        assert learner["cpu_hours"] == pytest.approx(elapsed[LEARNER] * LEARNER_CPUS / 3600, abs=1e-6)
        # No other job of theirs ran in the window (the queue held none of theirs when it began): any other row
        # of theirs is an older job accounting never saw end (a runaway job), which counts no hours.
        others = [r for r in data["rows"] if r["user"] in users and r not in (researcher, learner)]
        assert all(r["gpu_hours"] == 0 and r["cpu_hours"] == 0 for r in others), others
        assert data["runaway_jobs"] >= len(others)
        projects = {p["project"]: p for p in data["projects"]}
        assert projects["proj-llm"]["gpu_hours"] >= researcher["gpu_hours"]
        assert data["total"]["jobs"] >= 2 and "running" in data["note"]

        res = _aifw_usage(stack, "--since", since.strftime("%Y-%m-%dT%H:%M:%S"), "--user", LEARNER, "--format", "csv")
        assert res.returncode == 0, res.stderr
        lines = list(csv.DictReader(io.StringIO(res.stdout)))
        # Only the learner's rows (the stack's accounting may hold older jobs of theirs that overlap the window,
        # such as runaway jobs with 0 hours), then the total; their row in training-2026 is our job.
        assert {r["user"] for r in lines[:-1]} == {LEARNER} and lines[-1]["project"] == "total", res.stdout
        [mine] = [r for r in lines if r["project"] == "training-2026"]
        assert float(mine["cpu_hours"]) == pytest.approx(learner["cpu_hours"], abs=1e-4)

        plot = tmp_path / "usage.png"
        res = _aifw_usage(stack, "--since", since.strftime("%Y-%m-%dT%H:%M:%S"), "--plot", str(plot))
        assert res.returncode == 0, res.stderr
        assert RESEARCHER in res.stdout and "GPU-hours" in res.stdout and "count up to now" in res.stdout
        assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and plot.stat().st_size > 5000
    finally:
        if ids:
            stack.slurm("scancel", *ids.values())


def test_a_bad_project_name_is_refused_before_sacct(stack):
    res = _aifw_usage(stack, "--project", "proj;rm")
    assert res.returncode == 2 and "--project 'proj;rm' is not a Slurm name" in res.stderr
