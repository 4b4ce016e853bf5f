"""The Jupyter config that provisioning writes into the runtime's venv (etc/jupyter): the system-wide
nbgrader config (exchange classes and root), and the JupyterLab/server config that keeps nbgrader's
trainer-only parts (formgrader, create-assignment, course list) out of learners' sessions and turns them
on again in the formgrader services (their own config dir, FORMGRADER_CONFIG_DIR); and the settings every
session's server reads from jupyter_server_config.json (SESSION_SERVER_SETTINGS: what a start costs)."""
from __future__ import annotations

import json
import os
from pathlib import Path

from aifw.hub_config.settings import FORMGRADER_CONFIG_DIR
from aifw.site import Site

from .jsonfiles import read_json_object

# Plugins of nbgrader's JupyterLab extension and its server extensions that are for trainers only: they
# are off in every learner session and on in the formgrader services.
TRAINER_LAB_PLUGINS = ("@jupyter/nbgrader:formgrader", "@jupyter/nbgrader:create-assignment", "@jupyter/nbgrader:course-list")
TRAINER_SERVER_EXTENSIONS = ("nbgrader.server_extensions.formgrader", "nbgrader.server_extensions.course_list")
SERVER_CONFIG_NAME = "zz-aifw-nbgrader.json"  # sorts after nbgrader's own nbgrader.json, so it wins


def write_if_changed(path: Path, text: str) -> bool:
    """Write `text` to `path` (0644, atomically) unless it already holds it; True when written."""
    if path.exists() and path.read_text() == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.chmod(0o644)
    os.replace(tmp, path)
    return True


def session_page_config(existing: dict) -> dict:
    """JupyterLab's page_config.json with the trainer-only nbgrader plugins disabled (others kept)."""
    out = dict(existing)
    disabled = out.get("disabledExtensions", {})
    if isinstance(disabled, list):
        disabled = {name: True for name in disabled}
    disabled = dict(disabled)
    for plugin in TRAINER_LAB_PLUGINS:
        disabled[plugin] = True
    out["disabledExtensions"] = disabled
    return out


def session_server_config() -> dict:
    """The sessions' jupyter_server_config.d entry: nbgrader's trainer extensions off. Jupyter Server merges
    only `ServerApp.jpserver_extensions` from that folder; other settings go to `session_server_settings`."""
    return {"ServerApp": {"jpserver_extensions": {name: False for name in TRAINER_SERVER_EXTENSIONS}}}


#: What every session's server (and formgrader service) reads from the venv's jupyter_server_config.json:
#: - jupyter-lsp's search for language servers off: it runs `npm prefix -g` (node, 0.26 CPU-s) at every server
#:   start, and the venv installs no language server for it to find; a site that adds one lists it in
#:   `LanguageServerManager.language_servers`.
#: - kernels' ports not cached: every session on a node shares its loopback, and two servers that start kernels
#:   at once can draw the same free port. With jupyter_client's port cache the kernel's restarts ("new random
#:   ports") reuse that port, so the kernel dies after five tries (seen in a class of 12); without it, a
#:   restart draws new ports and the kernel comes up.
SESSION_SERVER_SETTINGS = {"LanguageServerManager": {"autodetect": False}, "KernelManager": {"cache_ports": False}}


def session_server_settings(existing: dict) -> dict:
    """The venv's jupyter_server_config.json with SESSION_SERVER_SETTINGS over it (other settings kept)."""
    out = dict(existing)
    for section, values in SESSION_SERVER_SETTINGS.items():
        current = out.get(section)
        out[section] = {**(current if isinstance(current, dict) else {}), **values}
    return out


def formgrader_page_config() -> dict:
    """The formgrader services' labconfig: nbgrader's trainer plugins on again."""
    return {"disabledExtensions": {plugin: False for plugin in TRAINER_LAB_PLUGINS}}


def read_page_config(page: Path) -> dict:
    """The sessions' page_config.json as it is ({} when there is none). One that is no JSON object is an
    error: rewriting it would drop whatever else it disables."""
    return read_json_object(page, "Repair it, or remove it to have it written anew (it then disables only "
                                  "nbgrader's trainer plugins).")


def write_jupyter_config(site: Site, venv: Path) -> bool:
    """Write the venv's Jupyter config for sessions and formgrader services; True when a file changed."""
    # Imported here: aifw.courses.exchange loads nbgrader (seconds), which `aifw sandbox status` and
    # `down` do not need; only this step of `up` does.
    from aifw.courses.exchange import nbgrader_config_text

    etc = venv / "etc" / "jupyter"
    page = etc / "labconfig" / "page_config.json"
    page_config = session_page_config(read_page_config(page))  # first: a damaged one stops all writes
    server_json = etc / "jupyter_server_config.json"
    server_settings = session_server_settings(read_json_object(
        server_json, "Repair it, or remove it to have it written anew (it then holds only the sessions' settings)."))
    changed = write_if_changed(etc / "nbgrader_config.py", nbgrader_config_text(site.paths.exchange_root))
    changed |= write_if_changed(page, json.dumps(page_config, indent=2, sort_keys=True) + "\n")
    changed |= write_if_changed(etc / "jupyter_server_config.d" / SERVER_CONFIG_NAME,
                                json.dumps(session_server_config(), indent=2, sort_keys=True) + "\n")
    changed |= write_if_changed(server_json, json.dumps(server_settings, indent=2, sort_keys=True) + "\n")
    fg = venv.joinpath(*FORMGRADER_CONFIG_DIR)
    changed |= write_if_changed(fg / "labconfig" / "page_config.json",
                                json.dumps(formgrader_page_config(), indent=2, sort_keys=True) + "\n")
    for d in (etc, etc / "labconfig", etc / "jupyter_server_config.d", fg, fg / "labconfig"):
        d.chmod(0o755)
    return changed
