"""The sandbox's start gate: ``python -m aifw.spawners.start_gate --dir DIR -- COMMAND ...``.

The sandbox's compute nodes are namespaces of one machine and share its cores. When a class presses Start
at once, a dozen servers importing Python side by side on two cores each take half again the CPU a start
takes alone (caches, switches), and all of them are ready only at the very end. The gate lets as many
servers start at once as DIR holds slot files (the sandbox writes one per core: `aifw.sandbox.start_slots`),
in the order they came, so that the first learners are ready in seconds and the last no later than before.

It takes a free slot (an exclusive `flock` on one of DIR's `slot-*` files; a job that ends, or is killed,
lets go of it with its processes), then runs COMMAND in its own place (`exec`: the session's server stays the
batch shell's process, for Slurm's signals). A watcher it leaves behind (no child of the server) holds the
slot until the server listens on a TCP port (its socket in LISTEN, read from /proc), the server is gone, or
`--hold` seconds passed. No slot within `--wait` seconds, no DIR or no slot file: COMMAND runs at once (said on stderr); the
gate never stops a session. It imports nothing but the standard library.

`--nice N`: the session runs at nice N (the sandbox gives 10): its cores are the login node's too, and the
hub and the proxy get a core first when a class's kernels keep them busy, as at a site whose jobs run on
other machines. Slurm's own daemons keep theirs.
"""
from __future__ import annotations

import argparse
import fcntl
import os
import sys
import time
from pathlib import Path
from typing import Sequence

#: Where the sandbox keeps the slot files, under the runtime prefix (`aifw.sandbox.start_slots` writes them).
GATE_DIR = ("state", "start-gate")
POLL_S = 0.05
LISTEN = "0A"  # the state of a listening socket in /proc/net/tcp


def say(message: str) -> None:
    print(f"AIF Workbench start gate: {message}", file=sys.stderr, flush=True)


def take_slot(folder: Path, wait_s: float) -> int | None:
    """A descriptor holding an exclusive lock on one of folder's slot files, or None (no slot, or none
    free within `wait_s`). The descriptor is close-on-exec: only the watcher keeps it past the exec."""
    slots = sorted(folder.glob("slot-*")) if folder.is_dir() else []
    if not slots:
        say(f"no slot files in {folder}; starting without waiting")
        return None
    fds = []
    try:
        for path in slots:
            fds.append(os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW))
    except OSError as err:
        for fd in fds:
            os.close(fd)
        say(f"cannot open {path}: {err.strerror}; starting without waiting")
        return None
    deadline = time.monotonic() + wait_s
    waited = False
    while True:
        for fd in fds:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue
            for other in fds:
                if other != fd:
                    os.close(other)
            return fd
        if time.monotonic() >= deadline:
            for fd in fds:
                os.close(fd)
            say(f"no start slot free within {wait_s:g} s; starting anyway")
            return None
        if not waited:
            say(f"{len(fds)} server(s) are starting on this machine's cores; waiting for one to finish")
            waited = True
        time.sleep(POLL_S)


def socket_inodes(pid: int) -> set[str]:
    """The inodes of the sockets process `pid` has open."""
    out = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                out.add(target[8:-1])
    except OSError:
        pass
    return out


def listening(pid: int) -> bool:
    """Process `pid` has a TCP socket (IPv4 or IPv6) in LISTEN, in its own network namespace's view."""
    inodes = socket_inodes(pid)
    if not inodes:
        return False
    for table in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and fields[3] == LISTEN and fields[9] in inodes:
                return True
    return False


def alive(pid: int) -> bool:
    """Process `pid` runs (one that exited and waits to be reaped does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def watch(server: int, hold_s: float) -> None:
    """In the watcher: return (letting go of the slot) once `server` listens, is gone, or `hold_s` passed."""
    deadline = time.monotonic() + hold_s
    while time.monotonic() < deadline and alive(server) and not listening(server):
        time.sleep(POLL_S)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m aifw.spawners.start_gate", description=__doc__.split("\n\n")[0])
    p.add_argument("--dir", type=Path, required=True, help="the folder of slot files (slot-0, slot-1, ...)")
    p.add_argument("--wait", type=float, default=120.0, help="seconds to wait for a slot at most (default 120)")
    p.add_argument("--hold", type=float, default=60.0, help="seconds a start holds its slot at most (default 60)")
    p.add_argument("--nice", type=int, default=0, help="the nice value the command runs at (default 0: as it is)")
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- and the command to run")
    args = p.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        p.error("give the command to run after --")
    if args.nice > 0:
        os.nice(args.nice)  # before the watcher's fork: the server, its kernels and the watcher all run at it
    fd = take_slot(args.dir, args.wait)
    if fd is not None:
        server = os.getpid()
        first = os.fork()
        if first == 0:
            # Forked twice, so that the watcher is no child of the server (which would keep it as a zombie):
            # it holds the slot through its inherited descriptor past the exec below, for `--hold` at most.
            try:
                os.setsid()  # not in the server's process group: the server's signals are its own
                if os.fork() == 0:
                    try:
                        watch(server, args.hold)
                    finally:
                        os._exit(0)
            finally:
                os._exit(0)
        os.waitpid(first, 0)
    os.execvp(command[0], command)
    return 127  # not reached


if __name__ == "__main__":
    sys.exit(main())
