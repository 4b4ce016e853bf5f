"""Start, find and stop daemons by pid file (never by name), wait for them to be ready, and tell the admin
what was done (`say`). `SandboxError` is the sandbox's one error: its message says what to check."""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Callable, Mapping, Sequence


class SandboxError(RuntimeError):
    """Something in the sandbox could not be started or stopped; the message says what to check."""


def say(msg: str) -> None:
    """One line of what `aifw sandbox` did, on stdout."""
    print(f"[aifw sandbox] {msg}", flush=True)


def read_pid(pid_file: Path) -> int | None:
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if pid_alive(pid) else None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child counts as dead.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def wait_for(check: Callable[[], bool], timeout_s: float, what: str, hint: str = "", interval: float = 0.2) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:  # noqa: BLE001 - a check that raises is "not yet"
            pass
        time.sleep(interval)
    raise SandboxError(f"{what} was not ready after {timeout_s:.0f} s. {hint}".strip())


def spawn_background(
    argv: Sequence[str], *, pid_file: Path, log_file: Path, env: Mapping[str, str] | None = None, cwd: str | None = None
) -> int:
    """Start a non-daemonizing program in its own session, output to log_file; write its pid file."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as log:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
        )
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.write_text(f"{proc.pid}\n")
    return proc.pid


def stop_pid_file(pid_file: Path, *, timeout_s: float = 15, group: bool = False) -> bool:
    """SIGTERM the process in pid_file (its process group if `group`), SIGKILL after timeout. True if it ran."""
    pid = read_pid(pid_file)
    if pid is None:
        pid_file.unlink(missing_ok=True)
        return False
    kill = (lambda s: os.killpg(pid, s)) if group else (lambda s: os.kill(pid, s))
    try:
        kill(signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and pid_alive(pid):
        time.sleep(0.1)
    if pid_alive(pid):
        try:
            kill(signal.SIGKILL)
        except ProcessLookupError:
            pass
    pid_file.unlink(missing_ok=True)
    return True
