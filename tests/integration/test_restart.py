"""Sessions survive a hub restart (cleanup_servers=False, the spawner's state holds job id, node, port)."""
from __future__ import annotations

from aifw.sandbox import stack as st


def test_hub_restart_keeps_running_sessions(stack, hub):
    a, b = stack.learners()[:2]
    for name in (a, b):
        assert hub.start(name).status_code in (201, 202)
    for name in (a, b):
        hub.wait_ready(name)
    jobs_before = {j["user"]: j["id"] for j in stack.squeue()}
    st.stop_hub(stack.stack)
    st.start_hub(stack.stack, stack.api_token)
    for name in (a, b):
        server = hub.wait_ready(name, timeout=30)
        assert server["state"]["job_id"] == jobs_before[name]
        token = hub.user_token(hub.login(name), name)
        assert hub.run_code(name, token, "print('alive')").strip() == "alive"
    assert {j["user"]: j["id"] for j in stack.squeue()} == jobs_before
