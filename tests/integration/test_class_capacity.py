"""The one-node sandbox has job slots for a class: 12+ one-CPU jobs run at once on a 2-core machine."""
from __future__ import annotations

import time


def test_twelve_one_cpu_jobs_run_at_the_same_time(stack, hub):
    ids = [hub.submit_filler("test-researcher1", "cpu", "gpu:0", seconds=120) for _ in range(12)]
    try:
        deadline = time.monotonic() + 30
        running = []
        while time.monotonic() < deadline:
            running = [j for j in stack.squeue("test-researcher1") if j["id"] in ids and j["state"] == "RUNNING"]
            if len(running) == 12:
                break
            time.sleep(0.5)
        assert len(running) == 12, stack.squeue("test-researcher1")
    finally:
        stack.slurm("scancel", *ids)
