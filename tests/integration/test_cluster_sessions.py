"""Sessions run on compute nodes: the hub routes to the node's address (node names resolve nowhere), the
kernel reached through the proxy runs on that node, and the spawn progress and the session log name it."""
from __future__ import annotations

import pwd
from pathlib import Path

# What the kernel says about where it runs: hostname, the node's address, Slurm's node name, the job.
WHERE = ("import os, socket, subprocess; "
         "print(socket.gethostname(), subprocess.run(['hostname', '-I'], capture_output=True, text=True).stdout.split()[0], "
         "os.environ['SLURMD_NODENAME'], os.environ['SLURM_JOB_ID'])")


def test_two_sessions_land_on_two_nodes_each_reached_at_its_nodes_address(stack, hub):
    nodes = dict(stack.stack.site.sandbox.nodes)  # node1 -> 198.18.0.139, node2 -> 198.18.0.140
    assert len(nodes) >= 2, nodes
    users = stack.learners()[:2]
    tokens = {}
    for name in users:  # one after the other: with LLN=YES the second goes to the node the first left idle
        tokens[name] = hub.user_token(hub.login(name), name)
        r = hub.start(name, {"partition": "cpu", "runtime_minutes": 10}, token=tokens[name])
        assert r.status_code in (201, 202), r.text
        hub.wait_ready(name)
    placed = {}
    for name in users:
        [job] = stack.squeue(name)
        node = stack.slurm("squeue", "-h", "-j", job["id"], "-o", "%N").strip()
        hostname, address, slurm_node, job_id = hub.run_code(name, tokens[name], WHERE).split()
        # The kernel answered through the proxy from the node Slurm put it on, at that node's own address.
        assert (hostname, address, slurm_node, job_id) == (node, nodes[node], node, job["id"])
        placed[node] = (name, job_id)
        # The sandbox's nodes share the login node's cores: a session's kernel runs at nice 10, below the hub.
        assert hub.run_code(name, tokens[name], "import os; print(os.nice(0))").strip() == "10"
    assert sorted(placed) == sorted(nodes)[:2], placed

    hub_log = stack.stack.hub_log.read_text(errors="replace")
    for node, (name, job_id) in placed.items():
        where = f"{node} ({nodes[node]})"
        # The spawn page's progress events (also written to the hub's log) name the node and its address.
        assert f"{name}: Job {job_id} is running on node {where}; starting JupyterLab" in hub_log
        assert f"{name}: JupyterLab listens on node {where}, port " in hub_log
        # The session's own log names the node too, and the job cannot be requeued behind the hub's back.
        log = Path(pwd.getpwnam(name).pw_dir) / f".aifw-session-{job_id}.log"
        assert f"job {job_id} as {name} on node {node}, hostname {node}, address {nodes[node]}" in log.read_text()
        assert " Requeue=0 " in stack.slurm("scontrol", "show", "job", "-o", job_id)
