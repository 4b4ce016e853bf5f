"""The session panel in a real browser: JupyterLab's status bar shows the session's Slurm job and a
walltime that counts down (Slurm's limit, changed after the job started, in the warning colour under ten
minutes), the warning before an idle cull appears with its Save all, the side panel shows the job's
partition, and its Stop ends the job and returns to the hub."""
from __future__ import annotations

import re
import time
from datetime import datetime, timedelta, timezone
from urllib.parse import urlparse

from playwright.sync_api import expect

COUNTDOWN = re.compile(r"^Job (\d+) · (\d+):(\d\d):(\d\d) left$")


def seconds(text: str) -> int:
    m = COUNTDOWN.match(text)
    assert m, f"the status bar says {text!r}"
    return int(m.group(2)) * 3600 + int(m.group(3)) * 60 + int(m.group(4))


def near_cull(answers: list[dict]):
    """A route for the page's ``aifw/session`` requests: the server's real answer, kept in `answers`; the first
    one from inside the job with its clock moved on, as if its idle limit (the site's, hours long) ended two
    minutes from now. When the server says so is cull_view's (tests/unit/test_culling.py), and the cull itself
    is test_culling.py's; this is the browser's part: JupyterLab shows the warning the answer asks for."""
    def handle(route):
        response = route.fetch()
        try:
            body = response.json()
        except ValueError:  # not the server's answer (the hub's page once the server is gone): as it is
            route.fulfill(response=response)
            return
        answers.append(dict(body))
        if body.get("in_slurm_job") and sum(1 for a in answers if a.get("in_slurm_job")) == 1:
            at = datetime.now(timezone.utc) + timedelta(minutes=2)
            body.update(idle_cull_at=at.isoformat(timespec="seconds"), idle_cull_in_s=120, idle_cull_warning=True)
        route.fulfill(response=response, json=body)
    return handle


def test_the_status_bar_counts_down_the_changed_limit_and_stop_ends_the_job(stack, hub, page):
    name = stack.learners()[1]
    r = hub.start(name, {"partition": "debug", "cpus": 1, "memory_gb": 1, "runtime_minutes": 20})
    assert r.status_code in (201, 202), r.text
    try:
        hub.wait_ready(name)
        [job] = stack.squeue(name)
        # An admin shortens the job after it started: the panel shows Slurm's new limit, not the one asked.
        stack.slurm("scontrol", "update", f"JobId={job['id']}", "TimeLimit=9")
        page.goto(f"{stack.hub_url}/hub/login")
        page.fill("#username_input", name)
        page.fill("#password_input", stack.users[name])
        page.click("#login_submit")
        answers: list[dict] = []
        page.route(lambda url: urlparse(url).path == f"/user/{name}/aifw/session", near_cull(answers))
        page.goto(f"{stack.hub_url}/user/{name}/lab?reset")
        # The warning before an idle cull: the lab shows it, with a Save all (JupyterLab's save-all) that closes it.
        toast = page.locator(".Toastify__toast", has=page.locator(
            ".jp-toast-message", has_text="Idle session: the hub stops it in about 2 minutes"))
        expect(toast).to_be_visible(timeout=60_000)
        expect(toast).to_contain_text("Run a cell or open a file to keep it; save your work.")
        real = next(a for a in answers if a.get("in_slurm_job"))
        assert real["idle_cull_minutes"] == stack.stack.site.session.idle_cull_minutes_cpu, real
        assert real["idle_cull_at"] and real["idle_cull_warning"] is False, real  # the server's own: not yet
        toast.get_by_role("button", name="Save all").click()
        expect(toast).to_have_count(0)
        page.unroute_all()
        status = page.locator(".aifw-SessionStatus")
        expect(status).to_have_text(re.compile(rf"^Job {job['id']} · \d+:\d\d:\d\d left$"), timeout=60_000)
        first = status.inner_text()
        assert 8 * 60 <= seconds(first) <= 9 * 60, first
        expect(status).to_have_class(re.compile(r"\baifw-mod-warning\b"))  # under ten minutes left
        page.wait_for_function("([el, before]) => el.textContent !== before", arg=[status.element_handle(), first],
                               timeout=5_000)
        assert 0 < seconds(first) - seconds(status.inner_text()) <= 5  # counting down, a second at a time

        status.click()  # opens the session panel
        panel = page.locator("#aifw-session-panel")
        expect(panel.locator("tr[data-aifw=partition] td")).to_have_text("debug")
        expect(panel.locator("tr[data-aifw=job] td")).to_have_text(job["id"])
        expect(panel.locator("a.aifw-SessionPanel-log")).to_have_attribute("href", f"/user/{name}/aifw/session/log")

        panel.get_by_role("button", name="Stop").click()
        page.locator(".jp-Dialog").get_by_role("button", name="Stop").click()
        page.wait_for_url(re.compile(r"/hub/home"), timeout=30_000)
        # Stopped through the hub, not behind its back: the hub knows at once, not at its next poll (5 s).
        deadline, model = time.monotonic() + 3, hub.user_model(name)
        while not (model["server"] is None or model["pending"] == "stop") and time.monotonic() < deadline:
            time.sleep(0.2)
            model = hub.user_model(name)
        assert model["server"] is None or model["pending"] == "stop", model
        deadline = time.monotonic() + 30
        while stack.squeue(name) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert stack.squeue(name) == []  # Slurm's job has ended
    finally:
        hub.stop(name)
