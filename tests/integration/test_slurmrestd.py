"""slurmrestd runs beside the command line, with JWT: a token minted for one user works for that user
only, and a request without one is refused."""
from __future__ import annotations

import os
import subprocess

import requests

from aifw.sandbox.rest import API_VERSION, rest_url


def _token(stack, user: str) -> str:
    env = dict(os.environ, SLURM_CONF=stack.slurm_conf)
    out = subprocess.run(["scontrol", "token", f"username={user}", "lifespan=300"], capture_output=True,
                         text=True, env=env, timeout=30, check=True).stdout
    return out.strip().split("=", 1)[1]


def test_a_users_token_works_for_that_user_only(stack):
    base = f"{rest_url(stack.stack)}/slurm/{API_VERSION}"
    assert requests.get(f"{base}/ping", timeout=10).status_code == 401  # no token
    token = _token(stack, "test-learner1")
    mine = {"X-SLURM-USER-NAME": "test-learner1", "X-SLURM-USER-TOKEN": token}
    r = requests.get(f"{base}/ping", headers=mine, timeout=10)
    assert r.status_code == 200, r.text[:300]
    assert r.json()["pings"][0]["ping"] == "UP"
    # The same token, presented for another learner: slurmctld refuses it.
    theirs = {"X-SLURM-USER-NAME": "test-learner2", "X-SLURM-USER-TOKEN": token}
    r = requests.get(f"{base}/jobs", headers=theirs, timeout=10)
    assert r.status_code != 200 or r.json().get("errors"), r.text[:300]
    # A forged token (right shape, wrong key) is refused as well.
    head, payload, _sig = token.split(".")
    forged = {"X-SLURM-USER-NAME": "test-learner1", "X-SLURM-USER-TOKEN": f"{head}.{payload}.AAAA"}
    r = requests.get(f"{base}/jobs", headers=forged, timeout=10)
    assert r.status_code != 200 or r.json().get("errors"), r.text[:300]
