"""Build JupyterHub's settings from a validated site (pure): {section: {trait: value}}.

`jupyterhub_config.py` applies the result to `c`; it only sets, never appends or mutates.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from aifw.site import Site

ADMIN_SERVICE = "aifw-admin"
ADMIN_SCOPES = ["admin:users", "admin:servers", "admin:groups", "read:hub", "tokens", "list:users", "access:servers"]


def build_settings(site: Site, *, home: str, admin_token: str | None = None, site_file: str = "") -> dict[str, dict[str, Any]]:
    """`home` is AIFW_HOME (state lives under home/state/hub); `admin_token` the scripts' API token."""
    hub_state = Path(home) / "state" / "hub"
    hub = site.hub
    jh: dict[str, Any] = {
        "bind_url": hub.bind_url,
        "hub_ip": hub.hub_ip,
        "hub_port": hub.hub_port,
        "db_url": f"sqlite:///{hub_state / 'jupyterhub.sqlite'}",
        "cookie_secret_file": str(hub_state / "jupyterhub_cookie_secret"),
        "pid_file": str(hub_state / "jupyterhub.pid"),
        "cleanup_servers": False,  # running sessions survive a hub restart
        "spawner_class": "aifw-slurm",
        "authenticator_class": "pam",
        "last_activity_interval": 60,
    }
    if hub.hub_connect_ip:
        jh["hub_connect_ip"] = hub.hub_connect_ip
    if admin_token:
        jh["services"] = [{"name": ADMIN_SERVICE, "api_token": admin_token}]
        jh["load_roles"] = [{"name": "aifw-admin", "scopes": ADMIN_SCOPES, "services": [ADMIN_SERVICE]}]
    allowed = sorted(set(site.users) - set(hub.admin_users))
    # Each course becomes two JupyterHub groups; membership is synced from the site file at hub start
    # and can be changed at run time through the REST API (/hub/api/groups/...).
    groups = {}
    for course in site.courses:
        groups[f"course-{course.id}-trainers"] = {"users": list(course.trainers), "properties": {"course": course.id, "role": "trainer"}}
        groups[f"course-{course.id}-learners"] = {"users": list(course.learners), "properties": {"course": course.id, "role": "learner"}}
    if groups:
        jh["load_groups"] = groups
    return {
        "JupyterHub": jh,
        "ConfigurableHTTPProxy": {
            "api_url": f"http://127.0.0.1:{hub.proxy_api_port}",
            "pid_file": str(hub_state / "proxy.pid"),
            "command": [str(Path(home) / "proxy" / "node_modules" / ".bin" / "configurable-http-proxy")],
            "should_start": True,
        },
        "Authenticator": {"admin_users": set(hub.admin_users), "allowed_users": set(allowed)},
        "PAMAuthenticator": {"open_sessions": False},
        "Spawner": {
            "default_url": "/lab",
            "start_timeout": hub.start_timeout_s,
            "http_timeout": 120,
            "poll_interval": hub.poll_interval_s,
        },
        "AIFSlurmSpawner": {"site_file": site_file},
    }


def apply_settings(c: Any, settings: dict[str, dict[str, Any]]) -> None:
    for section, values in settings.items():
        for key, value in values.items():
            setattr(getattr(c, section), key, value)
