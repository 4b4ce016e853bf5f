"""The session panel's server side without a server: the job read from an environment and from Slurm's
record into typed values, the walltime arithmetic, and the reader's cache (aifw.extensions.server)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from aifw.extensions.server.job import (
    NOT_IN_JOB,
    job_from_environment,
    not_in_job_view,
    walltime_left,
    with_slurm_record,
)
from aifw.extensions.server.reader import JobReader
from aifw.slurm import SlurmUnavailable, parse_scontrol_records
from aifw_testing import run_coroutine

UTC = timezone.utc

ENV = {
    "SLURM_JOB_ID": "4711",
    "SLURM_JOB_PARTITION": "gpu",
    "SLURM_JOB_NODELIST": "node[1-2]",
    "SLURM_CPUS_ON_NODE": "4",
    "SLURM_MEM_PER_NODE": "8192",
    "SLURM_JOB_GPUS": "0,1",
    "SLURM_JOB_ACCOUNT": "proj-a",
    "SLURM_JOB_START_TIME": "1800000000",
    "SLURM_JOB_END_TIME": "1800003600",
}

# One line of `scontrol show job -o` as Slurm 22.05 prints it (local times, no zone).
SCONTROL = (
    "JobId=4711 JobName=spawner-jupyterhub UserId=learner1(1001) GroupId=learner1(1001) MCS_label=N/A "
    "Priority=1 Nice=0 Account=proj-b QOS=normal JobState=RUNNING Reason=None Dependency=(null) "
    "Requeue=0 Restarts=0 BatchFlag=1 Reboot=0 ExitCode=0:0 RunTime=00:05:00 TimeLimit=01:30:00 "
    "TimeMin=N/A SubmitTime=2026-12-02T10:00:00 EligibleTime=2026-12-02T10:00:00 "
    "StartTime=2026-12-02T10:00:01 EndTime=2026-12-02T11:30:01 Deadline=N/A Partition=gpu "
    "AllocNode:Sid=login:123 NodeList=node2 BatchHost=node2 NumNodes=1 NumCPUs=2 NumTasks=1 "
    "CPUs/Task=2 TRES=cpu=2,mem=2G,node=1,billing=2,gres/gpu=1,gres/gpu:a100=1 MinMemoryNode=2G "
    "Command=(null) WorkDir=/home/learner1 StdErr=/home/learner1/.aifw-session-4711.log "
    "StdOut=/home/learner1/.aifw-session-4711.log Power="
)


def record(**changes: str) -> dict[str, str]:
    rec = parse_scontrol_records(SCONTROL)[0]
    rec.update(changes)
    return rec


def test_the_job_from_its_environment():
    job = job_from_environment(ENV)
    assert (job.job_id, job.partition, job.nodes, job.cpus, job.memory_mb, job.gpus, job.project) == (
        "4711", "gpu", "node[1-2]", 4, 8192, 2, "proj-a")
    assert job.end_time == datetime(2027, 1, 15, 9, 0, tzinfo=UTC)
    assert job.time_limit_s == 3600
    assert not job.from_slurm and job.notes == ()


def test_outside_slurm_there_is_no_job_and_the_answer_says_so():
    assert job_from_environment({"HOME": "/home/me"}) is None
    assert job_from_environment({"SLURM_JOB_ID": "  "}) is None
    assert not_in_job_view() == {"in_slurm_job": False, "message": NOT_IN_JOB}
    assert "not run in a Slurm job" in NOT_IN_JOB


def test_a_job_id_that_is_no_job_id_is_an_error():
    with pytest.raises(ValueError, match="SLURM_JOB_ID is '12; rm -rf', not a Slurm job id"):
        job_from_environment({"SLURM_JOB_ID": "12; rm -rf"})


@pytest.mark.parametrize("key, value, expected", [
    ("SLURM_JOB_PARTITION", "gpu<script>", "not a Slurm name"),
    ("SLURM_JOB_NODELIST", "node1 node2", "not a Slurm node list"),
    ("SLURM_CPUS_ON_NODE", "four", "not a whole number"),
    ("SLURM_MEM_PER_NODE", "lots", "not an amount of memory"),
    ("SLURM_JOB_END_TIME", "tomorrow", "not a Unix time"),
    ("SLURM_JOB_GPUS", "0;1", "not a list of indices"),
])
def test_an_invalid_environment_value_is_left_out_and_noted(key, value, expected):
    job = job_from_environment({**ENV, key: value})
    assert len(job.notes) == 1 and expected in job.notes[0] and value[:10] in job.notes[0]
    field = {"SLURM_JOB_PARTITION": job.partition, "SLURM_JOB_NODELIST": job.nodes,
             "SLURM_CPUS_ON_NODE": job.cpus, "SLURM_MEM_PER_NODE": job.memory_mb,
             "SLURM_JOB_END_TIME": job.end_time, "SLURM_JOB_GPUS": job.gpus or None}[key]
    assert field is None


@pytest.mark.parametrize("text, mb", [("2048", 2048), ("2G", 2048), ("512M", 512), ("1.5T", 1572864)])
def test_memory_as_slurm_writes_it(text, mb):
    assert job_from_environment({**ENV, "SLURM_MEM_PER_NODE": text}).memory_mb == mb


def test_gpus_from_cuda_visible_devices_when_slurm_job_gpus_is_absent():
    env = {k: v for k, v in ENV.items() if k != "SLURM_JOB_GPUS"}
    assert job_from_environment({**env, "CUDA_VISIBLE_DEVICES": "3"}).gpus == 1
    assert job_from_environment(env).gpus == 0


def test_slurms_record_wins_over_the_environment():
    job = with_slurm_record(job_from_environment(ENV), record())
    local = datetime(2026, 12, 2, 11, 30, 1).astimezone()
    assert job.end_time == local and job.start_time == datetime(2026, 12, 2, 10, 0, 1).astimezone()
    assert (job.partition, job.nodes, job.cpus, job.memory_mb, job.gpus, job.project, job.state) == (
        "gpu", "node2", 2, 2048, 1, "proj-b", "RUNNING")  # the typed gres/gpu:a100 is not counted twice
    assert job.time_limit_s == 90 * 60
    assert job.log_path == "/home/learner1/.aifw-session-4711.log"
    assert job.from_slurm


def test_a_changed_time_limit_shows():
    env_job = job_from_environment(ENV)
    before = with_slurm_record(env_job, record())
    after = with_slurm_record(env_job, record(TimeLimit="02:00:00", EndTime="2026-12-02T12:00:01"))
    assert after.end_time - before.end_time == timedelta(minutes=30)
    assert after.time_limit_s == 2 * 3600


def test_slurms_invalid_values_keep_the_environments():
    job = with_slurm_record(job_from_environment(ENV), record(Partition="g pu;", EndTime="soon", StdOut="~/x y"))
    assert job.partition == "gpu" and job.end_time == datetime(2027, 1, 15, 9, 0, tzinfo=UTC) and job.log_path is None
    assert len(job.notes) == 3 and all(n.startswith("Slurm's ") for n in job.notes)


def test_a_record_of_another_job_is_refused():
    with pytest.raises(ValueError, match="Slurm answered for job '99', not for 4711"):
        with_slurm_record(job_from_environment(ENV), record(JobId="99"))


def test_walltime_left():
    end = datetime(2026, 12, 2, 11, 0, tzinfo=UTC)
    assert walltime_left(end, end - timedelta(minutes=42, seconds=10)) == 2530
    assert walltime_left(end, end - timedelta(seconds=0.6)) == 0  # whole seconds, rounded down
    assert walltime_left(end, end + timedelta(minutes=5)) == 0  # past the end: none left, not negative
    assert walltime_left(None, end) is None  # no time limit


def test_the_view_is_typed_json():
    job = with_slurm_record(job_from_environment(ENV), record())
    now = job.end_time - timedelta(minutes=10)
    view = job.view(now, log_url="/user/learner1/aifw/session/log")
    assert view["in_slurm_job"] is True and view["walltime_left_s"] == 600
    assert view["end_time"] == job.end_time.isoformat(timespec="seconds")
    assert view["log_url"] == "/user/learner1/aifw/session/log" and view["source"] == "slurm"
    assert (view["cpus"], view["memory_mb"], view["gpus"], view["project"]) == (2, 2048, 1, "proj-b")
    # No log path from Slurm: no link.
    assert job_from_environment(ENV).view(now, log_url="/x")["log_url"] is None


class FakeSlurm:
    def __init__(self, answers):
        self.answers, self.asked = list(answers), []

    async def __call__(self, job_id):
        self.asked.append(job_id)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def test_the_reader_asks_slurm_at_most_every_refresh_and_keeps_the_last_answer_when_silent():
    clock = [1000.0]
    slurm = FakeSlurm([record(), SlurmUnavailable("slurmctld is down"), record(EndTime="2026-12-02T12:00:01"), None])
    reader = JobReader(ENV, refresh_s=30, fetch=slurm, clock=lambda: clock[0])

    async def scenario():
        seen = []
        for advance in (0, 10, 19, 1, 30, 30):
            clock[0] += advance
            seen.append(await reader.job())
        return seen

    seen = run_coroutine(scenario())
    assert slurm.asked == ["4711"] * 4  # at 0 s, 30 s (not at 10 s or 29 s), 60 s and 90 s
    assert seen[0] is seen[1] is seen[2] and seen[0].from_slurm
    assert seen[3].end_time == seen[0].end_time and "Slurm did not answer (slurmctld is down)" in seen[3].notes[-1]
    assert seen[4].end_time - seen[0].end_time == timedelta(minutes=30) and seen[4].notes == ()
    assert seen[5].notes[-1] == "Slurm no longer lists this job" and seen[5].end_time == seen[4].end_time


def test_the_reader_outside_slurm_never_asks_slurm():
    slurm = FakeSlurm([])
    reader = JobReader({}, fetch=slurm)
    assert reader.job_id is None
    assert run_coroutine(reader.view(log_url="/x")) == not_in_job_view()
    assert slurm.asked == []


def test_stop_asks_the_hub_to_stop_this_very_server_with_its_own_token():
    from aifw.extensions.server.handlers import hub_stop_request

    env = {"JUPYTERHUB_API_URL": "http://198.18.0.129:18081/hub/api", "JUPYTERHUB_API_TOKEN": "t0k",
           "JUPYTERHUB_USER": "learner1"}
    req = hub_stop_request(env)
    assert (req.method, req.url) == ("DELETE", "http://198.18.0.129:18081/hub/api/users/learner1/server")
    assert req.headers["Authorization"] == "token t0k"
    named = hub_stop_request({**env, "JUPYTERHUB_SERVER_NAME": "gpu run/2"})
    assert named.url == "http://198.18.0.129:18081/hub/api/users/learner1/servers/gpu%20run%2F2"
    for missing in ("JUPYTERHUB_API_URL", "JUPYTERHUB_API_TOKEN", "JUPYTERHUB_USER"):
        assert hub_stop_request({k: v for k, v in env.items() if k != missing}) is None  # not a hub's server
    assert hub_stop_request({**env, "JUPYTERHUB_API_URL": "file:///etc/passwd"}) is None


def test_a_token_may_stop_only_its_own_server():
    from aifw.extensions.server.handlers import may_stop_itself

    assert may_stop_itself(["access:servers!server=learner1/", "delete:servers!server=learner1/"], "learner1")
    assert may_stop_itself(["delete:servers!user=learner1"], "learner1")
    assert not may_stop_itself(["delete:servers!server=learner2/", "access:servers!server=learner1/"], "learner1")
    assert not may_stop_itself(["users:activity!user=learner1", 42], "learner1")
