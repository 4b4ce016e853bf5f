"""Learners cannot read the answers: course sources in the runtime prefix are root-only."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_a_learner_can_read_no_solution_or_hidden_test_in_the_runtime(stack):
    learner = stack.learners()[0]
    venv = Path(sys.executable).parent.parent
    sources = list(venv.glob("lib/python3*/site-packages/aifw/courses/*/source/*/*.ipynb"))
    assert sources, "the course sources are installed for the hub's own use"
    probe = subprocess.run(["runuser", "-u", learner, "--", "cat", str(sources[0])], capture_output=True, text=True)
    assert probe.returncode != 0 and "Permission denied" in probe.stderr
    search = subprocess.run(
        ["runuser", "-u", learner, "--", "grep", "-rlsE", "--include=*.ipynb", "--include=*.yaml", "--include=*.json",
         "BEGIN HIDDEN TESTS|BEGIN SOLUTION", *map(str, venv.glob("lib/python3*/site-packages/aifw")), str(stack.home / "share")],
        capture_output=True, text=True, timeout=300,
    )
    assert search.stdout.split() == []
