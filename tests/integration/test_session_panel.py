"""The session panel's server extension, installed and enabled, answering inside a real session through
the hub's proxy with the learner's own token: the session's real Slurm job, its walltime, its log; and
jupyter-resource-usage and jupyterlab-nvdashboard beside it (the job's limits; no GPU, no errors)."""
from __future__ import annotations

import requests

OPTIONS = {"partition": "cpu", "cpus": 1, "memory_gb": 1, "runtime_minutes": 30}


def test_the_session_tells_its_job_walltime_and_log(stack, hub):
    name = stack.learners()[0]
    token = hub.user_token(hub.login(name), name)
    r = hub.start(name, OPTIONS, token=token)
    assert r.status_code in (201, 202), r.text
    try:
        hub.wait_ready(name)
        base = f"{stack.hub_url}/user/{name}"
        auth = {"Authorization": f"token {token}"}
        answer = requests.get(f"{base}/aifw/session", headers=auth, timeout=30)
        assert answer.status_code == 200, answer.text
        job = answer.json()
        [queued] = stack.squeue(name)
        node = stack.slurm("squeue", "-h", "-j", queued["id"], "-o", "%N").strip()
        assert job["in_slurm_job"] is True and job["source"] == "slurm", job
        assert (job["job_id"], job["partition"], job["nodes"], job["cpus"]) == (queued["id"], "cpu", node, 1)
        assert job["memory_mb"] == 1024 and job["gpus"] == 0 and job["state"] == "RUNNING"
        assert job["time_limit_s"] == 30 * 60
        assert 29 * 60 <= job["walltime_left_s"] <= 30 * 60, job
        assert job["notes"] == [], job["notes"]
        # The end of the walltime, as the batch script exported the site's session section: warnings at 10
        # and 2 minutes, Slurm's signal a minute ahead, not yet sent; no GPU, no GPU-hours.
        assert (job["walltime_warnings_min"], job["end_signal_s"]) == ([10, 2], 60)
        assert (job["ending"], job["warning_due_min"], job["next_poll_s"]) == (False, None, 60), job
        assert job["gpu_hours"] == 0.0

        log = requests.get(f"{stack.hub_url}{job['log_url']}", headers=auth, timeout=30)
        assert log.status_code == 200 and log.headers["Content-Type"].startswith("text/plain"), log.text[:300]
        assert "jupyterhub-singleuser" in log.text or "Jupyter Server" in log.text, log.text[-500:]

        # jupyter-resource-usage counts against the job's allocation (1 GiB, 1 CPU), not the node's.
        metrics = requests.get(f"{base}/api/metrics/v1", headers=auth, timeout=30)
        assert metrics.status_code == 200, metrics.text[:300]
        limits = metrics.json()["limits"]
        assert limits["memory"]["rss"] == 1024 ** 3 and limits["cpu"]["cpu"] == 1, limits
        # jupyterlab-nvdashboard where NVML is absent (no NVIDIA driver here): no GPU, and no traceback.
        nv = requests.get(f"{base}/nvdashboard/accelerators/check", headers=auth, timeout=30)
        assert nv.status_code == 200 and (nv.json()["has_gpu"], nv.json()["ngpus"]) == (False, 0), nv.text[:300]
        assert "Registered jupyterlab_nvdashboard server extension" in log.text, log.text[-2000:]
        assert "Traceback" not in log.text, log.text[-3000:]

        # Only the logged-in owner reads it: no token, no answer.
        anonymous = requests.get(f"{base}/aifw/session", timeout=30, allow_redirects=False)
        assert anonymous.status_code in (302, 403), anonymous.status_code
    finally:
        hub.stop(name)
