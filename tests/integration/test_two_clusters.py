"""Several sites behind one hub, with real daemons (issue 15): a hub whose site names two clusters, the test
stack's (`aifwtest`) and a second one with its own slurmctld and slurmd in a namespace of its own
(tests/second_cluster.py), both reached through the command line with their own slurm.conf.

A session spawns on each cluster through the one hub, and each job is on its own cluster (squeue with that
cluster's SLURM_CONF lists it, the other's does not). Then the second slurmctld stops: the form shows that
cluster unavailable, the first cluster's session keeps being polled and stays ready, and a new spawn on the
first cluster works. The stack's own cluster is not disturbed: one small session on it at a time for each user,
its daemons untouched."""
from __future__ import annotations

import dataclasses
import time

import pytest
import requests

from aifw.sandbox.network import namespaces, network_plan
from aifw.sandbox.processes import stop_pid_file
from aifw_testing import HubClient, wait_until
from second_cluster import (CLUSTER, NET, PARTITION, STACK_CLUSTER, start_second_cluster, start_two_cluster_hub,
                            stop_second_cluster, stop_two_cluster_hub)

CPU = {"cluster": STACK_CLUSTER, "partition": "cpu", "runtime_minutes": 10, "cpus": 1, "memory_gb": 1}
REMOTE = {"cluster": CLUSTER, "partition": PARTITION, "runtime_minutes": 10, "cpus": 1, "memory_gb": 1}


@pytest.fixture(scope="module")
def two_clusters(stack):
    """The second cluster and the hub in front of both; (hub client, second cluster, the two users)."""
    s = stack.stack
    users = stack.learners()
    assert len(users) >= 2, stack.users
    t0 = time.monotonic()
    cluster = start_second_cluster(stack.home / "second-cluster", network_plan(s.site.sandbox).bridge)
    try:
        hub = start_two_cluster_hub(s.site_file, stack.home / "two-cluster-hub", s.venv_bin, cluster.conf)
        client = HubClient(dataclasses.replace(stack, hub_url=hub.url, api_url=f"{hub.url}/hub/api",
                                               api_token=hub.api_token))
        try:
            for user in users[:2]:
                assert client.api("POST", f"/users/{user}").status_code in (201, 409)
            print(f"second cluster and two-cluster hub up in {time.monotonic() - t0:.1f} s")
            yield client, cluster, hub, users[:2]
        finally:
            t1 = time.monotonic()
            client.stop_all_servers()
            stop_two_cluster_hub(hub)
            print(f"two-cluster hub stopped in {time.monotonic() - t1:.1f} s")
    finally:
        t0 = time.monotonic()
        stop_second_cluster(cluster)
    assert NET.netns not in namespaces()
    print(f"second cluster stopped and its namespace removed in {time.monotonic() - t0:.1f} s")


def job_ids(squeue_out: str) -> set[str]:
    return set(squeue_out.split())


def test_sessions_on_each_cluster_and_one_cluster_down(stack, two_clusters):
    hub, cluster, hub_proc, (first, second) = two_clusters
    t0 = time.monotonic()
    for user, options in ((first, CPU), (second, REMOTE)):
        r = hub.start(user, options)
        assert r.status_code in (201, 202), f"{user}: {r.status_code} {r.text[:300]}\n{hub_proc.log_tail()}"
    for user in (first, second):
        try:
            hub.wait_ready(user, 60)
        except AssertionError as err:
            raise AssertionError(f"{err}\n{hub_proc.log_tail()}\n{cluster.log_tail()}") from None
    spawned = time.monotonic() - t0

    # 1. each job is on its own cluster: its own slurmctld lists it, the other one does not
    jobs = {u: hub.user_model(u)["servers"][""]["state"]["job_id"] for u in (first, second)}
    assert stack.slurm("squeue", "-h", "-j", jobs[first], "-o", "%u|%T").strip() == f"{first}|RUNNING"
    second_q = cluster.slurm("squeue", "-h", "-o", "%i|%u|%T|%N")
    assert second_q.stdout.split() == [f"{jobs[second]}|{second}|RUNNING|c2node1"], second_q
    assert jobs[second] not in job_ids(stack.slurm("squeue", "-h", "-o", "%i", "-u", second))
    # the session on the second cluster answers through the hub's proxy, and stops through its own cluster
    status = requests.get(f"{hub.info.hub_url}/user/{second}/api/status", timeout=30,
                          headers={"Authorization": f"token {hub.info.api_token}"})
    assert status.status_code == 200 and "started" in status.json(), status.text[:300]
    user_s = hub.login(second)
    hub.stop(second)
    assert not cluster.slurm("squeue", "-h", "-o", "%i", "-u", second, "-t", "RUNNING,PENDING").stdout.split()

    # 2. the second cluster's slurmctld stops
    assert stop_pid_file(cluster.paths.ctld_pid, timeout_s=10)
    # the form asks each cluster anew once its live view is older than live_cache_seconds (5 s)
    unavailable = f'id="aifw-cluster-{CLUSTER}" value="{CLUSTER}" disabled'
    form = {}

    def form_says_unavailable() -> bool:
        r = user_s.get(f"{hub.info.hub_url}/hub/spawn", timeout=60)
        assert r.status_code == 200, r.text[:300]
        form["html"] = r.text
        return unavailable in r.text

    down_at = time.monotonic()
    shown = wait_until(form_says_unavailable, timeout=20, interval=1)
    html = form["html"]
    fieldset = html[html.find('<fieldset class="form-group" id="aifw-clusters">'):][:1500]
    assert shown, fieldset
    print(f"the form showed {CLUSTER} unavailable {time.monotonic() - down_at:.1f} s after its slurmctld stopped")
    assert f'data-cluster-state="{CLUSTER}">not answering right now: unavailable' in html, fieldset
    assert f'id="aifw-cluster-{STACK_CLUSTER}" value="{STACK_CLUSTER}" checked>' in html, fieldset
    # the first cluster's session keeps being polled (the hub's poll interval is 5 s) and stays ready
    time.sleep(max(0.0, 6 - (time.monotonic() - down_at)))
    assert hub.user_model(first)["servers"][""]["ready"]
    assert jobs[first] in job_ids(stack.slurm("squeue", "-h", "-o", "%i", "-u", first, "-t", "RUNNING"))
    # and a new spawn there works
    r = hub.start(second, CPU)
    assert r.status_code in (201, 202), f"{r.status_code} {r.text[:300]}\n{hub_proc.log_tail()}"
    hub.wait_ready(second, 60)
    assert job_ids(stack.slurm("squeue", "-h", "-o", "%i", "-u", second, "-n", f"aifw-{second}", "-t", "RUNNING"))
    print(f"two sessions ready in {spawned:.1f} s; whole test {time.monotonic() - t0:.1f} s")
    for user in (first, second):
        hub.stop(user)
    assert jobs[first] not in job_ids(stack.slurm("squeue", "-h", "-o", "%i", "-u", first, "-t", "RUNNING"))
