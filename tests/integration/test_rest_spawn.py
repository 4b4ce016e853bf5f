"""A hub that is not root spawns through slurmrestd (issue 15): a second hub of the test stack
(tests/rest_hub.py) runs as the unprivileged account aifwt-hub with site `slurm.access: rest`. Through its REST
API (admin token) a session spawns for test-learner1: the job runs as test-learner1, JupyterLab answers
through that hub's proxy, and the hub and its proxy are not root; stopping it ends the job. While it runs, a
token of test-learner1 sent for test-learner2 (and a forged one) cannot submit or cancel: slurmctld refuses
it, in words."""
from __future__ import annotations

import dataclasses
import subprocess

import pytest
import requests

from aifw.sandbox.rest import API_VERSION, rest_url
from aifw.site import SlurmSettings
from aifw.slurm import (TOKEN_REFUSED, BatchJob, BatchScript, JwtMinter, SlurmClient, SlurmRejected,
                        build_batch_script)
from aifw_testing import HubClient, run_coroutine, wait_until
from rest_hub import HUB_ACCOUNT, start_rest_hub, stop_rest_hub

LEARNER, OTHER = "test-learner1", "test-learner2"
JOB_NAME = f"aifw-{LEARNER}"


@pytest.fixture(scope="module")
def rest_hub(stack):
    s = stack.stack
    hub = start_rest_hub(s.site_file, stack.home / "rest-hub", s.venv_bin, stack.slurm_conf, rest_url=rest_url(s),
                         api_version=API_VERSION, jwt_key=s.slurm_paths.jwt_key)
    try:
        yield hub
    finally:
        stop_rest_hub(hub)


def process_user(pid: int) -> str:
    return subprocess.run(["ps", "-o", "user=", "-p", str(pid)], capture_output=True, text=True, timeout=10,
                          check=True).stdout.strip()


class MintsOnlyFor(JwtMinter):
    """Signs test-learner1's token whoever it is asked for: a learner's token sent for another."""

    def mint(self, user):
        return super().mint(LEARNER)


def acting_client(stack, minter: JwtMinter):
    settings = SlurmSettings(access="rest", rest_url=rest_url(stack.stack), rest_api_version=API_VERSION,
                             jwt_key_file=minter.key_file, token_lifespan_s=60, conf=stack.slurm_conf)
    client = SlurmClient.for_site(settings)
    client.minter, client.query_user = minter, LEARNER
    return client


def other_script() -> str:
    home = f"/home/{OTHER}"
    job = BatchJob(job_name="aifw-rest-as-other", time_minutes=5, partition="cpu", memory_mb=256, chdir=home,
                   output=f"{home}/.aifw-rest-other-%j.out", requeue=False)
    return build_batch_script(job, BatchScript(command=["sleep", "60"], purpose="REST test"))


def session_jobs(stack) -> list[str]:
    return stack.slurm("squeue", "-h", "-u", LEARNER, "-n", JOB_NAME, "-o", "%i").split()


def test_a_hub_that_is_not_root_spawns_a_learners_session_through_slurmrestd(stack, rest_hub, tmp_path):
    hub = HubClient(dataclasses.replace(stack, hub_url=rest_hub.url, api_url=f"{rest_hub.url}/hub/api",
                                        api_token=rest_hub.api_token))
    proxy_pid = int((rest_hub.home / "state" / "hub" / "proxy.pid").read_text())
    assert (process_user(rest_hub.process.pid), process_user(proxy_pid)) == (HUB_ACCOUNT, HUB_ACCOUNT)
    assert hub.api("POST", f"/users/{LEARNER}").status_code in (201, 409)
    before = set(session_jobs(stack))
    try:
        r = hub.start(LEARNER, {"partition": "cpu", "runtime_minutes": 10})
        assert r.status_code in (201, 202), f"{r.status_code} {r.text[:300]}\n{rest_hub.log_tail()}"
        try:
            server = hub.wait_ready(LEARNER, 60)
        except AssertionError as err:
            raise AssertionError(f"{err}\n{rest_hub.log_tail()}") from None
        job_id = server["state"]["job_id"]
        assert job_id in set(session_jobs(stack)) - before
        assert stack.slurm("squeue", "-h", "-j", job_id, "-o", "%u|%T").strip() == f"{LEARNER}|RUNNING"
        status = requests.get(f"{rest_hub.url}/user/{LEARNER}/api/status", timeout=30,
                              headers={"Authorization": f"token {rest_hub.api_token}"})
        assert status.status_code == 200 and "started" in status.json(), status.text[:300]

        # A learner's token acts for that learner only; a forged one for no one.
        key = rest_hub.home / "jwt_hs256.key"
        forged = tmp_path / "forged.key"
        forged.write_bytes(b"f" * 32)
        forged.chmod(0o600)
        as_other = acting_client(stack, MintsOnlyFor(str(key), 60))
        refused = TOKEN_REFUSED.format(user=OTHER, action="{action}")
        with pytest.raises(SlurmRejected) as err:
            run_coroutine(as_other.submit(other_script(), user=OTHER, env={"PATH": "/usr/bin:/bin"}))
        assert str(err.value) == refused.format(action="submit job aifw-rest-as-other")
        with pytest.raises(SlurmRejected) as err:
            run_coroutine(as_other.cancel(job_id, user=OTHER))
        assert str(err.value) == refused.format(action=f"cancel job {job_id}")
        with pytest.raises(SlurmRejected) as err:
            run_coroutine(acting_client(stack, JwtMinter(str(forged), 60)).cancel(job_id, user=LEARNER))
        assert str(err.value) == TOKEN_REFUSED.format(user=LEARNER, action=f"cancel job {job_id}")
        assert stack.slurm("squeue", "-h", "-n", "aifw-rest-as-other", "-o", "%i").strip() == ""
        assert stack.slurm("squeue", "-h", "-j", job_id, "-o", "%T").strip() == "RUNNING"

        hub.stop(LEARNER)
        assert wait_until(lambda: job_id not in session_jobs(stack), 20), stack.squeue(LEARNER)
    finally:
        hub.stop_all_servers()
        for job_id in set(session_jobs(stack)) - before:
            stack.slurm("scancel", job_id)
