"""A learner opens module 1 of the course in JupyterLab and gets instant feedback from a Check."""
from __future__ import annotations

import re

from playwright.sync_api import expect

NOTEBOOK = "courses/aif-foundations/m1-first-steps/01-jupyter-on-a-supercomputer.ipynb"
SOLUTION = (
    'def read_job_info(env): return {"job_id": env.get("SLURM_JOB_ID"), '
    '"partition": env.get("SLURM_JOB_PARTITION"), "in_slurm": env.get("SLURM_JOB_ID") is not None}'
)


def test_learner_works_an_exercise_of_module_1_with_instant_checks(stack, hub, page):
    name = stack.learners()[1]
    assert hub.start(name, {"partition": "cpu"}).status_code in (201, 202)
    hub.wait_ready(name)
    page.goto(f"{stack.hub_url}/hub/login")
    page.fill("#username_input", name)
    page.fill("#password_input", stack.users[name])
    page.click("#login_submit")
    page.goto(f"{stack.hub_url}/user/{name}/lab/tree/{NOTEBOOK}?reset")
    expect(page.locator(".jp-StatusBar-TextItem:has-text('Idle')").first).to_be_visible(timeout=90_000)
    cells = page.locator(".jp-Notebook .jp-Cell")
    expect(cells.nth(8)).to_contain_text("Exercise 1a", timeout=30_000)
    # Run from the top: the unanswered exercise's check says what is wrong and gives the hint.
    page.locator(".jp-Notebook").click()
    page.keyboard.press("Escape")
    page.get_by_role("menuitem", name="Run").click()
    page.get_by_role("menuitem", name=re.compile(r"^Run All Cells")).click()
    expect(cells.nth(8).locator(".jp-Cell-outputArea")).to_contain_text("✗ Exercise 1a", timeout=60_000)
    expect(cells.nth(8).locator(".jp-Cell-outputArea")).to_contain_text("Read SLURM_JOB_ID and SLURM_JOB_PARTITION")
    # The failed check stops Run All: the kernel aborts the cells queued behind it. Wait until it has (no
    # prompt says [*]), or the answer's own run would be one of those aborted.
    expect(cells.nth(8).locator(".jp-InputPrompt")).to_have_text(re.compile(r"\[\d+\]:"), timeout=30_000)
    expect(page.locator(".jp-Notebook .jp-InputPrompt", has_text="[*]")).to_have_count(0, timeout=30_000)
    # Answer it and check again: ✓.
    cells.nth(7).locator(".cm-content").click()
    page.keyboard.press("Control+a")
    page.keyboard.insert_text(SOLUTION)
    page.keyboard.press("Shift+Enter")  # runs the answer, moves to the check cell
    page.keyboard.press("Shift+Enter")  # runs the check
    expect(cells.nth(8).locator(".jp-Cell-outputArea")).to_contain_text("✓ Exercise 1a", timeout=30_000)
