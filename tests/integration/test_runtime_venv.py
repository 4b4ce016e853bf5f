"""The runtime venv that sessions and nbgrader commands run from, as scripts/install.sh leaves it."""
from __future__ import annotations

import subprocess

PROBE = """
import sys
from jupyter_events.logger import EventLogger
EventLogger().register_event_schema({
    "$id": "https://aifw.example/probe", "version": "1", "type": "object",
    "properties": {"where": {"type": "string", "format": "iri"}}})
print("rfc3987_syntax" in sys.modules)
"""


def test_jupyter_events_validates_schemas_without_rfc3987_syntax(stack):
    # install.sh takes rfc3987-syntax out: it is 1.5 s of every server start and nbgrader command, and
    # jsonschema, which alone imports it (for the `iri` format), skips that check without it.
    python = stack.home / "venv" / "bin" / "python"
    p = subprocess.run([str(python), "-c", PROBE], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.strip() == "False", p.stdout
