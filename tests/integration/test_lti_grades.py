"""Grades back to the LMS against a real hub: learners launch from the test platform into a second hub of the test
stack (hub.authenticator: lti, which runs the aifw-lti-grades service); one real `aifw grade ... --publish` of
their submissions (sandboxed, local workers) puts the launched learner's score on the platform, whose token
endpoint verifies the tool's client assertion against the JWKS the service serves through the hub. Publishing
again changes nothing; a score the platform's score endpoint refuses is queued and sent by the next publish.
The tests share the one grading run and follow one another."""
from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest
import requests

import grading_course as gc
from aifw_testing import wait_until
from lti_platform import (LTI_HUB_PORTS, LaunchSpec, launch, platform_for_lti_hub, remove_launched_accounts,
                          start_lti_hub, stop_lti_hub)

PREFIX = "tgr-"
GROUP = "test-aifw-ltigr"
CONTEXT = "aif-ctx-grades"
COURSE = "aif-foundations"
SERVICE = "/services/aifw-lti-grades/"


@pytest.fixture(scope="module")
def world(stack):
    platform = platform_for_lti_hub(18091, grades=True)
    hub_url = f"http://127.0.0.1:{LTI_HUB_PORTS['bind']}"
    section = platform.site_section([{"context_id": CONTEXT, "course": COURSE}], username_prefix=PREFIX,
                                    account_group=GROUP, grades_retry_minutes=60)
    s = stack.stack
    hub = start_lti_hub(s.site_file, stack.home / "lti-hub-grades", s.venv_bin, stack.slurm_conf, section)
    base = Path(tempfile.mkdtemp(prefix="aifw-lti-grades-"))
    base.chmod(0o711)
    try:
        assert wait_until(lambda: _answers(f"{hub_url}{SERVICE}jwks.json"), timeout=30), \
            f"the grades service's JWKS did not answer through the hub:\n{hub.log_tail()}"
        course = gc.make_course(base / "course")
        course.chmod(0o700)
        for user, nb in {"ada": gc.answer(course), "bob": gc.answer(course, mean="def mean(xs):\n    return 2"),
                         "carl": gc.answer(course), "dave": gc.answer(course, mean="def mean(xs):\n    return 2")}.items():
            gc.submit(course, PREFIX + user, nb)
        yield {"platform": platform, "hub": hub, "course": course, "base": base, "venv_bin": s.venv_bin}
    finally:
        stop_lti_hub(hub)
        platform.stop()
        shutil.rmtree(base, ignore_errors=True)
        remove_launched_accounts(PREFIX, GROUP)


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=5).status_code == 200
    except requests.RequestException:
        return False


def aifw(world, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "AIFW_ADMIN_TOKEN": world["hub"].api_token, "COLUMNS": "250"}
    env.pop("JUPYTERHUB_API_TOKEN", None)
    return subprocess.run([str(Path(world["venv_bin"]) / "aifw"), *args, "--site", str(world["hub"].home / "site.yaml"),
                           "--course-dir", str(world["course"])], capture_output=True, text=True, env=env,
                          timeout=timeout)


def row(output: str, user: str) -> str:
    """The learner's row of the publish table (printed last, after aifw grade's own table)."""
    return next((line for line in reversed(output.splitlines()) if f"│ {PREFIX}{user} " in line), "")


def test_a_graded_launched_learners_score_reaches_the_platform(world):
    platform, hub = world["platform"], world["hub"]
    for user, ags in (("ada", "ok"), ("bob", "malformed")):
        r, _, _ = launch(platform, LaunchSpec(user=user, context_id=CONTEXT, ags=ags))
        assert r.status_code == 302, f"{user}: {r.status_code} {r.text[:300]}\n{hub.log_tail()}"
    assert f"{PREFIX}bob: no grade passback" in hub.log.read_text(), hub.log_tail()
    res = aifw(world, "grade", COURSE, gc.ASSIGNMENT, "--runs-dir", str(world["base"] / "runs"), "--local", "2",
               "--no-feedback", "--no-reports", "--publish", timeout=240)
    out = res.stdout + res.stderr
    # Not every learner could get a score (bob's launch could not take grades, carl and dave never launched): 1.
    assert res.returncode == 1, out
    assert f"{COURSE}/{gc.ASSIGNMENT}: 1 sent, 2 not launched, 1 no passback" in out, out
    assert "sent" in row(out, "ada") and "not-launched" in row(out, "carl") and "no-passback" in row(out, "bob")
    (item,) = platform.line_items.values()
    assert (item["resourceId"], item["tag"], item["scoreMaximum"]) == (gc.ASSIGNMENT, "aifw:tiny", gc.MAX_SCORE)
    (score,) = platform.scores
    assert (score["userId"], score["scoreGiven"], score["scoreMaximum"], score["activityProgress"],
            score["gradingProgress"], score["_line_item"]) == ("ada", 6.0, 6.0, "Completed", "FullyGraded", item["id"])
    assert platform.tokens and not platform.token_refusals
    # The tool's key: made by the service under the hub's state dir, private, never in the log.
    key = hub.home / "state" / "hub" / "lti-grades" / "tool-key.pem"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and b"PRIVATE KEY" in key.read_bytes()
    assert "PRIVATE KEY" not in hub.log.read_text()


def test_publishing_again_changes_nothing_on_the_platform(world):
    platform = world["platform"]
    before = (list(platform.scores), dict(platform.line_items))
    res = aifw(world, "lti", "publish", COURSE, gc.ASSIGNMENT)
    out = res.stdout + res.stderr
    assert res.returncode == 1 and "1 unchanged, 2 not launched, 1 no passback" in out, out
    assert (platform.scores, platform.line_items) == before


def test_a_score_the_platform_refuses_is_queued_and_sent_by_the_next_publish(world):
    platform, hub = world["platform"], world["hub"]
    r, _, _ = launch(platform, LaunchSpec(user="dave", context_id=CONTEXT))
    assert r.status_code == 302, hub.log_tail()
    platform.fail_scores = 503
    try:
        res = aifw(world, "lti", "publish", COURSE, gc.ASSIGNMENT)
    finally:
        platform.fail_scores = None
    out = res.stdout + res.stderr
    assert res.returncode == 1 and "1 unchanged, 1 queued" in out and "HTTP 503" in row(out, "dave"), out
    assert [s["userId"] for s in platform.scores] == ["ada"]
    res = aifw(world, "lti", "publish", COURSE, gc.ASSIGNMENT)
    out = res.stdout + res.stderr
    assert "1 sent, 1 unchanged" in out and "sent" in row(out, "dave"), out
    assert [(s["userId"], s["scoreGiven"]) for s in platform.scores] == [("ada", 6.0), ("dave", 3.0)]
    assert len(platform.line_items) == 1
