"""A learner clicks a module's link on the LTI test platform and lands in that module's notebook, in their own
JupyterLab, on the module's partition. The hub is a second hub of the test stack with hub.authenticator: lti;
its account hook maps the platform's user to the stack's demo learner (who has a Slurm association and is a
learner of the course)."""
from __future__ import annotations

import re
import stat

import pytest
import requests
from playwright.sync_api import expect

from aifw_testing import wait_until
from lti_platform import LaunchSpec, platform_for_lti_hub, start_lti_hub, stop_lti_hub

LEARNER = "test-learner2"
CONTEXT = "aif-ctx-1"
MODULE = "m3-dask-on-slurm"
NOTEBOOK = f"courses/aif-foundations/{MODULE}/01-dask-on-slurm.ipynb"


@pytest.fixture(scope="module")
def lti_hub(stack):
    platform = platform_for_lti_hub(18090)
    hook = stack.home / "lti-hook.sh"
    hook.write_text(f"#!/bin/sh\ncat > /dev/null\necho {LEARNER}\n")
    hook.chmod(stat.S_IRWXU)
    section = platform.site_section([{"context_id": CONTEXT, "course": "aif-foundations"}], accounts="hook",
                                    account_hook=[str(hook)])
    s = stack.stack
    hub = start_lti_hub(s.site_file, stack.home / "lti-hub-e2e", s.venv_bin, stack.slurm_conf, section)
    api = requests.Session()
    api.headers["Authorization"] = f"token {hub.api_token}"
    try:
        yield platform, hub
    finally:
        # Stop the session before the hub: a hub that stops keeps its sessions (cleanup_servers is off).
        api.delete(f"{hub.url}/hub/api/users/{LEARNER}/server", timeout=30)
        gone = wait_until(lambda: not stack.squeue(LEARNER), timeout=60)
        stop_lti_hub(hub)
        platform.stop()
        hook.unlink()
        assert gone, f"the session of {LEARNER} was still in Slurm after its stop: {stack.squeue(LEARNER)}"


def test_a_launched_learner_lands_in_the_module_notebook_in_their_own_lab(lti_hub, page):
    platform, hub = lti_hub
    hint = platform.prepare(LaunchSpec(user="lms-user-7", context_id=CONTEXT, custom={"module": MODULE}))
    page.goto(platform.launch_url(hint))
    # The platform's login posts the id_token; the hub signs them in and shows the module's preset.
    page.wait_for_url(re.compile(r"/hub/spawn\?partition=cpu"), timeout=30_000)
    expect(page.locator("#aifw-partition-cpu")).to_be_checked()
    page.click("input[type=submit], button[type=submit]")
    page.wait_for_url(re.compile(rf"/user/{LEARNER}/lab/tree/{re.escape(NOTEBOOK)}"), timeout=120_000)
    expect(page.locator(".jp-StatusBar-TextItem:has-text('Idle')").first).to_be_visible(timeout=90_000)
    expect(page.locator(".lm-TabBar-tab[data-type='document-title'].lm-mod-current")).to_contain_text("01-dask-on-slurm.ipynb")
    jobs = hub_jobs(hub, LEARNER)
    assert jobs and jobs[0]["partition"] == "cpu"


def hub_jobs(hub, name: str) -> list[dict]:
    """The learner's session as the LTI hub's spawner holds it (its job and partition)."""
    r = requests.get(f"{hub.url}/hub/api/users/{name}", headers={"Authorization": f"token {hub.api_token}"},
                     timeout=30)
    r.raise_for_status()
    server = r.json()["servers"].get("")
    return [{"partition": server["user_options"].get("partition")}] if server else []
