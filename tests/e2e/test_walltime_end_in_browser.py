"""The end of the walltime in a real browser, on a real 2-minute Slurm job: JupyterLab warns (the site's
2-minute warning), Slurm signals the server ahead of the kill (SIGUSR2, which the server survives and
reports), JupyterLab saves the edit the learner never saved, Slurm kills the job (TIMEOUT), and the edit is
in the notebook file on disk. JupyterLab's own autosave is off for the learner, so only ours can save it.

One wait for the walltime (about 2 minutes, the suite's only one) serves every assertion."""
from __future__ import annotations

import json
import pwd
import re
import time
from pathlib import Path

from playwright.sync_api import expect

from aifw_testing import run_as, wait_until

NOTEBOOK = "aifw-walltime-test.ipynb"
EDIT = "print('typed but never saved by the learner')"
SETTINGS = ".jupyter/lab/user-settings/@jupyterlab/docmanager-extension/plugin.jupyterlab-settings"
EMPTY_NOTEBOOK = {
    "cells": [{"cell_type": "code", "execution_count": None, "id": "c1", "metadata": {}, "outputs": [], "source": ""}],
    "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
    "nbformat": 4, "nbformat_minor": 5,
}


def write_as(user: str, path: Path, text: str) -> None:
    made = run_as(user, ["sh", "-c", 'mkdir -p "$(dirname "$1")" && printf %s "$2" > "$1"', "-", str(path), text])
    assert made.returncode == 0, made.stderr


def test_an_unsaved_edit_survives_the_end_of_the_walltime(stack, hub, page):
    name = stack.learners()[0]
    home = Path(pwd.getpwnam(name).pw_dir)
    notebook, settings = home / NOTEBOOK, home / SETTINGS
    write_as(name, notebook, json.dumps(EMPTY_NOTEBOOK))
    write_as(name, settings, json.dumps({"autosave": False}))
    try:
        r = hub.start(name, {"partition": "short", "cpus": 1, "memory_gb": 1, "runtime_minutes": 2})
        assert r.status_code in (201, 202), r.text
        hub.wait_ready(name)
        [job] = stack.squeue(name)
        page.goto(f"{stack.hub_url}/hub/login")
        page.fill("#username_input", name)
        page.fill("#password_input", stack.users[name])
        page.click("#login_submit")
        page.goto(f"{stack.hub_url}/user/{name}/lab/tree/{NOTEBOOK}?reset")

        # The site's warnings are 10 and 2 minutes: a 2-minute job starts inside both, and only the later
        # one is shown, with what happens and a Save all.
        warning = page.locator(".jp-toast-message", has_text=f"Slurm job {job['id']} ends in 2 minutes or less")
        expect(warning).to_be_visible(timeout=60_000)
        expect(page.get_by_role("button", name="Save all")).to_be_visible()

        # An edit, typed and never saved (the tab says so).
        page.locator(".jp-Notebook .jp-Cell .cm-content").first.click()
        page.keyboard.type(EDIT)
        expect(page.locator(".lm-TabBar-tab.jp-mod-dirty").first).to_be_attached()

        # Slurm's signal before the end: the server survives it and says so; JupyterLab then saves.
        ending = page.locator(".jp-toast-message", has_text=f"Slurm job {job['id']} is about to reach its walltime")
        expect(ending).to_be_visible(timeout=150_000)
        log = home / f".aifw-session-{job['id']}.log"
        assert "aifw session panel: Slurm signalled (SIGUSR2)" in log.read_text()

        # Slurm kills the job at its walltime: gone from squeue, TIMEOUT in the accounting, gone for the hub.
        assert wait_until(lambda: not stack.squeue(name), timeout=120, interval=2), stack.squeue(name)
        assert wait_until(lambda: sacct_state(stack, job["id"]) == "TIMEOUT", timeout=30, interval=1), (
            sacct_state(stack, job["id"]))
        assert wait_until(lambda: not hub.user_model(name)["servers"], timeout=30, interval=1)
        hub.started.discard(name)

        # The edit is in the file: saved by the session panel before the kill.
        cells = json.loads(notebook.read_text())["cells"]
        assert EDIT in "".join(cells[0]["source"]), cells
    finally:
        hub.stop(name)
        notebook.unlink(missing_ok=True)
        settings.unlink(missing_ok=True)


def sacct_state(stack, job_id: str) -> str:
    return stack.slurm("sacct", "-j", job_id, "-n", "-X", "-P", "-o", "State").strip()
