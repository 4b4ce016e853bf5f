"""Tell the hub's progress service (`aifw-progress`, aifw.hub_config.progress_service) that an instant check passed.

Best effort and silent: it posts only inside a hub session, for a notebook in the learner's copy of a course
(``~/courses/<course>/<module>/<notebook>.ipynb``, the kernel's working directory and $JPY_SESSION_NAME), once per
check and kernel, in a background thread with a 1 s timeout; nothing it does reaches the learner's cell (no
exception, no output). Never during nbgrader's grading ($NBGRADER_EXECUTION).

Who: the kernel inherits the session's JUPYTERHUB_API_TOKEN, which the service asks the hub about. Where: the
service listens on the address compute nodes reach the hub on (the host of $JUPYTERHUB_API_URL) at the port the
site gives it (hub.services_port_base + number of courses + 1, as aifw.hub_config.progress.service_port), read
from the effective site file ($AIFW_SITE, else $AIFW_HOME/state/site.yaml); $AIFW_PROGRESS_URL overrides both.
"""
from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from urllib.parse import urlsplit

from aifw.names import NBGRADER_ID, NOTEBOOK_FILE, SLURM_NAME, matches

SERVICE_NAME = "aifw-progress"
URL_ENV = "AIFW_PROGRESS_URL"
TIMEOUT_S = 1.0
_sent: set[tuple[str, str, str, str]] = set()
log = logging.getLogger(__name__)


def where(cwd: Path, home: Path, session_name: str) -> tuple[str, str, str] | None:
    """(course, module, notebook) of a notebook in the learner's ~/courses/<course>/<module>/, else None."""
    try:
        parts = cwd.resolve().relative_to(home.resolve() / "courses").parts
    except ValueError:
        return None
    notebook = Path(session_name).name
    if len(parts) != 2 or not matches(SLURM_NAME, parts[0]) or not matches(NBGRADER_ID, parts[1]) \
            or not matches(NOTEBOOK_FILE, notebook):
        return None
    return parts[0], parts[1], notebook


def service_base(env: dict[str, str]) -> str | None:
    """The service's URL (ending in /services/aifw-progress/), or None where there is none to reach."""
    if env.get(URL_ENV):
        return env[URL_ENV].rstrip("/") + "/"
    api = env.get("JUPYTERHUB_API_URL", "")
    host = urlsplit(api).hostname
    site_file = env.get("AIFW_SITE") or (str(Path(env["AIFW_HOME"]) / "state" / "site.yaml")
                                         if env.get("AIFW_HOME") else "")
    if not host or not site_file or not Path(site_file).is_file():
        return None
    from aifw.site import load_site

    site = load_site(site_file)
    port = site.hub.services_port_base + len(site.courses) + 1
    return f"http://{host}:{port}/services/{SERVICE_NAME}/"


def _post(url: str, token: str, body: dict) -> None:
    from aifw.hubapi import HubApi, HubApiError

    try:
        HubApi(url, token, timeout_s=TIMEOUT_S).call("POST", "/api/checks", body)
    except HubApiError as err:  # the service is down or refused: progress is not the learner's concern here
        log.debug("progress not recorded: %s", err)


def report_passed(title: str) -> threading.Thread | None:
    """Post that the check `title` passed, in the background; never raises. Returns the thread (tests join it)."""
    try:
        env = dict(os.environ)
        token = env.get("JUPYTERHUB_API_TOKEN")
        if not token or env.get("NBGRADER_EXECUTION"):
            return None
        place = where(Path.cwd(), Path.home(), env.get("JPY_SESSION_NAME", ""))
        if place is None:
            return None
        key = (*place, title)
        if key in _sent:
            return None
        base = service_base(env)
        if base is None:
            return None
        course, module, notebook = place
        _sent.add(key)
        thread = threading.Thread(target=_post, args=(base, token, {
            "course": course, "module": module, "notebook": notebook, "check": title}), daemon=True)
        thread.start()
        return thread
    except Exception as err:  # noqa: BLE001 - never into the learner's cell
        log.debug("progress not recorded: %s", err)
        return None
