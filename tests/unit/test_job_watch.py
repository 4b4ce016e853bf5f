"""The shared job watcher (aifw.spawners.job_watch): one Slurm query per interval answers every spawner, and
SlurmClient.jobs, the one squeue behind it. Without Slurm: a counting stand-in, and fake squeue/scontrol."""
from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

import pytest
from traitlets.config import Config

from aifw.site import example_site_path, load_site
from aifw.slurm import JobInfo, SlurmClient, SlurmRejected, SlurmUnavailable
from aifw.spawners import job_watch
from aifw.spawners.job_watch import JobWatch
from aifw.spawners.spawner import AIFSlurmSpawner
from aifw_testing import run_coroutine

PENDING = "PENDING"


class Cluster:
    """Stands in for SlurmClient: `state` per job id (a job without one has ended and is forgotten);
    records every listing (the ids of each jobs() call, and when), and every scontrol look-up."""

    def __init__(self, state=None, *, delay=0.0, identity=None):
        self.state = dict(state or {})
        self.delay = delay
        self.listings: list[tuple[float, list[str]]] = []
        self.ended: list[str] = []
        self.orders: list[str] = []
        self.silent = False  # jobs() raises SlurmUnavailable
        self.ended_silent: set[str] = set()
        self.ended_at_once = self.ended_now = 0
        if identity is not None:
            self.identity = identity

    async def jobs(self, job_ids):
        self.listings.append((time.monotonic(), list(job_ids)))
        await asyncio.sleep(self.delay)
        if self.silent:
            raise SlurmUnavailable("squeue did not answer within 10 s")
        return {j: JobInfo(j, self.state[j], reason="JobHeldUser") for j in job_ids if j in self.state}

    async def ended_job(self, job_id):
        self.ended.append(job_id)
        self.ended_now += 1
        self.ended_at_once = max(self.ended_at_once, self.ended_now)
        try:
            await asyncio.sleep(0.01)
            if job_id in self.ended_silent:
                raise SlurmUnavailable("scontrol did not answer within 10 s")
            return JobInfo(job_id, "GONE")
        finally:
            self.ended_now -= 1

    async def pending_order(self, partition):
        self.orders.append(partition)
        await asyncio.sleep(0.01)
        return sorted(j for j, s in self.state.items() if s == PENDING)


def run(coro):
    return run_coroutine(coro, timeout_s=30)


def ids(n, first=100):
    return [str(first + i) for i in range(n)]


async def no_task_left():
    await asyncio.sleep(0)  # let cancelled tasks finish
    return {t for t in asyncio.all_tasks() if t is not asyncio.current_task()}


# -- one query per round, for everyone ---------------------------------------------------------------------
def test_every_caller_waiting_together_is_answered_by_one_listing():
    cluster = Cluster({j: PENDING for j in ids(200)})

    async def scenario():
        watch = JobWatch(cluster)
        answers = await asyncio.gather(*(watch.job(j, 1.0) for j in ids(200)))
        return watch, answers, await no_task_left()

    watch, answers, left = run(scenario())
    assert [sorted(ids_) for _, ids_ in cluster.listings] == [sorted(ids(200))]
    assert [a.job_id for a in answers] == ids(200) and {a.state for a in answers} == {PENDING}
    assert watch.rounds == 1 and watch.idle and not left


def test_the_number_of_queries_does_not_grow_with_the_number_of_waiting_spawns():
    """The target of issue 13, in small: over the same window, 5 and 300 waiters cause as many rounds."""

    def rounds_for(n: int) -> int:
        cluster = Cluster({j: PENDING for j in ids(n)})

        async def scenario():
            watch = JobWatch(cluster)
            deadline = time.monotonic() + 0.5

            async def spawner(job_id):
                seen = 0
                while time.monotonic() < deadline:
                    assert (await watch.job(job_id, 0.1)).state == PENDING
                    seen += 1
                return seen

            seen = await asyncio.gather(*(spawner(j) for j in ids(n)))
            return watch.rounds, seen

        rounds, seen = run(scenario())
        assert len(cluster.listings) == rounds and min(seen) >= rounds - 1  # everyone in (nearly) every round
        return rounds

    few, many = rounds_for(5), rounds_for(300)
    assert 4 <= few <= 7 and abs(many - few) <= 2


def test_rounds_are_an_interval_apart_and_an_answer_is_never_older_than_the_question():
    cluster = Cluster({"7": PENDING, "8": PENDING}, delay=0.05)

    async def scenario():
        watch = JobWatch(cluster)
        first = asyncio.ensure_future(watch.job("7", 0.2))
        await asyncio.sleep(0.01)  # the first round runs now (nothing ran before: no wait)
        late = asyncio.ensure_future(watch.job("8", 0.2))  # asked while that round is in flight
        await first
        await late
        await watch.job("7", 0.2)
        return watch

    t0 = time.monotonic()
    watch = run(scenario())
    starts = [t for t, _ in cluster.listings]
    assert [j for _, j in cluster.listings] == [["7"], ["8"], ["7"]]  # "8" got the round after it asked
    assert starts[0] - t0 < 0.15 and all(b - a >= 0.19 for a, b in zip(starts, starts[1:]))
    assert watch.idle


# -- silent Slurm, ended jobs ---------------------------------------------------------------------------------
def test_a_silent_slurm_reaches_every_caller_as_silence_and_the_next_round_answers():
    cluster = Cluster({"7": PENDING, "8": PENDING})
    cluster.silent = True

    async def scenario():
        watch = JobWatch(cluster)
        first = await asyncio.gather(watch.job("7", 0.05), watch.job("8", 0.05), return_exceptions=True)
        cluster.silent = False
        return first, await watch.job("7", 0.05)

    first, then = run(scenario())
    assert all(isinstance(e, SlurmUnavailable) and "did not answer" in str(e) for e in first)
    assert first[0] is not first[1]  # each caller its own error (tracebacks apart)
    assert then.state == PENDING and cluster.ended == []  # silence is not "ended": scontrol never asked


def test_only_jobs_the_listing_leaves_out_are_asked_on_their_own_a_few_at_a_time():
    cluster = Cluster({j: PENDING for j in ids(10)})
    gone = ids(30, first=500)
    cluster.ended_silent = {gone[0]}

    async def scenario():
        watch = JobWatch(cluster)
        return await asyncio.gather(*(watch.job(j, 1.0) for j in ids(10) + gone), return_exceptions=True)

    answers = run(scenario())
    assert len(cluster.listings) == 1 and sorted(cluster.ended) == sorted(gone)
    assert cluster.ended_at_once <= job_watch.ENDED_AT_ONCE
    assert isinstance(answers[10], SlurmUnavailable)  # its scontrol was silent: silence, not GONE
    assert [a.state for a in answers[11:]] == ["GONE"] * 29 and {a.state for a in answers[:10]} == {PENDING}


def test_a_refusal_or_a_bug_below_reaches_the_callers_and_the_next_call_starts_afresh():
    class Broken(Cluster):
        async def jobs(self, job_ids):
            raise SlurmRejected("squeue: error: Invalid user id") if self.state else KeyError("bug")

    async def scenario():
        watch = JobWatch(Broken({"7": PENDING}))
        with pytest.raises(SlurmRejected, match="Invalid user id"):
            await watch.job("7", 0.01)
        watch.slurm.state = {}
        with pytest.raises(KeyError):
            await watch.job("7", 0.01)
        await asyncio.sleep(0)
        return watch.idle

    assert run(scenario())


def test_a_text_that_is_no_job_id_is_refused_before_any_query():
    cluster = Cluster()

    async def scenario():
        watch = JobWatch(cluster)
        with pytest.raises(ValueError, match="not a Slurm job id"):
            await watch.job("1,2 -u root", 1.0)
        return watch.idle

    assert run(scenario()) and cluster.listings == []


# -- cancellation: no leaks ------------------------------------------------------------------------------------
def test_a_cancelled_caller_leaves_the_round_and_nothing_is_left_running():
    cluster = Cluster({"7": PENDING, "8": PENDING}, delay=0.05)

    async def scenario():
        watch = JobWatch(cluster)
        await watch.job("7", 0.2)  # a round ran: the next one is 0.2 s on
        gone = asyncio.ensure_future(watch.job("8", 0.2))
        stays = asyncio.ensure_future(watch.job("7", 0.2))
        await asyncio.sleep(0.05)
        gone.cancel()  # before its round: "8" is not asked for
        answer = await stays
        in_flight = asyncio.ensure_future(watch.job("8", 0.01))
        other = asyncio.ensure_future(watch.job("7", 0.01))
        await asyncio.sleep(0.2)  # the round with both runs (0.05 s of squeue)
        in_flight.cancel()  # cancelled while its round is in flight: the other is still answered
        other_answer = await other
        alone = asyncio.ensure_future(watch.job("7", 5.0))
        await asyncio.sleep(0.01)
        alone.cancel()  # the last caller goes while the runner waits for its round: the runner ends
        await asyncio.sleep(0.01)
        return watch, gone.cancelled(), answer, other_answer, await no_task_left()

    watch, cancelled, answer, other_answer, left = run(scenario())
    assert cancelled and answer.job_id == "7" and other_answer.job_id == "7"
    assert ["8"] not in [j for _, j in cluster.listings[:2]]
    assert watch.idle and not left


def test_when_the_hub_stops_the_round_its_callers_are_cancelled_too():
    cluster = Cluster({"7": PENDING}, delay=5.0)

    async def scenario():
        watch = JobWatch(cluster)
        caller = asyncio.ensure_future(watch.job("7", 1.0))
        await asyncio.sleep(0.05)
        watch._runner.cancel()
        with pytest.raises(asyncio.CancelledError):
            await caller
        return watch, await no_task_left()

    watch, left = run(scenario())
    assert watch.idle and not left


# -- one watcher per hub -----------------------------------------------------------------------------------------
def test_clients_of_one_site_share_one_watcher_and_a_stand_in_gets_its_own():
    async def scenario():
        a = SlurmClient(conf="/etc/slurm/a.conf")
        b = SlurmClient(conf="/etc/slurm/a.conf")
        other = SlurmClient(conf="/etc/slurm/b.conf")
        fake1, fake2 = Cluster(), Cluster()
        return (job_watch.shared(a) is job_watch.shared(b), job_watch.shared(a) is job_watch.shared(other),
                job_watch.shared(fake1) is job_watch.shared(fake2), job_watch.shared(fake1) is job_watch.shared(fake1))

    assert run(scenario()) == (True, False, False, True)


def site_spawner(slurm, name: str) -> AIFSlurmSpawner:
    c = Config()
    c.AIFSlurmSpawner.site = load_site(example_site_path("sandbox"))
    s = AIFSlurmSpawner(config=c, user=SimpleNamespace(name=name))
    s.slurm = slurm
    return s


def test_the_spawners_of_a_hub_poll_through_one_listing():
    jobs = {j: ("RUNNING" if int(j) % 2 else PENDING) for j in ids(40)}
    jobs["100"] = "COMPLETED"
    cluster = Cluster(jobs, identity=("one site",))
    spawners = []
    for i, job_id in enumerate(ids(40) + ["999"]):  # 999: a job Slurm forgot
        s = site_spawner(cluster, f"learner{i}")
        s.job_id, s.port = job_id, (0 if jobs.get(job_id) == PENDING else 40000)  # pending: still starting
        spawners.append(s)

    async def scenario():
        return await asyncio.gather(*(s.poll() for s in spawners))

    polled = run(scenario())
    assert len(cluster.listings) == 1 and sorted(cluster.listings[0][1]) == sorted(ids(40) + ["999"])
    assert cluster.ended == ["999"]
    assert polled[0] == 1 and polled[-1] == 1 and set(polled[1:-1]) == {None}  # ended, forgotten: gone


def test_a_starting_spawner_waits_on_the_watcher_and_fails_at_once_when_its_job_ends():
    cluster = Cluster({"42": PENDING}, identity=("one site",))
    s = site_spawner(cluster, "nobody")  # an account that exists here (its home has no session log)
    s.startup_poll_interval = 0.02
    s.job_id, s._events = "42", []
    request = SimpleNamespace(partition="cpu", cpus=1, gpus=0, runtime_minutes=60, account="")

    async def scenario():
        async def live(cluster=""):
            return None

        s.live_partitions = live
        waiting = asyncio.ensure_future(s._wait_until_serving(request))
        await asyncio.sleep(0.15)
        rounds = len(cluster.listings)
        cluster.state["42"] = "FAILED"  # listed as ended: no scontrol needed
        with pytest.raises(Exception) as err:
            await asyncio.wait_for(waiting, 5)
        return rounds, err.value, await no_task_left()

    rounds, err, left = run(scenario())
    assert 2 <= rounds <= 9  # one round per 0.02 s interval (+ squeue time), not a busy loop
    assert getattr(err, "status_code", None) == 502 and "Slurm job 42 ended (FAILED" in err.jupyterhub_message
    assert any("position 1 in the queue" in e["message"] for e in s._events)  # the shared queue listing
    assert cluster.orders == ["cpu"] and not left


# -- queue order: one listing per partition ------------------------------------------------------------------------
def test_the_queue_order_is_one_listing_shared_and_refreshed_for_a_job_not_in_it_yet():
    cluster = Cluster({j: PENDING for j in ids(50)})

    async def scenario():
        watch = JobWatch(cluster)
        orders = await asyncio.gather(*(watch.queue_order("gpu", j, max_age=15, min_age=0.05) for j in ids(50)))
        same = await watch.queue_order("gpu", "100", max_age=15, min_age=0.05)
        cluster.state["999"] = PENDING
        early = await watch.queue_order("gpu", "999", max_age=15, min_age=0.05)  # too soon to ask again
        await asyncio.sleep(0.06)
        late = await watch.queue_order("gpu", "999", max_age=15, min_age=0.05)
        cancelled = asyncio.ensure_future(watch.queue_order("cpu", "100", max_age=15, min_age=0.05))
        waiting = asyncio.ensure_future(watch.queue_order("cpu", "100", max_age=15, min_age=0.05))
        await asyncio.sleep(0)
        cancelled.cancel()
        return orders, same, early, late, await waiting, await no_task_left()

    orders, same, early, late, waiting, left = run(scenario())
    assert all(o == sorted(ids(50)) for o in orders) and same == orders[0]
    assert "999" not in early and "999" in late and "100" in waiting
    assert cluster.orders == ["gpu", "gpu", "cpu"] and not left


# -- SlurmClient.jobs: the one squeue behind it (fake commands) ------------------------------------------------------
def fake_slurm(tmp_path, squeue: str, scontrol: str = "exit 1", **kw) -> SlurmClient:
    for name, body in (("squeue", squeue), ("scontrol", scontrol)):
        tool = tmp_path / name
        tool.write_text(f'#!/bin/sh\necho "{name} $*" >> {tmp_path}/calls\n{body}\n')
        tool.chmod(0o755)
    return SlurmClient(bin_dir=str(tmp_path), exec_prefix=(), **kw)


def calls(tmp_path) -> list[str]:
    path = tmp_path / "calls"
    return path.read_text().splitlines() if path.exists() else []


def test_jobs_asks_for_many_jobs_in_one_squeue_and_keeps_only_those_asked(tmp_path):
    client = fake_slurm(tmp_path, "printf '12|PENDING|JobHeldUser||debug|N/A\\n13|RUNNING|None|node1|cpu|2026-12-02T01:45:51\\n"
                                  "77|RUNNING|None|node2|cpu|N/A\\n'")
    listed = run(client.jobs(["12", "13", "14", "12"]))
    assert calls(tmp_path) == ["squeue -h -j 12,13,14 -o %i|%T|%r|%N|%P|%S"]
    assert sorted(listed) == ["12", "13"] and listed["12"].reason == "JobHeldUser" and listed["13"].node == "node1"
    with pytest.raises(ValueError, match="not a Slurm job id"):
        run(client.jobs(["12", "13 -u root"]))


def test_jobs_splits_a_long_list_and_an_unknown_single_id_is_not_listed(tmp_path):
    client = fake_slurm(tmp_path, 'echo "slurm_load_jobs error: Invalid job id specified" >&2; exit 1',
                        max_jobs_per_query=2)
    assert run(client.jobs(["1", "2", "3"])) == {}
    assert calls(tmp_path) == ["squeue -h -j 1,2 -o %i|%T|%r|%N|%P|%S", "squeue -h -j 3 -o %i|%T|%r|%N|%P|%S"]


def test_a_job_squeue_no_longer_lists_is_asked_from_scontrol_and_silence_stays_silence(tmp_path):
    ended = "echo 'JobId=5 JobName=x JobState=FAILED Reason=NonZeroExitCode ExitCode=3:0 BatchHost=node1 Partition=cpu'"
    client = fake_slurm(tmp_path, "exit 0", ended)
    info = run(client.job("5"))
    assert (info.state, info.exit_code, info.node) == ("FAILED", "3:0", "node1")
    assert calls(tmp_path)[-1] == "scontrol show job -o 5"
    gone = fake_slurm(tmp_path, "exit 0", 'echo "slurm_load_jobs error: Invalid job id specified" >&2; exit 1')
    assert run(gone.job("5")).state == "GONE"
    silent = fake_slurm(tmp_path, "echo 'squeue: error: Unable to contact slurm controller (connect failure)' >&2; exit 1")
    with pytest.raises(SlurmUnavailable):
        run(silent.jobs(["5", "6"]))
    with pytest.raises(SlurmRejected, match="Invalid user"):
        run(fake_slurm(tmp_path, "echo 'squeue: error: Invalid user: x' >&2; exit 1").jobs(["5", "6"]))


def test_a_held_submission_asks_sbatch_to_hold_the_job(tmp_path):
    tool = tmp_path / "sbatch"
    tool.write_text(f'#!/bin/sh\necho "sbatch $*" >> {tmp_path}/calls\necho 4242\n')
    tool.chmod(0o755)
    client = SlurmClient(bin_dir=str(tmp_path), exec_prefix=())
    assert run(client.submit("#!/bin/bash\nsleep 1\n", hold=True)) == "4242"
    assert client.submit_sync("#!/bin/bash\nsleep 1\n") == "4242"
    assert calls(tmp_path) == ["sbatch --parsable --hold", "sbatch --parsable"]


def test_a_jobs_whole_record_is_scontrols_fields_and_a_forgotten_job_is_none(tmp_path):
    record = ("JobId=42 JobName=aifw-x UserId=learner1(1001) Account=proj-llm JobState=RUNNING TimeLimit=00:30:00 "
              "StartTime=2026-12-02T04:00:00 EndTime=2026-12-02T04:30:00 TRES=cpu=1,mem=1G,node=1 StdOut=/home/l/x.log")
    client = fake_slurm(tmp_path, "exit 1", f"""case "$*" in
  "show job -o 42") echo '{record}' ;;
  *) echo "slurm_load_jobs error: Invalid job id specified" >&2; exit 1 ;;
esac""")
    got = run_coroutine(client.job_record("42"))
    assert (got["EndTime"], got["TimeLimit"], got["Account"], got["StdOut"]) == (
        "2026-12-02T04:30:00", "00:30:00", "proj-llm", "/home/l/x.log")
    assert run_coroutine(client.job_record("43")) is None
    with pytest.raises(ValueError):
        run_coroutine(client.job_record("42; id"))
