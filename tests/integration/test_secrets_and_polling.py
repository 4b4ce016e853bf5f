"""The server's API token stays private; a job that ends is noticed at the next poll."""
from __future__ import annotations

import os
import subprocess
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
    # Search as another learner everywhere the session or Slurm writes: nothing they can read holds it.
    roots = [str(stack.home / "state"), "/tmp", "/var/tmp", f"/home/{name}", str(stack.logs)]
    search = subprocess.run(["runuser", "-u", other, "--", "grep", "-rlsF", server_token, *roots],
                            capture_output=True, text=True, timeout=120)
    assert search.stdout.strip() == "", f"{other} can read the token in: {search.stdout}"
    # Another learner cannot read the job's environment that Slurm keeps.
    env_files = list((stack.home / "state" / "slurm" / "ctld").glob("hash.*/job.*/environment"))
    assert env_files
    probe = subprocess.run(["runuser", "-u", other, "--", "cat", str(env_files[0])], capture_output=True, text=True)
    assert probe.returncode != 0 and "Permission denied" in probe.stderr


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
