"""Projects and GPU-hour budgets through the real hub and Slurm's accounting: the form lists the user's
associations with their budgets; a request over the budget or outside the user's projects is refused
before sbatch; a job the budget cannot cover yet waits, and the pending page says why in words."""
from __future__ import annotations

import os
import re
import subprocess
from html import unescape

import pytest

from aifw.slurm import SlurmClient, format_hours

from aifw_testing import wait_until

RESEARCHER, TRAINER = "test-researcher1", "test-trainer1"  # proj-llm (2 GPU-hours); trainer also training-2026


def budget(stack, account: str):
    return SlurmClient(conf=stack.slurm_conf).project_budgets_sync([account])[account]


def account_options(html: str) -> list[tuple[str, str]]:
    select = html.split('id="aifw-account"', 1)[1].split("</select>", 1)[0]
    return [(v, unescape(label)) for v, label in re.findall(r'<option value="([^"]*)"[^>]*>([^<]*)</option>', select)]


def test_the_form_lists_the_users_projects_default_first_with_gpu_hours(stack, hub):
    html = hub.login(TRAINER).get(f"{stack.hub_url}/hub/spawn", timeout=30).content.decode("utf-8")
    options = account_options(html)
    assert [v for v, _ in options] == ["proj-llm", "training-2026"], options  # the default project first
    assert re.fullmatch(r"proj-llm \(your default\) \u2014 [\d.]+ of 2 GPU-hours used, [\d.]+ left( \(.*\))?",
                        options[0][1]), options
    assert re.fullmatch(r"training-2026 \u2014 [\d.]+ of 20 GPU-hours used, [\d.]+ left( \(.*\))?", options[1][1]), options
    assert re.search(r'<option value="proj-llm"[^>]*selected', html)
    assert "aifw-budgets-unknown" not in html


def test_a_request_over_the_projects_budget_is_refused_and_nothing_is_submitted(stack, hub):
    left = budget(stack, "proj-llm").left_minutes
    assert left is not None and left > 2, f"proj-llm has {left} GPU-minutes left: the test stack's budget is used up"
    minutes = left // 2 + 1  # 2 GPUs for this long need more than is left
    expected = f"; 2 GPUs for {minutes} min need {format_hours(2 * minutes)}"
    r = hub.start(RESEARCHER, {"partition": "gpu", "gpus": 2, "runtime_minutes": minutes})  # REST
    assert r.status_code == 400, r.text
    message = r.json()["message"]
    assert message.startswith("project proj-llm has ") and " GPU-hours left" + expected in message, message
    session = hub.login(RESEARCHER)  # and the form
    page = session.post(f"{stack.hub_url}/hub/spawn", timeout=60,
                        data={"partition": "gpu", "gpus": "2", "runtime_minutes": str(minutes), "cpus": "1",
                              "memory_gb": "1", "account": "proj-llm", "environment": "default",
                              "_xsrf": session.cookies.get("_xsrf")})
    assert page.status_code == 400 and expected in unescape(page.text)
    assert stack.squeue(RESEARCHER) == [] and not hub.user_model(RESEARCHER)["servers"]


def test_an_account_the_user_has_no_association_with_is_refused(stack, hub):
    learner = stack.learners()[0]
    r = hub.start(learner, {"partition": "cpu", "account": "proj-llm"})
    assert r.status_code == 400, r.text
    assert r.json()["message"] == ("you are not a member of project 'proj-llm' (you have no Slurm association with "
                                   "it); your projects: training-2026")
    assert stack.squeue(learner) == [] and not hub.user_model(learner)["servers"]


@pytest.fixture
def proj_llm_with_one_gpu_hour_left(stack):
    """proj-llm's budget set (as root, with sacctmgr) to what it has used plus 60 GPU-minutes; restored after."""
    env = dict(os.environ, SLURM_CONF=stack.slurm_conf)
    before = budget(stack, "proj-llm")

    def set_limit(minutes: int | None) -> None:
        value = -1 if minutes is None else minutes
        subprocess.run(["sacctmgr", "-i", "modify", "account", "where", "name=proj-llm", "set",
                        f"GrpTRESMins=gres/gpu={value}"], env=env, capture_output=True, text=True, timeout=30,
                       check=True)
        assert wait_until(lambda: budget(stack, "proj-llm").limit_minutes == minutes, timeout=15), \
            "slurmctld did not learn the new budget"

    set_limit(before.used_minutes + 60)
    try:
        yield budget(stack, "proj-llm")
    finally:
        set_limit(before.limit_minutes)


def test_a_job_the_budget_cannot_cover_yet_waits_and_the_pending_page_says_why(stack, hub, proj_llm_with_one_gpu_hour_left):
    env = dict(os.environ, SLURM_CONF=stack.slurm_conf)
    # A running job of the project holds 50 of the 60 GPU-minutes left (1 GPU x 50 min)...
    p = subprocess.run(["runuser", "-u", TRAINER, "--", "sbatch", "--parsable", "-A", "proj-llm", "-p", "gpu",
                        "--gres=gpu:1", "-t", "50", "-o", "/dev/null", "--wrap", "sleep 300"],
                       capture_output=True, text=True, env=env, timeout=30, cwd="/tmp")
    assert p.returncode == 0, p.stderr
    holder = p.stdout.strip().split(";")[0]
    try:
        assert wait_until(lambda: any(j["id"] == holder and j["state"] == "RUNNING" for j in stack.squeue(TRAINER)))
        # ...so 1 GPU for 30 min fits what is left (the hub lets it through) but not what the holder leaves.
        hub.start_pending(RESEARCHER, {"partition": "gpu", "gpus": 1, "runtime_minutes": 30})
        events = hub.progress(RESEARCHER, until=30, stop_when=lambda e: "GPU-hours left" in e.get("message", ""))
        pending = [e["message"] for e in events if "is pending in partition gpu" in e.get("message", "")]
        assert pending and "project proj-llm has not enough GPU-hours left for it" in pending[-1], events
        assert "when an administrator raises the budget" in pending[-1]
        [job] = stack.squeue(RESEARCHER)
        assert (job["state"], job["reason"]) == ("PENDING", "AssocGrpGRESMinutes")
        hub.stop(RESEARCHER)  # cancel from the pending page
        assert wait_until(lambda: stack.squeue(RESEARCHER) == [])
    finally:
        stack.slurm("scancel", holder)
