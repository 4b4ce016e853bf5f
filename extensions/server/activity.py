"""Activity that counts for the idle culler, and when the cull would come.

JupyterHub's idle culler (aifw.hub_config.culling) stops a session whose ``last_activity`` at the hub is
older than the session's limit. The hub learns activity from the proxy's traffic and from the server,
which jupyterhub-singleuser reports every 5 minutes from ``web_app.last_activity()``: API requests and
kernel messages. A kernel that computes silently (a loop that prints nothing) or a GPU at work sends no
message, so it would look idle. Here:

- `activity_reason` (pure): a kernel whose execution state is ``busy``, or a GPU at or above the busy
  threshold, is activity (and says which);
- `GpuMeter`: the utilisation of the job's NVIDIA GPUs (CUDA_VISIBLE_DEVICES) through NVML (nvidia-ml-py);
  None where NVML is absent (no NVIDIA driver: the sandbox's fake GPUs, AMD nodes), and it is then not asked again;
- `Activity.check` (every `CHECK_EVERY_S` s): on activity it sets the server's ``aifw_busy_last_activity``
  setting (jupyter_server counts every setting ending in ``_last_activity`` in ``last_activity()``, so
  jupyterhub-singleuser's own reports carry it too) and posts it at once to the hub's activity API
  (``JUPYTERHUB_ACTIVITY_URL``, the body jupyterhub-singleuser sends), so the hub knows within
  `CHECK_EVERY_S` s, well inside any limit;
- `cull_view` (pure): when the cull would come (the server's last activity + the session's limit, at the
  earliest: the culler looks once a minute) and whether JupyterLab should warn now.

The session's limit and the GPU threshold come from the batch script's exports (`IDLE_CULL_ENV`,
`GPU_BUSY_ENV`: the site's ``session.idle_cull_minutes_cpu``/``_gpu`` by the job's GPUs and
``session.gpu_busy_percent``); without them the cull time is unknown (null) and the threshold is the site
file's default.
"""
from __future__ import annotations

import json
import logging
import os
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterable, Mapping

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

_log = logging.getLogger(__name__)

IDLE_CULL_ENV = "AIFW_IDLE_CULL_MINUTES"
GPU_BUSY_ENV = "AIFW_GPU_BUSY_PERCENT"
#: Without the export: the site file's default (aifw.site.SessionSettings.gpu_busy_percent).
DEFAULT_GPU_BUSY_PERCENT = 10
#: How often kernels and GPUs are looked at (seconds).
CHECK_EVERY_S = 30
#: JupyterLab warns this long before the cull (or from half the limit on, for limits under 10 minutes).
CULL_WARNING_S = 5 * 60
#: The setting jupyter_server's ``last_activity()`` reads (any key ending in ``_last_activity``).
LAST_ACTIVITY_SETTING = "aifw_busy_last_activity"
HUB_TIMEOUT_S = 10.0
MAX_IDLE_MINUTES = 7 * 24 * 60


def activity_reason(kernel_states: Iterable[str], gpu_percents: Iterable[int], busy_percent: int) -> str | None:
    """Why the session is active now, in words; None when it is idle (kernels idle, GPUs below the threshold)."""
    busy = sum(1 for state in kernel_states if state == "busy")
    if busy:
        return f"{busy} kernel{'s' if busy > 1 else ''} busy"
    for index, percent in enumerate(gpu_percents):
        if percent >= busy_percent:
            return f"GPU {index} at {percent} %"
    return None


def settings_from_environment(env: Mapping[str, str]) -> tuple[int | None, int, tuple[str, ...]]:
    """The session's idle limit (minutes; None unknown, 0 never), the GPU threshold, and notes on values that
    failed their check (which keep the default)."""
    notes: list[str] = []
    limit = None
    raw = env.get(IDLE_CULL_ENV)
    if raw is not None:
        if raw.strip().isdigit() and int(raw) <= MAX_IDLE_MINUTES:
            limit = int(raw)
        else:
            notes.append(f"{IDLE_CULL_ENV} is {raw[:20]!r}, not 0 to {MAX_IDLE_MINUTES} minutes; the cull time is unknown")
    busy = DEFAULT_GPU_BUSY_PERCENT
    raw = env.get(GPU_BUSY_ENV)
    if raw is not None:
        if raw.strip().isdigit() and 1 <= int(raw) <= 100:
            busy = int(raw)
        else:
            notes.append(f"{GPU_BUSY_ENV} is {raw[:20]!r}, not 1 to 100; taking {DEFAULT_GPU_BUSY_PERCENT} %")
    return limit, busy, tuple(notes)


def cull_view(limit_min: int | None, last_activity: datetime | None, now: datetime) -> dict[str, Any]:
    """The idle-cull part of ``GET aifw/session``."""
    view: dict[str, Any] = {"idle_cull_minutes": limit_min, "idle_cull_at": None, "idle_cull_in_s": None,
                            "idle_cull_warning": False}
    if not limit_min or last_activity is None:
        return view
    limit_s = limit_min * 60
    at = last_activity + timedelta(seconds=limit_s)
    in_s = max(0, int((at - now).total_seconds()))
    view.update(idle_cull_at=at.isoformat(timespec="seconds"), idle_cull_in_s=in_s,
                idle_cull_warning=in_s <= min(CULL_WARNING_S, limit_s // 2))
    return view


def hub_activity_request(env: Mapping[str, str], when: datetime) -> HTTPRequest | None:
    """POST ``JUPYTERHUB_ACTIVITY_URL`` with the server's token and jupyterhub-singleuser's body; None when
    the hub did not start this server."""
    url, token = env.get("JUPYTERHUB_ACTIVITY_URL", ""), env.get("JUPYTERHUB_API_TOKEN", "")
    if not (url.startswith(("http://", "https://")) and token):
        return None
    stamp = when.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
    body = {"servers": {env.get("JUPYTERHUB_SERVER_NAME", ""): {"last_activity": stamp}}, "last_activity": stamp}
    return HTTPRequest(url, method="POST", body=json.dumps(body), request_timeout=HUB_TIMEOUT_S,
                       headers={"Authorization": f"token {token}", "Content-Type": "application/json"})


class GpuMeter:
    """Utilisation (%) of the session's GPUs through NVML. `nvml` is the pynvml module (a fake in tests)."""

    def __init__(self, nvml: Any = None, visible: str | None = None) -> None:
        self._nvml = nvml
        self._ready: bool | None = None
        self._visible = visible

    def _start(self) -> bool:
        if self._nvml is None:
            try:
                import pynvml  # nvidia-ml-py
            except ImportError:
                return False
            self._nvml = pynvml
        try:
            self._nvml.nvmlInit()
        except Exception as err:  # NVMLError_LibraryNotFound, DriverNotLoaded, ...: no NVIDIA GPU here
            _log.info("aifw activity: NVML not available (%s); GPU use is not counted", err)
            return False
        return True

    def listed(self) -> list[int]:
        """The job's GPUs, as Slurm lists them in CUDA_VISIBLE_DEVICES (NVML's indices: the job's own with
        ConstrainDevices, else the node's, in gres.conf's order); none for a job without GPUs, so that another
        job's GPU on the same node never keeps this session."""
        raw = self._visible if self._visible is not None else os.environ.get("CUDA_VISIBLE_DEVICES", "")
        return [int(p) for p in raw.split(",") if p.strip().isdigit()]

    def read(self) -> tuple[int, ...] | None:
        """Each of the job's GPUs' utilisation now; () for a job without GPUs; None without NVML (not asked
        again)."""
        listed = self.listed()
        if not listed:
            return ()
        if self._ready is None:
            self._ready = self._start()
        if not self._ready:
            return None
        nvml = self._nvml
        try:
            count = nvml.nvmlDeviceGetCount()
            return tuple(int(nvml.nvmlDeviceGetUtilizationRates(nvml.nvmlDeviceGetHandleByIndex(i)).gpu)
                         for i in listed if i < count)
        except Exception as err:  # a GPU that fell off the bus: say so, count nothing this time
            _log.warning("aifw activity: NVML did not answer (%s); GPU use not counted this time", err)
            return ()


class Activity:
    """Looks at the kernels and GPUs every `CHECK_EVERY_S` s and reports activity (see the module)."""

    def __init__(self, web_app_settings: dict, kernel_states: Callable[[], Iterable[str]],
                 env: Mapping[str, str] | None = None, gpus: GpuMeter | None = None,
                 last_activity: Callable[[], datetime | None] | None = None) -> None:
        self.settings = web_app_settings
        self.kernel_states = kernel_states
        self.env = dict(os.environ if env is None else env)
        self.limit_min, self.busy_percent, self.notes = settings_from_environment(self.env)
        self.gpus = gpus or GpuMeter()
        self.last_activity = last_activity or (lambda: None)
        self.reason: str | None = None
        self.log = _log

    async def check(self, now: datetime | None = None) -> str | None:
        """One look; on activity, record it and tell the hub. Returns the reason (None: idle)."""
        gpu = self.gpus.read() or ()
        self.reason = activity_reason(self.kernel_states(), gpu, self.busy_percent)
        if self.reason is None:
            return None
        now = now or datetime.now(timezone.utc)
        self.settings[LAST_ACTIVITY_SETTING] = now
        request = hub_activity_request(self.env, now)
        if request is not None:
            try:
                await AsyncHTTPClient().fetch(request)
            except (HTTPClientError, OSError) as err:  # the next check tries again
                self.log.warning("aifw activity: the hub did not take the activity report (%s)", err)
        return self.reason

    def start(self) -> None:
        """Look every `CHECK_EVERY_S` s on the server's event loop (a failed look is logged, the next one comes)."""
        from tornado.ioloop import PeriodicCallback

        self._timer = PeriodicCallback(self.check, CHECK_EVERY_S * 1000)
        self._timer.start()

    def view(self, now: datetime | None = None) -> dict[str, Any]:
        view = cull_view(self.limit_min, self.last_activity(), now or datetime.now(timezone.utc))
        view["activity"] = self.reason
        return view
