"""The spawner's settings (refused, honoured, its own) and its options flow, without a hub or Slurm: the
spawner is built from a traitlets Config as JupyterHub builds it, with its Slurm client stubbed."""
from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace

import pytest
from batchspawner import SlurmSpawner
from jupyterhub.spawner import Spawner
from tornado import web
from traitlets.config import Config

from aifw.site import example_site_path, load_site
from aifw.slurm import JobInfo, PartitionInfo, ProjectBudget, SlurmRejected, SlurmUnavailable, UserAssociations
from aifw.spawners.replaced import REPLACED, ReplacedSettings, replaced_in
from aifw.spawners.request import SessionRequest
from aifw.spawners.spawner import AIFSlurmSpawner, SpawnFailed
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
class FakeSlurm:
    """Stands in for the spawner's SlurmClient: accounting (accounts, default account, budgets), jobs
    and node addresses, each answer set by the test; an Exception as an answer is raised."""

    def __init__(self, accounts=(), default="", budgets=None, jobs=(), addresses=None):
        self.accounts = accounts if isinstance(accounts, Exception) else list(accounts)
        self.default = default
        self.budgets = budgets if budgets is not None else {}
        self.answers = list(jobs)  # JobInfo answers about the job, one per look-up, in turn (the last repeats)
        self.addresses = addresses or {}
        self.cancelled: list[str] = []

    @staticmethod
    def _answer(value):
        if isinstance(value, Exception):
            raise value
        return value

    async def user_associations(self, user):
        accounts = self._answer(self.accounts)
        return UserAssociations(tuple(sorted(accounts)), self.default if self.default in accounts else "",
                                {a: b for a, b in self.budgets.items() if a in accounts})

    def _next(self):
        return self._answer(self.answers.pop(0) if len(self.answers) > 1 else self.answers[0])

    async def job(self, job_id):
        return self._next()

    async def jobs(self, job_ids):  # the shared watcher's round: one answer for the one job asked
        info = self._next()
        return {info.job_id: info} if info.job_id in job_ids else {}

    async def ended_job(self, job_id):
        return JobInfo(job_id, "GONE")

    async def node_address(self, node):
        return self._answer(self.addresses.get(node, node))

    async def cancel(self, job_id, user=None):
        self.cancelled.append(job_id)

    async def pending_order(self, partition):
        return ["42"]


class Counting:
    """Stands in for the spawner's Slurm client and live partitions; counts the validations' look-ups."""

    def __init__(self, s: AIFSlurmSpawner, accounts=(), **slurm):
        self.lookups = 0

        async def live(cluster=""):
            self.lookups += 1
            return LIVE

        s.live_partitions = live
        s.slurm = FakeSlurm(accounts=accounts, **slurm)


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


# -- projects and budgets: refused before sbatch -------------------------------------------------------------
LLM = {"proj-llm": ProjectBudget("proj-llm", limit_minutes=120, used_minutes=30)}  # 1.5 GPU-hours left


def test_a_form_over_the_projects_budget_is_a_400_naming_what_is_left():
    s = spawner()
    Counting(s, accounts=["proj-llm"], default="proj-llm", budgets=LLM)
    with pytest.raises(web.HTTPError) as err:
        run(s.options_from_form({"partition": ["gpu"], "gpus": ["2"], "runtime_minutes": ["60"]}))
    assert err.value.status_code == 400
    assert err.value.jupyterhub_message.startswith("project proj-llm has 1.5 GPU-hours left; 2 GPUs for 60 min need 2")
    assert s._from_form is None
    assert run(s.options_from_form({"partition": ["gpu"], "gpus": ["1"], "runtime_minutes": ["90"]}))["gpus"] == 1


def test_rest_options_over_the_budget_or_outside_the_users_projects_are_a_400():
    s = spawner()
    s.orm_spawner = None
    Counting(s, accounts=["proj-llm", "training-2026"], default="training-2026", budgets=LLM)
    with pytest.raises(web.HTTPError) as err:
        run(s.apply_user_options(s, {"partition": "gpu", "gpus": 2, "runtime_minutes": 60, "account": "proj-llm"}))
    assert err.value.status_code == 400 and "project proj-llm has 1.5 GPU-hours left" in err.value.jupyterhub_message
    with pytest.raises(web.HTTPError) as err:
        run(s.apply_user_options(s, {"account": "proj-secret"}))
    assert err.value.jupyterhub_message == ("you are not a member of project 'proj-secret' (you have no Slurm "
                                            "association with it); your projects: training-2026, proj-llm")
    run(s.apply_user_options(s, {"partition": "gpu", "gpus": 1, "runtime_minutes": 60}))  # default: no GPU budget
    assert s.request.gpus == 1 and s.request.account == ""


@pytest.mark.parametrize("silent", [SlurmUnavailable("Connection refused"), SlurmRejected("no accounting plugin")])
def test_when_accounting_does_not_answer_the_form_still_works_with_the_sites_projects(silent, caplog):
    s = spawner()
    s.user = SimpleNamespace(name="trainer1")
    Counting(s, accounts=silent)
    with caplog.at_level(logging.WARNING):
        html = run(s._render_options_form(s))
    assert "budgets are unknown" in html and 'value="proj-llm"' in html and 'value="training-2026"' in html
    assert "Slurm's accounting did not answer about the projects of trainer1" in caplog.text
    request = run(s.validate_request({"partition": "gpu", "gpus": 2, "runtime_minutes": 240, "account": "proj-llm"}))
    assert request.account == "proj-llm"  # no budget known: Slurm decides at submit


def test_budgets_slurm_does_not_report_are_shown_as_unknown():
    s = spawner()  # slurmrestd 22.05 reports no association usage: accounts, no budgets
    Counting(s, accounts=["proj-llm"], default="proj-llm", budgets={})
    html = run(s._render_options_form(s))
    assert "proj-llm (your default) \u2014 GPU-hours unknown" in html


# -- sessions on compute nodes: the node's address, the port report from that node only ----------------------
RUNNING = JobInfo("42", "RUNNING", node="node2", partition="gpu")
NODE2 = {"node2": "198.18.0.140"}


def starting(accepts_after: int = 0, **slurm) -> AIFSlurmSpawner:
    """A spawner of job 42 whose server accepts connections from its `accepts_after`+1-th probe on."""
    s = spawner()
    s.startup_poll_interval = 0.01
    Counting(s, **slurm)
    s.job_id, s._spawn_pending = "42", True
    s.probes = []

    async def accepts():
        s.probes.append(s.port)
        return len(s.probes) > accepts_after

    s._server_accepts = accepts
    return s


def test_the_hub_routes_to_the_nodes_address_and_the_progress_names_the_node():
    s = starting(jobs=[JobInfo("42", "PENDING", reason="Resources"), RUNNING], addresses=NODE2)
    s._events = []

    async def scenario():
        waiting = await serving_once_the_node_is_known(s)
        refused = await s.accept_port_report({"port": 40000}, "198.18.0.139")  # node1, not the job's node
        accepted = await s.accept_port_report({"port": 40000}, "198.18.0.140")
        return refused, accepted, await asyncio.wait_for(waiting, 5)

    refused, accepted, served = run(scenario())
    assert refused == ("this report comes from 198.18.0.139, but job 42 runs on node2 (198.18.0.140): only the "
                       "job's node may report its port")
    assert accepted is None and served == ("198.18.0.140", 40000) and s.ip == "198.18.0.140"
    messages = [e["message"] for e in s._events]
    assert "Job 42 is running on node node2 (198.18.0.140); starting JupyterLab" in messages
    assert f"The hub refused a port report: {refused}" in messages  # said on the spawn page too
    assert messages[-2:] == ["JupyterLab starts on node node2 (198.18.0.140), port 40000",
                             "JupyterLab listens on node node2 (198.18.0.140), port 40000; connecting"]
    assert (s.get_state()["job_node"], s.get_state()["job_address"]) == ("node2", "198.18.0.140")


async def serving_once_the_node_is_known(s: AIFSlurmSpawner) -> asyncio.Future:
    """_wait_until_serving started, returned once it has learned the job's node (at most 5 s)."""
    waiting = asyncio.ensure_future(s._wait_until_serving(SessionRequest("gpu", 1, 1, 1, 60)))
    for _ in range(500):
        if s.job_address or waiting.done():
            break
        await asyncio.sleep(0.01)
    assert s.job_address, waiting.result() if waiting.done() else "the node was not learned in 5 s"
    return waiting


def reported(s: AIFSlurmSpawner, port: int = 40000):
    """_wait_until_serving of a running job on node2, whose server reports `port` once the node is known."""
    async def scenario():
        waiting = await serving_once_the_node_is_known(s)
        assert await s.accept_port_report({"port": port}, "198.18.0.140") is None
        return await asyncio.wait_for(waiting, 5)

    return scenario()


def test_the_spawn_returns_once_the_server_accepts_connections_not_at_the_port_report():
    # batchspawner's wrapper reports the port before the server listens: the spawner probes the node's
    # address until a connection is accepted, so that JupyterHub's first readiness check finds the server.
    s = starting(accepts_after=5, jobs=[RUNNING] * 50, addresses=NODE2)
    s._events = []
    assert run(reported(s)) == ("198.18.0.140", 40000)
    assert s.probes == [40000] * 6  # five refused, the sixth accepted; then returned at once


def test_a_job_that_ends_while_its_server_starts_fails_the_spawn_with_its_end():
    ended = JobInfo("42", "FAILED", node="node2", partition="gpu", exit_code="1:0")
    s = starting(accepts_after=10**6, jobs=[RUNNING, RUNNING] + [ended] * 50, addresses=NODE2)
    s._events = []
    with pytest.raises(SpawnFailed) as err:
        run(reported(s))
    assert err.value.status_code == 502
    assert err.value.jupyterhub_message.startswith(
        "Slurm job 42 on node2 (198.18.0.140) ended (FAILED, exit code 1:0) before its server accepted connections.")


def test_a_server_that_never_accepts_a_connection_fails_the_spawn_after_the_http_timeout():
    s = starting(accepts_after=10**6, jobs=[RUNNING] * 10**4, addresses=NODE2)
    s.http_timeout, s._events = 1, []
    with pytest.raises(SpawnFailed) as err:
        run(reported(s))
    assert err.value.status_code == 502
    assert err.value.jupyterhub_message.startswith(
        "JupyterLab of Slurm job 42 reported port 40000 on node node2 (198.18.0.140) but accepted no connection "
        "within 1 s.")
    assert 8 <= len(s.probes) <= 25  # every 0.05 s for 1 s, then given up


def test_a_port_report_before_the_hub_saw_the_job_running_asks_slurm_for_the_node():
    s = starting(jobs=[RUNNING], addresses=NODE2)
    assert run(s.accept_port_report({"port": 40001}, "::ffff:198.18.0.140")) is None
    assert (s.job_node, s.job_address, s.port) == ("node2", "198.18.0.140", 40001)
    assert run(s.accept_port_report({"port": 40002}, "198.18.0.140")) == "the port was already reported"


@pytest.mark.parametrize("body, sender, problem", [
    ({"port": 40000, "ip": "10.0.0.1"}, "198.18.0.140", "only 'port' may be reported; refused: ip"),
    ({"port": 40000, "host": "node2"}, "198.18.0.140", "only 'port' may be reported; refused: host"),
    ({"port": "80; id"}, "198.18.0.140", "port must be an integer between 1024 and 65535"),
    ({"port": True}, "198.18.0.140", "port must be an integer between 1024 and 65535"),
    (["port"], "198.18.0.140", "the body must be a JSON object"),
    ({"port": 40000}, "", "this report comes from an unknown address, but job 42 runs on node2"),
    ({"port": 40000}, "127.0.0.1", "this report comes from 127.0.0.1, but job 42 runs on node2 (198.18.0.140)"),
])
def test_a_port_report_is_refused_saying_why(body, sender, problem):
    s = starting(jobs=[RUNNING], addresses=NODE2)
    assert problem in run(s.accept_port_report(body, sender))
    assert s.port == 0


def test_a_port_report_while_slurm_does_not_say_the_node_is_refused():
    s = starting(jobs=[JobInfo("42", "PENDING")])
    assert "Slurm does not say yet which node job 42 runs on" in run(s.accept_port_report({"port": 40000}, "198.18.0.140"))
    s = starting(jobs=[RUNNING], addresses={"node2": SlurmUnavailable("timed out")})
    assert "Slurm does not say yet which node" in run(s.accept_port_report({"port": 40000}, "198.18.0.140"))
    s._spawn_pending = False
    assert run(s.accept_port_report({"port": 40000}, "198.18.0.140")) == "no server of yours is starting"


def test_a_node_address_that_is_a_name_is_compared_by_what_it_resolves_to():
    s = starting(jobs=[JobInfo("42", "RUNNING", node="localhost")])
    assert run(s.accept_port_report({"port": 40000}, "127.0.0.1")) is None


# -- a session that ends by itself: logged, remembered, shown in the next form ------------------------------------
def test_a_node_failure_ends_the_session_and_the_next_form_says_how_and_why(caplog):
    s = spawner()
    s.job_id, s.job_node, s.job_address, s.port = "42", "node2", "198.18.0.140", 40000
    s.slurm = FakeSlurm(jobs=[JobInfo("42", "NODE_FAIL", reason="NodeDown", node="node2")])
    with caplog.at_level(logging.WARNING):
        assert run(s.poll()) == 1
    assert s.last_end.startswith("Your last session (Slurm job 42) ended: NODE_FAIL on node2 (198.18.0.140), reason "
                                 "NodeDown: its compute node node2 failed (Slurm lost contact with it) (noticed at ")
    assert "Session of learner1 ended by itself: Your last session (Slurm job 42) ended: NODE_FAIL" in caplog.text
    s.clear_state()  # what JupyterHub does after a stop
    state = s.get_state()
    assert state["last_end"] == s.last_end and not state.get("job_id")
    again = spawner()
    again.load_state(state)  # a hub restart keeps it
    Counting(again)
    html = run(again._render_options_form(again))
    assert 'id="aifw-last-session">Your last session (Slurm job 42) ended: NODE_FAIL on node2 (198.18.0.140)' in html


def test_a_requeued_session_is_cancelled_and_reported_and_an_exited_one_only_logged():
    s = spawner()
    s.job_id, s.job_node, s.port = "42", "node1", 40000
    s.slurm = FakeSlurm(jobs=[JobInfo("42", "PENDING", reason="BeginTime")])
    assert run(s.poll()) == 1 and s.slurm.cancelled == ["42"]
    assert "it was requeued by Slurm, so its server stopped" in s.last_end
    s = spawner()
    s.job_id, s.port = "43", 40000
    s.slurm = FakeSlurm(jobs=[JobInfo("43", "COMPLETED", node="node1")])
    assert run(s.poll()) == 1 and s.last_end == ""


def test_a_starting_or_running_job_or_a_silent_slurm_keeps_the_session():
    for info in (JobInfo("42", "RUNNING", node="node1"), JobInfo("42", "PENDING"), SlurmUnavailable("down")):
        s = spawner()
        s.job_id = "42"
        s.slurm = FakeSlurm(jobs=[info])
        assert run(s.poll()) is None and s.job_id == "42" and s.last_end == ""


def test_the_callback_takes_the_sender_from_the_connection_not_from_headers_it_could_write():
    """JupyterHub's server runs with xheaders=True, so remote_ip follows X-Real-Ip; the sender is the socket's peer."""
    import json
    import socket as sockets

    from tornado.httpclient import AsyncHTTPClient
    from tornado.httpserver import HTTPServer
    from tornado.web import Application, RequestHandler

    from aifw.spawners.callback import peer_address

    class Echo(RequestHandler):
        def get(self):
            self.finish({"peer": peer_address(self.request), "remote_ip": self.request.remote_ip})

    async def ask():
        listener = sockets.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        listener.setblocking(False)
        server = HTTPServer(Application([("/", Echo)]), xheaders=True)
        server.add_socket(listener)
        try:
            port = listener.getsockname()[1]
            reply = await AsyncHTTPClient().fetch(f"http://127.0.0.1:{port}/", headers={"X-Real-Ip": "198.18.0.140"})
            return json.loads(reply.body)
        finally:
            server.stop()

    answer = run(ask())
    assert answer == {"peer": "127.0.0.1", "remote_ip": "198.18.0.140"}
    assert peer_address(SimpleNamespace(connection=None)) == ""


# -- the Slurm call behind the user's projects (aifw.slurm, with a fake scontrol) ----------------------------
def fake_scontrol(tmp_path, script: str):
    from aifw.slurm import SlurmClient

    tool = tmp_path / "scontrol"
    tool.write_text("#!/bin/sh\n" + script)
    tool.chmod(0o755)
    return SlurmClient(bin_dir=str(tmp_path), exec_prefix=())


ASSOC_MGR_ANSWER = """Current Association Manager state
User Records
UserName=test-researcher1(1004) DefAccount=training-2026 DefWckey= AdminLevel=None
Association Records
ClusterName=t Account=proj-llm UserName= ID=3 GrpTRESMins=gres/gpu=120(30) GrpTRESRunMins=gres/gpu=N(0)
ClusterName=t Account=proj-llm UserName=test-researcher1(1004) ID=4 GrpTRESMins=gres/gpu=N(0) GrpTRESRunMins=gres/gpu=N(0)
ClusterName=t Account=training-2026 UserName=test-researcher1(1004) ID=5 GrpTRESMins=gres/gpu=N(0) GrpTRESRunMins=gres/gpu=N(0)
"""


def test_the_users_projects_are_one_question_to_slurmctlds_association_manager(tmp_path):
    (tmp_path / "answer").write_text(ASSOC_MGR_ANSWER)
    client = fake_scontrol(tmp_path, f"""
case "$*" in
  "-o show assoc_mgr users=test-researcher1 flags=users,assoc") cat {tmp_path / "answer"} ;;
  *) echo "unexpected: $*" >&2; exit 1 ;;
esac""")
    mine = run(client.user_associations("test-researcher1"))
    assert (mine.accounts, mine.default) == (("proj-llm", "training-2026"), "training-2026")
    assert mine.budgets == {"proj-llm": ProjectBudget("proj-llm", limit_minutes=120, used_minutes=30)}
    with pytest.raises(ValueError, match="not a unix user name"):
        run(client.user_associations("x users=root"))


def test_a_controller_that_does_not_answer_is_an_error_not_no_projects(tmp_path):
    client = fake_scontrol(tmp_path, "echo 'slurm_load_assoc_mgr_info error: Unable to contact slurm controller' >&2; exit 1")
    with pytest.raises(SlurmUnavailable, match="Unable to contact slurm controller"):
        run(client.user_associations("test-learner1"))


def test_the_poll_jupyterhub_makes_just_before_a_stop_asks_slurm_nothing():
    s = starting(jobs=[AssertionError("Slurm was asked")], addresses=NODE2)
    s._stop_pending = True  # JupyterHub's User.stop sets it, then polls, then calls stop()
    assert run(s.poll()) is None  # "running": stop() cancels the job and waits for its end
    s._stop_pending = False
    with pytest.raises(AssertionError, match="Slurm was asked"):
        run(s.poll())


def test_a_session_gets_the_courses_of_the_site_file_and_of_the_users_course_groups():
    s = spawner()  # learner1 takes aif-foundations in the site file
    assert s.my_courses() == ["aif-foundations"]
    sync = s.session_setup()
    assert sync[0][0].endswith("/bin/python") and sync[0][1:3] == ["-m", "aifw.courses.sync"]
    assert sync[0][-1] == "aif-foundations"
    # An account a launch made is in no course of the site file, only in the course's hub group.
    s.user = SimpleNamespace(name="lti-anna", groups=[SimpleNamespace(name="course-aif-foundations-learners")])
    assert s.my_courses() == ["aif-foundations"]
    s.user = SimpleNamespace(name="lti-anna", groups=[SimpleNamespace(name="course-no-such-course-learners"),
                                                      SimpleNamespace(name="aif-foundations")])
    assert s.my_courses() == [] and s.session_setup() == []


def test_a_sandbox_session_runs_at_nice_10_and_a_site_session_as_it_is():
    s = spawner()  # the sandbox's site
    command = s.session_command()
    assert command[:3] == ["nice", "-n", "10"]
    assert command[3].endswith("/batchspawner-singleuser") and command[4].endswith("/jupyterhub-singleuser")
    s.site = s.site.model_copy(update={"sandbox": None})
    assert s.session_command()[0].endswith("/batchspawner-singleuser")
