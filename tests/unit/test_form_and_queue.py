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


# -- several clusters: the cluster first, then its partitions from its own live state -----------------------------
from aifw.spawners.form import ClusterState  # noqa: E402
from two_clusters import two_cluster_site  # noqa: E402

TWO = two_cluster_site()
FACTORY_LIVE = {
    "big": PartitionInfo("big", cpus_per_node=64, cpus_idle=60, memory_mb_per_node=512000, gpus_per_node=4,
                         gpus_idle=3, max_time_minutes=720),
    "gpu": PartitionInfo("gpu", cpus_per_node=8, cpus_idle=8, memory_mb_per_node=64000, gpus_per_node=1,
                         gpus_idle=1, max_time_minutes=480, available=False),
}
BOTH = {"antenna": ClusterState(LIVE), "factory": ClusterState(FACTORY_LIVE, UserProjects.from_slurm(["factory-proj"], "factory-proj", {}))}


def tag(html: str, ident: str) -> str:
    """The opening tag of the element with that id."""
    return re.search(rf'<[^>]*id="{re.escape(ident)}"[^>]*>', html).group(0)


def block(html: str, cluster: str, index: int = 0) -> str:
    """The opening tag of a cluster's `index`-th block (partitions, projects, reservation)."""
    return re.findall(rf'<div class="aifw-for-cluster" data-cluster="{cluster}"[^>]*>', html)[index]


def test_the_form_offers_the_cluster_first_then_only_the_chosen_clusters_partitions_enabled():
    html = render_form(TWO, None, clusters=BOTH)
    assert html.index('id="aifw-clusters"') < html.index('name="partition"')
    assert 'checked' in tag(html, "aifw-cluster-antenna") and "checked" not in tag(html, "aifw-cluster-factory")
    for name in ("cpu", "gpu", "debug"):
        assert "disabled" not in tag(html, f"aifw-partition-antenna-{name}")
    for name in ("big", "gpu"):  # the factory's, ids apart from the antenna's gpu
        assert "disabled" in tag(html, f"aifw-partition-factory-{name}")
    assert "hidden" not in block(html, "antenna") and "hidden" in block(html, "factory")
    assert "disabled" not in tag(html, "aifw-account-antenna") and "disabled" in tag(html, "aifw-account-factory")
    assert "disabled" in tag(html, "aifw-reservation-factory") and "disabled" not in tag(html, "aifw-reservation-antenna")
    assert re.search(r'data-cluster-state="antenna">3 partition\(s\) up<', html)
    assert re.search(r'data-cluster-state="factory">1 partition\(s\) up<', html)  # the factory's gpu is down
    assert "DOWN in Slurm" in html and "now: 60 CPUs idle, 3 GPUs free" in html  # each cluster's own live state
    assert html.count('id="aifw-cpus"') == 1  # the numbers are shared
    # One radio group holds one checked button: the chosen cluster's partition; the other's is preferred.
    assert re.findall(r'name="partition" id="([^"]+)"[^>]* checked', html) == ["aifw-partition-antenna-cpu"]
    assert "data-preferred" in tag(html, "aifw-partition-factory-big")


def test_a_chosen_cluster_comes_with_its_partition_projects_and_limits():
    html = render_form(TWO, None, previous={"cluster": "factory", "partition": "big", "account": "factory-proj"},
                       prefill={"gpus": "3"}, clusters=BOTH)
    assert "checked" in tag(html, "aifw-cluster-factory")
    assert re.search(r'id="aifw-partition-factory-big" value="big" checked', html)
    assert "disabled" not in tag(html, "aifw-partition-factory-big") and "disabled" in tag(html, "aifw-partition-antenna-cpu")
    assert 'name="gpus" value="3" min="0" max="4"' in html  # the factory's big: 4 GPUs per node
    assert re.search(r'value="factory-proj" data-left-minutes=""\s*selected>', html)
    # A launch link may name the cluster; one the site lacks falls back to the first.
    assert "checked" in tag(render_form(TWO, None, prefill={"cluster": "factory"}, clusters=BOTH), "aifw-cluster-factory")
    assert "checked" in tag(render_form(TWO, None, prefill={"cluster": "west"}, clusters=BOTH), "aifw-cluster-antenna")


def test_a_cluster_that_does_not_answer_is_shown_unavailable_and_the_others_work():
    silent_factory = {"antenna": ClusterState(LIVE)}  # the factory left out: it did not answer
    html = render_form(TWO, None, previous={"cluster": "factory"}, clusters=silent_factory)
    assert "disabled" in tag(html, "aifw-cluster-factory") and "checked" in tag(html, "aifw-cluster-antenna")
    assert "not answering right now: unavailable" in html and 'id="aifw-cluster-factory-silent"' in html
    assert "Slurm is not answering" not in html  # the antenna answers
    assert "disabled" not in tag(html, "aifw-partition-antenna-cpu")
    # The default cluster silent: the factory is chosen instead.
    html = render_form(TWO, None, clusters={"factory": BOTH["factory"]})
    assert "disabled" in tag(html, "aifw-cluster-antenna") and "checked" in tag(html, "aifw-cluster-factory")
    assert "disabled" not in tag(html, "aifw-partition-factory-big")


def test_when_no_cluster_answers_the_form_is_the_sites_static_description():
    html = render_form(TWO, None, clusters={})
    assert "Slurm is not answering right now" in html
    assert "disabled" not in tag(html, "aifw-cluster-antenna") and "disabled" not in tag(html, "aifw-cluster-factory")
    assert "checked" in tag(html, "aifw-cluster-antenna") and 'id="aifw-cluster-antenna-silent"' not in html


def test_a_site_with_one_cluster_shows_no_cluster_choice_and_the_same_form_either_way():
    html = render_form(SITE, LIVE)
    page = html.split("<script>")[0]
    assert 'name="cluster"' not in page and "aifw-for-cluster" not in page
    assert render_form(SITE, None, clusters={"default": ClusterState(LIVE)}) == html
    with pytest.raises(ValueError, match="not in `live`"):
        render_form(SITE, LIVE, clusters={"default": ClusterState(LIVE)})


def test_cluster_names_and_descriptions_are_escaped():
    from two_clusters import two_cluster_data
    from aifw.site import site_from_dict

    data = two_cluster_data()
    data["clusters"][1]["description"] = "<script>alert(1)</script>"
    html = render_form(site_from_dict(data), None, clusters=BOTH)
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html
