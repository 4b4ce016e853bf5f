"""The REST way to Slurm (aifw.slurm.rest), without slurmrestd: the request body from a batch script, the
per-user tokens, the site settings, and slurmrestd's answers (recorded on Slurm 22.05) as our errors."""
from __future__ import annotations

import json
import socket
import time
from datetime import datetime

import jwt
import pytest

from aifw_testing import run_coroutine
from aifw.site import SiteError, SlurmSettings, site_from_dict
from aifw.slurm import (
    TOKEN_EXPIRED,
    TOKEN_REFUSED,
    BatchJob,
    BatchScript,
    EndSignal,
    JwtMinter,
    SlurmClient,
    SlurmNotInstalled,
    SlurmRejected,
    SlurmRestClient,
    SlurmTimedOut,
    SlurmUnavailable,
    UnsafeValue,
    batch_job_from_script,
    build_batch_script,
    submit_body,
    token_claims,
)
from aifw.slurm.rest import END_SIGNAL_UNSENT, job_info, node_state, partitions_from_records, pending_order_from_jobs

SESSION = BatchJob(job_name="aifw-ann", time_minutes=90, partition="gpu", cpus_per_task=2, memory_mb=8192,
                   output="/home/ann/.aifw-session-%j.log", chdir="/home/ann", gpus=1, gpu_type="mi250",
                   account="proj-ai", reservation="course", requeue=False, end_signal=EndSignal("USR1", 60))


def script_of(job: BatchJob) -> str:
    return build_batch_script(job, BatchScript(command=["sleep", "60"]))


# -- the body ------------------------------------------------------------------------------------
@pytest.mark.parametrize("job", [
    SESSION,
    BatchJob(job_name="plain", time_minutes=1),
    BatchJob(job_name="grade", time_minutes=2 * 24 * 60, memory_mb=1500, array_size=4, nodes=2, ntasks=3,
             gpus=2, requeue=True, output="/srv/g/%A_%a.log"),
])
def test_the_script_gives_back_the_job_it_was_built_from(job):
    assert batch_job_from_script(script_of(job)) == job


@pytest.mark.parametrize("edit, why", [
    (lambda s: s.replace("#SBATCH --ntasks=1", "#SBATCH --ntasks=1\n#SBATCH --exclusive"), "cannot send it as a job property"),
    (lambda s: s.replace("\n# Generated", "\n#SBATCH --qos=high\n# Generated"), "cannot send it as a job property"),
    (lambda s: s.replace("#SBATCH --ntasks=1", "#SBATCH --ntasks=1\n#SBATCH --ntasks=2"), "--ntasks is given twice"),
    (lambda s: s.replace("#SBATCH --ntasks=1", "#SBATCH  --ntasks=1"), "expected '#SBATCH --option=value'"),
    (lambda s: s.replace("#SBATCH --mem=8G", "#SBATCH --mem=8000"), "expected a number of G or M"),
    (lambda s: s.replace("#SBATCH --job-name=aifw-ann\n", ""), "without #SBATCH --job-name"),
    (lambda s: s.replace("#SBATCH --partition=gpu\n", "").replace("#SBATCH --ntasks=1", "#SBATCH --ntasks=1\n#SBATCH --partition=gpu"),
     "not those build_batch_script writes"),
    (lambda s: s.replace("#!/bin/bash\n", ""), "without its #! line"),
    (lambda s: s.replace("--signal=B:USR1@60", "--signal=USR1@60"), "only B:NAME@SECONDS"),
    (lambda s: s.replace("--signal=B:USR1@60", "--signal=B:KILL@60"), "refusing signal 'KILL'"),
])
def test_a_directive_that_would_be_dropped_is_refused(edit, why):
    with pytest.raises(UnsafeValue, match=why):
        batch_job_from_script(edit(script_of(SESSION)))


def test_the_body_carries_every_directive_the_environment_and_the_working_directory():
    script = script_of(SESSION)
    body = submit_body(SESSION, script, environment={"PATH": "/usr/bin", "JUPYTERHUB_API_TOKEN": "t"}, home="/home/x")
    assert body == {"script": script, "job": {
        "name": "aifw-ann", "time_limit": 90, "nodes": [1, 1], "tasks": 1, "cpus_per_task": 2,
        "current_working_directory": "/home/ann", "standard_output": "/home/ann/.aifw-session-%j.log",
        "environment": {"PATH": "/usr/bin", "JUPYTERHUB_API_TOKEN": "t"}, "partition": "gpu", "account": "proj-ai",
        "reservation": "course", "memory_per_node": 8192, "gres": "gpu:mi250:1", "requeue": False}}
    # No "signal": slurmrestd 22.05 refuses the batch flag (B:), without which the server is never signalled.
    plain = submit_body(BatchJob(job_name="p", time_minutes=5, array_size=2), "#!/bin/bash\n", environment={"PATH": "/b"},
                        home="/home/ann", hold=True)["job"]
    assert (plain["current_working_directory"], plain["standard_output"]) == ("/home/ann", "/home/ann/slurm-%A_%a.out")
    assert plain["array"] == "0-1" and plain["hold"] is True and "requeue" not in plain and "gres" not in plain


@pytest.mark.parametrize("env, home, why", [
    ({"PATH": "/b", "BAD NAME": "x"}, "/home/ann", "variable name"),
    ({"PATH": "/b\0x"}, "/home/ann", "without NUL"),
    ({}, "/home/ann", "at least PATH"),
    ({"PATH": "/b"}, "relative/home", "working directory"),
])
def test_a_body_that_is_not_safe_is_refused(env, home, why):
    job = BatchJob(job_name="p", time_minutes=5)
    with pytest.raises(ValueError, match=why):
        submit_body(job, "#!/bin/bash\n", environment=env, home=home)
    with pytest.raises(UnsafeValue, match="job name"):
        submit_body(BatchJob(job_name="x; rm", time_minutes=5), "#!/bin/bash\n", environment={"PATH": "/b"}, home="/h")


# -- tokens --------------------------------------------------------------------------------------
def key_file(tmp_path, mode=0o600) -> str:
    path = tmp_path / "jwt.key"
    path.write_bytes(b"k" * 32)
    path.chmod(mode)
    return str(path)


def test_a_token_is_the_one_scontrol_token_makes_for_that_user_only(tmp_path):
    token = JwtMinter(key_file(tmp_path), 60, clock=lambda: 1000.5).mint("ann")
    claims = jwt.decode(token.value, b"k" * 32, algorithms=["HS256"], options={"verify_exp": False})
    assert claims == {"sun": "ann", "iat": 1000, "exp": 1060} and token.expires_at == 1060
    assert jwt.get_unverified_header(token.value)["alg"] == "HS256"
    with pytest.raises(UnsafeValue, match="root"):
        token_claims("root", now=0, lifespan_s=60)
    with pytest.raises(ValueError, match="unix name"):
        token_claims("Ann Smith", now=0, lifespan_s=60)


def test_a_key_every_user_may_read_or_none_at_all_is_refused(tmp_path):
    with pytest.raises(SlurmNotInstalled, match="open to every user"):
        JwtMinter(key_file(tmp_path, 0o604)).mint("ann")
    with pytest.raises(SlurmNotInstalled, match="cannot read the JWT key .*No such file"):
        JwtMinter(str(tmp_path / "none.key")).mint("ann")


# -- site settings -------------------------------------------------------------------------------
REST = {"access": "rest", "rest_url": "http://127.0.0.1:6820/", "rest_api_version": "v0.0.38",
        "jwt_key_file": "/etc/slurm/jwt_hs256.key", "token_lifespan_s": 60}


def site_with(slurm: dict):
    return site_from_dict({"name": "s", "partitions": [{"name": "cpu"}], "slurm": slurm}, source="site.yaml")


def test_rest_access_picks_the_rest_client(tmp_path):
    settings = SlurmSettings(**REST)
    client = SlurmClient.for_site(settings, timeout_s=3)
    assert isinstance(client, SlurmRestClient) and client.url == "http://127.0.0.1:6820" and client.timeout_s == 3
    assert client.minter.lifespan_s == 60 and client.minter.key_file == "/etc/slurm/jwt_hs256.key"
    assert isinstance(SlurmClient.for_site(SlurmSettings()), SlurmClient)


@pytest.mark.parametrize("slurm, expected", [
    ({"access": "rest", "rest_url": "http://127.0.0.1:6820"},
     "access: rest needs rest_api_version, jwt_key_file, token_lifespan_s"),
    ({"jwt_key_file": "/k"}, "jwt_key_file: used only with access: rest (access is cli); remove it"),
    ({**REST, "rest_url": "http://slurm.example.org:6820"}, "tokens would cross the network in plain text"),
    ({**REST, "rest_url": "https://u:p@slurm.example.org"}, "expected a URL like"),
    ({**REST, "rest_api_version": "v0.0.40"}, "key 'slurm.rest_api_version'"),
    ({**REST, "token_lifespan_s": 86400}, "key 'slurm.token_lifespan_s'"),
])
def test_wrong_rest_settings_say_what_to_fix(slurm, expected):
    with pytest.raises(SiteError) as err:
        site_with(slurm)
    assert expected in str(err.value)
    assert site_with({**REST, "rest_url": "https://slurm.example.org/api"}).slurm.rest_url == "https://slurm.example.org/api"


# -- answers -------------------------------------------------------------------------------------
def answer(*errors: dict, **fields) -> str:
    return json.dumps({"meta": {}, "errors": list(errors), **fields})


class FakeTransport:
    """slurmrestd's recorded answers; remembers what was asked."""

    def __init__(self, *answers: tuple[int, str] | BaseException):
        self.answers, self.asked = list(answers), []

    def __call__(self, method, url, headers, body, timeout_s):
        self.asked.append((method, url, dict(headers), body))
        reply = self.answers.pop(0)
        if isinstance(reply, BaseException):
            raise reply
        return reply


def client(tmp_path, transport, *, clock=time.time, user="ann") -> SlurmRestClient:
    return SlurmRestClient(url="http://127.0.0.1:6820", api_version="v0.0.38", query_user=user,
                           minter=JwtMinter(key_file(tmp_path), 60, clock=clock), transport=transport, timeout_s=2)


GONE = {"description": "Unable to find JobId=7", "error_number": 2017, "error": "Invalid job id specified", "source": "slurm_load_job"}
UNCLEAR = {"description": "slurmctld config is unable to load", "error_number": -1, "error": "Unspecified error"}
ZERO = {"error_code": 5005, "error": "Zero Bytes were transmitted or received"}
NO_CTLD = {"error_code": 1800, "error": "Unable to contact slurm controller (connect failure)"}
DENIED = {"description": "unable to kill JobId=7 with signal 9: Access/permission denied", "error_number": 2002,
          "error": "Access/permission denied"}


def test_an_end_signal_that_slurmrestd_cannot_send_is_said_once_in_the_log(tmp_path, caplog):
    fake = FakeTransport((200, answer(job_id=41)), (200, answer(job_id=42)))
    rest = client(tmp_path, fake)
    for _ in range(2):
        run_coroutine(rest.submit(script_of(SESSION), user="bob", env={"PATH": "/usr/bin"}))
    assert [r.getMessage() for r in caplog.records if r.name == "aifw.slurm.rest"] == [END_SIGNAL_UNSENT]
    assert all("signal" not in body["job"] for *_, body in fake.asked)


def test_submit_sends_the_users_own_token_and_the_whole_job(tmp_path):
    fake = FakeTransport((200, answer(job_id=41, step_id="BATCH")))
    job_id = run_coroutine(client(tmp_path, fake).submit(script_of(SESSION), user="bob", env={"PATH": "/usr/bin"}))
    method, url, headers, body = fake.asked[0]
    assert (job_id, method, url) == ("41", "POST", "http://127.0.0.1:6820/slurm/v0.0.38/job/submit")
    assert headers["X-SLURM-USER-NAME"] == "bob"
    assert jwt.decode(headers["X-SLURM-USER-TOKEN"], b"k" * 32, algorithms=["HS256"])["sun"] == "bob"
    assert body["job"]["account"] == "proj-ai" and body["job"]["environment"] == {"PATH": "/usr/bin"}


@pytest.mark.parametrize("reply, call, outcome", [
    # Slurm's words as they came back from slurmrestd 22.05 (../shared/notes/slurm-accounting-and-rest.md).
    ((500, answer(GONE)), "job", "GONE"),
    ((500, answer(GONE)), "cancel", None),
    ((200, answer(jobs=[{"job_id": 7, "job_state": "RUNNING", "nodes": "node2", "partition": "gpu",
                         "state_reason": "None", "start_time": 0, "exit_code": 0}])), "job", "RUNNING"),
    ((500, answer(UNCLEAR)), "job", (SlurmUnavailable, "check that slurm.jwt_key_file is slurmctld's")),
    ((500, answer(ZERO)), "cancel", (SlurmRejected, "Slurm refused the token sent for ann to cancel job 7")),
    ((500, answer(ZERO)), "job", (SlurmUnavailable, "gave no answer through slurmrestd to show job 7")),
    ((500, answer(NO_CTLD)), "cancel", (SlurmUnavailable, "Slurm did not answer cancel job 7: Unable to contact")),
    ((500, answer(DENIED)), "cancel", (SlurmRejected, "only a job's owner (or an administrator) may do that")),
    ((500, answer({"error_number": 1007, "error": "Protocol authentication error"})), "job",
     (SlurmNotInstalled, "did not accept the hub's token for ann")),
    ((401, "Authentication failure"), "job", (SlurmNotInstalled, "SLURM_JWT=daemon")),
    ((400, answer({"error_number": -1, "error": "Invalid SIGNAL specification"}, {"error": "Failure during parsing"})),
     "cancel", (SlurmRejected, "slurmrestd refused the request to cancel job 7: Invalid SIGNAL specification")),
    ((404, "Unable to find path"), "job", (SlurmNotInstalled, "slurm.rest_api_version")),
    ((502, "<html>Bad gateway</html>"), "job", (SlurmUnavailable, "HTTP 502, not a Slurm answer")),
    (TimeoutError("read timed out"), "job", (SlurmTimedOut, "did not answer show job 7 within 2 s")),
])
def test_slurmrestd_answers_become_our_outcomes(tmp_path, reply, call, outcome):
    rest = client(tmp_path, FakeTransport(reply))
    run = rest.job("7") if call == "job" else rest.cancel("7", user="ann")
    if isinstance(outcome, tuple):
        with pytest.raises(outcome[0], match=outcome[1].replace("(", r"\(").replace(")", r"\)")):
            run_coroutine(run)
    elif call == "job":
        assert run_coroutine(run).state == outcome
    else:
        assert run_coroutine(run) is None


def test_a_refused_token_that_had_expired_reads_in_plain_words(tmp_path):
    for refusal in (UNCLEAR, ZERO):
        rest = client(tmp_path, FakeTransport((500, answer(refusal))), clock=lambda: time.time() - 600)
        with pytest.raises(SlurmRejected) as err:
            run_coroutine(rest.cancel("7", user="ann"))
        assert str(err.value) == TOKEN_EXPIRED == "your session token expired; try again"


def test_a_submit_whose_token_slurmctld_refused_is_refused_in_words(tmp_path):
    # Measured: test-learner1's token sent for test-learner2 (and a forged one) -> 500, 5005, nothing queued.
    fake = FakeTransport((500, answer(ZERO)))
    with pytest.raises(SlurmRejected) as err:
        run_coroutine(client(tmp_path, fake).submit(script_of(SESSION), user="bob", env={"PATH": "/b"}))
    assert str(err.value) == TOKEN_REFUSED.format(user="bob", action="submit job aifw-ann")
    assert "not a token of that user signed with slurmctld's key" in str(err.value)


def test_a_submit_slurm_queued_with_a_warning_returns_its_job_id(tmp_path):
    fake = FakeTransport((200, answer({"error_code": 2015, "error": "Requested partition configuration not available now"},
                                      job_id=668)))
    assert run_coroutine(client(tmp_path, fake).submit(script_of(SESSION), user="ann", env={"PATH": "/b"})) == "668"


def test_bad_values_and_root_are_refused_before_any_request(tmp_path):
    fake = FakeTransport()
    rest = client(tmp_path, fake)
    for call in (rest.job("7; rm"), rest.cancel("7", user="Ann Smith"), rest.node_address("node1/../x"),
                 rest.pending_order("cpu&x=1"), rest.submit("#!/bin/bash\n#SBATCH --exclusive\n", user="ann", env={})):
        with pytest.raises(ValueError):
            run_coroutine(call)
    with pytest.raises(SlurmNotInstalled, match="must not act as root"):
        run_coroutine(client(tmp_path, fake, user="root").job("7"))
    assert fake.asked == []


def test_a_slurmrestd_that_is_not_there_or_silent_is_no_answer(tmp_path):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    with socket.socket() as silent:  # listens, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        for url, error, words in ((f"http://127.0.0.1:{port}", SlurmUnavailable, "Connection refused"),
                                  (f"http://127.0.0.1:{silent.getsockname()[1]}", SlurmTimedOut, "within 0.3 s")):
            rest = SlurmRestClient(url=url, api_version="v0.0.38", minter=JwtMinter(key_file(tmp_path)),
                                   query_user="ann", timeout_s=0.3)
            with pytest.raises(error, match=words):
                run_coroutine(rest.job("7"))


# -- records -------------------------------------------------------------------------------------
def test_job_records_read_as_squeue_and_scontrol_give_them():
    info = job_info({"job_id": 9, "job_state": "FAILED", "state_reason": "NonZeroExitCode", "nodes": "node1",
                     "batch_host": "node1", "partition": "cpu", "start_time": 1796176391, "exit_code": 768})
    assert (info.state, info.reason, info.node, info.exit_code, info.start_time) == (
        "FAILED", "NonZeroExitCode", "node1", "3:0", datetime.fromtimestamp(1796176391).isoformat(timespec="seconds"))
    assert job_info({"job_id": 9, "job_state": "PENDING", "start_time": 0, "state_reason": "Priority"}).start_time == ""
    jobs = [{"job_id": 1, "job_state": "PENDING", "partition": "cpu", "priority": 5},
            {"job_id": 2, "job_state": "PENDING", "partition": "gpu,cpu", "priority": 9},
            {"job_id": 3, "job_state": "RUNNING", "partition": "cpu", "priority": 99},
            {"job_id": 4, "job_state": "PENDING", "partition": "cpu", "priority": 5}]
    assert pending_order_from_jobs(jobs, "cpu") == ["2", "1", "4"]


@pytest.mark.parametrize("state, flags, short, usable", [
    ("idle", [], "idle", True), ("mixed", [], "mix", True), ("allocated", ["COMPLETING"], "comp", True),
    ("idle", ["DRAIN"], "drain", False), ("mixed", ["DRAIN"], "drng", False), ("idle", ["NOT_RESPONDING"], "idle*", False),
    ("down", [], "down", False),
])
def test_node_states_read_as_sinfo_short_states(state, flags, short, usable):
    from aifw.slurm import node_takes_jobs
    assert node_state(state, flags) == short and node_takes_jobs(short) is usable


def test_partitions_count_idle_gpus_net_of_those_in_use():
    parts = [{"name": "gpu", "state": "UP", "flags": ["default"], "max_time_limit": 240},
             {"name": "old", "state": "DOWN", "flags": [], "max_time_limit": None}]
    nodes = [{"name": "node1", "state": "mixed", "state_flags": [], "partitions": ["gpu"], "cpus": 8, "idle_cpus": 6,
              "real_memory": 8000, "gres": "gpu:2", "gres_used": "gpu:(null):1(IDX:0)", "address": "198.18.0.139"},
             {"name": "node2", "state": "idle", "state_flags": ["DRAIN"], "partitions": ["gpu"], "cpus": 8,
              "idle_cpus": 8, "real_memory": 8000, "gres": "gpu:2", "gres_used": "gpu:0", "address": "198.18.0.140"}]
    gpu, old = partitions_from_records(parts, nodes)
    assert (gpu.available, gpu.default, gpu.max_time_minutes, gpu.gpus_per_node, gpu.gpus_idle, gpu.cpus_idle) == (
        True, True, 240, 2, 1, 6)
    assert [n.address for n in gpu.nodes] == ["198.18.0.139", "198.18.0.140"]
    assert (old.available, old.max_time_minutes, old.nodes) == (False, None, ())
