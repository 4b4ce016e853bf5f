"""Start a command as a throwaway, unprivileged uid with resource limits (used for students' kernels).

    python -m aifw.grading.jail --uid 2000017 --memory-mb 4096 --nproc 64 --fsize-mb 512 -- CMD ARGS...
    python -m aifw.grading.jail --uid 2000017 --kill        # kill every process of that uid

Runs as root, then: no supplementary groups, gid = uid = the given number (no account needed), limits on
address space (memory bombs end in MemoryError), processes of that uid (fork storms stop there), file
size and core dumps, umask 077, and exec. Imports only the standard library: it starts every kernel.
"""
from __future__ import annotations

import argparse
import os
import resource
import signal
import sys

MB = 1024 * 1024


def drop_to(uid: int, *, memory_mb: int | None = None, nproc: int | None = None, fsize_mb: int | None = None) -> None:
    """In this process: set the limits, then become `uid` (gid the same number) for good."""
    if uid < 1000:
        raise ValueError(f"refusing to run student code as a system uid ({uid})")
    limits = [(resource.RLIMIT_CORE, 0)]
    if memory_mb:
        limits.append((resource.RLIMIT_AS, memory_mb * MB))
    if nproc:
        limits.append((resource.RLIMIT_NPROC, nproc))
    if fsize_mb:
        limits.append((resource.RLIMIT_FSIZE, fsize_mb * MB))
    for which, value in limits:
        resource.setrlimit(which, (value, value))
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
    os.umask(0o077)
    if os.getuid() != uid or os.geteuid() != uid or os.getgroups() not in ([], [uid]):
        raise RuntimeError("could not drop privileges")


def kill_uid(uid: int) -> None:
    """Kill every process running as `uid` (kill(-1) from a child that became that uid)."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
            # kill(-1) signals every process this uid may signal: its own (and not this one).
            for _ in range(3):
                try:
                    os.kill(-1, signal.SIGKILL)
                except ProcessLookupError:
                    break
        finally:
            os._exit(0)
    os.waitpid(pid, 0)


def chown_tree(top: str | os.PathLike, uid: int, gid: int) -> None:
    """Give `top` and everything below it to uid:gid (links themselves, never their targets)."""
    for root, dirs, files in os.walk(top):
        for name in [root, *(os.path.join(root, n) for n in dirs + files)]:
            os.lchown(name, uid, gid)


SHARED_TMP = ("/tmp", "/var/tmp", "/dev/shm")


def remove_files_of(uid: int, roots: tuple[str, ...] = SHARED_TMP) -> int:
    """Remove what `uid` left in world-writable folders (call after its processes are gone). Never follows links."""
    import shutil

    removed = 0
    for root in roots:
        try:
            entries = list(os.scandir(root))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.stat(follow_symlinks=False).st_uid != uid:
                    continue
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path, ignore_errors=True)
                else:
                    os.unlink(entry.path)
                removed += 1
            except OSError:
                continue
    return removed


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m aifw.grading.jail", description=__doc__.splitlines()[0])
    p.add_argument("--uid", type=int, required=True)
    p.add_argument("--memory-mb", type=int, default=None)
    p.add_argument("--nproc", type=int, default=None)
    p.add_argument("--fsize-mb", type=int, default=None)
    p.add_argument("--kill", action="store_true", help="kill every process of the uid and exit")
    p.add_argument("command", nargs=argparse.REMAINDER)
    args = p.parse_args(argv)
    if args.kill:
        kill_uid(args.uid)
        return 0
    cmd = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not cmd:
        p.error("no command to run")
    drop_to(args.uid, memory_mb=args.memory_mb, nproc=args.nproc, fsize_mb=args.fsize_mb)
    os.execvp(cmd[0], cmd)
    return 127  # pragma: no cover


if __name__ == "__main__":
    sys.exit(main())
