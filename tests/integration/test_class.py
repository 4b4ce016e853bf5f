"""A class that is ready before it arrives (`aifw class start|status`), on the real hub and Slurm: every
learner of the course gets a running session, nobody else does, a trainer's own token may do it and another
user's may not, a session no one uses stops after the time the trainer set while a used one is kept, and a
start that Slurm cannot serve at once says how many started and why the others wait."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from aifw_testing import HubClient, wait_until

COURSE = "aif-foundations"
UNUSED_S = 45  # the pre-started sessions stop when unused this long after they are ready
NON_LEARNERS = ("test-researcher1", "test-trainer1")
RESERVATION = "test-workshop"  # the test site's event: 2 cores, one on each node (tests/conftest.py)


def aifw_class(stack, *args: str, token_file: Path | None = None, timeout: float = 150) -> subprocess.CompletedProcess:
    aifw = Path(sys.executable).with_name("aifw")
    extra = ["--token-file", str(token_file)] if token_file else []
    return subprocess.run([str(aifw), "class", *args, "--site", str(stack.stack.site_file), *extra],
                          capture_output=True, text=True, timeout=timeout)


def _out(p: subprocess.CompletedProcess) -> str:
    return f"exit {p.returncode}\n{p.stdout}\n{p.stderr}"


def _no_sessions(stack, hub, names) -> None:
    for name in names:
        hub.stop(name)
    assert wait_until(lambda: not [j for j in stack.squeue() if j["user"] in names], timeout=30), stack.squeue()


def test_a_class_slurm_cannot_start_at_once_says_how_many_started_and_why_the_others_wait(stack, hub):
    learners = stack.learners()
    _no_sessions(stack, hub, learners)
    fillers = hub.fill_every_gpu("test-researcher1")
    try:
        p = aifw_class(stack, "start", COURSE, "--partition", "gpu", "--gpus", "1", "--runtime", "10", "--wait", "4")
        assert p.returncode == 3, _out(p)
        # Both wait: one for the GPUs, the other behind it (the reason Slurm gives the second job).
        assert f"{len(learners)} learners: 0 ready, {len(learners)} waiting in the queue (" in p.stdout, _out(p)
        assert "waiting for free resources" in p.stdout, _out(p)
        for name in learners:
            assert name in p.stdout
            assert hub.user_model(name)["servers"][""]["pending"] == "spawn"
    finally:
        _no_sessions(stack, hub, learners)
        stack.slurm("scancel", *fillers)


@pytest.fixture(scope="module")
def prestarted(stack):
    """The course's class started in the event's reservation, to stop when unused for UNUSED_S s; its sessions
    are stopped at the end."""
    hub = HubClient(stack)
    learners = stack.learners()
    _no_sessions(stack, hub, [*learners, *NON_LEARNERS])
    p = aifw_class(stack, "start", COURSE, "--partition", "cpu", "--runtime", "10", "--reservation", RESERVATION,
                   "--stop-unused", f"{UNUSED_S}s", "--wait", "90")
    ready = time.monotonic()
    try:
        yield p, ready
    finally:
        _no_sessions(stack, hub, learners)


def test_every_learner_of_the_course_finds_their_lab_running_at_login(prestarted, stack, hub):
    p, _ready = prestarted
    learners = stack.learners()
    assert p.returncode == 0, _out(p)
    assert f"{len(learners)} learners: {len(learners)} ready" in p.stdout, _out(p)
    jobs = dict(line.split("|", 1) for line in stack.slurm("squeue", "-h", "-t", "RUNNING", "-o", "%u|%P %v %N").split("\n") if line)
    nodes = {n for n, _ in stack.stack.site.sandbox.nodes}
    for name in learners:
        server = hub.user_model(name)["servers"][""]
        assert server["ready"] and server["user_options"]["reservation"] == RESERVATION
        assert server["user_options"]["stop_if_unused_s"] == UNUSED_S
        partition, reservation, node = jobs[name].split()
        assert (partition, reservation) == ("cpu", RESERVATION) and node in nodes, jobs
    # The learner logs in and lands in their running lab: the hub sends them there, nothing starts.
    session = hub.login(learners[0])
    t0 = time.monotonic()
    r = session.get(f"{stack.hub_url}/hub/", timeout=30)
    took = time.monotonic() - t0
    assert r.status_code == 200 and r.url.rstrip("/").endswith(f"/user/{learners[0]}/lab"), (r.status_code, r.url)
    print(f"time-to-lab after login (pre-started): {took:.2f} s")


def test_nobody_outside_the_course_gets_a_session_or_may_start_the_class(prestarted, stack, hub, tmp_path):
    for name in NON_LEARNERS:
        assert hub.user_model(name)["servers"] == {}, name
    assert not [j for j in stack.squeue() if j["user"] in NON_LEARNERS]
    # A trainer of the course may watch (and start) the class with a token of their own ...
    trainer_token = tmp_path / "trainer.token"
    trainer_token.write_text(hub.user_token(hub.login("test-trainer1"), "test-trainer1"))
    p = aifw_class(stack, "status", COURSE, token_file=trainer_token)
    assert p.returncode == 0 and f"{len(stack.learners())} learners:" in p.stdout, _out(p)
    # ... a user who teaches nothing may not.
    other_token = tmp_path / "other.token"
    other_token.write_text(hub.user_token(hub.login("test-researcher1"), "test-researcher1"))
    p = aifw_class(stack, "start", COURSE, "--partition", "cpu", "--wait", "0", token_file=other_token)
    assert p.returncode == 1 and "HTTP 403" in p.stderr and "Token page" in p.stderr, _out(p)
    assert hub.user_model("test-researcher1")["servers"] == {}


def test_an_unused_session_stops_after_the_trainers_time_and_a_used_one_is_kept(prestarted, stack, hub):
    _p, ready = prestarted
    used, unused = stack.learners()[:2]
    # The learner comes after the start's own activity has settled (aifw.spawners.prestart.USED_AFTER_S), and
    # after JupyterHub's activity_resolution (30 s: it records a user's activity at most that often, and the
    # spawn recorded some).
    time.sleep(max(0.0, ready + 33 - time.monotonic()))
    assert time.monotonic() < ready + UNUSED_S - 5, "too late to use the session before it would stop"
    session = hub.login(used)
    assert session.get(f"{stack.hub_url}/hub/home", timeout=30).status_code == 200
    assert wait_until(lambda: not hub.user_model(unused)["servers"], timeout=UNUSED_S + 30, interval=1), \
        f"{unused}'s unused session still runs: {hub.user_model(unused)['servers']}"
    assert wait_until(lambda: not stack.squeue(unused), timeout=30), stack.squeue(unused)  # cancelled, then gone
    # The learner who came keeps theirs, and the other one learns why theirs is gone.
    assert hub.user_model(used)["servers"][""]["ready"]
    assert [j["state"] for j in stack.squeue(used)] == ["RUNNING"]
    form = hub.login(unused).get(f"{stack.hub_url}/hub/spawn", timeout=30).text
    assert f"was not used within {UNUSED_S} s of being ready" in form
    p = aifw_class(stack, "status", COURSE)
    assert p.returncode == 0 and "1 ready" in p.stdout and "1 not started" in p.stdout, _out(p)
