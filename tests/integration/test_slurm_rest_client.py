"""The REST client against the test stack's slurmrestd: a job submitted with a learner's own token runs as
that learner, is seen running and is cancelled; another learner's token cannot cancel it; a token that
expired reads in plain words and submits nothing."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from aifw.sandbox.rest import API_VERSION, rest_url
from aifw.site import SlurmSettings
from aifw.slurm import (
    TOKEN_EXPIRED,
    BatchJob,
    BatchScript,
    JwtMinter,
    SlurmClient,
    SlurmRejected,
    SlurmRestClient,
    build_batch_script,
)
from aifw_testing import wait_until, run_coroutine

LEARNER, OTHER = "test-learner1", "test-learner2"
HOME = f"/home/{LEARNER}"
ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": HOME}


def rest_client(stack) -> SlurmRestClient:
    settings = SlurmSettings(access="rest", rest_url=rest_url(stack.stack), rest_api_version=API_VERSION,
                             jwt_key_file=str(stack.stack.slurm_paths.jwt_key), token_lifespan_s=60,
                             conf=stack.slurm_conf)
    client = SlurmClient.for_site(settings)
    assert isinstance(client, SlurmRestClient)
    client.query_user = LEARNER  # these tests run as root; a hub with access: rest reads as its own account
    return client


def script(name: str) -> str:
    job = BatchJob(job_name=name, time_minutes=5, partition="cpu", memory_mb=256, chdir=HOME,
                   output=f"{HOME}/.aifw-rest-test-%j.out", requeue=False)
    return build_batch_script(job, BatchScript(command=["sleep", "120"], purpose="REST test"))


def test_a_job_submitted_with_a_learners_token_runs_as_the_learner_and_only_they_cancel_it(stack):
    client = rest_client(stack)
    job_id = run_coroutine(client.submit(script("aifw-rest-run"), user=LEARNER, env=ENV))
    out = Path(f"{HOME}/.aifw-rest-test-{job_id}.out")
    try:
        assert stack.slurm("squeue", "-h", "-j", job_id, "-o", "%u|%j|%l").strip() == f"{LEARNER}|aifw-rest-run|5:00"
        assert wait_until(lambda: run_coroutine(client.job(job_id)).is_running, 30), run_coroutine(client.job(job_id))
        assert wait_until(lambda: out.exists() and f"as {LEARNER} on node" in out.read_text(), 15)
        with pytest.raises(SlurmRejected, match="only a job's owner"):
            run_coroutine(client.cancel(job_id, user=OTHER))
        assert run_coroutine(client.job(job_id)).is_running
        run_coroutine(client.cancel(job_id, user=LEARNER))
        assert wait_until(lambda: run_coroutine(client.job(job_id)).state == "CANCELLED", 20)
    finally:
        stack.slurm("scancel", job_id)
        out.unlink(missing_ok=True)


def test_an_expired_token_reads_in_plain_words_and_submits_nothing(stack):
    client = rest_client(stack)
    client.minter = JwtMinter(client.minter.key_file, 60, clock=lambda: time.time() - 600)
    with pytest.raises(SlurmRejected) as err:
        run_coroutine(client.submit(script("aifw-rest-expired"), user=LEARNER, env=ENV))
    assert str(err.value) == TOKEN_EXPIRED
    with pytest.raises(SlurmRejected, match=TOKEN_EXPIRED):
        run_coroutine(client.job("1"))
    assert stack.slurm("squeue", "-h", "-n", "aifw-rest-expired", "-o", "%i").strip() == ""
