"""The server's API token and the hub's own secrets stay private; a job that ends is noticed at the next poll."""
from __future__ import annotations

import json
import os
import secrets
import subprocess
import tempfile
import time
from pathlib import Path


def test_the_servers_api_token_is_on_no_command_line_and_in_no_file_others_can_read(stack, hub):
    name, other = stack.learners()[:2]
    token = hub.user_token(hub.login(name), name)
    assert hub.start(name, {"partition": "cpu"}, token=token).status_code in (201, 202)
    hub.wait_ready(name)
    server_token = hub.run_code(name, token, "import os; print(os.environ['JUPYTERHUB_API_TOKEN'])").strip()
    assert len(server_token) >= 32
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            assert server_token.encode() not in cmdline, f"token on the command line of pid {pid}"
    # Search as another learner everywhere the session or Slurm writes: nothing they can read holds it. A
    # file they can read, holding a marker, proves that the search ran and read files (grep also exits 2
    # for the files they cannot read, which is the point; when runuser or grep fail, nothing is listed).
    roots = [str(stack.home / "state"), "/tmp", "/var/tmp", f"/home/{name}", str(stack.logs)]
    marker = secrets.token_hex(16)
    fd, canary = tempfile.mkstemp(prefix="aifw-canary-", dir="/tmp")
    os.write(fd, marker.encode())
    os.close(fd)
    os.chmod(canary, 0o644)
    try:
        search = subprocess.run(["runuser", "-u", other, "--", "grep", "-rlsF", "-e", server_token, "-e", marker, *roots],
                                capture_output=True, text=True, timeout=120)
    finally:
        os.unlink(canary)
    assert search.returncode in (0, 2) and search.stdout.split() == [canary], (
        f"{other} can read the token in: {search.stdout} (grep exit {search.returncode}: {search.stderr[-2000:]})")
    # Another learner cannot read the job's environment that Slurm keeps.
    env_files = list((stack.home / "state" / "slurm" / "ctld").glob("hash.*/job.*/environment"))
    assert env_files
    probe = subprocess.run(["runuser", "-u", other, "--", "cat", str(env_files[0])], capture_output=True, text=True)
    assert probe.returncode != 0 and "Permission denied" in probe.stderr


def test_the_hubs_own_secrets_do_not_reach_a_session(stack, hub):
    """The job's environment is the spawner's (get_env), not the hub process's: no admin or proxy token."""
    name = stack.learners()[0]
    token = hub.user_token(hub.login(name), name)
    assert hub.start(name, {"partition": "cpu"}, token=token).status_code in (201, 202)
    hub.wait_ready(name)
    env = json.loads(hub.run_code(name, token, "import json, os; print(json.dumps(dict(os.environ)))"))
    assert env["JUPYTERHUB_USER"] == name and env["SLURM_JOB_ID"]  # it is the session's environment
    assert not {"AIFW_ADMIN_TOKEN", "CONFIGPROXY_AUTH_TOKEN"} & set(env), sorted(env)
    hub_secrets = [stack.api_token, (stack.home / "state" / "hub" / "proxy_auth_token").read_text().strip()]
    assert all(len(s) >= 32 and s not in json.dumps(env) for s in hub_secrets)


def test_a_job_that_ends_is_noticed_at_the_next_poll(stack, hub):
    name = stack.learners()[0]
    assert hub.start(name, {"partition": "cpu"}).status_code in (201, 202)
    server = hub.wait_ready(name)
    stack.slurm("scancel", server["state"]["job_id"])  # e.g. walltime, node failure, an admin
    deadline = time.monotonic() + 20  # the test hub polls every 5 s
    while hub.user_model(name)["servers"] and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not hub.user_model(name)["servers"]
    assert stack.squeue(name) == []
