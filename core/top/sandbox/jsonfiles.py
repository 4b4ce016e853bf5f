"""The sandbox's small JSON files (sandbox.json, the sessions' page_config.json), read strictly: a file
that is not there is empty, a damaged one is an error that says what to do (rewriting it would lose what
it holds)."""
from __future__ import annotations

import json
from pathlib import Path

from .processes import SandboxError


def read_json_object(path: Path, advice: str) -> dict:
    """The JSON object in `path` ({} when there is no file); SandboxError naming the file, what is wrong
    and `advice` (what to do) when it cannot be read or holds no JSON object."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    except OSError as err:
        raise SandboxError(f"cannot read {path}: {err.strerror}") from None
    try:
        data = json.loads(text)
    except ValueError as err:
        data, problem = None, str(err)
    else:
        problem = "it is no JSON object"
    if not isinstance(data, dict):
        raise SandboxError(f"{path} is damaged ({problem}). {advice}")
    return data
