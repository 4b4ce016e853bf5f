"""The hub's own pages in a real browser, on the real hub and Slurm: the spawn page is titled for the site; a
launch link that names a server opens the form for that session, pre-filled; the home page shows a card per
session (two side by side: the default one and a named GPU one, each with partition, node, a walltime counting
down, Open and Stop; Stop on one leaves the other) and, once they are stopped, "start again with my last
settings" and the learner's course with a launch button per module; each page is photographed in light and
dark mode and at phone width (AIFW_SCREENSHOTS, default /tmp/aifw-screenshots), so that a person can look at
them."""
from __future__ import annotations

import os
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from playwright.sync_api import expect

from aifw_testing import wait_until

SHOTS = Path(os.environ.get("AIFW_SCREENSHOTS", "/tmp/aifw-screenshots"))
PHONE = {"width": 390, "height": 844}


def _shoot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        page.wait_for_function(f"document.documentElement.getAttribute('data-bs-theme') === '{scheme}'")
        page.screenshot(path=str(SHOTS / f"{name}-{scheme}.png"), full_page=True)
    page.set_viewport_size(PHONE)
    # At phone width nothing is wider than the screen (no sideways scrolling).
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"), name
    page.screenshot(path=str(SHOTS / f"{name}-phone.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 900})
    page.emulate_media(color_scheme="light")
    print(f"screenshots: {SHOTS}/{name}-{{light,dark,phone}}.png")


def test_the_hub_pages_show_each_session_and_work_in_light_dark_and_at_phone_width(stack, hub, page):
    name = stack.learners()[1]
    hub.stop(name)
    page.goto(f"{stack.hub_url}/hub/login")
    page.fill("input[name=username]", name)
    page.fill("input[name=password]", stack.users[name])
    page.click("input[type=submit], button[type=submit]")
    page.wait_for_load_state()

    page.goto(f"{stack.hub_url}/hub/spawn")
    assert page.locator("h1").first.inner_text() == f"Start a session on {stack.stack.site.name}"
    assert page.title().startswith("Start a session")
    _shoot(page, "spawn")

    # A launch link may name the server: the form for the session "gpu", pre-filled from the link. It is
    # submitted while the default session starts through the API, so that both start at once.
    page.goto(f"{stack.hub_url}/hub/spawn/{name}/gpu?partition=gpu&gpus=1&runtime=20")
    expect(page.locator("#aifw-partition-gpu")).to_be_checked()
    expect(page.locator("#aifw-gpus")).to_have_value("1")
    expect(page.locator("#aifw-runtime_minutes")).to_have_value("20")
    try:
        with ThreadPoolExecutor(1) as pool:
            default = pool.submit(hub.start, name, {"partition": "debug", "runtime_minutes": 20})
            page.click("input[type=submit], button[type=submit]")
            page.wait_for_url(re.compile(rf".*/(hub/spawn-pending|user)/{name}/gpu.*"), wait_until="commit")
            r = default.result()
        assert r.status_code in (201, 202), r.text
        hub.wait_ready(name)
        assert wait_until(lambda: (hub.user_model(name)["servers"].get("gpu") or {}).get("ready"), timeout=90)
        jobs = {j["partition"]: j for j in stack.squeue(name)}
        assert sorted(jobs) == ["debug", "gpu"], jobs
        page.goto(f"{stack.hub_url}/hub/home")
        assert page.locator(".aifw-session[data-state=running]").count() == 2
        card = page.locator('.aifw-session[data-server-name=""]')
        gpu = page.locator('.aifw-session[data-server-name="gpu"]')
        for c, partition, job in ((card, "debug", jobs["debug"]), (gpu, "gpu", jobs["gpu"])):
            assert c.get_attribute("data-state") == "running"
            assert c.locator(".aifw-partition").inner_text() == partition
            assert c.locator(".aifw-node").inner_text().startswith("node")
            assert f"job {job['id']}" in c.inner_text()
            assert re.fullmatch(r"0:(19|20):\d\d", c.locator(".aifw-walltime").inner_text())
        assert gpu.locator(".aifw-gpus").inner_text() == "1"
        left = card.locator(".aifw-walltime")
        first = left.inner_text()
        assert wait_until(lambda: left.inner_text() != first, timeout=5, interval=0.3)  # it counts down
        assert card.locator("a.aifw-open").get_attribute("href").endswith(f"/user/{name}/")
        assert gpu.locator("a.aifw-open").get_attribute("href").endswith(f"/user/{name}/gpu/")
        _shoot(page, "home-running")

        # Stop on the GPU session's card ends that one only.
        gpu.locator(".aifw-stop").click()
        assert wait_until(lambda: "gpu" not in hub.user_model(name)["servers"], timeout=60)
        assert wait_until(lambda: [j["partition"] for j in stack.squeue(name)] == ["debug"], timeout=30), \
            stack.squeue(name)
        assert hub.user_model(name)["servers"][""]["ready"]
        expect(gpu).to_have_count(0, timeout=30_000)  # the page looks again until the hub says it is gone
        expect(page.locator(".aifw-session")).to_have_count(1)
        expect(card).to_have_attribute("data-state", "running")
    finally:
        hub.api("DELETE", f"/users/{name}/servers/gpu")  # nothing of it left behind, whatever failed above

    card.locator(".aifw-stop").click()
    assert wait_until(lambda: not hub.user_model(name)["servers"], timeout=60)
    assert wait_until(lambda: not stack.squeue(name), timeout=30), stack.squeue(name)
    page.goto(f"{stack.hub_url}/hub/home")
    again = page.locator("#aifw-restart")
    assert "Start again with my last settings (debug, 0 GPU, 20 min)" in again.inner_text()
    assert page.locator(".aifw-none").inner_text() == "No session is running."
    # Below: the learner's course and its modules, each with a launch button carrying its preset.
    modules = page.locator(".aifw-course[data-course=aif-foundations] .aifw-module")
    assert modules.count() >= 6
    assert "/hub/spawn?partition=" in modules.first.locator("a.aifw-launch").get_attribute("href")
    _shoot(page, "home-stopped")
    # One click starts the same session again, and the pending page follows it.
    again.click()
    # (to the pending page, or straight on into the lab when the session was ready within the hub's 10 s)
    page.wait_for_url(re.compile(rf".*/(hub/spawn-pending|user)/{name}.*"), wait_until="commit")
    server = hub.wait_ready(name)
    assert server["user_options"]["partition"] == "debug" and server["user_options"]["runtime_minutes"] == 20
    hub.stop(name)
