"""The session panel's server extension (jupyter_server), enabled in every session by the data file
``etc/jupyter/jupyter_server_config.d/aifw-session-panel.json`` that the package installs.

Its frontend is the JupyterLab 4 extension in ``extensions/session_panel/`` (TypeScript, built by
scripts/install.sh into ``share/jupyter/labextensions/aifw-session-panel``); both live in the
`extensions` room because both run inside the learner's session. Rooms:

- `job`: the session's job as typed values, from the environment and Slurm's record (pure);
- `ending`: the end of the walltime: the warnings, when to ask again, and Slurm's signal before the end;
- `reader`: reads them (the environment once, Slurm at most every 30 s);
- `activity`: what counts as activity for the idle culler (busy kernels, busy GPUs), reported to the hub
  every `activity.CHECK_EVERY_S` s, and when the cull would come;
- `handlers`: ``GET <base_url>aifw/session`` (JSON) and ``GET <base_url>aifw/session/log``.
"""
from __future__ import annotations

from .activity import Activity
from .reader import JobReader


def _jupyter_server_extension_points() -> list[dict]:
    return [{"module": "aifw.extensions.server"}]


def _resource_usage_tracks_cpu(serverapp) -> None:
    """jupyter-resource-usage shows the session's CPU use (against CPU_LIMIT, the job's CPUs, which the batch
    script exports) only with ``ResourceUseDisplay.track_cpu_percent``; a file in jupyter_server_config.d
    cannot say it (those files only enable extensions), so it is set here, unless the server's config says
    otherwise. Extensions load in name order, so this one comes before jupyter_resource_usage reads it; one
    already loaded is set directly."""
    section = serverapp.config.ResourceUseDisplay
    if "track_cpu_percent" not in section:
        section.track_cpu_percent = True
        loaded = serverapp.web_app.settings.get("jupyter_resource_usage_display_config")
        if loaded is not None:
            loaded.track_cpu_percent = True


def _kernel_states(serverapp) -> list[str]:
    """Each running kernel's execution state (jupyter_server follows it from the kernels' status messages)."""
    return [model.get("execution_state", "") for model in serverapp.kernel_manager.list_kernels()]


def _load_jupyter_server_extension(serverapp) -> None:
    from .handlers import handlers

    reader = JobReader()
    if reader.job_id:
        # Slurm's signal ahead of the end (the batch script ignores it until now): recorded, never fatal.
        reader.ending.install(serverapp.log)
    _resource_usage_tracks_cpu(serverapp)
    web_app = serverapp.web_app
    activity = Activity(web_app.settings, lambda: _kernel_states(serverapp), last_activity=web_app.last_activity)
    activity.log = serverapp.log
    activity.start()
    web_app.add_handlers(".*$", handlers(web_app.settings["base_url"], reader, activity))
    where = ("in Slurm job " + reader.job_id + f", warnings at {list(reader.plan.warnings_min)} min, SIGUSR2 "
             f"handled (Slurm sends it {reader.plan.end_signal_s} s before the end)") if reader.job_id else "outside Slurm"
    serverapp.log.info("aifw session panel: serving %saifw/session (%s)", web_app.settings["base_url"], where)
