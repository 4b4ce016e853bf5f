"""The sandbox's JupyterHub process: started in the background with the effective site (AIFW_SITE), found
and stopped by pid file (the hub's and its proxy's), and checked through /hub/health.

The hub's managed services (the formgraders) outlive a hub that was killed: they run in sessions of their
own. Left behind, one holds its port and answers with the old hub's OAuth secret, so the next hub's
formgrader cannot start and logins to it fail. `stop_hub`, and `start_hub` before it starts a hub, stop
every process that is one of this hub's services (found by the service name and hub API port JupyterHub
put in its environment)."""
from __future__ import annotations

import os
import secrets
import signal
import time
import urllib.request
from pathlib import Path

import aifw.hub_config
from aifw.hub_config.settings import build_settings

from .layout import Stack
from .processes import SandboxError, pid_alive, read_pid, say, spawn_background, stop_pid_file, wait_for

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
    stop_left_services(stack)  # of a hub that died without stopping them
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
    code = installed_code(stack)
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
    (stack.hub_state / CODE_STAMP).write_text(code)
    say(f"JupyterHub is up at {stack.hub_url}")


#: The installed code's stamp (scripts/install.sh writes venv/.aifw-src), as the running hub loaded it.
CODE_STAMP = "code-stamp"


def installed_code(stack: Stack) -> str:
    """The stamp of the code installed in the stack's venv now ('' when there is none)."""
    try:
        return (stack.venv_bin.parent / ".aifw-src").read_text().strip()
    except OSError:
        return ""


def hub_runs_old_code(stack: Stack) -> bool:
    """The running hub was started before the installed code changed (a reinstall): it must restart to load
    it, or it would go on serving the old pages, spawner and services."""
    try:
        started_with = (stack.hub_state / CODE_STAMP).read_text().strip()
    except OSError:
        return True
    return started_with != installed_code(stack)


def log_tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as err:
        return f"(the log cannot be read: {err.strerror})"


def managed_service_names(stack: Stack) -> set[str]:
    """The names of the services the stack's hub starts itself (formgraders, the culler, the progress and
    grades services: every service of its settings with a command)."""
    services = build_settings(stack.site, home=str(stack.home), admin_token="-")["JupyterHub"].get("services", [])
    return {svc["name"] for svc in services if svc.get("command")}


def service_processes(stack: Stack, proc: Path = Path("/proc")) -> list[int]:
    """The pids of processes that are this stack's hub's managed services: JUPYTERHUB_SERVICE_NAME is one of
    the site's service names and JUPYTERHUB_API_URL ends in this hub's API port."""
    names = managed_service_names(stack)
    api_suffix = f":{stack.site.hub.hub_port}/hub/api"
    pids = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            env = dict(item.split("=", 1) for item in (entry / "environ").read_bytes().decode(errors="replace").split("\0")
                       if "=" in item)
        except OSError:  # gone meanwhile, or not ours to read
            continue
        if env.get("JUPYTERHUB_SERVICE_NAME") in names and env.get("JUPYTERHUB_API_URL", "").rstrip("/").endswith(api_suffix):
            pids.append(int(entry.name))
    return sorted(pids)


def stop_left_services(stack: Stack, timeout_s: float = 10) -> None:
    """SIGTERM, then after `timeout_s` SIGKILL, every process `service_processes` finds."""
    pids = service_processes(stack)
    if not pids:
        return
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and any(pid_alive(p) for p in pids):
        time.sleep(0.1)
    for pid in pids:
        if pid_alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    say(f"stopped {len(pids)} service process(es) a stopped hub had left running (pids {', '.join(map(str, pids))})")


def stop_hub(stack: Stack) -> None:
    if stop_pid_file(stack.hub_pid, timeout_s=20):
        say("stopped JupyterHub")
    stop_left_services(stack)
    if stop_pid_file(stack.proxy_pid):
        say("stopped configurable-http-proxy")
