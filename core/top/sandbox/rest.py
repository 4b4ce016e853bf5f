"""slurmrestd, Slurm's REST API, with JWT: the key slurmctld and slurmdbd verify tokens with, the
unprivileged account the daemon runs as, and the daemon itself on 127.0.0.1, started and stopped by pid
file. A token is minted per user (`scontrol token username=U`, as root); slurmrestd only passes it on.
See ../shared/notes/slurm-accounting-and-rest.md for what was measured (and its sharp edges: a token of
the SlurmUser accepts any user name, so one is never handed out)."""
from __future__ import annotations

import os
import secrets
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

from .layout import Stack
from .processes import SandboxError, read_pid, say, spawn_background, stop_pid_file, wait_for

SLURMRESTD = "/usr/sbin/slurmrestd"
#: The OpenAPI version the sandbox's slurmrestd (Slurm 22.05) is asked with.
API_VERSION = "v0.0.38"


def ensure_jwt_key(stack: Stack) -> None:
    """32 random bytes, 0600, root (the SlurmUser): written once, before slurmctld and slurmdbd start."""
    key = stack.slurm_paths.jwt_key
    if key.exists() and key.stat().st_size >= 32:
        return
    key.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(secrets.token_bytes(32))


def _ensure_rest_user(name: str) -> None:
    try:
        subprocess.run(["id", "-u", name], check=True, capture_output=True, timeout=10)
        return
    except subprocess.CalledProcessError:
        pass
    subprocess.run(["useradd", "--system", "--no-create-home", "--user-group", "--shell", "/usr/sbin/nologin",
                    "--comment", "AIF Workbench sandbox, slurmrestd", name], check=True, timeout=30)


def rest_url(stack: Stack) -> str:
    assert stack.site.sandbox is not None
    return f"http://127.0.0.1:{stack.site.sandbox.slurmrestd_port}"


def _answers(stack: Stack) -> bool:
    # Without a token slurmrestd answers 401: it is up and listening.
    try:
        urllib.request.urlopen(f"{rest_url(stack)}/slurm/{API_VERSION}/ping", timeout=2)
    except urllib.error.HTTPError as err:
        return err.code == 401
    except OSError:
        return False
    return True


def start_slurmrestd(stack: Stack) -> None:
    sb = stack.site.sandbox
    assert sb is not None
    if read_pid(stack.slurm_paths.rest_pid) is not None:
        return
    if not Path(SLURMRESTD).exists():
        raise SandboxError(f"{SLURMRESTD} is missing: install slurmrestd and slurm-wlm-jwt-plugin (scripts/install.sh does)")
    _ensure_rest_user(sb.rest_user)
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "SLURM_CONF": str(stack.slurm_paths.conf), "SLURM_JWT": "daemon"}
    spawn_background([SLURMRESTD, "-u", sb.rest_user, "-g", sb.rest_user, "-a", "rest_auth/jwt",
                      f"127.0.0.1:{sb.slurmrestd_port}"],
                     pid_file=stack.slurm_paths.rest_pid, log_file=stack.slurm_paths.log_dir / "slurmrestd.log", env=env)
    wait_for(lambda: _answers(stack), 30, "slurmrestd", f"See {stack.slurm_paths.log_dir}/slurmrestd.log.")
    say(f"slurmrestd is up ({rest_url(stack)}, JWT, as {sb.rest_user})")


def stop_slurmrestd(stack: Stack) -> None:
    if stop_pid_file(stack.slurm_paths.rest_pid):
        say("stopped slurmrestd")
