"""sandbox.json: what `aifw sandbox up` hands its admin and the tests (hub URL, the admin API token, the
demo users' passwords, where the logs and Slurm's config are). Root-only (0600), written atomically."""
from __future__ import annotations

import json
import os

from .layout import Stack
from .jsonfiles import read_json_object


def load_sandbox_json(stack: Stack) -> dict:
    """The record of the last `up`; {} when there is none yet. A record that cannot be read is an error
    (reading it as empty would hand out new passwords and a new admin token)."""
    return read_json_object(stack.sandbox_json, "Repair it, or move it away to have `aifw sandbox up` write a "
                                                 "new one (with new demo passwords and a new admin token).")


def write_sandbox_json(stack: Stack, data: dict) -> None:
    tmp = stack.sandbox_json.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=2)
    os.chmod(tmp, 0o600)
    os.replace(tmp, stack.sandbox_json)
