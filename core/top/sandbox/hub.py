"""The sandbox's JupyterHub process: started in the background with the effective site (AIFW_SITE), found
and stopped by pid file (the hub's and its proxy's), and checked through /hub/health."""
from __future__ import annotations

import os
import secrets
import urllib.request
from pathlib import Path

import aifw.hub_config

from .layout import Stack
from .processes import SandboxError, read_pid, say, spawn_background, stop_pid_file, wait_for

HUB_CONFIG = Path(aifw.hub_config.__file__).with_name("jupyterhub_config.py")


def hub_healthy(stack: Stack) -> bool:
    """The hub answers /hub/health with 200 (False when it does not answer)."""
    try:
        with urllib.request.urlopen(f"{stack.hub_url}/hub/health", timeout=3) as r:
            return r.status == 200
    except OSError:
        return False


def secret_file(path: Path) -> str:
    """The secret kept in `path` (0600), made on first use."""
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
    return path.read_text().strip()


def start_hub(stack: Stack, admin_token: str) -> None:
    """Start JupyterHub unless it runs, and wait until it is healthy (or has exited: its log's end is shown)."""
    if read_pid(stack.hub_pid) is not None:
        return
    stack.hub_state.mkdir(parents=True, exist_ok=True)
    stack.hub_state.chmod(0o700)
    env = {
        "PATH": f"{stack.venv_bin}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": str(stack.hub_state),
        "LANG": "C.UTF-8",
        "AIFW_SITE": str(stack.site_file),
        "AIFW_HOME": str(stack.home),
        "AIFW_ADMIN_TOKEN": admin_token,
        "SLURM_CONF": str(stack.slurm_paths.conf),
        "CONFIGPROXY_AUTH_TOKEN": secret_file(stack.hub_state / "proxy_auth_token"),
    }
    spawn_background(
        [str(stack.venv_bin / "jupyterhub"), "-f", str(HUB_CONFIG)],
        pid_file=stack.hub_pid,
        log_file=stack.hub_log,
        env=env,
        cwd=str(stack.hub_state),
    )
    wait_for(lambda: hub_healthy(stack) or read_pid(stack.hub_pid) is None, 90, "JupyterHub", f"See {stack.hub_log}.")
    if not hub_healthy(stack):
        raise SandboxError(f"JupyterHub exited during start-up. See {stack.hub_log}:\n" + log_tail(stack.hub_log))
    say(f"JupyterHub is up at {stack.hub_url}")


def log_tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as err:
        return f"(the log cannot be read: {err.strerror})"


def stop_hub(stack: Stack) -> None:
    if stop_pid_file(stack.hub_pid, timeout_s=20):
        say("stopped JupyterHub")
    if stop_pid_file(stack.proxy_pid):
        say("stopped configurable-http-proxy")
