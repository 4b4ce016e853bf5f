"""A learner, in a real browser: log in, start a session from the form, run a cell in JupyterLab, stop."""
from __future__ import annotations

import re
import time

from playwright.sync_api import expect


def login(page, stack, name):
    page.goto(f"{stack.hub_url}/hub/login")
    page.fill("#username_input", name)
    page.fill("#password_input", stack.users[name])
    page.click("#login_submit")


def test_learner_starts_a_session_runs_a_cell_and_stops_it(stack, hub, page):
    name = stack.learners()[0]
    hub.started.add(name)  # cleanup if the test fails half-way
    login(page, stack, name)
    page.goto(f"{stack.hub_url}/hub/spawn")
    # The form lists the live partitions, with a GPU choice.
    for partition in ("cpu", "gpu", "debug"):
        expect(page.locator(f"#aifw-partition-{partition}")).to_be_attached()
    expect(page.locator("#aifw-gpus")).to_be_visible()
    page.check("#aifw-partition-debug")
    assert int(page.input_value("#aifw-runtime_minutes")) <= 30  # clamped to debug's limit
    page.click("input[type=submit], button[type=submit]")
    # JupyterLab loads (through the pending page).
    page.wait_for_url(re.compile(rf"/user/{name}/lab"), timeout=90_000)
    page.goto(f"{stack.hub_url}/user/{name}/lab?reset")  # a clean workspace: the launcher, nothing restored
    page.locator(".jp-LauncherCard[title*='Python 3'], .jp-LauncherCard:has-text('Python 3')").first.click(timeout=60_000)
    expect(page.locator(".jp-StatusBar-TextItem:has-text('Idle')").first).to_be_visible(timeout=60_000)
    cell = page.locator(".jp-Notebook .jp-Cell .cm-content").first
    cell.click()
    page.keyboard.type("import os; print('job', os.environ['SLURM_JOB_ID'], 'on', os.environ['SLURM_JOB_PARTITION'])")
    page.keyboard.press("Shift+Enter")
    expect(page.locator(".jp-OutputArea-output").first).to_contain_text(re.compile(r"job \d+ on debug"), timeout=60_000)
    # Stop the session from the hub page.
    page.goto(f"{stack.hub_url}/hub/home")
    page.click(".aifw-session .aifw-stop")  # the session's card (hub_config/templates/home.html)
    expect(page.locator("#start")).to_be_visible(timeout=60_000)
    # The page shows "New session" once the hub accepted the stop; the job is gone once it completes.
    deadline = time.monotonic() + 30
    while (stack.squeue(name) or hub.user_model(name)["servers"]) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert stack.squeue(name) == []
    assert not hub.user_model(name)["servers"]
    hub.started.discard(name)


def test_refused_request_shows_its_message_on_the_form(stack, hub, page):
    name = stack.learners()[1]
    login(page, stack, name)
    page.goto(f"{stack.hub_url}/hub/spawn")
    page.check("#aifw-partition-cpu")
    # Browsers enforce the max attribute; a request crafted past it must still be refused by the hub.
    page.evaluate("document.querySelector('form').noValidate = true")
    page.fill("#aifw-gpus", "3")
    page.click("input[type=submit], button[type=submit]")
    expect(page.get_by_text("partition cpu has no GPUs; you asked for 3")).to_be_visible()
    assert stack.squeue(name) == []


def test_launch_link_prefills_the_form_and_shows_the_gpu_hours(stack, hub, page):
    name = stack.learners()[1]
    login(page, stack, name)
    page.goto(f"{stack.hub_url}/hub/spawn?partition=gpu&gpus=2&runtime=90")
    expect(page.locator("#aifw-partition-gpu")).to_be_checked()
    expect(page.locator("#aifw-gpus")).to_have_value("2")
    expect(page.locator("#aifw-runtime_minutes")).to_have_value("90")
    expect(page.locator("#aifw-gpu-hours")).to_have_text("3")
    page.fill("#aifw-gpus", "1")
    expect(page.locator("#aifw-gpu-hours")).to_have_text("1.5")
    assert stack.squeue(name) == [] and not hub.user_model(name)["servers"]  # a link never submits


def test_pending_page_explains_why_the_session_waits(stack, hub, page):
    name = stack.learners()[0]
    fillers = hub.fill_every_gpu("test-researcher1")  # every GPU of every node
    hub.started.add(name)
    try:
        login(page, stack, name)
        page.goto(f"{stack.hub_url}/hub/spawn?partition=gpu&gpus=1&runtime=30")
        page.click("input[type=submit], button[type=submit]")
        page.wait_for_url(re.compile(r"/hub/spawn-pending/"))
        message = page.locator("#progress-message")
        expect(message).to_contain_text(re.compile(r"is pending in partition gpu: waiting for free resources"), timeout=30_000)
        expect(message).to_contain_text("position 1 in the queue")
    finally:
        hub.stop(name)
        stack.slurm("scancel", *fillers)
    assert stack.squeue(name) == []
