"""The test stack is a cluster: the login node (this host) and compute nodes in network namespaces, each at
its own address with its own hostname and slurmd. A node whose slurmd died is rebuilt by `up`, never
duplicated, and namespaces with the stack's prefix that the site does not have are removed."""
from __future__ import annotations

import os
import signal
import subprocess
import time

from aifw.sandbox import stack as st
from aifw.sandbox.network import namespaces, network_plan
from aifw.sandbox.processes import pid_alive, read_pid


def _srun(stack, user: str, node: str, command: str) -> str:
    env = dict(os.environ, SLURM_CONF=stack.slurm_conf)
    p = subprocess.run(["runuser", "-u", user, "--", "srun", "-w", node, "-p", "debug", "-t", "2", "-J", "net-check",
                        "/bin/sh", "-c", command], capture_output=True, text=True, env=env, timeout=60, cwd="/tmp")
    assert p.returncode == 0, p.stderr
    return p.stdout


def test_each_compute_node_has_its_own_address_and_hostname(stack):
    sandbox = stack.stack.site.sandbox
    assert sandbox.mode == "cluster" and len(sandbox.nodes) == 2
    for node, address in sandbox.nodes:
        out = _srun(stack, "test-learner1", node, "hostname; ip -br -4 addr show dev eth0")
        hostname, addr_line = out.strip().splitlines()
        assert hostname == node
        assert f"{address}/25" in addr_line


def test_a_node_whose_slurmd_died_is_rebuilt_and_stale_namespaces_go(stack):
    s = stack.stack
    plan = network_plan(s.site.sandbox)
    stale = f"{plan.prefix}-node9"  # as a run with more nodes would have left it
    subprocess.run(["ip", "netns", "add", stale], check=True, timeout=10)
    pid_file = s.slurm_paths.slurmd_pid("node2")
    old = read_pid(pid_file)
    assert old is not None
    os.kill(old, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while pid_alive(old) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not pid_alive(old)

    assert st.up(s) is True  # something was restarted
    names = namespaces()
    assert names.count(f"{plan.prefix}-node2") == 1 and stale not in names
    new = read_pid(pid_file)
    assert new is not None and new != old
    assert st.is_up(s)
    assert _srun(stack, "test-learner1", "node2", "hostname").strip() == "node2"
