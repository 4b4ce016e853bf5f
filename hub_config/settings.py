"""Build JupyterHub's settings from a validated site (pure): {section: {trait: value}}.

`jupyterhub_config.py` applies the result to `c`; it only sets, never appends or mutates. This is the one
route from the site to the hub: JupyterHub's own traits are set from site values here, and the spawner
gets the whole `Site` as `c.AIFSlurmSpawner.site` (it reads no file itself).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from aifw.names import course_group
from aifw.site import Site

from .class_request import CLASS_HANDLER, CLASS_PATH
from .course_cards import courses_for
from .culling import culler_service
from .lti_grades import grades_service
from .progress import progress_service

#: The hub's page templates (home, spawn), installed with the package.
TEMPLATES = Path(__file__).resolve().parent / "templates"
ADMIN_SERVICE = "aifw-admin"
#: A config-given token at least this long (64 hex digits = 256 bits) is not stretched (see build_settings).
TRUSTED_TOKEN_LENGTH = 64
ADMIN_SCOPES = ["admin:users", "admin:servers", "admin:groups", "read:hub", "tokens", "list:users", "access:servers"]

# The site's `hub.authenticator` -> JupyterHub's authenticator (a name of the entry-point group
# `jupyterhub.authenticators`) and the config sections (classes) its settings go to.
AUTHENTICATORS: dict[str, tuple[str, tuple[str, ...]]] = {
    "pam": ("pam", ("PAMAuthenticator",)),
    "lti": ("aifw-lti", ("AIFLTIAuthenticator",)),  # aifw.hub_config.lti_auth
}


def authenticator_settings(site: Site) -> dict[str, dict[str, Any]]:
    """The settings of the site's authenticator, by config section (pure)."""
    if site.hub.authenticator == "pam":
        return {"PAMAuthenticator": {"open_sessions": False}}
    lti = site.lti
    assert lti is not None  # the site model requires it with hub.authenticator: lti
    # jupyterhub-ltiauthenticator's own traits verify the launch (issuer, audience, signature through the JWKS,
    # state, nonce, age); the whole site gives the mapping (aifw.hub_config.lti_auth).
    return {
        "AIFLTIAuthenticator": {
            "site": site,
            "issuer": lti.issuer,
            "client_id": set(lti.client_ids),
            "authorize_url": lti.authorize_url,
            "jwks_endpoint": lti.jwks_url,
            "jwks_algorithms": ["RS256"],
        },
    }


def build_settings(site: Site, *, home: str, admin_token: str | None = None) -> dict[str, dict[str, Any]]:
    """`home` is AIFW_HOME (state lives under home/state/hub); `admin_token` the scripts' API token."""
    hub_state = Path(home) / "state" / "hub"
    hub = site.hub
    share = Path(site.paths.runtime_prefix) / "share" / "courses"  # the published courses' catalogue entries
    jh: dict[str, Any] = {
        "bind_url": hub.bind_url,
        "hub_ip": hub.hub_ip,
        "hub_port": hub.hub_port,
        "db_url": f"sqlite:///{hub_state / 'jupyterhub.sqlite'}",
        "cookie_secret_file": str(hub_state / "jupyterhub_cookie_secret"),
        "pid_file": str(hub_state / "jupyterhub.pid"),
        "cleanup_servers": False,  # running sessions survive a hub restart
        "spawner_class": "aifw-slurm",
        "authenticator_class": AUTHENTICATORS[hub.authenticator][0],
        "last_activity_interval": 60,
        # Our pages (a card per session, the spawn page titled for the site) extend JupyterHub's own templates.
        "template_paths": [str(TEMPLATES)],
        "template_vars": {"aifw_site_name": site.name,
                          "aifw_courses": courses_for(site, share),
                          "aifw_reservations": list(site.slurm.reservations)},
        # The trainer's "Start the class" button (aifw.hub_config.class_page): /hub/api/aifw/class/<course>,
        # before JupyterHub's API 404. Given as tornado's import path, so that these settings stay pure.
        "extra_handlers": [(CLASS_PATH, CLASS_HANDLER, {"site": site, "share": str(share)})],
        # More than one session per person: JupyterHub's named servers (the default one counts as one).
        "allow_named_servers": hub.sessions_per_user > 1,
        "named_server_limit_per_user": hub.sessions_per_user - 1,
    }
    if hub.hub_connect_ip:
        jh["hub_connect_ip"] = hub.hub_connect_ip
    services: list[dict[str, Any]] = []
    roles: list[dict[str, Any]] = []
    if admin_token:
        services.append({"name": ADMIN_SERVICE, "api_token": admin_token})
        roles.append({"name": "aifw-admin", "scopes": ADMIN_SCOPES, "services": [ADMIN_SERVICE]})
        # JupyterHub stretches a token given in its config with 16384 rounds of SHA-512 at every request that
        # uses it (6 ms of CPU here; 50-600 ms at p99 while a class keeps the cores busy), because such a token
        # may be a weak one a person chose. The admin token is the sandbox's 256 random bits (or one an admin
        # sets in AIFW_ADMIN_TOKEN): one that long is trusted as JupyterHub trusts the tokens it makes itself.
        jh["trust_user_provided_tokens"] = len(admin_token) >= TRUSTED_TOKEN_LENGTH
    fg_services, fg_roles = formgrader_services(site)
    services += fg_services
    roles += fg_roles
    cull_services, cull_roles = culler_service(site)  # jupyterhub-idle-culler (aifw.hub_config.culling)
    services += cull_services
    roles += cull_roles
    roles += class_roles(site)
    grades_services, grades_roles = grades_service(site, home=home, admin_service=ADMIN_SERVICE if admin_token else None)
    services += grades_services
    roles += grades_roles
    progress_services, progress_roles = progress_service(site, home=home, admin_service=ADMIN_SERVICE if admin_token else None)
    services += progress_services
    roles += progress_roles
    if services:
        jh["services"] = services
    if roles:
        jh["load_roles"] = roles
    allowed = sorted(set(site.users) - set(hub.admin_users))
    # Each course becomes two JupyterHub groups; membership is synced from the site file at hub start
    # and can be changed at run time through the REST API (/hub/api/groups/...).
    groups = {}
    for course in site.courses:
        groups[course_group(course.id, "trainer")] = {"users": list(course.trainers), "properties": {"course": course.id, "role": "trainer"}}
        groups[course_group(course.id, "learner")] = {"users": list(course.learners), "properties": {"course": course.id, "role": "learner"}}
    if groups:
        jh["load_groups"] = groups
    return {
        **authenticator_settings(site),
        "JupyterHub": jh,
        "ConfigurableHTTPProxy": {
            "api_url": f"http://127.0.0.1:{hub.proxy_api_port}",
            "pid_file": str(hub_state / "proxy.pid"),
            "command": [str(Path(home) / "proxy" / "node_modules" / ".bin" / "configurable-http-proxy")],
            "should_start": True,
        },
        "Authenticator": {"admin_users": set(hub.admin_users), "allowed_users": set(allowed)},
        "Spawner": {
            "default_url": "/lab",
            "start_timeout": hub.start_timeout_s,
            "http_timeout": 120,
            "poll_interval": hub.poll_interval_s,
            # JupyterHub's `server` role, plus stopping its own server: the session panel's Stop goes
            # through the hub (aifw.extensions.server's aifw/session/stop), so the hub knows at once.
            "server_token_scopes": ["users:activity!user", "access:servers!server", "delete:servers!server"],
        },
        "AIFSlurmSpawner": {"site": site},
    }


def formgrader_service_name(course_id: str) -> str:
    return f"formgrader-{course_id}"


# The nbgrader server extensions a formgrader service runs (learners' sessions have these off, see
# aifw.sandbox.jupyter_config); the command line wins over the config files that turn them off.
FORMGRADER_SERVER_EXTENSIONS = ("nbgrader.server_extensions.formgrader", "nbgrader.server_extensions.course_list")
# A Jupyter config folder of the formgrader services only (JUPYTER_CONFIG_PATH, which wins over the venv's
# config): its labconfig turns nbgrader's trainer plugins back on (written by aifw.sandbox.jupyter_config).
FORMGRADER_CONFIG_DIR = ("etc", "aifw-formgrader")


def formgrader_services(site: Site) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """One JupyterHub-managed service per course: nbgrader's formgrader on the course directory, run as the
    course's grader account on a loopback port (services_port_base + the course's index); and a role that
    lets the course's trainers (group course-<id>-trainers) in. Hub admins may access every service."""
    venv_bin = site.paths.venv / "bin"
    services, roles = [], []
    for index, course in enumerate(site.courses):
        name = formgrader_service_name(course.id)
        course_dir = str(site.paths.course_dir(course.id))
        command = [
            str(venv_bin / "jupyterhub-singleuser"),
            f"--ServerApp.root_dir={course_dir}",
            *[f"--ServerApp.jpserver_extensions={ext}=True" for ext in FORMGRADER_SERVER_EXTENSIONS],
            f"--CourseDirectory.root={course_dir}",
            f"--CourseDirectory.course_id={course.id}",
        ]
        environment = {
            "PATH": f"{venv_bin}:/usr/local/bin:/usr/bin:/bin",
            "JUPYTERHUB_DEFAULT_URL": "/formgrader",
            "JUPYTER_CONFIG_PATH": str(site.paths.venv.joinpath(*FORMGRADER_CONFIG_DIR)),
            "AIFW_HOME": site.paths.runtime_prefix,
        }
        if site.slurm.conf:
            environment["SLURM_CONF"] = site.slurm.conf
        services.append({
            "name": name,
            "display": True,
            "info": {"course": course.id, "what": "nbgrader formgrader"},
            "user": course.grader_account,
            "cwd": course_dir,
            "url": f"http://127.0.0.1:{site.hub.services_port_base + index}",
            "command": command,
            "environment": environment,
            "oauth_no_confirm": True,
        })
        roles.append({
            "name": f"{name}-trainers",
            "description": f"Trainers of {course.id} open its formgrader",
            "scopes": [f"access:services!service={name}", f"read:services!service={name}"],
            "groups": [course_group(course.id, "trainer")],
        })
    return services, roles


def class_role_name(course_id: str) -> str:
    return f"course-{course_id}-class"


def class_roles(site: Site) -> list[dict[str, Any]]:
    """One role per course: its trainers (group course-<id>-trainers) see its learners and start and stop
    their sessions (`aifw class start`, with a token the trainer makes on the hub's Token page) - those of
    the course's learners only."""
    roles = []
    for course in site.courses:
        learners = course_group(course.id, "learner")
        roles.append({
            "name": class_role_name(course.id),
            "description": f"Trainers of {course.id} start and stop its learners' sessions (aifw class)",
            "scopes": [f"servers!group={learners}", f"read:users!group={learners}", f"read:groups!group={learners}"],
            "groups": [course_group(course.id, "trainer")],
        })
    return roles


def apply_settings(c: Any, settings: dict[str, dict[str, Any]]) -> None:
    for section, values in settings.items():
        for key, value in values.items():
            setattr(getattr(c, section), key, value)
