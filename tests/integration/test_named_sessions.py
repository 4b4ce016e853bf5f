"""Two sessions side by side (the site's hub.sessions_per_user: 2): a CPU session and a GPU session of one
person, as JupyterHub named servers, each its own Slurm job, both on the hub's home page with their partition
and a Stop; a third is refused by the hub in words."""
from __future__ import annotations

from aifw_testing import wait_until


def test_a_cpu_and_a_gpu_session_run_side_by_side_each_in_its_own_job(stack, hub):
    name = stack.learners()[0]
    hub.stop(name)
    r = hub.start(name, {"partition": "cpu", "runtime_minutes": 10})
    assert r.status_code in (201, 202), r.text
    r = hub.api("POST", f"/users/{name}/servers/gpu", json={"user_options": {"partition": "gpu", "gpus": 1, "runtime_minutes": 10}})
    assert r.status_code in (201, 202), r.text
    try:
        hub.wait_ready(name)
        assert wait_until(lambda: (hub.user_model(name)["servers"].get("gpu") or {}).get("ready"), timeout=90)
        jobs = dict(line.split("|") for line in stack.slurm("squeue", "-h", "-u", name, "-o", "%j|%P").split())
        assert jobs == {f"aifw-{name}": "cpu", f"aifw-{name}-gpu": "gpu"}, jobs
        # The hub allows two at once: a third is refused in the hub's words, and nothing is submitted.
        r = hub.api("POST", f"/users/{name}/servers/third", json={"user_options": {"partition": "cpu"}})
        assert r.status_code == 400 and "maximum" in r.json()["message"], r.text
        assert len(stack.squeue(name)) == 2
        home = hub.login(name).get(f"{stack.hub_url}/hub/home", timeout=30).text
        assert home.count('data-state="running"') == 2
        assert '>cpu</dd>' in home and '>gpu</dd>' in home and 'data-server-name="gpu"' in home
        # Each stops alone.
        assert hub.api("DELETE", f"/users/{name}/servers/gpu").status_code in (202, 204)
        assert wait_until(lambda: [j["partition"] for j in stack.squeue(name)] == ["cpu"], timeout=60), stack.squeue(name)
        assert hub.user_model(name)["servers"][""]["ready"]
    finally:
        hub.api("DELETE", f"/users/{name}/servers/gpu")
        hub.stop(name)
        assert wait_until(lambda: not stack.squeue(name), timeout=60)
