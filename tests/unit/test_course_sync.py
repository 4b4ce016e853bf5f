"""The learner's courses copied into their home at session start (aifw.courses.sync), as the batch script
runs it: `python -m aifw.courses.sync`, with the standard library only."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def _share(root: Path) -> Path:
    share = root / "share"
    (share / "c1" / "m1").mkdir(parents=True)
    (share / "c1" / "m1" / "01.ipynb").write_text("{}")
    (share / "c1" / "README.md").write_text("# c1")
    (share / "c2" / "m1").mkdir(parents=True)
    (share / "c2" / "m1" / "02.ipynb").write_text("{}")
    return share


def test_the_module_run_as_the_batch_script_runs_it_copies_the_courses_asked_for(tmp_path):
    share = _share(tmp_path)
    home = tmp_path / "home"
    (home / "courses" / "c1").mkdir(parents=True)
    (home / "courses" / "c1" / "README.md").write_text("mine")  # a learner's own file is never overwritten
    out = subprocess.run([sys.executable, "-m", "aifw.courses.sync", "--share", str(share), "--home", str(home), "c1"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "1 course file(s) added" in out.stdout
    assert (home / "courses" / "c1" / "m1" / "01.ipynb").read_text() == "{}"
    assert (home / "courses" / "c1" / "README.md").read_text() == "mine"
    assert not (home / "courses" / "c2").exists()


def test_the_module_loads_nothing_beyond_the_standard_library(tmp_path):
    code = ("import sys, json; import aifw.courses.sync; "
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('aifw', 'yaml', 'pydantic', 'requests', 'jwt', 'rich', 'nbformat', 'nbgrader'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert json.loads(out.stdout) == ["aifw", "aifw.courses", "aifw.courses.sync"]


def test_the_cli_and_the_module_are_one_function(tmp_path):
    from aifw.courses import publish, sync

    assert publish.sync is sync.sync
    share = _share(tmp_path)
    assert len(sync.sync(share, tmp_path / "home")) == 3
    assert sync.sync(share, tmp_path / "home") == []  # nothing twice
