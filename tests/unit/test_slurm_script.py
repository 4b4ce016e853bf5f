"""The one batch-script builder: directives from typed values, every value re-checked, one line per
command, admin text only where it belongs."""
from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aifw.slurm import BatchJob, BatchScript, UnsafeValue, build_batch_script
from aifw.slurm.script import LINE_BREAKS

JOB = BatchJob(job_name="aifw-x", time_minutes=90, partition="gpu", cpus_per_task=2, memory_mb=3 * 1024,
               gpus=1, gpu_type="a100", output="/home/x/log-%j.log", chdir="/home/x", account="proj-a")
BODY = BatchScript(command=["/opt/venv/bin/python", "-m", "x", "a b"], purpose="grading worker",
                   exports={"SLURM_CONF": "/etc/slurm conf/slurm.conf"}, beside=[["/bin/true", "it's"]])


def sbatch(script: str) -> list[str]:
    return [ln[len("#SBATCH "):] for ln in script.splitlines() if ln.startswith("#SBATCH ")]


def test_directives_in_order_and_body_quoted():
    script = build_batch_script(JOB, BODY)
    assert script.startswith("#!/bin/bash\n")
    assert sbatch(script) == ["--job-name=aifw-x", "--partition=gpu", "--cpus-per-task=2", "--mem=3G",
                              "--time=01:30:00", "--output=/home/x/log-%j.log", "--chdir=/home/x", "--nodes=1",
                              "--ntasks=1", "--gres=gpu:a100:1", "--account=proj-a"]
    assert "export SLURM_CONF='/etc/slurm conf/slurm.conf'" in script
    assert "{ /bin/true 'it'\"'\"'s' || echo 'AIF Workbench: grading worker background step failed (continuing)' >&2; } &" in script
    assert script.rstrip().splitlines()[-1] == "exec /opt/venv/bin/python -m x 'a b'"


@pytest.mark.parametrize("requeue, directive", [(None, []), (False, ["--no-requeue"]), (True, ["--requeue"])])
def test_requeue_is_said_only_when_chosen(requeue, directive):
    script = build_batch_script(dataclasses.replace(JOB, requeue=requeue), BODY)
    assert [d for d in sbatch(script) if "requeue" in d] == directive


def test_array_and_memory_in_megabytes():
    script = build_batch_script(dataclasses.replace(JOB, array_size=3, memory_mb=1500, gpus=0), BODY)
    assert "--array=0-2" in sbatch(script) and "--mem=1500M" in sbatch(script)
    assert not any(d.startswith("--gres") for d in sbatch(script))


@pytest.mark.parametrize("field, value", [
    ("partition", "cpu\n#SBATCH --uid=0"), ("account", "a;id"), ("reservation", "$(id)"), ("gpu_type", "a100\nid"),
    ("job_name", "x y"), ("output", "/tmp/$(id)"), ("chdir", "relative"), ("cpus_per_task", 0),
    ("time_minutes", True), ("array_size", 0), ("memory_mb", -1), ("nodes", "2"), ("requeue", "no"),
])
def test_a_bad_directive_value_is_refused(field, value):
    with pytest.raises(UnsafeValue):
        build_batch_script(dataclasses.replace(JOB, **{field: value}), BODY)


@pytest.mark.parametrize("body", [
    dataclasses.replace(BODY, exports={"bad name": "x"}),
    dataclasses.replace(BODY, exports={"OK": "two\nlines"}),
    dataclasses.replace(BODY, command=[]),
    dataclasses.replace(BODY, beside=[["/bin/echo", "a\n#SBATCH --uid=0"]]),
    dataclasses.replace(BODY, prologue="module load x", prologue_label="a b"),
    dataclasses.replace(BODY, purpose="x\ny"),
])
def test_a_bad_body_is_refused(body):
    with pytest.raises(UnsafeValue):
        build_batch_script(JOB, body)


@given(st.lists(st.text(max_size=30), max_size=4))
def test_a_command_is_one_quoted_line_or_refused(args):
    body = dataclasses.replace(BODY, command=["/bin/x", *args], beside=())
    multi_line = any(c in a for a in args for c in LINE_BREAKS)
    try:
        script = build_batch_script(JOB, body)
    except UnsafeValue:
        assert multi_line
        return
    assert not multi_line
    exec_lines = [ln for ln in script.splitlines() if ln.startswith("exec ")]
    assert len(exec_lines) == 1 and exec_lines[0] == script.rstrip().splitlines()[-1]
    assert len(sbatch(script)) == 11
