"""Sessions survive a hub restart (cleanup_servers=False, the spawner's state holds job id, node, port)."""
from __future__ import annotations

from aifw.sandbox import stack as st
from aifw.sandbox.hub import start_hub, stop_hub


def test_hub_restart_keeps_running_sessions(stack, hub):
    a, b = stack.learners()[:2]
    for name in (a, b):
        assert hub.start(name).status_code in (201, 202)
    for name in (a, b):
        hub.wait_ready(name)
    jobs_before = {j["user"]: j["id"] for j in stack.squeue()}
    stop_hub(stack.stack)
    start_hub(stack.stack, stack.api_token)
    for name in (a, b):
        server = hub.wait_ready(name, timeout=30)
        assert server["state"]["job_id"] == jobs_before[name]
        token = hub.user_token(hub.login(name), name)
        assert hub.run_code(name, token, "print('alive')").strip() == "alive"
    assert {j["user"]: j["id"] for j in stack.squeue()} == jobs_before


def test_sandbox_up_again_changes_nothing_and_says_so(stack):
    import subprocess
    import sys
    from pathlib import Path

    before = st.status(stack.stack)
    aifw = Path(sys.executable).with_name("aifw")
    out = subprocess.run(
        [str(aifw), "sandbox", "up", "--home", str(stack.home), "--site", str(stack.home / "test-site.yaml")],
        capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "already up; nothing changed" in out.stdout
    assert st.status(stack.stack) == before
    status = subprocess.run([str(aifw), "sandbox", "status", "--home", str(stack.home), "--site", str(stack.home / "test-site.yaml")],
                            capture_output=True, text=True, timeout=60)
    assert status.returncode == 0 and "slurmctld" in status.stdout and "running (pid" in status.stdout
