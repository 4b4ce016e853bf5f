"""Culling idle sessions: the culler's service and role, each kind's limit, and what counts as activity."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from aifw.extensions.server.activity import (
    LAST_ACTIVITY_SETTING,
    Activity,
    GpuMeter,
    activity_reason,
    cull_view,
    hub_activity_request,
    settings_from_environment,
)
from aifw.hub_config.culling import CULLER_SCOPES, IdleLimits, culler_service
from aifw.site import SiteError, example_site_path, load_site, site_from_dict
from aifw_testing import run_coroutine

NOW = datetime(2026, 12, 2, 9, 0, tzinfo=timezone.utc)


def sandbox_with(**session) -> object:
    site = load_site(example_site_path("sandbox"))
    data = site.model_dump(mode="json", exclude_none=True)
    data["session"] = {**data.get("session", {}), **session}
    return site_from_dict(data)


def test_the_culler_is_a_hub_service_with_only_the_scopes_it_needs():
    site = sandbox_with(idle_cull_minutes_cpu=120, idle_cull_minutes_gpu=30)
    [service], [role] = culler_service(site)
    assert service["name"] == "idle-culler" and role["services"] == ["idle-culler"]
    assert role["scopes"] == CULLER_SCOPES and "admin:users" not in role["scopes"]
    command = service["command"]
    assert command[:3] == [str(site.paths.venv / "bin" / "python"), "-m", "aifw.hub_config.culling"]
    assert "--timeout=1800" in command  # the shorter limit
    assert "--cull-users=False" in command and "--config=" in command
    assert service["environment"] == {"AIFW_IDLE_CULL_CPU_SECONDS": "7200", "AIFW_IDLE_CULL_GPU_SECONDS": "1800"}
    assert "api_token" not in service  # the hub makes the token of a managed service


def test_no_culler_when_both_limits_are_never():
    assert culler_service(sandbox_with(idle_cull_minutes_cpu=0, idle_cull_minutes_gpu=0)) == ([], [])
    [service], _ = culler_service(sandbox_with(idle_cull_minutes_cpu=0, idle_cull_minutes_gpu=15))
    assert "--timeout=900" in service["command"]


@pytest.mark.parametrize("bad", [-1, 7 * 24 * 60 + 1, "soon"])
def test_a_wrong_limit_in_the_site_file_is_refused(bad):
    with pytest.raises((SiteError, ValueError), match="idle_cull_minutes_gpu"):
        sandbox_with(idle_cull_minutes_gpu=bad)


def server(gpus=None, **extra):
    options = {} if gpus is None else {"gpus": gpus}
    return {"name": "", "full_name": "learner1/", "user_options": options, **extra}


@pytest.mark.parametrize("srv, idle_min, culled", [
    (server(gpus=1), 29, False),
    (server(gpus=1), 30, True),       # GPU sessions: the shorter limit
    (server(gpus=0), 30, False),
    (server(gpus=0), 119, False),
    (server(gpus=0), 120, True),      # CPU sessions: the longer one
    (server(), 120, True),            # no gpus option: a CPU session
    ({"name": "", "user_options": None}, 120, True),
])
def test_each_kind_of_session_has_its_own_limit(srv, idle_min, culled):
    limits = IdleLimits(cpu_s=120 * 60, gpu_s=30 * 60)
    # idle-culler's own single --timeout (here 1) is not what decides
    assert limits.should_cull(inactive=timedelta(minutes=idle_min), inactive_limit=1, server=srv) is culled


def test_a_limit_of_zero_never_culls_that_kind():
    limits = IdleLimits(cpu_s=0, gpu_s=600)
    assert not limits.should_cull(inactive=timedelta(days=30), inactive_limit=600, server=server(gpus=0))
    assert limits.should_cull(inactive=timedelta(seconds=600), inactive_limit=600, server=server(gpus=2))


def test_the_culler_reads_its_limits_from_its_environment_and_names_a_wrong_one():
    assert IdleLimits.from_environment({"AIFW_IDLE_CULL_CPU_SECONDS": "60", "AIFW_IDLE_CULL_GPU_SECONDS": "0"}) \
        == IdleLimits(60, 0)
    with pytest.raises(ValueError, match="AIFW_IDLE_CULL_GPU_SECONDS must be .* got '-5'"):
        IdleLimits.from_environment({"AIFW_IDLE_CULL_CPU_SECONDS": "60", "AIFW_IDLE_CULL_GPU_SECONDS": "-5"})


def test_the_site_gives_each_session_its_limit():
    site = sandbox_with(idle_cull_minutes_cpu=90, idle_cull_minutes_gpu=20)
    assert site.session.idle_cull_minutes(gpus=0) == 90 and site.session.idle_cull_minutes(gpus=2) == 20


# -- activity inside the session ---------------------------------------------------------------------------

@pytest.mark.parametrize("kernels, gpus, reason", [
    (["idle", "idle"], (), None),
    (["idle", "busy"], (), "1 kernel busy"),            # a silent loop: busy, no output
    (["busy", "busy"], (0,), "2 kernels busy"),
    ([], (3, 9), None),                                 # below the threshold of 10 %
    ([], (3, 10), "GPU 1 at 10 %"),
    (["starting"], (), None),
])
def test_what_counts_as_activity(kernels, gpus, reason):
    assert activity_reason(kernels, gpus, busy_percent=10) == reason


class FakeNvml:
    """pynvml's calls the meter makes, with utilisations to answer."""

    def __init__(self, percents=(), fail_init=False):
        self.percents, self.fail_init, self.inits = list(percents), fail_init, 0

    def nvmlInit(self):
        self.inits += 1
        if self.fail_init:
            raise RuntimeError("NVML Shared Library Not Found")

    def nvmlDeviceGetCount(self):
        return len(self.percents)

    def nvmlDeviceGetHandleByIndex(self, i):
        return i

    def nvmlDeviceGetUtilizationRates(self, handle):
        return type("Rates", (), {"gpu": self.percents[handle], "memory": 0})()


def test_the_gpu_meter_reads_the_jobs_gpus_and_stops_asking_without_nvml():
    assert GpuMeter(FakeNvml([5, 80, 0]), visible="0,1,2").read() == (5, 80, 0)
    assert GpuMeter(FakeNvml([5, 80, 0]), visible="2,1").read() == (0, 80)
    cpu_job = FakeNvml([90])  # a CPU session on a GPU node: another job's busy GPU does not count
    assert GpuMeter(cpu_job, visible="").read() == () and cpu_job.inits == 0
    absent = FakeNvml(fail_init=True)
    meter = GpuMeter(absent, visible="0")
    assert meter.read() is None and meter.read() is None
    assert absent.inits == 1




def test_a_busy_session_records_its_activity_where_the_server_and_the_hub_read_it(monkeypatch):
    sent = []

    class Client:
        async def fetch(self, request):
            sent.append(request)

    monkeypatch.setattr("aifw.extensions.server.activity.AsyncHTTPClient", Client)
    env = {"JUPYTERHUB_ACTIVITY_URL": "http://198.18.0.129:8081/hub/api/users/learner1/activity",
           "JUPYTERHUB_API_TOKEN": "tok", "JUPYTERHUB_SERVER_NAME": "", "AIFW_IDLE_CULL_MINUTES": "30"}
    states = ["idle"]
    settings = {}
    activity = Activity(settings, lambda: states, env=env, gpus=GpuMeter(FakeNvml([50]), visible="0"))
    activity.busy_percent = 60
    assert run_coroutine(activity.check(NOW)) is None
    assert LAST_ACTIVITY_SETTING not in settings and sent == []
    states[:] = ["busy"]
    assert run_coroutine(activity.check(NOW)) == "1 kernel busy"
    assert settings[LAST_ACTIVITY_SETTING] == NOW
    [request] = sent
    assert request.method == "POST" and request.url == env["JUPYTERHUB_ACTIVITY_URL"]
    assert request.headers["Authorization"] == "token tok"
    assert json.loads(request.body) == {"servers": {"": {"last_activity": "2026-12-02T09:00:00Z"}},
                                        "last_activity": "2026-12-02T09:00:00Z"}


def test_no_activity_report_outside_the_hub():
    assert hub_activity_request({}, NOW) is None
    assert hub_activity_request({"JUPYTERHUB_ACTIVITY_URL": "file:///x", "JUPYTERHUB_API_TOKEN": "t"}, NOW) is None


@pytest.mark.parametrize("env, limit, busy, noted", [
    ({}, None, 10, False),
    ({"AIFW_IDLE_CULL_MINUTES": "30", "AIFW_GPU_BUSY_PERCENT": "25"}, 30, 25, False),
    ({"AIFW_IDLE_CULL_MINUTES": "0"}, 0, 10, False),
    ({"AIFW_IDLE_CULL_MINUTES": "-3"}, None, 10, True),
    ({"AIFW_GPU_BUSY_PERCENT": "0"}, None, 10, True),
])
def test_the_sessions_limit_and_threshold_from_the_batch_scripts_exports(env, limit, busy, noted):
    got_limit, got_busy, notes = settings_from_environment(env)
    assert (got_limit, got_busy, bool(notes)) == (limit, busy, noted)


def test_when_the_cull_would_come_and_when_jupyterlab_warns():
    last = NOW - timedelta(minutes=20)
    view = cull_view(30, last, NOW)
    assert view["idle_cull_at"] == "2026-12-02T09:10:00+00:00" and view["idle_cull_in_s"] == 600
    assert view["idle_cull_warning"] is False
    assert cull_view(30, last, NOW + timedelta(minutes=5, seconds=1))["idle_cull_warning"] is True
    assert cull_view(30, last, NOW + timedelta(hours=1))["idle_cull_in_s"] == 0
    assert cull_view(4, NOW, NOW + timedelta(minutes=2))["idle_cull_warning"] is True  # half a short limit
    for unknown in (cull_view(None, last, NOW), cull_view(0, last, NOW)):
        assert unknown["idle_cull_at"] is None and unknown["idle_cull_warning"] is False
