"""The spawn form and the queue explanation (pure)."""
from __future__ import annotations

import re

from aifw.site import example_site_path, load_site
import pytest

from aifw.slurm import JobInfo, PartitionInfo, ProjectBudget
from aifw.spawners.form import budget_words, render_form
from aifw.spawners.queue import REASONS, describe_job, explain_end, explain_reason, faster_option
from aifw.spawners.request import UserProjects, limits_for

SITE = load_site(example_site_path("sandbox"))
LIVE = {
    "cpu": PartitionInfo("cpu", cpus_per_node=16, cpus_idle=14, memory_mb_per_node=16000, gpus_per_node=2, gpus_idle=0, max_time_minutes=480),
    "gpu": PartitionInfo("gpu", cpus_per_node=16, cpus_idle=14, memory_mb_per_node=16000, gpus_per_node=2, gpus_idle=0, max_time_minutes=240),
    "debug": PartitionInfo("debug", cpus_per_node=16, cpus_idle=14, memory_mb_per_node=16000, gpus_per_node=2, gpus_idle=0, max_time_minutes=30),
}


def test_form_lists_live_partitions_with_their_limits():
    html = render_form(SITE, LIVE)
    for name in ("cpu", "gpu", "debug"):
        assert f'id="aifw-partition-{name}" value="{name}"' in html
    assert "now: 14 CPUs idle, 0 GPUs free" in html  # gpu partition
    assert 'data-max-gpus="2"' in html and 'id="aifw-gpus"' in html
    assert "Slurm is not answering" not in html


def test_form_says_so_when_slurm_is_silent():
    html = render_form(SITE, None)
    assert "Slurm is not answering right now" in html and 'value="gpu"' in html


def test_form_prefers_launch_link_over_last_choices_and_escapes_everything():
    html = render_form(SITE, LIVE, previous={"partition": "cpu", "cpus": 2}, prefill={"partition": "gpu", "gpus": "1", "runtime": "45"})
    assert re.search(r'value="gpu"[^>]* checked', html)
    assert 'id="aifw-gpus" name="gpus" value="1"' in html and 'name="runtime_minutes" value="45"' in html
    assert 'name="cpus" value="2"' in html  # the remembered choice where the link says nothing
    hostile = render_form(SITE, LIVE, prefill={"partition": "<script>alert(1)</script>", "cpus": '"><img src=x>'})
    assert "<script>alert(1)</script>" not in hostile and "<img src=x>" not in hostile


def test_hidden_partitions_are_not_in_the_form():
    lumi = load_site(example_site_path("lumi-like"))
    html = render_form(lumi, None)
    assert 'value="dev-g"' in html and 'value="debug"' not in html
    assert "(your default project)" not in account_select(html)  # the site requires an account


def account_select(html: str) -> str:
    return html.split('id="aifw-account"')[1].split("</select>")[0]


PROJECTS = UserProjects.from_slurm(
    ["proj-llm", "training-2026"], "training-2026",
    {"proj-llm": ProjectBudget("proj-llm", limit_minutes=120, used_minutes=30, running_minutes=60),
     "training-2026": ProjectBudget("training-2026", limit_minutes=None, used_minutes=15)})


def test_the_form_lists_the_users_projects_default_first_with_gpu_hours_used_and_left():
    html = render_form(SITE, LIVE, projects=PROJECTS)
    select = account_select(html)
    options = re.findall(r'<option value="([^"]*)"', select)
    assert options == ["training-2026", "proj-llm"]  # no empty choice: the default project is chosen
    assert re.search(r'value="training-2026" data-left-minutes=""\s*selected>training-2026 \(your default\) '
                     r"\u2014 no GPU-hours limit \(0.25 used\)<", select)
    assert ('value="proj-llm" data-left-minutes="90">proj-llm \u2014 0.5 of 2 GPU-hours used, 1.5 left '
            "(1 held by running jobs)<") in select
    assert "aifw-budgets-unknown" not in html
    again = render_form(SITE, LIVE, previous={"account": "proj-llm"}, projects=PROJECTS)  # the last choice wins
    assert re.search(r'value="proj-llm"[^>]*selected', account_select(again))


def test_the_form_works_when_accounting_does_not_answer_and_says_budgets_are_unknown():
    html = render_form(SITE, LIVE, projects=UserProjects.from_site(SITE, "trainer1"))
    assert "Slurm's accounting is not answering right now" in html and "budgets are unknown" in html
    select = account_select(html)
    assert re.findall(r'<option value="([^"]*)"', select) == ["proj-llm", "training-2026"]
    assert "GPU-hours" not in select  # nothing made up
    assert re.search(r'value="proj-llm"[^>]*selected', select)


def test_a_user_in_no_project_is_told_so():
    html = render_form(SITE, LIVE, projects=UserProjects.from_slurm([], "", {}))
    assert "You are in no project" in html
    assert re.findall(r'<option value="([^"]*)"', account_select(html)) == [""]


def test_budget_words():
    assert budget_words(None) == "GPU-hours unknown"
    assert budget_words(ProjectBudget("p", 6000, used_minutes=6100)) == "101.67 of 100 GPU-hours used, 0 left"


def test_how_the_last_session_ended_comes_first_and_escaped():
    html = render_form(SITE, LIVE, notice="Your last session (Slurm job 7) ended: NODE_FAIL on node2 <b>")
    assert html.index('id="aifw-last-session"') < html.index('name="partition"')
    assert "ended: NODE_FAIL on node2 &lt;b&gt;</div>" in html
    assert 'id="aifw-last-session"' not in render_form(SITE, LIVE)


def test_reasons_in_plain_words():
    assert "waiting for free resources" in explain_reason("Resources")
    assert explain_reason("SomethingNew") == "Slurm says: SomethingNew"
    info = JobInfo("7", "PENDING", reason="Priority", partition="gpu")
    assert describe_job(info, 3, "2026-11-25T14:00:00") == (
        "Job 7 is pending in partition gpu: waiting behind jobs with higher priority; position 3 in the queue; "
        "Slurm estimates it starts at 2026-11-25T14:00:00"
    )


@pytest.mark.parametrize("reason, words", [
    ("AssocGrpGRESMinutes", "project proj-llm has not enough GPU-hours left for it (GPUs x walltime must fit what is "
                            "left of the budget after its running jobs): it starts when the project's running jobs "
                            "end and leave enough, or when an administrator raises the budget"),
    ("AssocGrpGRESRunMinutes", "project proj-llm's running jobs already hold the most GPU-minutes"),
    ("AssocGrpCPUMinutes", "project proj-llm has used up its CPU-hours budget; it starts only when an administrator"),
    ("AssocMaxJobsLimit", "you already run the most jobs project proj-llm allows each member at once"),
    ("AssocGrpGRES", "project proj-llm already uses all the GPUs it may use at once"),
    ("QOSMaxGRESPerUser", "you already use the most GPUs your QOS allows per user; it starts when one of your GPU jobs ends"),
    ("QOSMaxWallDurationPerJobLimit", "its walltime is above what its QOS allows per job: it will not start"),
    ("AssocGrpSomethingNew", "held by a limit of project proj-llm (Slurm says: AssocGrpSomethingNew)"),
    ("QOSGrpSomethingNew", "held by a limit of its QOS (Slurm says: QOSGrpSomethingNew)"),
])
def test_limits_and_budgets_are_said_in_words_naming_the_project(reason, words):
    assert words in explain_reason(reason, "proj-llm")
    info = JobInfo("9", "PENDING", reason=reason, partition="gpu")
    assert describe_job(info, account="proj-llm").startswith(f"Job 9 is pending in partition gpu: {words[:30]}")
    assert "{project}" not in explain_reason(reason) and "proj-llm" not in explain_reason(reason)


def test_a_reason_of_a_project_says_your_project_when_the_account_is_not_known():
    theirs = [reason for reason, words in REASONS.items() if "{project}" in words]
    assert len(theirs) >= 10
    for reason in theirs:
        assert "your project" in explain_reason(reason) and "{" not in explain_reason(reason), reason


def test_endings_in_words():
    assert explain_end(JobInfo("5", "NODE_FAIL", reason="NodeDown", node="node2")) == (
        "its compute node node2 failed (Slurm lost contact with it)")
    assert explain_end(JobInfo("5", "TIMEOUT")) == "it reached its walltime"
    assert explain_end(JobInfo("5", "WEIRD")) == "it ended (WEIRD)"


def test_a_faster_option_is_offered_only_when_it_fits():
    limits = {p.name: limits_for(p, LIVE[p.name]) for p in SITE.partitions}
    assert faster_option("cpu", 1, 0, 20, LIVE, limits).startswith("debug has 14 idle CPUs now")
    assert faster_option("cpu", 1, 0, 60, {"debug": LIVE["debug"]}, limits) == ""  # walltime too long for debug
    assert faster_option("gpu", 1, 1, 20, LIVE, limits) == ""  # no free GPUs anywhere
