"""The session panel in a real browser: JupyterLab's status bar shows the session's Slurm job and a
walltime that counts down, and the side panel shows the job's partition."""
from __future__ import annotations

import re

from playwright.sync_api import expect

COUNTDOWN = re.compile(r"^Job (\d+) · (\d+):(\d\d):(\d\d) left$")


def seconds(text: str) -> int:
    m = COUNTDOWN.match(text)
    assert m, f"the status bar says {text!r}"
    return int(m.group(2)) * 3600 + int(m.group(3)) * 60 + int(m.group(4))


def test_the_status_bar_counts_down_and_the_panel_shows_the_partition(stack, hub, page):
    name = stack.learners()[1]
    r = hub.start(name, {"partition": "debug", "cpus": 1, "memory_gb": 1, "runtime_minutes": 20})
    assert r.status_code in (201, 202), r.text
    try:
        hub.wait_ready(name)
        [job] = stack.squeue(name)
        page.goto(f"{stack.hub_url}/hub/login")
        page.fill("#username_input", name)
        page.fill("#password_input", stack.users[name])
        page.click("#login_submit")
        page.goto(f"{stack.hub_url}/user/{name}/lab?reset")
        status = page.locator(".aifw-SessionStatus")
        expect(status).to_have_text(re.compile(rf"^Job {job['id']} · \d+:\d\d:\d\d left$"), timeout=60_000)
        first = status.inner_text()
        assert 19 * 60 <= seconds(first) <= 20 * 60, first
        page.wait_for_function("([el, before]) => el.textContent !== before", arg=[status.element_handle(), first],
                               timeout=5_000)
        assert 0 < seconds(first) - seconds(status.inner_text()) <= 5  # counting down, a second at a time
        assert "aifw-mod-warning" not in (status.get_attribute("class") or "")  # 19 minutes left: no warning

        status.click()  # opens the session panel
        panel = page.locator("#aifw-session-panel")
        expect(panel.locator("tr[data-aifw=partition] td")).to_have_text("debug")
        expect(panel.locator("tr[data-aifw=job] td")).to_have_text(job["id"])
        expect(panel.get_by_role("button", name="Stop")).to_be_visible()
        expect(panel.locator("a.aifw-SessionPanel-log")).to_have_attribute("href", f"/user/{name}/aifw/session/log")
    finally:
        hub.stop(name)
