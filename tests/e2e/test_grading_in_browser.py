"""Grading in a real browser: a learner submits from JupyterLab's Assignments panel; the grader collects,
`aifw grade` grades; the course's trainer opens the formgrader and sees the learner's score."""
from __future__ import annotations

import re
import subprocess
import time

from playwright.sync_api import expect

from aifw_testing import run_as

COURSE = "aif-foundations"
MODULE = "m1-first-steps"
LEARNER = "test-learner2"


def login(page, stack, name):
    page.goto(f"{stack.hub_url}/hub/login")
    page.fill("#username_input", name)
    page.fill("#password_input", stack.users[name])
    page.click("#login_submit")
    page.wait_for_url(re.compile(r"/hub/(home|spawn)"))


def _newest_submission(exchange, learner):
    subs = sorted((exchange / "inbound" / learner).glob(f"{learner}+{MODULE}+*"), key=lambda p: p.name)
    return subs[-1].name if subs else None


def test_learner_submits_in_lab_and_trainer_sees_the_grade_in_the_formgrader(stack, hub, page):
    site = stack.stack.site
    entry = site.course(COURSE)
    venv, course_dir = site.paths.venv, site.paths.course_dir(COURSE)
    exchange = site.paths.exchange_root / COURSE
    p = run_as(entry.grader_account, ["nbgrader", "release_assignment", MODULE, "--force"], venv=venv, cwd=str(course_dir))
    assert p.returncode == 0, p.stderr[-2000:]
    before = _newest_submission(exchange, LEARNER)

    # --- the learner, in JupyterLab
    hub.started.add(LEARNER)
    login(page, stack, LEARNER)
    token = hub.user_token(hub.login(LEARNER), LEARNER)
    assert hub.start(LEARNER, {"partition": "cpu"}, token=token).status_code in (201, 202)
    hub.wait_ready(LEARNER)
    page.goto(f"{stack.hub_url}/user/{LEARNER}/lab?reset")
    expect(page.locator(".jp-LauncherCard").first).to_be_visible(timeout=90_000)
    page.keyboard.press("Control+Shift+c")
    page.keyboard.type("Assignment List")
    page.keyboard.press("Enter")
    fetched = page.locator("#fetched_assignments_list")
    expect(fetched).to_contain_text(MODULE, timeout=60_000)
    fetched.locator(".list_item", has_text=MODULE).first.get_by_role("button", name="Submit").click()
    deadline = time.monotonic() + 60
    while _newest_submission(exchange, LEARNER) == before and time.monotonic() < deadline:
        time.sleep(0.5)
    after = _newest_submission(exchange, LEARNER)
    assert after and after != before
    expect(page.locator("#submitted_assignments_list")).to_contain_text(after.split("+")[2][:19], timeout=30_000)
    hub.stop(LEARNER)
    hub.started.discard(LEARNER)

    # --- the grader collects, aifw grade grades (local workers: the browser is the point here)
    p = run_as(entry.grader_account, ["nbgrader", "collect", MODULE, "--update"], venv=venv, cwd=str(course_dir))
    assert p.returncode == 0, p.stderr[-2000:]
    res = subprocess.run([str(venv / "bin" / "aifw"), "grade", COURSE, MODULE, "--site", str(stack.stack.site_file),
                          "--student", LEARNER, "--force", "--local", "1", "--no-feedback"],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    from aifw.gradebook import submission_scores

    score, max_score = submission_scores(course_dir, MODULE, [LEARNER])[LEARNER]

    # --- the trainer, in the course's formgrader
    page.goto(f"{stack.hub_url}/hub/logout")
    login(page, stack, "test-trainer1")
    page.goto(f"{stack.hub_url}/services/formgrader-{COURSE}/formgrader/manage_submissions/{MODULE}")
    row = page.locator("tr", has_text=LEARNER).first
    expect(row).to_be_visible(timeout=90_000)
    expect(row).to_contain_text(re.compile(rf"{score:g}(\.0+)? / {max_score:g}(\.0+)?"))
    page.goto(f"{stack.hub_url}/services/formgrader-{COURSE}/formgrader/manage_students")
    expect(page.locator("tr", has_text=LEARNER).first).to_be_visible(timeout=60_000)
