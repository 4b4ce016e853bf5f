"""While pending, the queue is explained; failures show Slurm's reason; nothing is orphaned or dropped."""
from __future__ import annotations

import re
import time

from aifw.sandbox.slurm_daemons import start_slurm

from aifw_testing import wait_until


def test_pending_session_explains_the_queue_and_cancel_cancels_the_job(stack, hub):
    name, holder = stack.learners()[0], "test-researcher1"
    fillers = hub.fill_every_gpu(holder)  # every GPU of every node is taken
    try:
        hub.start_pending(name, {"partition": "gpu", "gpus": 1})
        events = hub.progress(name, until=20, stop_when=lambda e: "waiting for free resources" in e.get("message", ""))
        messages = [e["message"] for e in events]
        pending = [m for m in messages if "is pending in partition gpu" in m]
        assert pending, messages
        assert "waiting for free resources" in pending[-1] and "position 1 in the queue" in pending[-1]
        [job] = stack.squeue(name)
        assert job["state"] == "PENDING" and job["reason"] == "Resources"
        # Cancel from the pending page (the same API call): the job leaves the queue.
        hub.stop(name)
        assert wait_until(lambda: stack.squeue(name) == [])
    finally:
        stack.slurm("scancel", *fillers)


def test_scancel_of_a_starting_job_fails_the_spawn_with_the_reason(stack, hub):
    name, holder = stack.learners()[1], "test-researcher1"
    fillers = hub.fill_every_gpu(holder)
    try:
        hub.start_pending(name, {"partition": "gpu", "gpus": 1})
        assert wait_until(lambda: len(stack.squeue(name)) == 1)
        [job] = stack.squeue(name)
        stack.slurm("scancel", job["id"])
        events = hub.progress(name, until=30)
        assert events[-1].get("failed"), events
        assert f"Slurm job {job['id']} ended (CANCELLED" in events[-1]["message"]
        assert wait_until(lambda: not hub.user_model(name)["servers"])
        assert stack.squeue(name) == []
    finally:
        stack.slurm("scancel", *fillers)


def test_a_session_whose_environment_fails_fails_fast_with_its_log(stack, hub):
    name = stack.learners()[0]
    t0 = time.monotonic()
    r = hub.start(name, {"environment": "broken"})
    # The job ends within seconds, before the hub's 10 s wait for a spawn is over: the reply is the failure.
    assert r.status_code == 502, r.text
    message = r.json()["message"]
    # squeue or scontrol may be the one that still knows the job (only scontrol tells its exit code), and the
    # job may end before or after the spawner has seen it running (then it names the node it ran on).
    assert re.fullmatch(r"Slurm job \d+( on node\d+ \(198\.18\.0\.\d+\))? ended \(FAILED(, reason: NonZeroExitCode)?(, exit code 3:0)?\) before its server (started|reported a port)\.\n"
                        r"Last lines of its log \(/home/[^/]+/\.aifw-session-\d+\.log\):\n.*", message, re.S), message
    assert "ERROR: module nonexistent/1.0 not found" in message  # the job's own log lines
    events = hub.progress(name, until=30)
    assert events[-1]["failed"] is True and events[-1]["message"] == f"Spawn failed: {message}", events
    assert time.monotonic() - t0 < 20
    assert stack.squeue(name) == []


def test_slurmctld_down_for_15_seconds_drops_no_session(stack, hub):
    a, b = stack.learners()[:2]
    for name in (a, b):
        assert hub.start(name, {"partition": "cpu"}).status_code in (201, 202)
    for name in (a, b):
        hub.wait_ready(name)
    tokens = {n: hub.user_token(hub.login(n), n) for n in (a, b)}
    paths = stack.stack.slurm_paths
    from aifw.sandbox.processes import stop_pid_file

    stop_pid_file(paths.ctld_pid)
    try:
        time.sleep(15)  # the hub polls every 5 s in the test site: three polls without an answer
        for name in (a, b):
            assert hub.user_model(name)["servers"][""]["ready"], f"{name}'s session was dropped"
            assert hub.run_code(name, tokens[name], "print('still here')").strip() == "still here"
    finally:
        start_slurm(stack.stack)
    assert {j["user"] for j in stack.squeue()} >= {a, b}
    time.sleep(6)  # one more poll with Slurm back
    for name in (a, b):
        assert hub.user_model(name)["servers"][""]["ready"]


def test_slurm_refusing_the_job_shows_slurms_own_words(stack, hub):
    name = stack.learners()[1]
    r = hub.start(name, {"partition": "cpu", "reservation": "no-such-event"})
    assert r.status_code == 400, r.text  # Slurm said no to this request: nothing runs, the reply says why
    message = r.json()["message"]
    assert message.startswith("Slurm refused the session: ") and "reservation" in message.lower(), message
    assert stack.squeue(name) == []
    assert not hub.user_model(name)["servers"]


def test_the_form_lists_the_real_partitions_with_live_availability(stack, hub):
    name = stack.learners()[0]
    session = hub.login(name)
    html = session.get(f"{stack.hub_url}/hub/spawn", timeout=30).text
    idle: dict[str, int] = {}  # sinfo prints a line per partition and node state: add them up
    for line in stack.slurm("sinfo", "-h", "-o", "%P|%C|%t").split():
        partition, cpus, state = line.split("|")
        if not state.endswith("*") and state.rstrip("~#!%$@^-+") in {"idle", "mix", "alloc", "resv"}:
            idle[partition.rstrip("*")] = idle.get(partition.rstrip("*"), 0) + int(cpus.split("/")[1])
    assert set(idle) == {"cpu", "gpu", "debug", "short"}
    for partition, cpus in idle.items():
        assert f'value="{partition}"' in html
        assert f'data-partition="{partition}">now: {cpus} CPUs idle' in html
