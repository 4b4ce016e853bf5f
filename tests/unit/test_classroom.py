"""A class started before it arrives: the options every learner gets, where each session stands, and when a
pre-started session that no one uses stops (pure parts; the real hub and Slurm: tests/integration/test_class.py)."""
from __future__ import annotations

from datetime import datetime, timezone
from types import SimpleNamespace

import pytest

from aifw.classroom.plan import (
    ClassError,
    LearnerState,
    Preset,
    class_options,
    learner_states,
    parse_duration,
    session_job_name,
    summary,
)
from aifw.site import example_site_path, load_site
from aifw.slurm import JobInfo, parse_named_jobs
from aifw.spawners import prestart
from aifw.spawners.request import OptionsError, validate_options

SITE = load_site(example_site_path("sandbox"))


@pytest.mark.parametrize("text,seconds", [("90s", 90), ("30m", 1800), ("2h", 7200), ("45", 2700), (" 10 min ", 600)])
def test_durations_are_read_in_the_units_a_trainer_writes(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "-5m", "1.5h", "3d", "10 m; rm -rf /"])
def test_a_duration_that_is_none_says_how_to_write_one(text):
    with pytest.raises(ClassError, match="90s, 30m, 2h"):
        parse_duration(text, "--stop-unused")


def test_the_module_preset_gives_the_sessions_and_the_trainer_overrides_it():
    module = SimpleNamespace(partition="gpu", gpus=1, minutes=45, session_minutes=None)
    options = class_options(SITE, Preset(stop_if_unused_s=1800), module)
    assert options["partition"] == "gpu" and options["gpus"] == 1 and options["runtime_minutes"] == 45
    assert options["stop_if_unused_s"] == 1800
    options = class_options(SITE, Preset(partition="cpu", gpus=0, runtime_minutes=30), module)
    assert (options["partition"], options["gpus"], options["runtime_minutes"]) == ("cpu", 0, 30)
    assert "stop_if_unused_s" not in options  # runs until its walltime ends


def test_options_the_spawner_would_refuse_are_one_clear_error_before_anything_starts():
    with pytest.raises(ClassError, match="would be refused: partition 'nope' is not offered"):
        class_options(SITE, Preset(partition="nope"))
    with pytest.raises(ClassError, match="reservation 'party' is not offered"):
        class_options(SITE, Preset(reservation="party"))
    with pytest.raises(ClassError, match="between 10 s and 7 days"):
        class_options(SITE, Preset(stop_if_unused_s=5))


def test_a_request_may_ask_to_stop_unused_within_bounds_and_says_nothing_when_it_does_not():
    req = validate_options({"stop_if_unused_s": 600}, SITE)
    assert req.stop_if_unused_s == 600 and req.as_user_options()["stop_if_unused_s"] == 600
    assert "stop_if_unused_s" not in validate_options({}, SITE).as_user_options()
    for bad in (5, -1, 10**9, "600"):
        with pytest.raises(OptionsError, match="stop_if_unused_s"):
            validate_options({"stop_if_unused_s": bad}, SITE)


def _job(job_id, state, reason="", node=""):
    return JobInfo(job_id=job_id, state=state, reason=reason, node=node, partition="gpu")


def test_each_learner_is_ready_starting_waiting_or_not_started_and_the_summary_says_why():
    users = {
        "ann": {"servers": {"": {"ready": True}}},
        "bob": {"servers": {"": {"ready": False, "pending": "spawn"}}},
        "cy": {"servers": {"": {"ready": False, "pending": "spawn"}}},
        "dee": {"servers": {}},
        "eve": {"servers": {"": {"ready": False, "pending": "spawn"}}},
    }
    jobs = {session_job_name("ann"): [_job("7", "COMPLETED"), _job("9", "RUNNING", node="node1")],
            session_job_name("bob"): [_job("10", "PENDING", reason="Resources")],
            session_job_name("eve"): [_job("12", "PENDING", reason="Resources")],
            session_job_name("cy"): [_job("11", "RUNNING", node="node2")]}
    states = learner_states(["ann", "bob", "cy", "dee", "eve"], users, jobs, {"dee": "budget spent"})
    assert [(s.user, s.state) for s in states] == [
        ("ann", "ready"), ("bob", "waiting"), ("cy", "starting"), ("dee", "not started"), ("eve", "waiting")]
    assert states[0].detail == "on node1" and states[3].detail == "budget spent"
    assert "Job 10 is pending in partition gpu: waiting for free resources" in states[1].detail
    line = summary(states)
    assert line.startswith("5 learners: 1 ready, 1 starting, 2 waiting in the queue (2: waiting for free resources")
    assert line.endswith("1 not started")
    assert summary([LearnerState("ann", "ready")]) == "1 learner: 1 ready"


def test_squeue_by_job_name_is_read_per_name():
    text = "aifw-ann|9|RUNNING|None|node1|gpu|2026-12-02T08:00:00\naifw-bob|10|PENDING|Resources||gpu|N/A\nnoise\n"
    named = parse_named_jobs(text)
    assert set(named) == {"aifw-ann", "aifw-bob"}
    assert named["aifw-bob"][0].reason == "Resources" and named["aifw-ann"][0].node == "node1"


def test_a_pre_started_session_stops_only_when_ready_that_long_and_never_used():
    ready = 1_000_000.0
    # The start's own activity (the spawn, the route being added) is not use.
    own = [ready - 5, ready + prestart.USED_AFTER_S - 1]
    assert not prestart.stops_unused(ready + 599, ready, 600, own)
    assert prestart.stops_unused(ready + 600, ready, 600, own)
    assert not prestart.stops_unused(ready + 600, ready, 600, own + [ready + 120])  # the learner came
    assert not prestart.stops_unused(ready + 10**6, ready, 0, own)  # not a pre-start
    assert not prestart.stops_unused(ready + 10**6, 0.0, 600, [None])  # never seen ready


def test_hub_activity_times_are_utc_whether_naive_or_aware():
    aware = datetime(2026, 12, 2, 8, 0, tzinfo=timezone.utc)
    assert prestart.epoch(aware.replace(tzinfo=None)) == prestart.epoch(aware) == aware.timestamp()
    assert prestart.epoch(None) is None
    assert "not used within 45 min" in prestart.unused_message("42", 2700)


def _sandbox_site(reservations):
    import yaml

    from aifw.site import SiteError, site_from_dict

    data = yaml.safe_load(example_site_path("sandbox").read_text())
    data["sandbox"]["reservations"] = reservations
    return site_from_dict(data), SiteError


def test_the_sandbox_demo_makes_a_workshop_reservation_on_every_node_once():
    from aifw.sandbox.reservations import apply_reservations

    site, _ = _sandbox_site([{"name": "workshop", "accounts": ["training-2026"], "cores": 4}])
    assert "workshop" in site.slurm.reservations  # offered in the form: sessions may ask for it
    made = []

    held: dict[str, dict] = {}
    deleted = []

    class Slurm:
        def reservations_sync(self):
            return held

        def delete_reservation_sync(self, name):
            deleted.append(name)
            held.pop(name)

        def create_reservation_sync(self, name, **kw):
            made.append((name, kw))
            held[name] = {"ReservationName": name, "Nodes": "node[1-2]", "CoreCnt": str(kw["cores"]),
                          "Accounts": ",".join(kw["accounts"])}

    said = []
    assert apply_reservations(site, Slurm(), say=said.append) == 1
    assert made == [("workshop", {"accounts": ["training-2026"], "nodes": ["node1", "node2"], "cores": 4, "days": 365})]
    assert said == ["reservation workshop: 4 cores of node1, node2 for training-2026, 365 days"]
    assert apply_reservations(site, Slurm(), say=said.append) == 0  # as the site says: up again changes nothing
    # One that differs (an older site file held 2 cores of node2) is made again as the site says.
    held["workshop"].update(Nodes="node2", CoreCnt="2")
    assert apply_reservations(site, Slurm(), say=said.append) == 1 and deleted == ["workshop"]
    assert held["workshop"]["Nodes"] == "node[1-2]"


def test_a_reservation_on_a_node_the_sandbox_lacks_is_refused_with_its_nodes():
    site_error = _sandbox_site([])[1]
    with pytest.raises(site_error, match="reservation 'w' names node.s. node9 the sandbox does not have .its nodes: node1, node2"):
        _sandbox_site([{"name": "w", "accounts": ["training-2026"], "nodes": ["node9"]}])


def test_a_reservation_holds_at_least_a_core_on_each_of_its_nodes_and_slurm_gets_one_count_per_node():
    from aifw.slurm import SlurmClient

    site_error = _sandbox_site([])[1]
    with pytest.raises(site_error, match="holds 1 core.s. on 2 nodes: give it at least one core per node"):
        _sandbox_site([{"name": "w", "accounts": ["training-2026"], "cores": 1}])
    calls = []
    client = SlurmClient()
    client.run_sync = lambda command, args, **kw: calls.append((command, args))
    client.create_reservation_sync("w", accounts=["training-2026"], nodes=["node1", "node2"], cores=5, days=2)
    assert calls == [("scontrol", ["create", "reservation", "ReservationName=w", "StartTime=now", "Duration=2-00:00:00",
                                   "Accounts=training-2026", "Nodes=node1,node2", "CoreCnt=3,2"])]
