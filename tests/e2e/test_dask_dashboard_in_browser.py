"""Dask's dashboard in a real session, in a real browser: a notebook cell starts `dask_cluster()` (the local
backend: one worker process beside the kernel on the session's node; the Slurm backend's dashboard is the
same scheduler's and is linked the same way), its link goes through the user's own server
(`/user/NAME/proxy/127.0.0.1:PORT/status`), the Bokeh status page loads there through the hub's proxy,
JupyterLab's Dask panel (dask-labextension) finds that link in the kernel and lists the dashboard's plots,
and jupyter-server-proxy refuses a host outside its allow-list."""
from __future__ import annotations

import json
import pwd
import re
from pathlib import Path

from playwright.sync_api import expect

from aifw_testing import run_as

NOTEBOOK = "aifw-dask-dashboard-test.ipynb"
CELL = (
    "from dask.distributed import Client\n"
    "from aifw.extensions.kernel.dask_cluster import dask_cluster\n"
    "cluster = dask_cluster(n_workers=1, backend='local', quiet=True)\n"
    "client = Client(cluster)\n"
    "print('DASHBOARD', client.dashboard_link)"
)
LINK = re.compile(r"DASHBOARD (/user/[^/\s]+/proxy/127\.0\.0\.1:(\d+)/status)")


def notebook_with(source: str) -> str:
    return json.dumps({
        "cells": [{"cell_type": "code", "execution_count": None, "id": "c1", "metadata": {}, "outputs": [],
                   "source": source}],
        "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
        "nbformat": 4, "nbformat_minor": 5,
    })


def test_the_dashboard_loads_through_the_users_server_and_the_dask_panel_finds_it(stack, hub, page):
    name = stack.learners()[0]
    notebook = Path(pwd.getpwnam(name).pw_dir) / NOTEBOOK
    made = run_as(name, ["sh", "-c", 'printf %s "$2" > "$1"', "-", str(notebook), notebook_with(CELL)])
    assert made.returncode == 0, made.stderr
    try:
        r = hub.start(name, {"partition": "debug", "cpus": 1, "memory_gb": 1, "runtime_minutes": 20})
        assert r.status_code in (201, 202), r.text
        hub.wait_ready(name)
        page.goto(f"{stack.hub_url}/hub/login")
        page.fill("#username_input", name)
        page.fill("#password_input", stack.users[name])
        page.click("#login_submit")
        page.goto(f"{stack.hub_url}/user/{name}/lab/tree/{NOTEBOOK}?reset")

        # The cell starts the cluster; its link is the user's own server's proxy to the node's loopback.
        expect(page.locator(".jp-StatusBar-TextItem", has_text="Idle").first).to_be_visible(timeout=60_000)
        page.locator(".jp-Notebook .jp-Cell .cm-content").first.click()
        page.keyboard.press("Shift+Enter")
        output = page.locator(".jp-OutputArea-output", has_text="DASHBOARD")
        expect(output).to_be_visible(timeout=45_000)
        m = LINK.search(output.inner_text())
        assert m, output.inner_text()
        link, port = m.group(1), m.group(2)
        assert link.startswith(f"/user/{name}/proxy/")

        # The Dask panel: its auto-detect asks the notebook's kernel for the client's link, then lists the
        # dashboard's plots (fetched by the browser through the same proxy).
        page.locator(".jp-SideBar [data-id='dask-dashboard-launcher']").click()
        launcher = page.locator("#dask-dashboard-launcher")
        launcher.get_by_title("Auto-detect dashboard URL").first.click()  # the magnifier button
        expect(launcher.locator(".dask-URLInput input")).to_have_value(
            re.compile(rf"/user/{re.escape(name)}/proxy/127\.0\.0\.1:{port}/$"))
        expect(launcher.locator(".dask-DashboardListing-item button", has_text="Task Stream")).to_be_enabled()

        # The Bokeh status page itself, through the hub's proxy and the user's server, in the same login.
        board = page.context.new_page()
        response = board.goto(f"{stack.hub_url}{link}")
        assert response is not None and response.status == 200, response and response.status
        expect(board).to_have_title("Dask: Status")
        assert board.url == f"{stack.hub_url}{link}"  # served there, not redirected to a login
        # Only the node's loopback may be proxied: a node's cluster address is refused before any connection.
        node_address = next(iter(json.loads(stack.stack.sandbox_json.read_text())["nodes"].values()))
        refused = board.request.get(f"{stack.hub_url}/user/{name}/proxy/{node_address}:1/")
        assert refused.status == 403, (refused.status, refused.text()[:200])
        board.close()
    finally:
        hub.stop(name)
        notebook.unlink(missing_ok=True)
