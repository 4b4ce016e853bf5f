"""The runtime venv that sessions and nbgrader commands run from, as scripts/install.sh leaves it."""
from __future__ import annotations

import json
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


LSP_PROBE = """
import json, subprocess
from jupyter_server.serverapp import ServerApp
from jupyter_lsp.manager import LanguageServerManager
commands = []
real = subprocess.Popen.__init__
def spy(self, args, *a, **k):
    commands.append(" ".join(map(str, args)) if isinstance(args, (list, tuple)) else str(args))
    return real(self, args, *a, **k)
subprocess.Popen.__init__ = spy
app = ServerApp()
app.load_config_file()  # the venv's etc/jupyter, as every session's server reads it
manager = LanguageServerManager(parent=app)
manager.init_language_servers()
print(json.dumps(commands))
"""


def test_a_session_server_does_not_run_npm_to_look_for_language_servers(stack, tmp_path):
    # jupyter-lsp's search for language servers runs `npm prefix -g` (node, 0.26 CPU-s) at every server start;
    # the venv has none for it to find, and the sessions' config turns the search off (aifw.sandbox.jupyter_config).
    python = stack.home / "venv" / "bin" / "python"
    p = subprocess.run([str(python), "-c", LSP_PROBE], capture_output=True, text=True, timeout=120,
                       env={"HOME": str(tmp_path), "PATH": "/usr/local/bin:/usr/bin:/bin"})
    assert p.returncode == 0, p.stderr[-2000:]
    assert json.loads(p.stdout.strip().splitlines()[-1]) == []


RESTART_PROBE = """
import asyncio, json
from jupyter_server.serverapp import ServerApp
from jupyter_client.ioloop import AsyncIOLoopKernelManager

async def main():
    app = ServerApp()
    app.load_config_file()  # the venv's etc/jupyter, as every session's server reads it
    km = AsyncIOLoopKernelManager(parent=app)
    await km.start_kernel()
    first = km.get_connection_info()["shell_port"]
    await km.restart_kernel(now=True, newports=True)  # what the kernel restarter does when a kernel dies
    second = km.get_connection_info()["shell_port"]
    await km.shutdown_kernel(now=True)
    print(json.dumps([first, second]))

asyncio.run(main())
"""


def test_a_kernel_restarted_with_new_ports_gets_new_ports(stack, tmp_path):
    # The sessions on a node share its loopback: a kernel whose port another session's kernel took dies at
    # start, and the restarter retries with "new random ports". With jupyter_client's port cache those were
    # the same ports five times over; the sessions' config turns the cache off (aifw.sandbox.jupyter_config).
    python = stack.home / "venv" / "bin" / "python"
    p = subprocess.run([str(python), "-c", RESTART_PROBE], capture_output=True, text=True, timeout=120,
                       env={"HOME": str(tmp_path), "PATH": f"{stack.home / 'venv' / 'bin'}:/usr/local/bin:/usr/bin:/bin"})
    assert p.returncode == 0, p.stderr[-2000:]
    first, second = json.loads(p.stdout.strip().splitlines()[-1])
    assert first != second
