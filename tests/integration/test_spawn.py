"""Spawning through the real hub into the real Slurm, as real unix users."""
from __future__ import annotations

import json
import time

import requests

REPORT = "import os, getpass; print(getpass.getuser(), os.environ.get('SLURM_JOB_ID'), os.environ.get('CUDA_VISIBLE_DEVICES'))"


def test_learner_logs_in_spawns_and_kernel_runs_as_that_user_in_a_slurm_job(stack, hub):
    name = stack.learners()[0]
    session = hub.login(name)  # the real login form, checked by PAM
    token = hub.user_token(session, name)
    r = hub.start(name, {"partition": "cpu", "cpus": 1, "memory_gb": 1, "runtime_minutes": 30}, token=token)
    assert r.status_code in (201, 202), r.text
    hub.wait_ready(name)
    status = requests.get(f"{stack.hub_url}/user/{name}/api/status", headers={"Authorization": f"token {token}"}, timeout=30)
    assert status.status_code == 200, status.text  # the server answers through the proxy
    user, job_id, _ = hub.run_code(name, token, REPORT).split()
    assert user == name
    jobs = stack.squeue(name)
    assert [j["id"] for j in jobs] == [job_id]
    assert jobs[0]["state"] == "RUNNING" and jobs[0]["partition"] == "cpu"
    hub.stop(name)
    assert stack.squeue(name) == []  # stopping leaves nothing in the queue


def test_gpu_session_sees_its_gpu(stack, hub):
    name = stack.learners()[1]
    token = hub.user_token(hub.login(name), name)
    r = hub.start(name, {"partition": "gpu", "gpus": 1}, token=token)
    assert r.status_code in (201, 202), r.text
    hub.wait_ready(name)
    user, job_id, cuda = hub.run_code(name, token, REPORT).split()
    assert user == name and cuda == "0"
    assert stack.squeue(name)[0]["tres"].endswith("gpu:1")


def test_two_learners_at_once_get_two_jobs_as_two_users(stack, hub):
    a, b = stack.learners()[:2]
    assert hub.start(a).status_code in (201, 202)
    assert hub.start(b).status_code in (201, 202)
    hub.wait_ready(a)
    hub.wait_ready(b)
    jobs = {j["user"]: j for j in stack.squeue() if j["user"] in (a, b)}
    assert set(jobs) == {a, b}
    assert jobs[a]["id"] != jobs[b]["id"]
    assert all(j["state"] == "RUNNING" for j in jobs.values())


def test_over_limit_request_is_refused_with_a_clear_message_and_nothing_is_submitted(stack, hub):
    name = stack.learners()[0]
    before = stack.squeue(name)
    r = hub.start(name, {"partition": "gpu", "gpus": 4})
    assert r.status_code == 400
    assert "partition gpu allows at most 2 GPUs per node; you asked for 4" in r.json()["message"]
    r = hub.start(name, {"partition": "cpu", "cpus": "1; rm -rf /", "evil": "$(id)"})
    assert r.status_code == 400
    message = r.json()["message"]
    assert "cpus must be a whole number" in message and "unknown option(s) 'evil'" in message
    time.sleep(1)
    assert stack.squeue(name) == before == []
    assert not hub.user_model(name)["servers"]


def test_port_callback_accepts_nothing_but_the_port_of_a_starting_server(stack, hub):
    """From inside a running session, with the server's own token, try to reconfigure the spawner."""
    name = stack.learners()[0]
    token = hub.user_token(hub.login(name), name)
    assert hub.start(name, token=token).status_code in (201, 202)
    hub.wait_ready(name)
    code = """
import json, os, urllib.request
def post(body):
    req = urllib.request.Request(os.environ['JUPYTERHUB_API_URL'] + '/batchspawner', data=json.dumps(body).encode(),
        headers={'Authorization': 'token ' + os.environ['JUPYTERHUB_API_TOKEN'], 'Content-Type': 'application/json'})
    try:
        with urllib.request.urlopen(req) as r: return r.status
    except urllib.error.HTTPError as e: return e.code
print(json.dumps([post({'port': 9999}), post({'ip': '10.0.0.1'}), post({'cmd': ['/bin/sh']}), post({'port': '80; id'})]))
"""
    codes = json.loads(hub.run_code(name, token, code).strip())
    assert codes == [400, 400, 400, 400]
    server = hub.user_model(name)["servers"][""]
    assert server["ready"] and ":9999" not in json.dumps(server)
    # The session still works afterwards.
    assert hub.run_code(name, token, "print(6 * 7)").strip() == "42"


def test_the_spawn_form_starts_what_it_says_and_a_bad_form_is_shown_again_with_the_reason(stack, hub):
    name = stack.learners()[1]
    session = hub.login(name)
    xsrf = session.cookies.get("_xsrf")
    bad = session.post(f"{stack.hub_url}/hub/spawn", data={"partition": "gpu", "gpus": "4", "cpus": "1; id", "_xsrf": xsrf},
                       timeout=60)
    assert bad.status_code == 400
    assert "cpus must be a whole number, not &#39;1; id&#39;; partition gpu allows at most 2 GPUs per node; you asked for 4" in bad.text
    assert 'id="aifw-partition-gpu"' in bad.text  # the form again, to correct it
    assert stack.squeue(name) == [] and not hub.user_model(name)["servers"]
    form = {"partition": "debug", "cpus": "2", "memory_gb": "1", "gpus": "0", "runtime_minutes": "20",
            "environment": "default", "account": "", "reservation": "", "_xsrf": xsrf}
    r = session.post(f"{stack.hub_url}/hub/spawn", data=form, timeout=60, allow_redirects=False)
    hub.started.add(name)
    assert r.status_code == 302, r.text
    server = hub.wait_ready(name)
    assert server["user_options"] == {"partition": "debug", "cpus": 2, "memory_gb": 1, "gpus": 0, "runtime_minutes": 20,
                                      "account": "", "reservation": "", "environment": "default"}
    [job] = stack.squeue(name)
    assert job["partition"] == "debug" and job["state"] == "RUNNING"
    assert stack.slurm("squeue", "-h", "-j", job["id"], "-o", "%C|%l").strip() == "2|20:00"
