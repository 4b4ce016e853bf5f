"""A compute node fails in the middle of a session: Slurm ends the job as NODE_FAIL (sessions are not
requeued), the hub stops the server, logs it and says on the next spawn form how and why the session
ended; nothing is left in the queue, and the node returns to service when its link comes back."""
from __future__ import annotations

import subprocess
from html import unescape

from aifw.sandbox.network import IP, network_plan

from aifw_testing import wait_until


def test_a_node_that_fails_ends_the_session_and_the_hub_says_why(stack, hub):
    name = stack.learners()[0]
    assert hub.start(name, {"partition": "cpu", "runtime_minutes": 10}).status_code in (201, 202)
    hub.wait_ready(name)
    [job] = stack.squeue(name)
    node = stack.slurm("squeue", "-h", "-j", job["id"], "-o", "%N").strip()
    [net] = [n for n in network_plan(stack.stack.site.sandbox).nodes if n.name == node]

    def node_state() -> str:
        return stack.slurm("sinfo", "-h", "-N", "-n", node, "-o", "%t").split()[0]

    subprocess.run([IP, "link", "set", net.veth, "down"], check=True, timeout=15)  # the node drops off the network
    try:
        # SlurmdTimeout=10: NODE_FAIL after ~30 s; the hub polls every 5 s in the test site.
        assert wait_until(lambda: not hub.user_model(name)["servers"], timeout=90), \
            f"the hub still shows {name}'s server; node {node} is {node_state()}"
        assert stack.squeue(name) == []
        form = unescape(hub.login(name).get(f"{stack.hub_url}/hub/spawn", timeout=30).text)
        notice = f"Your last session (Slurm job {job['id']}) ended: NODE_FAIL on {node} ({net.address})"
        why = f"its compute node {node} failed (Slurm lost contact with it)"
        assert notice in form and why in form.split(notice, 1)[1].split("</div>", 1)[0], form[:3000]
        assert f"Session of {name} ended by itself: {notice}" in stack.stack.hub_log.read_text(errors="replace")
    finally:
        subprocess.run([IP, "link", "set", net.veth, "up"], check=True, timeout=15)
    # ReturnToService=2: the node is back as soon as its slurmd answers again.
    # (idle, or resv: the test site's workshop reservation holds a core of every node)
    assert wait_until(lambda: node_state() in ("idle", "resv"), timeout=60), f"node {node} is {node_state()}, not idle"
