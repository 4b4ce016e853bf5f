"""The spawner with site `slurm.access: rest`, without slurmrestd: its Slurm client is the REST one, and a
refused option is refused at the same boundary (validate_options) with the same words as on the command-line
path, before any request that acts: only the reads validation needs go out, with the hub's or the user's own
token, and nothing is submitted."""
from __future__ import annotations

import json
from types import SimpleNamespace

import jwt
import pytest
from traitlets.config import Config

from aifw.site import SlurmSettings, example_site_path, load_site
from aifw.slurm import JwtMinter, SlurmRestClient, UserAssociations
from aifw.slurm.rest import partitions_from_records
from aifw.spawners.spawner import AIFSlurmSpawner, SpawnFailed
from aifw_testing import run_coroutine

SITE = load_site(example_site_path("sandbox"))
HUB, LEARNER, KEY = "aifw-hub", "learner1", b"k" * 32
PARTITIONS = [{"name": "cpu", "flags": ["DEFAULT"], "state": "UP", "max_time_limit": 480},
              {"name": "gpu", "flags": [], "state": "UP", "max_time_limit": 240}]
NODES = [{"name": "node1", "partitions": ["cpu", "gpu"], "state": "idle", "state_flags": [], "cpus": 4,
          "idle_cpus": 4, "real_memory": 8000, "gres": "gpu:2", "gres_used": "gpu:0", "address": "198.18.0.139"}]
ACCOUNTS = ["training-2026"]


class ReadsOnly:
    """slurmrestd's answers to the reads validation makes (recorded shapes of Slurm 22.05); remembers every
    request and answers none that would act (submit, cancel)."""

    def __init__(self):
        self.asked: list[tuple[str, str, str, str]] = []

    def __call__(self, method, url, headers, body, timeout_s):
        claims = jwt.decode(headers["X-SLURM-USER-TOKEN"], KEY, algorithms=["HS256"])
        self.asked.append((method, url, headers["X-SLURM-USER-NAME"], claims["sun"]))
        if method != "GET":
            raise AssertionError(f"a refused option reached Slurm: {method} {url} {json.dumps(body)[:200]}")
        path = url.split("/v0.0.38/", 1)[1]
        answers = {
            "partitions": {"partitions": PARTITIONS},
            "nodes": {"nodes": NODES},
            f"associations?user={LEARNER}": {"associations": [{"user": LEARNER, "account": a} for a in ACCOUNTS]},
            f"user/{LEARNER}": {"users": [{"name": LEARNER, "default": {"account": ACCOUNTS[0]}}]},
        }
        if path not in answers:
            raise AssertionError(f"an unexpected read: {url}")
        return 200, json.dumps({"meta": {}, "errors": [], **answers[path]})


class CliSlurm:
    """The command-line client's answers to the same reads, as typed values."""

    async def partitions(self):
        return partitions_from_records(PARTITIONS, NODES)

    async def user_associations(self, user):
        return UserAssociations(tuple(ACCOUNTS), ACCOUNTS[0], {})


def spawner(site) -> AIFSlurmSpawner:
    c = Config()
    c.AIFSlurmSpawner.site = site
    c.AIFSlurmSpawner.live_cache_seconds = 0  # each spawner asks its own client
    return AIFSlurmSpawner(config=c, user=SimpleNamespace(name=LEARNER))


@pytest.fixture
def rest_spawner(tmp_path):
    key = tmp_path / "jwt.key"
    key.write_bytes(KEY)
    key.chmod(0o600)
    slurm = SlurmSettings(access="rest", rest_url="http://127.0.0.1:6820", rest_api_version="v0.0.38",
                          jwt_key_file=str(key), token_lifespan_s=60, conf=SITE.slurm.conf)
    s = spawner(SITE.model_copy(update={"slurm": slurm}))
    assert isinstance(s.slurm, SlurmRestClient) and isinstance(s.slurm.minter, JwtMinter)
    s.slurm.query_user = HUB  # the account the hub runs as (the tests may run as root, which is refused)
    s.slurm.transport = ReadsOnly()
    return s


def refusal(s: AIFSlurmSpawner, options: dict) -> str:
    with pytest.raises(SpawnFailed) as err:
        run_coroutine(s.apply_user_options(s, options))
    assert err.value.status_code == 400
    return err.value.log_message


@pytest.mark.parametrize("options", [
    {"partition": "cpu; scancel -u root"},
    {"partition": "cpu", "gpus": 1},
    {"partition": "gpu", "gpus": 3},
    {"partition": "cpu", "account": "proj-not-mine"},
    {"partition": "cpu", "runtime_minutes": "60 --uid=0"},
    {"partition": "cpu", "script": "#!/bin/bash\nid"},
])
def test_a_refused_option_is_refused_as_on_the_cli_path_and_reaches_slurm_with_no_request_that_acts(rest_spawner, options):
    cli = spawner(SITE)
    cli.slurm = CliSlurm()
    words = refusal(rest_spawner, options)
    assert words == refusal(cli, options)
    asked = rest_spawner.slurm.transport.asked
    assert {method for method, *_ in asked} == {"GET"} and rest_spawner.request is None
    assert all(name == sun for _m, _u, name, sun in asked)  # every token is the named user's own
    assert {(url.rsplit("/", 1)[-1], name) for _m, url, name, _s in asked} == {
        ("partitions", HUB), ("nodes", HUB), (f"associations?user={LEARNER}", LEARNER), (LEARNER, LEARNER)}


def test_options_that_pass_become_the_same_request_on_both_paths(rest_spawner):
    cli = spawner(SITE)
    cli.slurm = CliSlurm()
    options = {"partition": "gpu", "gpus": 1, "account": "training-2026"}
    for s in (rest_spawner, cli):
        run_coroutine(s.apply_user_options(s, options))
    assert rest_spawner.request == cli.request and rest_spawner.request.account == "training-2026"
