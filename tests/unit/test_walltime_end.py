"""The end of a session's walltime, without a cluster: the site's `session` section and its checks, the
``--signal`` directive and its checks, the batch script's exports, and the warning schedule."""
from __future__ import annotations

import pytest

from aifw.site import SessionSettings, Site, SiteError, load_site
from aifw.slurm import BatchJob, BatchScript, UnsafeValue, build_batch_script


def site_with(tmp_path, session_yaml: str) -> Site:
    f = tmp_path / "site.yaml"
    f.write_text("name: t\npartitions:\n  - name: cpu\n" + session_yaml)
    return load_site(f)


def test_the_defaults_warn_at_ten_and_two_minutes_and_signal_a_minute_before(tmp_path):
    site = site_with(tmp_path, "")
    assert site.session.walltime_warnings_minutes == [10, 2]
    assert site.session.end_signal_seconds == 60
    custom = site_with(tmp_path, "session:\n  walltime_warnings_minutes: [30, 5, 1]\n  end_signal_seconds: 120\n")
    assert (custom.session.walltime_warnings_minutes, custom.session.end_signal_seconds) == ([30, 5, 1], 120)
    assert site_with(tmp_path, "session:\n  walltime_warnings_minutes: []\n").session.walltime_warnings_minutes == []


@pytest.mark.parametrize("yaml_text, said", [
    ("walltime_warnings_minutes: [2, 10]", "largest first, e.g. [10, 2]"),
    ("walltime_warnings_minutes: [10, 10, 2]", "repeated: 10"),
    ("walltime_warnings_minutes: [0]", "1 to 1440 minutes"),
    ("walltime_warnings_minutes: [2000, 5]", "got 2000"),
    ("walltime_warnings_minutes: [6, 5, 4, 3, 2, 1, 0]", "at most 6"),
    ("walltime_warnings_minutes: ten", "list"),
    ("end_signal_seconds: 10", "expected a number >= 30"),
    ("end_signal_seconds: 5000", "expected a number <= 900"),
    ("warnings: [10]", "session.warnings"),
])
def test_a_wrong_session_section_is_refused_naming_the_key(tmp_path, yaml_text, said):
    with pytest.raises(SiteError) as err:
        site_with(tmp_path, f"session:\n  {yaml_text}\n")
    assert said in str(err.value)


def test_the_packaged_sandbox_site_shows_the_section():
    assert load_site(None).session == SessionSettings(walltime_warnings_minutes=[10, 2], end_signal_seconds=60)


# --- the signal before the end: sbatch's --signal and the batch script -----------------------------

from aifw.slurm.script import END_SIGNALS, EndSignal  # noqa: E402
from aifw.spawners.batch_script import END_SIGNAL_ENV, WARNINGS_ENV, ScriptContext, session_script  # noqa: E402
from aifw.spawners.request import validate_options  # noqa: E402

JOB = BatchJob(job_name="t", time_minutes=2)
CTX = ScriptContext(username="learner1", home="/home/learner1", command=["/bin/true"])


def test_the_signal_goes_to_the_batch_shell_ahead_of_the_end():
    job = BatchJob(job_name="t", time_minutes=2, end_signal=EndSignal("USR2", 90))
    assert job.directives()[-1] == "--signal=B:USR2@90"
    assert "--signal" not in " ".join(JOB.directives())
    assert "trap" not in build_batch_script(JOB, BatchScript(command=["/bin/true"]))


@pytest.mark.parametrize("signal", [EndSignal("KILL", 60), EndSignal("USR2;id", 60), EndSignal("USR2", -1),
                                    EndSignal("USR2", 65536), EndSignal("USR2", True), "B:USR2@60"])
def test_a_bad_signal_is_refused(signal):
    with pytest.raises(UnsafeValue, match="signal"):
        build_batch_script(BatchJob(job_name="t", time_minutes=2, end_signal=signal), BatchScript(command=["/bin/true"]))
    assert "KILL" not in END_SIGNALS and "STOP" not in END_SIGNALS


def test_the_session_script_asks_for_the_sites_signal_and_exports_its_warnings():
    site = load_site(None)
    req = validate_options({}, site)
    default = session_script(req, site.environment("default"), CTX)
    assert "#SBATCH --signal=B:USR2@60" in default.splitlines()
    assert f"export {WARNINGS_ENV}=10,2" in default and f"export {END_SIGNAL_ENV}=60" in default
    custom = session_script(req, site.environment("default"), CTX,
                            SessionSettings(walltime_warnings_minutes=[30, 5], end_signal_seconds=120))
    lines = custom.splitlines()
    assert "#SBATCH --signal=B:USR2@120" in lines and f"export {WARNINGS_ENV}=30,5" in lines
    assert lines.index("trap '' USR2") < lines.index(lines[-1]) and lines[-1].startswith("exec /bin/true")
    none = session_script(req, site.environment("default"), CTX, SessionSettings(walltime_warnings_minutes=[]))
    assert f"export {WARNINGS_ENV}=''" in none


def test_the_signal_cannot_end_the_command_while_it_starts_and_reaches_its_handler_after(tmp_path):
    """As bash runs the script: a USR2 that comes before the command has a handler is ignored (it would
    otherwise kill it: Python's default), and reaches the handler once the command sets one."""
    import signal
    import subprocess
    import sys

    code = ("import os, signal; "
            "os.kill(os.getpid(), signal.SIGUSR2); "  # before any handler: ignored, not fatal
            "got = []; "
            "signal.signal(signal.SIGUSR2, lambda n, f: got.append(n)); "
            "os.kill(os.getpid(), signal.SIGUSR2); "
            "print('alive, handled', len(got))")
    job = BatchJob(job_name="t", time_minutes=2, end_signal=EndSignal("USR2", 60))
    script = tmp_path / "job.sh"
    script.write_text(build_batch_script(job, BatchScript(command=[sys.executable, "-c", code])))
    ran = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=20)
    assert ran.returncode == 0 and ran.stdout.splitlines()[-1] == "alive, handled 1", ran.stderr
    bare = tmp_path / "bare.sh"
    bare.write_text(build_batch_script(JOB, BatchScript(command=[sys.executable, "-c", code])))
    assert subprocess.run(["bash", str(bare)], capture_output=True, timeout=20).returncode == -signal.SIGUSR2


# --- the server extension: the plan from the batch script's exports, the schedule, the signal ---------

import os  # noqa: E402
import signal as signals  # noqa: E402
from datetime import datetime, timedelta, timezone  # noqa: E402

from aifw.extensions.server import ending  # noqa: E402
from aifw.extensions.server.ending import (  # noqa: E402
    EndPlan, Ending, due_warning, next_poll_s, next_warning_in, plan_from_environment)
from aifw.extensions.server.job import gpu_hours  # noqa: E402
from aifw.extensions.server.reader import JobReader  # noqa: E402
from aifw.spawners import batch_script  # noqa: E402
from aifw_testing import run_coroutine  # noqa: E402

UTC = timezone.utc


def exported_env(script: str) -> dict[str, str]:
    """What the script's export lines set, as bash would (shell-quoted values)."""
    import shlex

    return dict(shlex.split(ln.removeprefix("export "))[0].split("=", 1) for ln in script.splitlines()
                if ln.startswith("export "))


def test_the_server_reads_back_what_the_batch_script_exports():
    assert (batch_script.WARNINGS_ENV, batch_script.END_SIGNAL_ENV) == (ending.WARNINGS_ENV, ending.END_SIGNAL_ENV)
    assert signals.Signals[f"SIG{batch_script.END_SIGNAL}"] == ending.END_SIGNAL
    site = load_site(None)
    for settings in (SessionSettings(), SessionSettings(walltime_warnings_minutes=[30, 5, 1], end_signal_seconds=300),
                     SessionSettings(walltime_warnings_minutes=[])):
        env = exported_env(session_script(validate_options({}, site), site.environment("default"), CTX, settings))
        assert plan_from_environment(env) == EndPlan(tuple(settings.walltime_warnings_minutes), settings.end_signal_seconds)
    assert plan_from_environment({}) == EndPlan((10, 2), 60)


@pytest.mark.parametrize("env, note", [
    ({ending.WARNINGS_ENV: "10,x"}, "not distinct minutes"),
    ({ending.WARNINGS_ENV: "5,5"}, "not distinct minutes"),
    ({ending.WARNINGS_ENV: "0"}, "not distinct minutes"),
    ({ending.END_SIGNAL_ENV: "5"}, "not 30 to 900 seconds"),
    ({ending.END_SIGNAL_ENV: "$(id)"}, "not 30 to 900 seconds"),
])
def test_a_wrong_export_keeps_the_default_and_says_so(env, note):
    plan = plan_from_environment(env)
    assert (plan.warnings_min, plan.end_signal_s) == ((10, 2), 60)
    assert len(plan.notes) == 1 and note in plan.notes[0]


@pytest.mark.parametrize("left_s, due, ahead", [
    (3600, None, 3000),   # an hour left: the 10-minute warning is 50 minutes away
    (601, None, 1),
    (600, 10, 480),       # at 10 minutes: the 10-minute warning; the 2-minute one 8 minutes away
    (121, 10, 1),
    (120, 2, None),       # a 2-minute job starts inside both: only the latest, the 2-minute one
    (0, 2, None),
])
def test_the_warning_due_and_the_next_one(left_s, due, ahead):
    assert due_warning(left_s, (10, 2)) == due
    assert next_warning_in(left_s, (10, 2)) == ahead
    assert due_warning(left_s, ()) is None and next_warning_in(left_s, ()) is None


def test_the_browser_asks_once_a_minute_just_after_a_warning_and_every_5_s_near_the_end():
    plan = EndPlan((10, 2), 60)
    assert next_poll_s(None, plan, ending=False) == 60          # no time limit
    assert next_poll_s(7200, plan, ending=False) == 60
    assert next_poll_s(630, plan, ending=False) == 31           # just after the 10-minute mark
    assert next_poll_s(602, plan, ending=False) == 5            # never more often than every 5 s
    assert next_poll_s(300, plan, ending=False) == 60
    # Within reach of the signal (60 s lead, up to 60 s early) plus one slow poll: every 5 s.
    assert next_poll_s(180, plan, ending=False) == 5 and next_poll_s(181, plan, ending=False) == 60
    assert next_poll_s(7200, plan, ending=True) == 5


def test_the_signal_is_recorded_once_and_the_view_says_the_job_is_ending():
    t0 = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
    times = iter([t0, t0 + timedelta(seconds=9)])
    end = Ending(job_id="4711", _clock=lambda: next(times))
    plan = EndPlan((10, 2), 60)
    assert plan.view(300, end)["ending"] is False and plan.view(300, end)["ending_since"] is None
    end.signalled()
    end.signalled()  # a second signal changes nothing
    view = plan.view(45, end)
    assert view == {"walltime_warnings_min": [10, 2], "end_signal_s": 60, "warning_due_min": 2, "ending": True,
                    "ending_since": "2026-12-02T10:00:00+00:00", "next_poll_s": 5}


def test_the_real_signal_reaches_the_installed_handler_and_the_reader_serves_it():
    """In this process, as in the server's: SIGUSR2 is handled (not fatal) and GET aifw/session says it."""
    env = {"SLURM_JOB_ID": "4711", "SLURM_JOB_START_TIME": "1800000000", "SLURM_JOB_END_TIME": "1800000120",
           "SLURM_JOB_GPUS": "0,1", ending.WARNINGS_ENV: "10,2", ending.END_SIGNAL_ENV: "60"}
    reader = JobReader(env, fetch=lambda job_id: _none())
    before = signals.getsignal(ending.END_SIGNAL)
    try:
        reader.ending.install()
        os.kill(os.getpid(), ending.END_SIGNAL)
    finally:
        signals.signal(ending.END_SIGNAL, before)
    now = datetime.fromtimestamp(1800000060, UTC)
    view = run_coroutine(reader.view(log_url=None, now=now))
    assert view["ending"] is True and view["walltime_left_s"] == 60 and view["warning_due_min"] == 2
    assert view["gpu_hours"] == round(2 * 60 / 3600, 3) and view["next_poll_s"] == 5


async def _none():
    return None


def test_gpu_hours_so_far():
    start = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
    assert gpu_hours(2, start, start + timedelta(minutes=90)) == 3.0
    assert gpu_hours(1, start, start + timedelta(seconds=36)) == 0.01
    assert gpu_hours(0, None, start) == 0.0                    # no GPU: none used
    assert gpu_hours(4, None, start) is None                   # the start not known yet
    assert gpu_hours(1, start, start - timedelta(seconds=5)) == 0.0   # clocks a little apart: never negative


def test_resource_usage_gets_the_jobs_allocation_not_the_nodes():
    site = load_site(None)
    req = validate_options({"partition": "cpu", "cpus": 3, "memory_gb": 2}, site)
    env = exported_env(session_script(req, site.environment("default"), CTX))
    assert (env["MEM_LIMIT"], env["CPU_LIMIT"]) == (str(2 * 1024 ** 3), "3")


def test_the_session_panel_turns_on_resource_usages_cpu_tracking_unless_the_config_says_otherwise():
    from types import SimpleNamespace

    from traitlets.config import Config

    from aifw.extensions.server import _resource_usage_tracks_cpu

    loaded = SimpleNamespace(track_cpu_percent=False)  # jupyter_resource_usage loaded before us
    app = SimpleNamespace(config=Config(), web_app=SimpleNamespace(settings={"jupyter_resource_usage_display_config": loaded}))
    _resource_usage_tracks_cpu(app)
    assert app.config.ResourceUseDisplay.track_cpu_percent is True and loaded.track_cpu_percent is True
    chosen = SimpleNamespace(config=Config({"ResourceUseDisplay": {"track_cpu_percent": False}}),
                             web_app=SimpleNamespace(settings={}))
    _resource_usage_tracks_cpu(chosen)
    assert chosen.config.ResourceUseDisplay.track_cpu_percent is False
