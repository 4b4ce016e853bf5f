"""Dask's dashboard in a session: `dashboard_settings` (environment in, dashboard address and link out), the
jupyter-server-proxy allow-list the package installs, and the clusters `dask_cluster()` builds in and out of
a hub session (schedulers only, no worker: each starts in well under a second)."""
from __future__ import annotations

import ipaddress
import json
import tomllib
from pathlib import Path

import dask
import pytest
from distributed.utils import format_dashboard_link

from aifw.extensions.kernel import dask_cluster as dc
from aifw.slurm import parse_nodes, partitions_from_nodes

REPO = Path(__file__).resolve().parents[2]
ALLOWLIST_FILE = "extensions/kernel/jupyter-config/aifw-dask-dashboard.json"
SINFO_ONE_NODE = "localhost|debug*|idle|4|0/4/0/4|4000|(null)|up|127.0.0.1\n"


@pytest.fixture(autouse=True)
def dask_link_restored():
    """dask_cluster() sets the link in dask's config for the whole process: put dask's own back after."""
    with dask.config.set({"distributed.dashboard.link": dc.DASK_DEFAULT_LINK}):
        yield


# ---------------------------------------------------------------- dashboard_settings (pure)
@pytest.mark.parametrize("env", [{}, {"JUPYTERHUB_SERVICE_PREFIX": ""}, {"HOME": "/home/ada"}])
def test_outside_a_hub_session_nothing_changes(env):
    assert dc.dashboard_settings(env) == dc.DashboardSettings(address=":0", link=None)


@pytest.mark.parametrize("prefix", ["/user/ada/", "/user/test-learner1/", "/user/ada/gpu-run/", "/user/a%40b.c/"])
def test_in_a_hub_session_the_link_goes_through_the_users_own_server(prefix):
    board = dc.dashboard_settings({"JUPYTERHUB_SERVICE_PREFIX": prefix})
    assert board.address == "127.0.0.1:0"
    assert board.link == f"{prefix}proxy/127.0.0.1:{{port}}/status"
    # distributed fills in the port (and would fill in the scheduler's host, which the link does not use)
    with dask.config.set({"distributed.dashboard.link": board.link}):
        assert format_dashboard_link("198.18.0.139", 40123) == f"{prefix}proxy/127.0.0.1:40123/status"


def test_a_link_the_user_or_site_chose_is_kept():
    mine = "https://dask.example.org/{port}/status"
    board = dc.dashboard_settings({"JUPYTERHUB_SERVICE_PREFIX": "/user/ada/"}, current_link=mine)
    assert board == dc.DashboardSettings(address="127.0.0.1:0", link=None)


@pytest.mark.parametrize("prefix", ["user/ada/", "/user/ada", "/user/{HOME}/", "/user/a b/", "/user/ada/\n",
                                    "//evil.example/", "https://evil.example/"])
def test_a_prefix_that_is_no_url_path_is_refused(prefix):
    with pytest.raises(ValueError, match="JUPYTERHUB_SERVICE_PREFIX=.*not a URL path such as '/user/NAME/'"):
        dc.dashboard_settings({"JUPYTERHUB_SERVICE_PREFIX": prefix})


# ---------------------------------------------------------------- the allow-list the sessions get
def test_server_proxy_may_reach_only_this_nodes_loopback_and_the_link_host_is_on_it():
    config = json.loads((REPO / ALLOWLIST_FILE).read_text())
    allow = config["ServerProxy"]["host_allowlist"]
    assert isinstance(allow, list) and allow, config
    for host in allow:
        assert host == "localhost" or ipaddress.ip_address(host).is_loopback, f"{host!r} is not loopback"
    assert dc.SESSION_DASHBOARD_HOST in allow
    # installed where every session's server reads its config
    data_files = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["data-files"]
    assert ALLOWLIST_FILE in data_files["etc/jupyter/jupyter_server_config.d"]


# ---------------------------------------------------------------- the clusters dask_cluster() builds
def listening_hosts(cluster) -> set[str]:
    return {s.getsockname()[0] for s in cluster.scheduler.http_server._sockets.values()}


def test_a_local_cluster_in_a_session_links_its_dashboard_through_the_server(monkeypatch, capsys):
    monkeypatch.setenv("JUPYTERHUB_SERVICE_PREFIX", "/user/ada/")
    cluster = dc.dask_cluster(n_workers=0, backend="local")
    try:
        port = cluster.scheduler.http_server.port
        assert listening_hosts(cluster) == {"127.0.0.1"}
        assert cluster.dashboard_link == f"/user/ada/proxy/127.0.0.1:{port}/status"
        assert f"Dashboard: /user/ada/proxy/127.0.0.1:{port}/status" in capsys.readouterr().out
    finally:
        cluster.close()


def test_a_slurm_cluster_in_a_session_keeps_its_dashboard_on_loopback(monkeypatch, tmp_path):
    """The scheduler listens where the workers reach it; its dashboard stays on the node's loopback."""
    monkeypatch.setattr(dc, "probe_slurm", lambda **kw: dc.SlurmProbe(
        True, "Slurm answered", partitions_from_nodes(parse_nodes(SINFO_ONE_NODE))))
    monkeypatch.setenv("JUPYTERHUB_SERVICE_PREFIX", "/user/ada/")
    monkeypatch.delenv(dc.BACKEND_ENV, raising=False)
    cluster = dc.dask_cluster(n_workers=0, quiet=True, log_directory=str(tmp_path))
    try:
        assert cluster.aifw_backend == "slurm"
        port = cluster.scheduler.http_server.port
        assert listening_hosts(cluster) == {"127.0.0.1"}
        assert cluster.dashboard_link == f"/user/ada/proxy/127.0.0.1:{port}/status"
    finally:
        cluster.close()


def test_outside_a_session_the_cluster_keeps_dasks_defaults(monkeypatch):
    monkeypatch.delenv("JUPYTERHUB_SERVICE_PREFIX", raising=False)
    cluster = dc.dask_cluster(n_workers=0, backend="local", quiet=True)
    try:
        port = cluster.scheduler.http_server.port
        assert listening_hosts(cluster) == {"0.0.0.0"}  # dask's ":0": every interface, as before
        assert cluster.dashboard_link == f"http://127.0.0.1:{port}/status"
        assert dask.config.get("distributed.dashboard.link") == dc.DASK_DEFAULT_LINK
    finally:
        cluster.close()

