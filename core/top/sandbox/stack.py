"""Stand up and tear down the sandbox stack: munge, MariaDB + slurmdbd, slurmctld, a slurmd per compute node
(in its network namespace), slurmrestd (JWT), projects and budgets, demo accounts, the courses, JupyterHub.

The orchestrator only: each step lives in its own room (layout, munge, accounting, network,
slurm_daemons, rest, projects, accounts, sandbox_json, publishing, provisioning, hub, hub_groups); this module
says in which order they run.
Processes are found and stopped by their pid files, never by name.
"""
from __future__ import annotations

import secrets
from pathlib import Path

from . import accounting
from .accounts import ensure_demo_users, user_exists
from .hub import hub_healthy, hub_runs_old_code, start_hub, stop_hub
from .hub_groups import sync_hub_groups
from .layout import Stack, effective_site_text, make_stack
from .munge import munge_works, start_munge, stop_munge
from .processes import read_pid, say
from .provisioning import provision_courses
from .publishing import publish_courses
from .sandbox_json import load_sandbox_json, write_sandbox_json
from .projects import apply_projects
from .reservations import apply_reservations
from .rest import ensure_jwt_key, start_slurmrestd, stop_slurmrestd
from .slurm_daemons import slurmd_pids, start_slurm, stop_slurm

# What the CLI and the tests' `stack` fixture use (Stack and make_stack live in .layout).
__all__ = ["Stack", "down", "is_up", "make_stack", "status", "up"]


def status(stack: Stack) -> dict[str, object]:
    sp = stack.slurm_paths
    assert stack.site.sandbox is not None
    return {
        "mode": stack.site.sandbox.mode,
        "munged": munge_works(),
        **accounting.status(stack),
        "slurmctld": read_pid(sp.ctld_pid),
        **{f"slurmd ({node})": pid for node, pid in slurmd_pids(stack).items()},
        "slurmrestd": read_pid(sp.rest_pid),
        "jupyterhub": read_pid(stack.hub_pid),
        "proxy": read_pid(stack.proxy_pid),
        "hub_healthy": hub_healthy(stack),
    }


def is_up(stack: Stack) -> bool:
    st = status(stack)
    return all(v for k, v in st.items() if k != "mode")


def up(stack: Stack) -> bool:
    """Start whatever is not running. Returns False when everything already ran (nothing changed).

    The site's courses (accounts, groups, course directories, exchange) are applied in both cases, so a
    new course or learner in the site file needs no restart of Slurm or of the sessions; when the site
    file changed, JupyterHub alone is restarted to load it (hub groups, formgrader services); running
    sessions are kept."""
    if is_up(stack):
        return _update_running(stack)
    for d in (stack.home, stack.state, stack.logs):
        d.mkdir(parents=True, exist_ok=True)
    stack.home.chmod(0o755)
    stack.state.chmod(0o755)
    stack.logs.chmod(0o700)
    stack.site_file.write_text(effective_site_text(stack))
    # The unix accounts before Slurm: slurmctld maps each user of the accounting database to a uid when it
    # loads them (at its start, or when sacctmgr adds one), and a user not on the system then stays unmatched
    # ("Invalid account or account/partition combination") until a reconfigure. On a fresh machine the demo
    # users are new.
    info = load_sandbox_json(stack)
    users = ensure_demo_users(stack.site, info.get("users", {}))
    start_munge(stack)
    ensure_jwt_key(stack)
    accounting.start_database(stack)
    accounting.start_slurmdbd(stack)
    start_slurm(stack)
    start_slurmrestd(stack)
    apply_projects(stack.site, stack.slurm, say=say)
    apply_reservations(stack.site, stack.slurm, say=say)
    token = info.get("api_token") or secrets.token_hex(32)
    write_sandbox_json(stack, {
        "hub_url": stack.hub_url,
        "api_url": f"{stack.hub_url}/hub/api",
        "api_token": token,
        "users": users,
        "admin_users": list(stack.site.hub.admin_users),
        "site_file": str(stack.site_file),
        "slurm_conf": str(stack.slurm_paths.conf),
        "mode": stack.site.sandbox.mode,
        "nodes": dict(stack.site.sandbox.nodes),
        "logs": str(stack.logs),
    })
    publish_courses(stack)
    _apply_courses(stack)
    start_hub(stack, token)
    sync_hub_groups(stack)
    return True


def _update_running(stack: Stack) -> bool:
    """`up` on a running stack: apply the courses, restart the hub alone if the site file changed, and
    bring the hub's course groups in line. True when anything changed."""
    changed = _apply_courses(stack)
    changed = apply_projects(stack.site, stack.slurm, say=say) > 0 or changed
    changed = apply_reservations(stack.site, stack.slurm, say=say) > 0 or changed
    if _read_if_there(stack.site_file) != effective_site_text(stack):
        stack.site_file.write_text(effective_site_text(stack))
        publish_courses(stack)
        token = load_sandbox_json(stack).get("api_token") or secrets.token_hex(32)
        stop_hub(stack)
        start_hub(stack, token)
        say("the site file changed: JupyterHub restarted with it (running sessions are kept)")
        changed = True
    elif hub_runs_old_code(stack):
        token = load_sandbox_json(stack).get("api_token") or secrets.token_hex(32)
        stop_hub(stack)
        start_hub(stack, token)
        say("the installed code changed: JupyterHub restarted with it (running sessions are kept)")
        changed = True
    return sync_hub_groups(stack) or changed


def _apply_courses(stack: Stack) -> bool:
    """Provision the site's courses (aifw.sandbox.provisioning); demo users missing so far are created
    first, as group members must exist. Returns True when anything changed."""
    changed = False
    if stack.site.sandbox and any(not user_exists(u.name) for u in stack.site.sandbox.demo_users):
        info = load_sandbox_json(stack)
        info["users"] = ensure_demo_users(stack.site, info.get("users", {}))
        write_sandbox_json(stack, info)
        changed = True
    return provision_courses(stack.site, stack.venv, say=say) or changed


def _read_if_there(path: Path) -> str | None:
    try:
        return path.read_text()
    except FileNotFoundError:
        return None


def down(stack: Stack) -> None:
    """Stop every process this stack started (by pid file). Data (hub DB, homes, state) is kept."""
    stop_hub(stack)
    stop_slurmrestd(stack)
    stop_slurm(stack)
    accounting.stop_accounting(stack)
    stop_munge(stack)
