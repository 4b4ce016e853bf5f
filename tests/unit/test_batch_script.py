"""The session's batch script: only validated values, quoted command, no injection even on a bug upstream."""
from __future__ import annotations

import dataclasses
import shlex
import subprocess
import time

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from aifw.site import Environment, example_site_path, load_site
from aifw.slurm import UnsafeValue
from aifw.spawners.batch_script import ScriptContext, session_script
from aifw.spawners.request import validate_options

SITE = load_site(example_site_path("sandbox"))
CTX = ScriptContext(username="learner1", home="/home/learner1", command=["/opt/aifw/venv/bin/batchspawner-singleuser", "/opt/aifw/venv/bin/jupyterhub-singleuser", "--arg=a b"])


def sbatch_lines(script: str) -> list[str]:
    return [ln for ln in script.splitlines() if ln.startswith("#SBATCH")]


def test_script_for_a_gpu_session():
    req = validate_options({"partition": "gpu", "gpus": 2, "cpus": 3, "memory_gb": 6, "runtime_minutes": 90}, SITE)
    script = session_script(req, SITE.environment("default"), CTX)
    assert script.startswith("#!/bin/bash\n")
    assert sbatch_lines(script) == [
        "#SBATCH --job-name=aifw-learner1",
        "#SBATCH --partition=gpu",
        "#SBATCH --cpus-per-task=3",
        "#SBATCH --mem=6G",
        "#SBATCH --time=01:30:00",
        "#SBATCH --output=/home/learner1/.aifw-session-%j.log",
        "#SBATCH --chdir=/home/learner1",
        "#SBATCH --nodes=1",
        "#SBATCH --ntasks=1",
        "#SBATCH --gres=gpu:2",
        "#SBATCH --no-requeue",  # a node failure ends the session (NODE_FAIL) instead of re-running it unseen
        "#SBATCH --signal=B:USR2@60",  # the server saves before the end of the walltime (site: session)
    ]
    assert script.rstrip().splitlines()[-1] == (
        "exec /opt/aifw/venv/bin/batchspawner-singleuser /opt/aifw/venv/bin/jupyterhub-singleuser '--arg=a b'"
    )
    [banner] = [ln for ln in script.splitlines() if ln.startswith("echo ")]
    assert banner == ('echo "AIF Workbench JupyterHub session: job $SLURM_JOB_ID as $(id -un) on node '
                      '${SLURMD_NODENAME:-$(hostname)}, hostname $(hostname), address $(hostname -I 2>/dev/null || echo unknown)"')


def test_the_session_log_names_the_node_and_its_address(tmp_path):
    """The banner, run by bash as a job would run it: Slurm's node name, the hostname, the addresses."""
    import os
    import socket

    script = session_script(validate_options({}, SITE), SITE.environment("default"), CTX)
    [banner] = [ln for ln in script.splitlines() if ln.startswith("echo ")]
    env = dict(os.environ, SLURM_JOB_ID="42", SLURMD_NODENAME="node2")
    out = subprocess.run(["bash", "-c", "set -eo pipefail; " + banner], capture_output=True, text=True, env=env,
                         timeout=10, check=True).stdout
    assert out.startswith("AIF Workbench JupyterHub session: job 42 as ")
    assert f" on node node2, hostname {socket.gethostname()}, address " in out
    own = subprocess.run(["bash", "-c", "hostname -I 2>/dev/null || echo unknown"], capture_output=True, text=True,
                         timeout=10).stdout.strip()
    assert out.split(", address ", 1)[1].strip() == own and "$(" not in out


def test_set_up_steps_run_beside_the_server_and_their_failure_is_only_reported(tmp_path):
    ctx = dataclasses.replace(CTX, beside=[["/opt/aifw/venv/bin/aifw", "courses", "sync", "aif-foundations"]])
    lines = session_script(validate_options({}, SITE), SITE.environment("default"), ctx).splitlines()
    step = ("{ /opt/aifw/venv/bin/aifw courses sync aif-foundations || echo 'AIF Workbench: JupyterHub session "
            "background step failed (continuing)' >&2; } &")
    assert lines[-2:] == [step, lines[-1]] and lines[-1].startswith("exec ")
    # As bash runs it: the server does not wait for the step, and the step's failure is only reported.
    script = tmp_path / "job.sh"
    script.write_text("set -eo pipefail\n" + step.replace("/opt/aifw/venv/bin/aifw courses sync aif-foundations",
                                                          f"sleep 0.5; echo synced > {tmp_path}/done; false")
                      + f"\nexec cat {tmp_path}/done 2>&1\n")
    ran = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=10)
    assert ran.returncode == 1 and "No such file" in ran.stdout  # the command ran first, on its own
    assert wait_for_file(tmp_path / "done") == "synced\n"


def wait_for_file(path, timeout_s=5.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.exists() and path.read_text():
            return path.read_text()
        time.sleep(0.05)
    raise AssertionError(f"{path} was not written within {timeout_s} s")


def test_account_reservation_and_environment_prologue():
    lumi = load_site(example_site_path("lumi-like"))
    req = validate_options({"partition": "dev-g", "account": "project_465000001", "reservation": "aif-training-2026", "environment": "pytorch"}, lumi)
    script = session_script(req, lumi.environment("pytorch"), CTX)
    assert "#SBATCH --account=project_465000001" in script and "#SBATCH --reservation=aif-training-2026" in script
    assert "module load LUMI/24.03 partition/G" in script
    assert script.index("module load") < script.index("exec ")


def test_no_gres_line_without_gpus_and_no_token_anywhere():
    script = session_script(validate_options({}, SITE), SITE.environment("default"), CTX)
    assert "--gres" not in script and "TOKEN" not in script.upper()


@pytest.mark.parametrize("field, value", [("partition", "cpu\n#SBATCH --uid=0"), ("account", "a;id"), ("reservation", "$(id)"), ("gpu_type", "a100\nid")])
def test_a_bad_value_that_slipped_past_validation_never_reaches_the_script(field, value):
    req = dataclasses.replace(validate_options({"partition": "gpu", "gpus": 1}, SITE), **{field: value})
    with pytest.raises(UnsafeValue):
        session_script(req, SITE.environment("default"), CTX)


@pytest.mark.parametrize("ctx", [dataclasses.replace(CTX, username="root;id"), dataclasses.replace(CTX, home="/home/x\n#SBATCH --uid=0")])
def test_unsafe_user_or_home_is_refused(ctx):
    with pytest.raises(UnsafeValue):
        session_script(validate_options({}, SITE), SITE.environment("default"), ctx)


def breaks_a_line(text: str) -> bool:
    """Whether `text` would end a line for bash or for a reader of the script (str.splitlines), or is NUL."""
    return "\0" in text or len(f"{text}x".splitlines()) > 1


@given(st.lists(st.text(max_size=30), max_size=4))
@example(["--x=a\n#SBATCH --uid=0"])
@example(["a\rb"])
@example(["a\u2028b"])
@example(["$(id)", "a b", "'quoted'"])
def test_the_command_is_always_one_quoted_line(args):
    ctx = dataclasses.replace(CTX, command=["/bin/x", *args])
    if any(breaks_a_line(a) for a in args):
        with pytest.raises(UnsafeValue, match="one line per command"):
            session_script(validate_options({}, SITE), Environment(name="default"), ctx)
        return
    script = session_script(validate_options({}, SITE), Environment(name="default"), ctx)
    lines = script.splitlines()
    assert [ln for ln in lines if ln.startswith("exec ")] == [lines[-1]]
    assert shlex.split(lines[-1]) == ["exec", "/bin/x", *args]
    assert len(sbatch_lines(script)) == 11
