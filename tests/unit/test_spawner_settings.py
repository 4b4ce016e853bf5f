"""The spawner's settings (refused, honoured, its own) and its options flow, without a hub or Slurm: the
spawner is built from a traitlets Config as JupyterHub builds it, with its Slurm client stubbed."""
from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest
from batchspawner import SlurmSpawner
from jupyterhub.spawner import Spawner
from tornado import web
from traitlets.config import Config

from aifw.site import example_site_path, load_site
from aifw.slurm import PartitionInfo
from aifw.spawners.replaced import REPLACED, ReplacedSettings, replaced_in
from aifw.spawners.request import SessionRequest
from aifw.spawners.spawner import AIFSlurmSpawner
from aifw_testing import run_coroutine

SITE = load_site(example_site_path("sandbox"))
LIVE = {name: PartitionInfo(name, cpus_per_node=16, memory_mb_per_node=16000, gpus_per_node=2, max_time_minutes=480)
        for name in ("cpu", "gpu", "debug")}
# batchspawner's settings that AIFSlurmSpawner honours (all others are in REPLACED).
HONOURED = {"startup_poll_interval"}


def config(**sections) -> Config:
    c = Config()
    c.AIFSlurmSpawner.site = SITE
    for section, values in sections.items():
        for key, value in values.items():
            setattr(c[section], key, value)
    return c


def spawner(c: Config | None = None) -> AIFSlurmSpawner:
    return AIFSlurmSpawner(config=c or config(), user=SimpleNamespace(name="learner1"))


# -- refused settings ----------------------------------------------------------------------------------
@pytest.mark.parametrize("section, key, value, replacement", [
    ("SlurmSpawner", "req_partition", "gpu", "site `partitions[]`"),
    ("SlurmSpawner", "req_runtime", "01:00:00", "`partitions[].default_runtime_minutes` and `max_runtime_minutes`"),
    ("BatchSpawnerBase", "exec_prefix", "sudo -E -u {username}", "site `slurm.exec_prefix`"),
    ("SlurmSpawner", "batch_script", "#!/bin/sh\n{cmd}", "site `environments[].prologue`"),
    ("BatchSpawnerRegexStates", "state_running_re", "^R", "job states are parsed by aifw.slurm"),
    ("AIFSlurmSpawner", "req_reservation", "x", "site `slurm.reservations`"),
    ("Spawner", "ip", "10.0.0.1", "site `hub.singleuser_ip`"),
    ("Spawner", "cmd", ["jupyter-labhub"], "site `paths.runtime_prefix`"),
])
def test_a_setting_the_spawner_does_not_use_is_refused_naming_what_replaces_it(section, key, value, replacement):
    with pytest.raises(ReplacedSettings) as err:
        spawner(config(**{section: {key: value}}))
    assert f"c.{section}.{key}: use " in str(err.value) and replacement in str(err.value)
    assert err.value.found == [(section, key)]


def test_every_refused_setting_is_named_at_once():
    c = config(SlurmSpawner={"req_partition": "gpu", "req_memory": "4G"}, Spawner={"port": 9999})
    with pytest.raises(ReplacedSettings) as err:
        spawner(c)
    assert sorted(err.value.found) == [("SlurmSpawner", "req_memory"), ("SlurmSpawner", "req_partition"), ("Spawner", "port")]


def test_every_setting_batchspawner_adds_is_honoured_or_refused():
    added = set(SlurmSpawner.class_traits(config=True)) - set(Spawner.class_traits(config=True))
    assert added - HONOURED - set(REPLACED) == set(), "a batchspawner setting neither honoured nor refused"
    assert HONOURED <= set(AIFSlurmSpawner.class_own_traits(config=True))
    assert not HONOURED & set(REPLACED)


def test_jupyterhubs_own_settings_the_spawner_uses_are_not_refused():
    c = config(Spawner={"default_url": "/lab", "start_timeout": 60, "poll_interval": 30, "environment": {"A": "1"}})
    assert replaced_in(c, AIFSlurmSpawner.section_names()) == []
    s = spawner(c)
    assert (s.default_url, s.start_timeout, s.poll_interval) == ("/lab", 60, 30)


# -- the spawner's own settings ----------------------------------------------------------------------------
def test_the_spawners_own_settings_and_batchspawners_poll_interval_work():
    c = config(AIFSlurmSpawner={"live_cache_seconds": 7.5, "stop_wait_seconds": 3.0},
               SlurmSpawner={"startup_poll_interval": 2.5})
    s = spawner(c)
    assert (s.live_cache_seconds, s.stop_wait_seconds, s.startup_poll_interval) == (7.5, 3.0, 2.5)
    assert spawner().startup_poll_interval == 1.0


def test_the_site_reaches_the_spawner_by_config_and_gives_its_slurm_client():
    s = spawner()
    assert s.site == SITE
    assert (s.slurm.bin_dir, s.slurm.conf, s.slurm.exec_prefix) == ("/usr/bin", SITE.slurm.conf, tuple(SITE.slurm.exec_prefix))


def test_without_a_site_the_spawner_says_how_to_start_the_hub():
    with pytest.raises(ValueError, match="c.AIFSlurmSpawner.site"):
        AIFSlurmSpawner(config=Config())


# -- options: validated once, travel as a SessionRequest -------------------------------------------------
class Counting:
    """Stands in for the spawner's Slurm client and live partitions; counts the validations' look-ups."""

    def __init__(self, s: AIFSlurmSpawner, accounts=()):
        self.lookups = 0
        self.accounts = list(accounts)

        async def live():
            self.lookups += 1
            return LIVE

        async def user_accounts(user):
            return self.accounts

        s.live_partitions = live
        s.slurm = SimpleNamespace(user_accounts=user_accounts)


def run(coro):
    return run_coroutine(coro)


def test_form_options_are_validated_once_and_reach_the_spawner_as_that_request():
    s = spawner()
    looked = Counting(s, accounts=["proj-mine"])
    stored = run(s.options_from_form({"partition": ["gpu"], "gpus": ["1"], "account": ["proj-mine"], "_xsrf": ["t"]}))
    assert stored == {"partition": "gpu", "cpus": 1, "memory_gb": 1, "gpus": 1, "runtime_minutes": 60,
                      "account": "proj-mine", "reservation": "", "environment": "default"}
    validated = s._from_form
    run(s.apply_user_options(s, stored))  # JupyterHub hands back what options_from_form returned
    assert s.request is validated and isinstance(s.request, SessionRequest)
    assert looked.lookups == 1  # not validated a second time
    assert s.request.gpu_type is None and s.request.account == "proj-mine"


def test_a_bad_form_is_a_400_with_every_problem_and_nothing_is_kept():
    s = spawner()
    Counting(s)
    with pytest.raises(web.HTTPError) as err:
        run(s.options_from_form({"partition": ["gpu"], "gpus": ["4"], "cpus": ["1; id"]}))
    assert err.value.status_code == 400
    assert err.value.jupyterhub_message == (
        "cpus must be a whole number, not '1; id'; partition gpu allows at most 2 GPUs per node; you asked for 4")
    assert s._from_form is None


def test_rest_options_are_validated_at_the_boundary():
    s = spawner()
    looked = Counting(s)
    run(s.apply_user_options(s, {"partition": "debug", "runtime_minutes": 20}))
    assert (s.request.partition, s.request.runtime_minutes) == ("debug", 20) and looked.lookups == 1
    s.orm_spawner = None
    with pytest.raises(web.HTTPError) as err:
        run(s.apply_user_options(s, {"partition": "debug", "runtime_minutes": "20"}))
    assert err.value.status_code == 400 and "runtime_minutes must be a whole number" in err.value.jupyterhub_message


def test_options_that_differ_from_the_forms_are_validated_again():
    s = spawner()
    looked = Counting(s)
    run(s.options_from_form({"partition": ["cpu"]}))
    run(s.apply_user_options(s, {"partition": "gpu", "gpus": 2}))
    assert (s.request.partition, s.request.gpus) == ("gpu", 2) and looked.lookups == 2


# -- the state: kept as data, checked again when read back ---------------------------------------------------
def test_the_state_keeps_the_requests_and_a_restart_reads_them_back():
    s = spawner()
    s.job_id, s.job_node, s.port = "42", "node1", 40000
    s.request = s.last_request = SessionRequest("gpu", 2, 4, 1, 90)
    state = s.get_state()
    assert state["request"] == state["last_request"] == s.request.as_user_options()
    again = spawner()
    again.load_state(state)
    assert again.request == s.request and again.last_request == s.request
    assert (again.job_id, again.job_node, again.port) == ("42", "node1", 40000)


def test_a_stored_request_that_no_longer_fits_is_dropped_and_logged(caplog):
    s = spawner()
    state = {"job_id": "42", "port": 40000, "job_node": "node1",
             "request": {"partition": "gpu", "gpus": 9}, "last_request": {"partition": "cpu\n#SBATCH --uid=0"}}
    with caplog.at_level(logging.WARNING):
        s.load_state(state)
    assert s.request is None and s.last_request is None and s.job_id == "42"
    assert "Stored request of learner1 no longer fits the site" in caplog.text
    assert "Stored last_request of learner1 no longer fits the site" in caplog.text
