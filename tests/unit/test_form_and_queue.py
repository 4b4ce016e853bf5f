"""The spawn form and the queue explanation (pure)."""
from __future__ import annotations

import re

from aifw.site import example_site_path, load_site
from aifw.slurm import JobInfo, PartitionInfo
from aifw.spawners.form import render_form
from aifw.spawners.queue import describe_job, explain_reason, faster_option
from aifw.spawners.request import limits_for

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
    assert '<option value="">(none / default)</option>' not in html.split('id="aifw-account"')[1].split("</select>")[0]


def test_reasons_in_plain_words():
    assert "waiting for free resources" in explain_reason("Resources")
    assert explain_reason("SomethingNew") == "Slurm says: SomethingNew"
    info = JobInfo("7", "PENDING", reason="Priority", partition="gpu")
    assert describe_job(info, 3, "2026-11-25T14:00:00") == (
        "Job 7 is pending in partition gpu: waiting behind jobs with higher priority; position 3 in the queue; "
        "Slurm estimates it starts at 2026-11-25T14:00:00"
    )


def test_a_faster_option_is_offered_only_when_it_fits():
    limits = {p.name: limits_for(p, LIVE[p.name]) for p in SITE.partitions}
    assert faster_option("cpu", 1, 0, 20, LIVE, limits).startswith("debug has 14 idle CPUs now")
    assert faster_option("cpu", 1, 0, 60, {"debug": LIVE["debug"]}, limits) == ""  # walltime too long for debug
    assert faster_option("gpu", 1, 1, 20, LIVE, limits) == ""  # no free GPUs anywhere
