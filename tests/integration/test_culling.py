"""Culling on the real hub and Slurm: an idle session is culled (its job leaves the queue) while a session
whose kernel computes silently is kept, because the session's server extension reports the busy kernel.

The test stack's own culler (the hub-managed service) has the site's long limits, which no other test's
session reaches. This test runs a second culler, the same module (`python -m aifw.hub_config.culling`),
against the test hub with a 45 s limit, looking every 5 s, and a config file that limits it to this test's
two users, so that it cannot cull another test's session.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from datetime import datetime

import requests
import websocket

from aifw_testing import wait_until

OPTIONS = {"partition": "cpu", "cpus": 1, "memory_gb": 1, "runtime_minutes": 10}
LIMIT_S = 45  # above the session's activity check (30 s) and the spawn's few seconds
# A kernel that prints nothing: first a loop without sleep, then a sleeping one; busy throughout.
SILENT_LOOP = "import time\nt = time.time()\nwhile time.time() - t < 20:\n    pass\nwhile True:\n    time.sleep(1)\n"

CONFIG = """import os
from aifw.hub_config.culling import IdleLimits

limits = IdleLimits.from_environment(os.environ)
ONLY = {only!r}


def only_this_tests_users(*, server, **kw):
    return server["full_name"].split("/")[0] in ONLY and limits.should_cull(server=server, **kw)


c.IdleCuller.cull_arbiter_hook = only_this_tests_users
"""


def start_silent_kernel(base: str, token: str, name: str) -> None:
    """Start a kernel and send it `SILENT_LOOP` without waiting; the websocket is closed at once, so no
    traffic passes the proxy afterwards."""
    headers = {"Authorization": f"token {token}"}
    r = requests.post(f"{base}/api/kernels", headers=headers, json={"name": "python3"}, timeout=60)
    r.raise_for_status()
    ws = websocket.create_connection(base.replace("http", "ws", 1) + f"/api/kernels/{r.json()['id']}/channels",
                                     header=[f"Authorization: token {token}"], timeout=30)
    try:
        ws.send(json.dumps({
            "header": {"msg_id": uuid.uuid4().hex, "username": name, "session": uuid.uuid4().hex,
                       "msg_type": "execute_request", "version": "5.3"},
            "parent_header": {}, "metadata": {}, "channel": "shell",
            "content": {"code": SILENT_LOOP, "silent": False, "store_history": False, "user_expressions": {},
                        "allow_stdin": False}}))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # until the kernel says it is busy with it
            msg = json.loads(ws.recv())
            if msg["header"]["msg_type"] == "status" and msg["content"]["execution_state"] == "busy":
                return
        raise AssertionError("the kernel did not start the loop")
    finally:
        ws.close()


def last_activity(hub, name: str) -> datetime:
    return datetime.fromisoformat(hub.user_model(name)["servers"][""]["last_activity"].replace("Z", "+00:00"))


def test_an_idle_session_is_culled_and_a_silently_busy_one_is_kept(stack, hub, tmp_path):
    idle, busy = stack.learners()[:2]
    tokens = {name: hub.user_token(hub.login(name), name) for name in (idle, busy)}
    for name in (idle, busy):
        r = hub.start(name, OPTIONS, token=tokens[name])
        assert r.status_code in (201, 202), r.text
    for name in (idle, busy):
        hub.wait_ready(name)
    [idle_job] = stack.squeue(idle)
    busy_base = f"{stack.hub_url}/user/{busy}"
    start_silent_kernel(busy_base, tokens[busy], busy)
    busy_since, loop_began = last_activity(hub, busy), time.monotonic()

    (tmp_path / "culler_config.py").write_text(CONFIG.format(only=[idle, busy]))
    env = {"PATH": "/usr/bin:/bin", "JUPYTERHUB_API_URL": stack.api_url, "JUPYTERHUB_API_TOKEN": stack.api_token,
           "AIFW_IDLE_CULL_CPU_SECONDS": str(LIMIT_S), "AIFW_IDLE_CULL_GPU_SECONDS": str(LIMIT_S)}
    log = tmp_path / "culler.log"
    with open(log, "wb") as out:
        culler = subprocess.Popen(
            [sys.executable, "-m", "aifw.hub_config.culling", f"--timeout={LIMIT_S}", "--cull-every=5",
             f"--config={tmp_path / 'culler_config.py'}"], env=env, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT)
    try:
        culled = wait_until(lambda: not hub.user_model(idle)["servers"], timeout=LIMIT_S + 40, interval=1)
        assert culled, f"{idle}'s idle session was not culled; the culler said:\n{log.read_text()[-3000:]}"
        assert wait_until(lambda: idle_job["id"] not in {j["id"] for j in stack.squeue()}, timeout=30), \
            f"job {idle_job['id']} is still in squeue after the cull"
        assert f"Culling server {idle}" in log.read_text(), log.read_text()[-3000:]

        # The busy one had no traffic since its loop began: it is kept a whole limit and a cull round past
        # that, its hub activity moved on, and its server says why.
        kept_until = loop_began + LIMIT_S + 6
        assert not wait_until(lambda: not hub.user_model(busy)["servers"], timeout=kept_until - time.monotonic(),
                              interval=1), f"{busy}'s busy session was culled:\n{log.read_text()[-3000:]}"
        assert last_activity(hub, busy) > busy_since
        view = requests.get(f"{busy_base}/aifw/session", headers={"Authorization": f"token {tokens[busy]}"},
                            timeout=30).json()
        assert view["activity"] == "1 kernel busy", view
        assert f"Culling server {busy}" not in log.read_text()
    finally:
        culler.terminate()
        culler.wait(timeout=10)
