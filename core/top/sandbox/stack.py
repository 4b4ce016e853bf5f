"""Stand up and tear down the sandbox stack: munge, slurmctld, slurmd, demo accounts, JupyterHub.

Layout under the home (AIFW_HOME):
  venv/                 the runtime (built by scripts/install.sh)
  state/site.yaml       the effective site file (the chosen site with this home's paths filled in)
  state/slurm/          slurm.conf, gres.conf, fake GPU devices, controller state, spool, pid files
  state/hub/            hub DB, cookie secret, proxy token, pid files
  logs/                 slurmctld.log, slurmd.log, jupyterhub.log
  sandbox.json          hub_url, admin api_token, users -> passwords (mode 0600, root)

Processes are found and stopped by their pid files, never by name. munge is shared by everyone on the
machine: it is started when not running and stopped only by the stack that started it.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import stat
import subprocess
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import yaml

from aifw.site import Site, load_site, site_from_dict
from aifw.slurm import SlurmClient, SlurmError

from .processes import SandboxError, read_pid, spawn_background, stop_pid_file, wait_for
from .slurm_conf import SlurmPaths, render_gres_conf, render_slurm_conf

MUNGE_PID = Path("/run/munge/munged.pid")


@dataclass(frozen=True)
class Stack:
    home: Path
    site: Site  # effective site (paths point into home)

    # -- paths --------------------------------------------------------------------------------
    @property
    def state(self) -> Path:
        return self.home / "state"

    @property
    def logs(self) -> Path:
        return self.home / "logs"

    @property
    def slurm_paths(self) -> SlurmPaths:
        return SlurmPaths(self.state / "slurm")

    @property
    def hub_state(self) -> Path:
        return self.state / "hub"

    @property
    def site_file(self) -> Path:
        return self.state / "site.yaml"

    @property
    def sandbox_json(self) -> Path:
        return self.home / "sandbox.json"

    @property
    def hub_pid(self) -> Path:
        return self.hub_state / "jupyterhub.pid"

    @property
    def proxy_pid(self) -> Path:
        return self.hub_state / "proxy.pid"

    @property
    def munge_marker(self) -> Path:
        return self.state / "munged.started-by-us"

    @property
    def venv_bin(self) -> Path:
        return self.home / "venv" / "bin"

    @property
    def slurm(self) -> SlurmClient:
        return SlurmClient(bin_dir=self.site.slurm.bin_dir, conf=str(self.slurm_paths.conf), timeout_s=10)

    @property
    def hub_url(self) -> str:
        return self.site.hub.bind_url.rstrip("/")


def effective_site(site: Site, home: Path) -> Site:
    """The chosen site with this home's runtime prefix and Slurm config filled in."""
    if site.sandbox is None:
        raise SandboxError("this site file has no 'sandbox' section; `aifw sandbox` only runs one-machine sandboxes")
    data = site.model_dump(mode="json")
    data["paths"]["runtime_prefix"] = str(home)
    data["slurm"]["conf"] = str(home / "state" / "slurm" / "slurm.conf")
    return site_from_dict(data, source="effective site")


def make_stack(home: str | os.PathLike, site_path: str | os.PathLike | None = None) -> Stack:
    home = Path(home).resolve()
    return Stack(home=home, site=effective_site(load_site(site_path), home))


def _say(msg: str) -> None:
    print(f"[aifw sandbox] {msg}", flush=True)


# ---------------------------------------------------------------------------------------------
# munge
# ---------------------------------------------------------------------------------------------
def munge_works() -> bool:
    try:
        cred = subprocess.run(["munge", "-n"], capture_output=True, timeout=5)
        if cred.returncode != 0:
            return False
        return subprocess.run(["unmunge"], input=cred.stdout, capture_output=True, timeout=5).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def start_munge(stack: Stack) -> None:
    if munge_works():
        return
    key = Path("/etc/munge/munge.key")
    if not key.exists():
        subprocess.run(["/usr/sbin/mungekey", "--create", "--keyfile", str(key)], check=True)
        shutil.chown(key, "munge", "munge")
        key.chmod(0o400)
    run_dir = Path("/run/munge")
    run_dir.mkdir(parents=True, exist_ok=True)
    shutil.chown(run_dir, "munge", "munge")
    run_dir.chmod(0o755)
    subprocess.run(["runuser", "-u", "munge", "--", "/usr/sbin/munged"], check=True)
    wait_for(munge_works, 10, "munged", "See /var/log/munge/munged.log.")
    stack.state.mkdir(parents=True, exist_ok=True)
    stack.munge_marker.write_text(MUNGE_PID.read_text() if MUNGE_PID.exists() else "")
    _say("started munged")


def stop_munge(stack: Stack) -> None:
    if not stack.munge_marker.exists():
        return
    pid = read_pid(MUNGE_PID)
    recorded = stack.munge_marker.read_text().strip()
    if pid is not None and recorded and str(pid) == recorded:
        stop_pid_file(MUNGE_PID)
        _say("stopped munged (started by this stack)")
    stack.munge_marker.unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------
# Slurm
# ---------------------------------------------------------------------------------------------
def write_slurm_config(stack: Stack) -> None:
    sp = stack.slurm_paths
    for d in (sp.root, sp.ctld_state, sp.spool, sp.log_dir, sp.gpu_dir):
        d.mkdir(parents=True, exist_ok=True)
    sp.root.chmod(0o755)
    sp.conf.write_text(render_slurm_conf(stack.site, sp))
    sp.gres_conf.write_text(render_gres_conf(stack.site, sp))
    sp.conf.chmod(0o644)
    sp.gres_conf.chmod(0o644)
    assert stack.site.sandbox is not None
    for i in range(stack.site.sandbox.node.gpus):
        dev = sp.gpu_dir / f"gpu{i}"
        if dev.exists() and not stat.S_ISCHR(dev.stat().st_mode):
            dev.unlink()
        if not dev.exists():
            # Fake GPUs must be character devices or slurmd silently drops them (a copy of /dev/null).
            os.mknod(dev, 0o666 | stat.S_IFCHR, os.makedev(1, 3))


def slurm_running(stack: Stack) -> bool:
    sp = stack.slurm_paths
    return read_pid(sp.ctld_pid) is not None and read_pid(sp.slurmd_pid) is not None


def node_ready(stack: Stack) -> bool:
    res = stack.slurm.run_sync("sinfo", ["-h", "-N", "-o", "%t"], timeout_s=5)
    states = {s.strip().rstrip("*~#") for s in res.stdout.split()}
    return bool(states) and states <= {"idle", "mix", "alloc", "comp"}


def start_slurm(stack: Stack) -> None:
    sp = stack.slurm_paths
    if slurm_running(stack):
        return
    write_slurm_config(stack)
    env = dict(os.environ, SLURM_CONF=str(sp.conf))
    cold_start = read_pid(sp.ctld_pid) is None and read_pid(sp.slurmd_pid) is None
    if read_pid(sp.ctld_pid) is None:
        subprocess.run(["/usr/sbin/slurmctld", "-i", "-f", str(sp.conf)], check=True, env=env)
    if read_pid(sp.slurmd_pid) is None:
        subprocess.run(["/usr/sbin/slurmd", "-N", "localhost", "-f", str(sp.conf)], check=True, env=env)
    wait_for(lambda: node_ready(stack), 60, "the Slurm node", f"See {sp.log_dir}/slurmctld.log and slurmd.log.")
    if cold_start:
        # Jobs recovered from the saved state belong to a run that was killed (machine restart): none of
        # them can still be running, so clear them rather than let them hold slots.
        cancel_all_jobs(stack)
    _say(f"Slurm is up (cluster {stack.site.sandbox.cluster_name}, SLURM_CONF={sp.conf})")


def cancel_all_jobs(stack: Stack) -> None:
    """Cancel every job of this stack's cluster (the cluster is ours alone) and wait until none is left."""
    try:
        res = stack.slurm.run_sync("squeue", ["-h", "-o", "%i"], timeout_s=10)
    except SlurmError:
        return
    ids = res.stdout.split()
    if not ids:
        return
    try:
        stack.slurm.run_sync("scancel", ids, timeout_s=10)
    except SlurmError as err:
        _say(f"scancel said: {err}")
    try:
        wait_for(
            lambda: not stack.slurm.run_sync("squeue", ["-h", "-o", "%i"], timeout_s=5).stdout.strip(),
            30,
            "cancelling the jobs",
        )
    except SandboxError as err:
        _say(str(err))
    _say(f"cancelled {len(ids)} job(s)")


def stop_slurm(stack: Stack) -> None:
    sp = stack.slurm_paths
    if read_pid(sp.ctld_pid) is not None and read_pid(sp.slurmd_pid) is not None:
        cancel_all_jobs(stack)
    stopped = [name for name, pf in (("slurmd", sp.slurmd_pid), ("slurmctld", sp.ctld_pid)) if stop_pid_file(pf)]
    if stopped:
        _say(f"stopped {', '.join(stopped)}")


# ---------------------------------------------------------------------------------------------
# Accounts
# ---------------------------------------------------------------------------------------------
def load_sandbox_json(stack: Stack) -> dict:
    try:
        return json.loads(stack.sandbox_json.read_text())
    except (OSError, ValueError):
        return {}


def write_sandbox_json(stack: Stack, data: dict) -> None:
    tmp = stack.sandbox_json.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=2)
    os.chmod(tmp, 0o600)
    os.replace(tmp, stack.sandbox_json)


def ensure_accounts(stack: Stack, passwords: dict[str, str]) -> dict[str, str]:
    """Create the demo unix users (home dirs 0750) and set their passwords; returns name -> password."""
    from .courses import user_exists

    assert stack.site.sandbox is not None
    out = {}
    for user in stack.site.sandbox.demo_users:
        exists = user_exists(user.name)
        if not exists:
            subprocess.run(["useradd", "--create-home", "--shell", "/bin/bash", user.name], check=True)
            home = Path(f"/home/{user.name}")
            if home.exists():
                home.chmod(0o750)
        password = passwords.get(user.name) or secrets.token_urlsafe(12)
        if passwords.get(user.name) != password or not exists:
            subprocess.run(["chpasswd"], input=f"{user.name}:{password}\n", text=True, check=True)
        out[user.name] = password
    return out


# ---------------------------------------------------------------------------------------------
# Hub
# ---------------------------------------------------------------------------------------------
def hub_healthy(stack: Stack) -> bool:
    try:
        with urllib.request.urlopen(f"{stack.hub_url}/hub/health", timeout=3) as r:
            return r.status == 200
    except OSError:
        return False


def _secret_file(path: Path) -> str:
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
    return path.read_text().strip()


def start_hub(stack: Stack, admin_token: str) -> None:
    if read_pid(stack.hub_pid) is not None:
        return
    stack.hub_state.mkdir(parents=True, exist_ok=True)
    stack.hub_state.chmod(0o700)
    import aifw.hub_config as hub_config_pkg

    config = Path(hub_config_pkg.__file__).with_name("jupyterhub_config.py")
    env = {
        "PATH": f"{stack.venv_bin}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": str(stack.hub_state),
        "LANG": "C.UTF-8",
        "AIFW_SITE": str(stack.site_file),
        "AIFW_HOME": str(stack.home),
        "AIFW_ADMIN_TOKEN": admin_token,
        "SLURM_CONF": str(stack.slurm_paths.conf),
        "CONFIGPROXY_AUTH_TOKEN": _secret_file(stack.hub_state / "proxy_auth_token"),
    }
    spawn_background(
        [str(stack.venv_bin / "jupyterhub"), "-f", str(config)],
        pid_file=stack.hub_pid,
        log_file=stack.logs / "jupyterhub.log",
        env=env,
        cwd=str(stack.hub_state),
    )
    wait_for(
        lambda: hub_healthy(stack) or read_pid(stack.hub_pid) is None,
        90,
        "JupyterHub",
        f"See {stack.logs / 'jupyterhub.log'}.",
    )
    if not hub_healthy(stack):
        raise SandboxError(f"JupyterHub exited during start-up. See {stack.logs / 'jupyterhub.log'}:\n" + _tail(stack.logs / "jupyterhub.log"))
    _say(f"JupyterHub is up at {stack.hub_url}")


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def stop_hub(stack: Stack) -> None:
    if stop_pid_file(stack.hub_pid, timeout_s=20):
        _say("stopped JupyterHub")
    if stop_pid_file(stack.proxy_pid):
        _say("stopped configurable-http-proxy")


# ---------------------------------------------------------------------------------------------
# The whole stack
# ---------------------------------------------------------------------------------------------
def status(stack: Stack) -> dict[str, object]:
    sp = stack.slurm_paths
    return {
        "munged": munge_works(),
        "slurmctld": read_pid(sp.ctld_pid),
        "slurmd": read_pid(sp.slurmd_pid),
        "jupyterhub": read_pid(stack.hub_pid),
        "proxy": read_pid(stack.proxy_pid),
        "hub_healthy": hub_healthy(stack),
    }


def is_up(stack: Stack) -> bool:
    st = status(stack)
    return bool(st["munged"] and st["slurmctld"] and st["slurmd"] and st["jupyterhub"] and st["hub_healthy"])


def up(stack: Stack) -> bool:
    """Start whatever is not running. Returns False when everything already ran (nothing changed).

    The site's courses (accounts, groups, course directories, exchange) are applied in both cases, so a
    new course or learner in the site file needs no restart of Slurm or of the sessions; when the site
    file changed, JupyterHub alone is restarted to load it (hub groups, formgrader services); running
    sessions are kept."""
    if is_up(stack):
        changed = apply_courses(stack)
        if _read(stack.site_file) != effective_site_text(stack):
            stack.site_file.write_text(effective_site_text(stack))
            publish_courses(stack)
            token = load_sandbox_json(stack).get("api_token") or secrets.token_hex(32)
            stop_hub(stack)
            start_hub(stack, token)
            _say("the site file changed: JupyterHub restarted with it (running sessions are kept)")
            changed = True
        return sync_hub_groups(stack) or changed
    for d in (stack.home, stack.state, stack.logs):
        d.mkdir(parents=True, exist_ok=True)
    stack.home.chmod(0o755)
    stack.state.chmod(0o755)
    stack.logs.chmod(0o700)
    stack.site_file.write_text(effective_site_text(stack))
    start_munge(stack)
    start_slurm(stack)
    info = load_sandbox_json(stack)
    users = ensure_accounts(stack, info.get("users", {}))
    token = info.get("api_token") or secrets.token_hex(32)
    write_sandbox_json(
        stack,
        {
            "hub_url": stack.hub_url,
            "api_url": f"{stack.hub_url}/hub/api",
            "api_token": token,
            "users": users,
            "admin_users": list(stack.site.hub.admin_users),
            "site_file": str(stack.site_file),
            "slurm_conf": str(stack.slurm_paths.conf),
            "logs": str(stack.logs),
        },
    )
    publish_courses(stack)
    apply_courses(stack)
    start_hub(stack, token)
    sync_hub_groups(stack)
    return True


def _hub_api(stack: Stack, method: str, path: str, body: dict | None = None) -> dict:
    token = load_sandbox_json(stack).get("api_token", "")
    req = urllib.request.Request(
        f"{stack.hub_url}/hub/api{path}", method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"token {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        text = r.read()
    return json.loads(text) if text else {}


def sync_hub_groups(stack: Stack) -> bool:
    """Make each course's hub groups hold exactly the site's trainers and learners (JupyterHub's
    load_groups adds members at start but never removes them). Returns True when a group changed."""
    changed = False
    for course in stack.site.courses:
        for group, wanted in ((f"course-{course.id}-trainers", course.trainers),
                              (f"course-{course.id}-learners", course.learners)):
            try:
                have = set(_hub_api(stack, "GET", f"/groups/{group}").get("users", []))
            except OSError as err:
                _say(f"could not read hub group {group}: {err}")
                continue
            extra, missing = sorted(have - set(wanted)), sorted(set(wanted) - have)
            if extra:
                _hub_api(stack, "DELETE", f"/groups/{group}/users", {"users": extra})
            if missing:
                _hub_api(stack, "POST", f"/groups/{group}/users", {"users": missing})
            if extra or missing:
                _say(f"hub group {group}: " + ", ".join([f"+{u}" for u in missing] + [f"-{u}" for u in extra]))
                changed = True
    return changed


def effective_site_text(stack: Stack) -> str:
    return ("# Effective site file written by `aifw sandbox up`; edit the source site file instead.\n"
            + yaml.safe_dump(stack.site.model_dump(mode="json"), sort_keys=False))


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def apply_courses(stack: Stack) -> bool:
    """Provision the site's courses (see aifw.sandbox.courses); demo users missing so far are created
    first, as group members must exist. Returns True when anything changed."""
    from .courses import provision_courses, user_exists

    changed = False
    if stack.site.sandbox and any(not user_exists(u.name) for u in stack.site.sandbox.demo_users):
        info = load_sandbox_json(stack)
        info["users"] = ensure_accounts(stack, info.get("users", {}))
        write_sandbox_json(stack, info)
        changed = True
    return provision_courses(stack.site, stack.home / "venv", say=_say) or changed


def publish_courses(stack: Stack) -> None:
    """Learner copies of the site's courses, world-readable under home/share/courses (when changed)."""
    if not stack.site.course_ids:
        return
    from aifw.courses.catalogue import load_catalogue
    from aifw.courses.publish import publish

    wanted = set(stack.site.course_ids)
    courses = [c for c in load_catalogue() if c.id in wanted]
    missing = wanted - {c.id for c in courses}
    if missing:
        raise SandboxError(f"the site file names course(s) that are not installed: {', '.join(sorted(missing))}")
    (stack.home / "share").mkdir(exist_ok=True)
    (stack.home / "share").chmod(0o755)
    publish(courses, stack.home / "share" / "courses", say=_say)


def down(stack: Stack) -> None:
    """Stop every process this stack started (by pid file). Data (hub DB, homes, state) is kept."""
    stop_hub(stack)
    stop_slurm(stack)
    stop_munge(stack)


