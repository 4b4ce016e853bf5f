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
