"""The trainer's "Start the class" button in a real browser, on the real hub and Slurm: the trainer picks a module
on their home page, clicks "Start the class", and the progress bar reaches "2 of 2 sessions ready"; a learner
sees no such form."""
from __future__ import annotations

from playwright.sync_api import expect

from aifw_testing import wait_until

COURSE = "aif-foundations"
MODULE = "m3-dask-on-slurm"  # cpu, no GPU: starts at once on the test cluster


def _log_in(page, stack, name: str) -> None:
    page.goto(f"{stack.hub_url}/hub/login")
    page.fill("input[name=username]", name)
    page.fill("input[name=password]", stack.users[name])
    page.click("input[type=submit], button[type=submit]")
    page.wait_for_load_state()


def test_the_trainer_starts_the_class_and_the_progress_bar_reaches_every_learner(stack, hub, page):
    learners = stack.learners()
    for name in learners:
        hub.stop(name)
    try:
        _log_in(page, stack, "test-trainer1")
        page.goto(f"{stack.hub_url}/hub/home")
        form = page.locator(f"form.aifw-class[data-course={COURSE}]")
        form.locator(".aifw-class-module").select_option(MODULE)
        form.locator(".aifw-class-unused").select_option("30m")
        form.locator("button.aifw-class-start").click()
        expect(form.locator(".aifw-class-count")).to_have_text(f"{len(learners)} of {len(learners)} sessions ready",
                                                              timeout=90_000)
        expect(form.locator(".progress-bar")).to_have_attribute("style", "width: 100%;")
        expect(form.locator(".aifw-class-learner")).to_have_count(0)  # nobody left waiting
        expect(form.locator(".aifw-class-error")).to_be_hidden()
        for name in learners:
            options = hub.user_model(name)["servers"][""]["user_options"]
            assert options["partition"] == "cpu" and options["stop_if_unused_s"] == 1800, options
    finally:
        for name in learners:
            hub.stop(name)
        assert wait_until(lambda: not [j for j in stack.squeue() if j["user"] in learners], timeout=30)


def test_a_learner_has_no_start_the_class_form(stack, page):
    _log_in(page, stack, stack.learners()[0])
    page.goto(f"{stack.hub_url}/hub/home")
    expect(page.locator(f".aifw-course[data-course={COURSE}]")).to_have_count(1)
    expect(page.locator("form.aifw-class")).to_have_count(0)
