"""The sandbox's start gate (aifw.spawners.start_gate): as many servers start at once as there are slot files,
first come first served; a slot is let go once its server listens, or exits; without slots nothing waits."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from aifw.sandbox.start_slots import write_start_slots
from aifw.spawners import start_gate

# A stand-in server: says when it began, imports for a while, listens, says so, stays up a little.
SERVER = """
import socket, sys, time
print("began", time.time(), flush=True)
time.sleep(float(sys.argv[1]))
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen()
print("listening", time.time(), flush=True)
time.sleep(float(sys.argv[2]))
"""


def gated(folder: Path, *args: str, wait: float = 30) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "aifw.spawners.start_gate", "--dir", str(folder),
                             "--wait", str(wait), "--", sys.executable, "-c", SERVER, *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def times(proc: subprocess.Popen) -> tuple[dict[str, float], str]:
    """When the stand-in began and listened; and what the gate said."""
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    return {line.split()[0]: float(line.split()[1]) for line in out.splitlines()}, err


def test_with_one_slot_the_second_server_begins_once_the_first_listens(tmp_path):
    folder = write_start_slots(tmp_path, cores=1)
    first = gated(folder, "0.6", "1.0")
    time.sleep(0.3)
    second = gated(folder, "0.1", "0.1")
    (a, _), (b, said) = times(first), times(second)
    assert b["began"] >= a["listening"] - 0.02  # it waited for the first one's port
    assert b["began"] < a["listening"] + 0.8  # and went on then, while the first still ran
    assert "waiting for one to finish" in said


def test_with_two_slots_two_servers_start_side_by_side(tmp_path):
    folder = write_start_slots(tmp_path, cores=2)
    procs = [gated(folder, "0.8", "0.2") for _ in range(2)]
    (a, _), (b, _) = (times(p) for p in procs)
    assert abs(a["began"] - b["began"]) < 0.7  # neither waited for the other's 0.8 s


def test_a_server_that_exits_without_listening_lets_its_slot_go(tmp_path):
    folder = write_start_slots(tmp_path, cores=1)
    crash = subprocess.Popen([sys.executable, "-m", "aifw.spawners.start_gate", "--dir", str(folder), "--",
                              sys.executable, "-c", "import time; time.sleep(0.3); raise SystemExit(3)"])
    time.sleep(0.1)
    t0 = time.time()
    b, _ = times(gated(folder, "0", "0"))
    assert crash.wait(timeout=30) == 3  # the command's own exit status: the gate ran it in its place
    assert b["began"] - t0 < 5


def test_without_slot_files_the_command_runs_at_once_and_says_so(tmp_path):
    proc = gated(tmp_path / "nowhere", "0", "0")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and "began" in out
    assert "no slot files" in err


def test_no_free_slot_within_the_wait_starts_anyway(tmp_path):
    folder = write_start_slots(tmp_path, cores=1)
    holder = gated(folder, "5", "0")  # holds the only slot for 5 s
    time.sleep(0.5)
    t0 = time.time()
    proc = gated(folder, "0", "0", wait=0.5)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and "starting anyway" in err and time.time() - t0 < 4
    holder.kill()
    holder.wait()


def test_listening_tells_a_listening_process_from_one_that_is_not():
    assert not start_gate.listening(os.getpid())
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    try:
        assert start_gate.listening(os.getpid())
    finally:
        s.close()


def test_the_sandbox_writes_one_slot_per_core_and_removes_extra_ones(tmp_path):
    folder = write_start_slots(tmp_path, cores=3)
    assert sorted(p.name for p in folder.iterdir()) == ["slot-0", "slot-1", "slot-2"]
    assert folder == tmp_path / "state" / "start-gate"
    write_start_slots(tmp_path, cores=1)
    assert sorted(p.name for p in folder.iterdir()) == ["slot-0"]
    assert oct(folder.stat().st_mode & 0o777) == "0o755" and oct((folder / "slot-0").stat().st_mode & 0o777) == "0o644"


def test_the_command_runs_at_the_nice_value_asked_for(tmp_path):
    folder = write_start_slots(tmp_path, cores=1)
    out = subprocess.run([sys.executable, "-m", "aifw.spawners.start_gate", "--dir", str(folder), "--nice", "7", "--",
                          sys.executable, "-c", "import os; print(os.nice(0))"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) == os.nice(0) + 7
