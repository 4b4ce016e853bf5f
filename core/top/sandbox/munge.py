"""munge, the credential daemon Slurm authenticates with: checked, started when not running, stopped only
by the stack that started it (munge is shared by everyone on the machine)."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from .layout import Stack
from .processes import SandboxError, read_pid, say, stop_pid_file, wait_for

MUNGE_PID = Path("/run/munge/munged.pid")
MUNGE_KEY = Path("/etc/munge/munge.key")
MUNGE_RUN_DIR = Path("/run/munge")
MUNGED = Path("/usr/sbin/munged")


def munge_works() -> bool:
    """A credential made by `munge -n` is accepted by `unmunge` (False when munge is missing or silent)."""
    try:
        cred = subprocess.run(["munge", "-n"], capture_output=True, timeout=5)
        if cred.returncode != 0:
            return False
        return subprocess.run(["unmunge"], input=cred.stdout, capture_output=True, timeout=5).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def start_munge(stack: Stack) -> None:
    if munge_works():
        return
    if not MUNGED.exists() or shutil.which("munge") is None:
        raise SandboxError(f"munge is not installed ({MUNGED}, munge): install it (scripts/install.sh does) and run again")
    if not MUNGE_KEY.exists():
        subprocess.run(["/usr/sbin/mungekey", "--create", "--keyfile", str(MUNGE_KEY)], check=True)
        shutil.chown(MUNGE_KEY, "munge", "munge")
        MUNGE_KEY.chmod(0o400)
    MUNGE_RUN_DIR.mkdir(parents=True, exist_ok=True)
    shutil.chown(MUNGE_RUN_DIR, "munge", "munge")
    MUNGE_RUN_DIR.chmod(0o755)
    subprocess.run(["runuser", "-u", "munge", "--", str(MUNGED)], check=True)
    wait_for(munge_works, 10, "munged", "See /var/log/munge/munged.log.")
    stack.state.mkdir(parents=True, exist_ok=True)
    stack.munge_marker.write_text(MUNGE_PID.read_text() if MUNGE_PID.exists() else "")
    say("started munged")


def stop_munge(stack: Stack) -> None:
    """Stop munged if this stack started it (the marker holds its pid) and it is still that process."""
    if not stack.munge_marker.exists():
        return
    pid = read_pid(MUNGE_PID)
    recorded = stack.munge_marker.read_text().strip()
    if pid is not None and recorded and str(pid) == recorded:
        stop_pid_file(MUNGE_PID)
        say("stopped munged (started by this stack)")
    stack.munge_marker.unlink(missing_ok=True)
