"""A run of benchmarks/class_prestart.py on the test stack, so that it does not rot: the class starts, each
learner lands in their running lab in the browser, the figures are ordered as they must be, the headline and
the JSON are written, and no session is left. No figure is compared with a target: it is a benchmark."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "class_prestart.py"


def test_the_class_prestart_benchmark_runs_and_leaves_no_session(stack, hub, tmp_path):
    out = tmp_path / "prestart.json"
    run = subprocess.run([sys.executable, str(BENCHMARK), "--home", str(stack.home), "--timeout", "90", "--json", str(out)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    learners = stack.learners()
    assert run.stdout.strip().splitlines()[-1].startswith(
        f"headline: {len(learners)} of {len(learners)} learners in their running lab after login: median "), run.stdout
    result = json.loads(out.read_text())
    assert sorted(result["per_learner"]) == learners and result["problems"] == []
    for t in result["per_learner"].values():
        assert 0 < t["to_lab_page_s"] < t["to_lab_shell_s"] and t["reload_shell_s"] > 0, t
    assert result["class_ready_s"] > 0
    assert all(not hub.user_model(u)["servers"] for u in learners)
    assert not [j for j in stack.squeue() if j["user"] in learners]
