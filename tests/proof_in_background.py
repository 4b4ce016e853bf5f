"""The course proof of every shipped module, run in the background at idle CPU priority while the rest of
the suite runs (which mostly waits: for Slurm, for servers, for a browser). The proof waits for nothing
but the CPU, so on 2 cores it fits into the other tests' idle time instead of adding ~5 minutes.

`start()` is called once, at collection, when a test that uses the `course_proofs` fixture is selected;
those tests run last (tests/conftest.py) and `result()` hands them the proofs, or fails with the
process's own output. Run as a script, this module is the background process itself.
"""
from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

_proc: subprocess.Popen | None = None
_out: Path | None = None


def start() -> None:
    global _proc, _out
    if _proc is not None:
        return
    folder = Path(tempfile.mkdtemp(prefix="aifw-proof-"))
    _out = folder / "proofs.pickle"
    log = open(folder / "proof.log", "wb")
    # its own session: the proof's worker processes and their kernels are killed with it (_kill)
    _proc = subprocess.Popen([sys.executable, __file__, str(_out)], stdout=log, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, start_new_session=True)


def _kill() -> None:
    """Kill the background proof with every process it started (workers, kernels), then reap it."""
    assert _proc is not None
    try:
        os.killpg(_proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    _proc.wait()


def result(timeout_s: float) -> list:
    """The proofs (aifw.courses.proof.ModuleProof), once the background run has finished."""
    assert _proc is not None and _out is not None, "the background proof was not started at collection"
    try:
        rc = _proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        _kill()
        raise AssertionError(f"the course proof did not finish within {timeout_s:.0f} s; log: {_out.parent / 'proof.log'}")
    if rc != 0 or not _out.exists():
        tail = (_out.parent / "proof.log").read_text(errors="replace")[-4000:]
        raise AssertionError(f"the course proof exited with status {rc}:\n{tail}")
    return pickle.loads(_out.read_bytes())


def stop() -> None:
    """At the end of the session: a run that is still going (the suite was interrupted, or its tests were
    deselected) is killed, with its workers and kernels."""
    if _proc is not None and _proc.poll() is None:
        _kill()


def _main(out: str) -> int:
    # Idle priority, inherited by the proof's workers and their kernels: the other tests never wait for it.
    os.nice(19)
    if hasattr(os, "sched_setscheduler") and hasattr(os, "SCHED_IDLE"):
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    from aifw.courses.catalogue import load_catalogue
    from aifw.courses.proof import ProofOptions, prove

    shipped = [(c, m.id) for c in load_catalogue() for m in c.modules]
    proofs = prove(shipped, ProofOptions())
    Path(out).write_bytes(pickle.dumps(proofs))
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1]))
