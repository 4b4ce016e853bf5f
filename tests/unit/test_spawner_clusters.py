"""The spawner on a site with several clusters, without Slurm: each cluster's client is a stand-in that
records what it is asked. A request names its cluster, and only that cluster is asked to validate it; the
session records its cluster, and poll, stop, restart and the queue explanation ask that cluster only; a
cluster that does not answer leaves the other's form and validation working."""
from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace

import pytest
from tornado import web
from traitlets.config import Config

from aifw.site import example_site_path, load_site
from aifw.slurm import JobInfo, PartitionInfo, SlurmUnavailable, UserAssociations
from aifw.spawners.spawner import AIFSlurmSpawner
from aifw_testing import run_coroutine
from two_clusters import two_cluster_data, two_cluster_site

TWO = two_cluster_site()
ANTENNA_PARTS = [PartitionInfo(n, cpus_per_node=16, memory_mb_per_node=16000, gpus_per_node=2, max_time_minutes=480)
                 for n in ("cpu", "gpu", "debug")]
FACTORY_PARTS = [PartitionInfo("big", cpus_per_node=64, memory_mb_per_node=512000, gpus_per_node=4, max_time_minutes=720),
                 PartitionInfo("gpu", cpus_per_node=8, memory_mb_per_node=64000, gpus_per_node=1, max_time_minutes=480)]


class Cluster:
    """One cluster's client: its partitions, the user's accounts there, job states; records every call."""

    def __init__(self, name: str, partitions, accounts=(), jobs=None, silent: bool = False):
        self.name, self.parts, self.accounts, self.silent = name, partitions, tuple(accounts), silent
        self.jobs_state = dict(jobs or {})
        self.asked: list[str] = []
        self.submitted: list[tuple[str, dict]] = []
        self.cancelled: list[str] = []
        self.hold: asyncio.Event | None = None  # set: partitions() waits for it

    @property
    def identity(self):
        return ("stand-in", self.name, id(self))

    def _ask(self, what: str) -> None:
        self.asked.append(what)
        if self.silent:
            raise SlurmUnavailable(f"{self.name}: Unable to contact slurm controller")

    async def partitions(self):
        self._ask("partitions")
        if self.hold is not None:
            await self.hold.wait()
        return list(self.parts)

    async def user_associations(self, user):
        self._ask("associations")
        return UserAssociations(self.accounts, self.accounts[0] if self.accounts else "", {})

    async def submit(self, script, *, user=None, env=None, hold=False):
        self._ask("submit")
        self.submitted.append((script, dict(env or {})))
        return "42"

    async def jobs(self, job_ids):
        self._ask("jobs")
        return {j: JobInfo(j, self.jobs_state[j], node="n1", partition="big") for j in job_ids
                if j in self.jobs_state and self.jobs_state[j] != "COMPLETED"}

    async def ended_job(self, job_id):
        self._ask("ended_job")
        return JobInfo(job_id, self.jobs_state.get(job_id, "GONE"))

    async def job(self, job_id):
        self._ask("job")
        return JobInfo(job_id, self.jobs_state.get(job_id, "GONE"))

    async def cancel(self, job_id, user=None):
        self._ask("cancel")
        self.cancelled.append(job_id)
        self.jobs_state[job_id] = "CANCELLED"

    async def pending_order(self, partition):
        self._ask(f"pending_order {partition}")
        return ["41", "42"]


def spawner(site=TWO, user: str = "learner1", **clusters: Cluster) -> AIFSlurmSpawner:
    c = Config()
    c.AIFSlurmSpawner.site = site
    c.AIFSlurmSpawner.live_cache_seconds = 0
    s = AIFSlurmSpawner(config=c, user=SimpleNamespace(name=user))
    s.orm_spawner = None
    for name, client in clusters.items():
        s.cluster_clients = s.cluster_clients.with_client(name, client)
    return s


def both(**factory):
    return (Cluster("antenna", ANTENNA_PARTS, accounts=["training-2026"]),
            Cluster("factory", FACTORY_PARTS, accounts=["factory-proj"], **factory))


def run(coro):
    return run_coroutine(coro)


def test_the_spawner_has_one_client_per_cluster_and_the_first_is_used_before_a_session():
    s = spawner()
    assert s.cluster_clients.names == ["antenna", "factory"]
    assert s.slurm is s.cluster_clients.client("antenna") and s.slurm.conf == TWO.slurm.conf
    assert s.cluster_clients.client("factory").url == "http://127.0.0.1:6920"  # its slurmrestd


@pytest.mark.parametrize("options, asked, expected", [
    ({"cluster": "factory", "partition": "gpu", "gpus": 1, "account": "factory-proj"}, "factory", ("factory", "gpu")),
    ({"partition": "gpu", "gpus": 1}, "antenna", ("antenna", "gpu")),
    ({"cluster": "antenna", "partition": "debug"}, "antenna", ("antenna", "debug")),
])
def test_a_request_is_validated_against_the_cluster_it_names_and_only_that_one_is_asked(options, asked, expected):
    antenna, factory = both()
    s = spawner(antenna=antenna, factory=factory)
    run(s.apply_user_options(s, options))
    assert (s.request.cluster, s.request.partition) == expected
    clients = {"antenna": antenna, "factory": factory}
    assert sorted(clients[asked].asked) == ["associations", "partitions"]
    assert [c.asked for n, c in clients.items() if n != asked] == [[]]


@pytest.mark.parametrize("options, message", [
    ({"cluster": "factory", "partition": "gpu", "gpus": 2, "account": "factory-proj"},
     "partition gpu allows at most 1 GPUs per node; you asked for 2"),  # the factory's live limit
    ({"cluster": "factory", "partition": "cpu", "account": "factory-proj"}, "partition 'cpu' is not offered on cluster factory"),
    ({"cluster": "factory", "partition": "big", "account": "training-2026"},
     "you are not a member of project 'training-2026' (you have no Slurm association with it); your projects: factory-proj"),
])
def test_a_request_that_does_not_fit_its_cluster_is_a_400(options, message):
    s = spawner(**dict(zip(("antenna", "factory"), both())))
    with pytest.raises(web.HTTPError) as err:
        run(s.apply_user_options(s, options))
    assert err.value.status_code == 400 and message in err.value.jupyterhub_message


def test_a_request_for_a_cluster_the_site_lacks_asks_no_cluster():
    antenna, factory = both()
    s = spawner(antenna=antenna, factory=factory)
    with pytest.raises(web.HTTPError) as err:
        run(s.apply_user_options(s, {"cluster": "west"}))
    assert "cluster 'west' is not offered here; choose one of: antenna, factory" in err.value.jupyterhub_message
    assert antenna.asked == factory.asked == []


def test_the_form_shows_a_silent_cluster_as_unavailable_and_the_other_one_as_it_is(caplog):
    antenna, factory = both(silent=True)
    s = spawner(antenna=antenna, factory=factory)
    with caplog.at_level(logging.WARNING):
        html = run(s._render_options_form(s))
    assert 'id="aifw-cluster-factory"' in html and "not answering right now: unavailable" in html
    assert "Slurm of cluster factory did not answer for the partition list" in caplog.text
    assert 'value="training-2026"' in html and "Slurm is not answering" not in html
    run(s.apply_user_options(s, {"partition": "gpu", "gpus": 1}))  # the antenna still takes sessions
    assert s.request.cluster == "antenna"


def test_a_cluster_that_hangs_holds_up_no_validation_on_the_other():
    antenna, factory = both()
    factory.hold = asyncio.Event()  # the factory's partition list never comes back
    s = spawner(antenna=antenna, factory=factory)
    other = spawner(antenna=antenna, factory=factory)

    async def scenario():
        hanging = asyncio.ensure_future(other.live_partitions("factory"))
        await asyncio.sleep(0.05)
        await asyncio.wait_for(s.apply_user_options(s, {"partition": "cpu"}), 2)
        hanging.cancel()
        return s.request

    assert run(scenario()).cluster == "antenna"


@pytest.fixture
def no_hub(monkeypatch):
    """JupyterHub's part of the session's environment (the hub's URLs and tokens) left out: no hub here."""
    from jupyterhub.spawner import Spawner

    monkeypatch.setattr(Spawner, "get_env", lambda self: {})


def started(s: AIFSlurmSpawner, options: dict) -> None:
    """start() up to the submit and the state it saves (the wait for the server is a stand-in)."""
    async def serving(req):
        return ("198.18.0.140", 40000)

    s._wait_until_serving = serving
    run(s.apply_user_options(s, options))
    run(s.start())


def test_a_session_is_submitted_to_its_cluster_and_its_state_records_that_cluster(no_hub):
    antenna, factory = both()
    s = spawner(user="nobody", antenna=antenna, factory=factory)
    started(s, {"cluster": "factory", "partition": "big", "account": "factory-proj"})
    assert [a for a in factory.asked if a == "submit"] == ["submit"] and "submit" not in antenna.asked
    state = s.get_state()
    assert state["cluster"] == "factory" and state["request"]["cluster"] == "factory"
    assert any("to partition big of cluster factory" in e["message"] for e in s._events)
    assert "SLURM_CONF" not in factory.submitted[0][1]  # the factory names no slurm.conf: not the antenna's


@pytest.mark.parametrize("stored, asked", [
    ({"cluster": "factory"}, "factory"),
    ({}, "antenna"),  # a state from before the site had several clusters: the first
    ({"cluster": "antenna"}, "antenna"),
])
def test_a_restored_session_is_polled_and_stopped_on_its_cluster(stored, asked):
    antenna, factory = both()
    for c in (antenna, factory):
        c.jobs_state["42"] = "RUNNING"
    s = spawner(antenna=antenna, factory=factory)
    s.load_state({"job_id": "42", "port": 40000, "job_node": "n1", "job_address": "198.18.0.140", **stored})
    assert run(s.poll()) is None  # running
    s.stop_wait_seconds = 2
    run(s.stop())
    clients = {"antenna": antenna, "factory": factory}
    assert clients[asked].cancelled == ["42"]
    assert [c.asked for n, c in clients.items() if n != asked] == [[]]
    assert s.get_state().get("cluster") == asked


def test_a_stored_cluster_the_site_no_longer_has_is_the_first_one_and_logged(caplog):
    antenna, factory = both()
    antenna.jobs_state["42"] = "RUNNING"
    s = spawner(antenna=antenna, factory=factory)
    with caplog.at_level(logging.WARNING):
        s.load_state({"job_id": "42", "port": 40000, "cluster": "west"})
    assert "names cluster 'west', which the site no longer has; asking the default cluster antenna about job 42" in caplog.text
    assert run(s.poll()) is None and "jobs" in antenna.asked and factory.asked == []


def test_the_queue_explanation_asks_the_sessions_cluster():
    antenna, factory = both()
    s = spawner(antenna=antenna, factory=factory)
    s.load_state({"job_id": "42", "cluster": "factory",
                  "request": {"cluster": "factory", "partition": "big", "account": "factory-proj"}})
    text = run(s._queue_explanation(JobInfo("42", "PENDING", reason="Priority", partition="big"), s.request))
    assert "position 2" in text
    assert "pending_order big" in factory.asked and "partitions" in factory.asked and antenna.asked == []


def test_a_sessions_slurm_conf_is_its_clusters(no_hub):
    data = two_cluster_data()
    data["clusters"][1]["slurm"]["conf"] = "/etc/factory/slurm.conf"  # a REST cluster may name one for its jobs
    from aifw.site import site_from_dict

    s = spawner(site_from_dict(data), user="nobody")  # an account of this host (the environment names its home)
    assert s.get_env()["SLURM_CONF"] == TWO.slurm.conf
    s.job_cluster = "factory"
    assert s.get_env()["SLURM_CONF"] == "/etc/factory/slurm.conf"


def test_on_a_site_with_one_cluster_the_state_has_no_cluster():
    s = spawner(load_site(example_site_path("sandbox")))
    s.job_id, s.port = "42", 40000
    assert "cluster" not in s.get_state()
    s.load_state({"job_id": "42", "port": 40000, "cluster": "default"})
    assert s.job_cluster == ""
