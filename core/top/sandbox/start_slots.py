"""The start gate's slot files (`aifw.spawners.start_gate`): one per core of this machine, whose cores the
sandbox's compute nodes share, in `<runtime prefix>/state/start-gate/` (root's, readable by all: a session
locks a slot through a read-only descriptor). Written at every `aifw sandbox up`, so that a machine with more
cores, or an older sandbox, gets its slots."""
from __future__ import annotations

import os
from pathlib import Path

from aifw.spawners.start_gate import GATE_DIR


def write_start_slots(home: Path, cores: int | None = None) -> Path:
    """`cores` slot files (default: this machine's) in home/state/start-gate; extra ones are removed."""
    folder = home.joinpath(*GATE_DIR)
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o755)
    n = max(1, cores or os.cpu_count() or 1)
    wanted = {f"slot-{i}" for i in range(n)}
    for path in folder.glob("slot-*"):
        if path.name not in wanted:
            path.unlink()
    for name in sorted(wanted):
        path = folder / name
        path.touch(exist_ok=True)
        path.chmod(0o644)
    return folder
