"""The course navigator in a real browser: the learner's course and its modules, a progress bar per module with
what the progress service holds, and Open opens the learner's own copy of a module's notebook."""
from __future__ import annotations

import requests
from playwright.sync_api import expect

COURSE, MODULE = "aif-foundations", "m1-first-steps"
NOTEBOOK = "01-jupyter-on-a-supercomputer.ipynb"


def test_the_navigator_shows_the_modules_with_progress_and_opens_the_learners_copy(stack, hub, page):
    name = stack.learners()[0]
    token = hub.user_token(hub.login(name), name)
    # a passed instant check, as the learner's kernel posts it
    r = requests.post(f"{stack.hub_url}/services/aifw-progress/api/checks", headers={"Authorization": f"token {token}"},
                      json={"course": COURSE, "module": MODULE, "notebook": NOTEBOOK,
                            "check": "Exercise 1a: inside a Slurm job"}, timeout=30)
    assert r.status_code == 204, r.text
    assert hub.start(name, {"partition": "cpu"}, token=token).status_code in (201, 202)
    hub.wait_ready(name)
    page.goto(f"{stack.hub_url}/hub/login")
    page.fill("#username_input", name)
    page.fill("#password_input", stack.users[name])
    page.click("#login_submit")
    page.goto(f"{stack.hub_url}/user/{name}/lab?reset")
    page.locator('.jp-SideBar [data-id="aifw-course-navigator"]').click(timeout=60_000)
    navigator = page.locator("#aifw-course-navigator")
    module = navigator.locator(f'.aifw-Module[data-module="{MODULE}"]')
    expect(module).to_be_visible(timeout=30_000)
    expect(navigator.locator(".aifw-Module")).to_have_count(7)  # the course's seven modules
    # from the course's published catalogue entry
    expect(module.locator("h4")).to_have_text("First steps on an AI Factory")
    expect(module.locator(".aifw-Module-facts")).to_have_text("45 min · partition gpu · 1 GPU")
    expect(module.locator("a", has_text="Start a session")).to_have_attribute(
        "href", "/hub/spawn?partition=gpu&gpus=1&runtime=45")
    bar = module.locator(".aifw-Progress")
    expect(bar).to_have_attribute("role", "progressbar")
    assert int(bar.get_attribute("aria-valuenow")) > 0
    expect(module.locator(".aifw-Progress-text")).to_contain_text("1 of ")
    module.locator(f'button.aifw-Open[data-path="courses/{COURSE}/{MODULE}/{NOTEBOOK}"]').click()
    expect(page.locator(".lm-DockPanel-tabBar .lm-TabBar-tabLabel", has_text=NOTEBOOK)).to_be_visible(timeout=30_000)
