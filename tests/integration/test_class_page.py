"""The trainer's "Start the class" button's handler (/hub/api/aifw/class/<course>, aifw.hub_config.class_page) on
the real hub and Slurm: a trainer logged in starts every learner's session on a module's preset and watches them
become ready; a second start keeps them; a wrong body, a user who teaches nothing, a token without the
learners' servers and an unknown course are refused and start nothing."""
from __future__ import annotations

import requests

from aifw_testing import wait_until

COURSE = "aif-foundations"
NON_LEARNERS = ("test-researcher1", "test-trainer1")
MODULE = "m3-dask-on-slurm"  # cpu, no GPU: starts at once on the test cluster


def _no_sessions(stack, hub, names) -> None:
    for name in names:
        hub.stop(name)
    assert wait_until(lambda: not [j for j in stack.squeue() if j["user"] in names], timeout=30), stack.squeue()


def _url(stack, course: str = COURSE) -> str:
    return f"{stack.hub_url}/hub/api/aifw/class/{course}"


def _nobody_started(stack, hub, names) -> None:
    for name in names:
        assert hub.user_model(name)["servers"] == {}, name
    assert not [j for j in stack.squeue() if j["user"] in names], stack.squeue()


def test_the_trainer_starts_the_class_from_the_hub_and_every_learner_is_ready(stack, hub):
    learners = stack.learners()
    _no_sessions(stack, hub, [*learners, *NON_LEARNERS])
    trainer = hub.login("test-trainer1")
    try:
        # A body the handler cannot take: 400, what to fix, and nothing starts.
        r = trainer.post(_url(stack), json={"module": "m9-nope", "stop_unused": "soon"}, timeout=30)
        assert r.status_code == 400, r.text
        assert "has no module 'm9-nope'" in r.json()["message"] and "is not a duration" in r.json()["message"]
        _nobody_started(stack, hub, learners)

        r = trainer.post(_url(stack), json={"module": MODULE, "stop_unused": "never"}, timeout=120)
        assert r.status_code == 200, r.text
        started = r.json()
        assert started["started"] == sorted(learners) and started["refused"] == {}, started
        assert started["user_options"]["partition"] == "cpu" and started["user_options"]["gpus"] == 0

        def status():
            r = trainer.get(_url(stack), timeout=30)
            assert r.status_code == 200, r.text
            return r.json()

        assert wait_until(lambda: status()["ready"] == len(learners), timeout=90, interval=1), status()
        now = status()
        assert now["total"] == len(learners) and now["summary"] == f"{len(learners)} learners: {len(learners)} ready"
        assert all(learner["detail"].startswith("on node") for learner in now["learners"]), now
        for name in learners:
            assert hub.user_model(name)["servers"][""]["user_options"]["partition"] == "cpu"
        # Only the learners: not the trainer, not anyone else.
        _nobody_started(stack, hub, NON_LEARNERS)
        # Again: the running sessions are kept as they are.
        r = trainer.post(_url(stack), json={"module": MODULE}, timeout=60)
        assert r.status_code == 200 and r.json()["kept"] == sorted(learners) and r.json()["started"] == [], r.text
    finally:
        _no_sessions(stack, hub, learners)


def test_someone_who_does_not_teach_the_course_or_a_narrow_token_may_not_and_nothing_starts(stack, hub):
    learners = stack.learners()
    _no_sessions(stack, hub, learners)
    other = hub.login("test-researcher1")
    for method in ("GET", "POST"):
        r = other.request(method, _url(stack), json={} if method == "POST" else None, timeout=30)
        assert r.status_code == 403, r.text
        assert "Only the trainers of aif-foundations" in r.json()["message"]
    # The trainer's own token, made with fewer scopes than the learners' servers need: refused whole.
    trainer = hub.login("test-trainer1")
    r = trainer.post(f"{stack.api_url}/users/test-trainer1/tokens", timeout=30,
                     json={"note": "tests: read only", "expires_in": 600,
                           "scopes": ["read:groups!group=course-aif-foundations-learners",
                                      "read:servers!group=course-aif-foundations-learners"]})
    assert r.status_code in (200, 201), r.text
    narrow = {"Authorization": f"token {r.json()['token']}"}
    assert requests.get(_url(stack), headers=narrow, timeout=30).status_code == 200  # it may watch ...
    r = requests.post(_url(stack), headers=narrow, json={}, timeout=30)  # ... but not start
    assert r.status_code == 403 and "do not include start:servers" in r.json()["message"], r.text
    assert trainer.get(_url(stack, "no-such-course"), timeout=30).status_code == 404
    _nobody_started(stack, hub, learners)
