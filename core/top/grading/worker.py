"""One grading worker: claims submissions of a run one at a time and executes them in sandboxes.

    python -m aifw.grading.worker RUN_DIR [--name NAME]

Started as root by a Slurm array task or by ``aifw grade --local N``. For each submission: a working copy
owned by its throwaway uid, nbgrader's sanitize preprocessors (test cells and their metadata restored from
the gradebook snapshot), nbgrader's Execute with the kernel in the jail, a watchdog for the submission's
time limit, and the executed notebooks plus a status file in the run directory (which that uid cannot
reach). Nothing here writes the course's gradebook: the orchestrator merges.
"""
from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import socket
import sys
import threading
import time
from pathlib import Path

import nbformat
from traitlets.config import Config

from .kernel import Sandbox, SandboxedExecute, sandboxed
from .rundir import RunDir, RunSpec, Status
from .sanitize import configure, sanitize_classes

# Error names in outputs that say a limit was hit (reported in the summary).
LIMIT_ERRORS = {
    "CellTimeoutError": "cell time limit",
    "SubmissionTimeout": "submission time limit",
    "KernelDied": "kernel died",
    "MemoryError": "memory limit",
    "BlockingIOError": "process limit",
}


def nbgrader_config(spec: RunSpec) -> Config:
    cfg = Config()
    cfg.Execute.timeout = spec.limits.cell_timeout_s
    cfg.Execute.interrupt_on_timeout = True
    cfg.Execute.startup_timeout = 60
    cfg.Execute.shutdown_kernel = "immediate"  # everything of the uid is killed afterwards anyway
    return configure(cfg)


def sanitize_preprocessors(cfg: Config) -> list:
    """The sanitize step of autograde, exactly as the merge will run it."""
    return [cls(config=cfg) for cls in sanitize_classes()]


def _copy_tree_files(src: Path, dest: Path) -> None:
    """Copy the non-notebook files of `src` into `dest` (symlinks are not followed or copied)."""
    if not src.is_dir():
        return
    for path in src.rglob("*"):
        if path.is_symlink() or not path.is_file() or path.suffix == ".ipynb":
            continue
        rel = path.relative_to(src)
        if any(part.startswith(".ipynb_checkpoints") for part in rel.parts):
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)


def summarize_outputs(nb: nbformat.NotebookNode, name: str) -> list[str]:
    """One line per cell whose outputs show a limit was hit."""
    lines = []
    for index, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error" and out.get("ename") in LIMIT_ERRORS:
                gid = (cell.get("metadata", {}).get("nbgrader", {}) or {}).get("grade_id") or f"cell {index + 1}"
                lines.append(f"{name}/{gid}: {LIMIT_ERRORS[out['ename']]} ({out['ename']})")
                break
    return lines


def grade_one(run: RunDir, spec: RunSpec, student: str, worker: str) -> Status:
    status = Status(student=student, state="graded", worker=worker)
    results = run.results(student)
    results.mkdir(mode=0o700, exist_ok=True)
    t0 = time.perf_counter()
    work = run.work(student)
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(mode=0o700)
    # nbgrader's autograde: the submission's files, then the source's non-notebook files over them
    _copy_tree_files(run.submitted(student), work)
    _copy_tree_files(run.source, work)
    sandbox = Sandbox(workdir=work, uid=spec.uid_for(student), memory_mb=spec.limits.memory_mb,
                      nproc=spec.limits.max_processes, fsize_mb=spec.limits.fsize_mb,
                      python=spec.python or sys.executable, log=run.results(student) / f"{student}.kernel.log")
    sandbox.prepare()
    cfg = nbgrader_config(spec)
    sanitizers = sanitize_preprocessors(cfg)
    status.prepare_s = time.perf_counter() - t0

    def time_is_up() -> None:
        sandbox.killed_reason = f"the submission's time limit ({spec.limits.submission_timeout_s} s) was reached"
        sandbox.kill_all()

    watchdog = threading.Timer(spec.limits.submission_timeout_s, time_is_up)
    watchdog.daemon = True
    watchdog.start()
    try:
        with sandboxed(sandbox):
            for notebook in spec.notebooks:
                path = run.submitted(student) / f"{notebook}.ipynb"
                if not path.is_file():
                    continue  # the merge scores a missing notebook 0, as nbgrader does
                try:
                    t1 = time.perf_counter()
                    nb = nbformat.read(str(path), as_version=nbformat.NO_CONVERT)
                    resources = {
                        "unique_key": notebook,
                        "metadata": {"path": str(work)},
                        "nbgrader": {"student": student, "assignment": spec.assignment, "notebook": notebook,
                                     "db_url": run.db_url},
                    }
                    for pp in sanitizers:
                        nb, resources = pp(nb, resources)
                    status.prepare_s += time.perf_counter() - t1
                except Exception as err:  # unreadable or broken notebook: nbgrader's message as is
                    status.state = "failed"
                    status.reasons.append(f"{notebook}: could not be read or sanitized: {type(err).__name__}: {err}")
                    continue
                execute = SandboxedExecute(config=cfg)
                t2 = time.perf_counter()
                if sandbox.killed_reason:
                    execute.incident = sandbox.killed_reason
                    execute._mark_unfinished(nb, sandbox.killed_reason)
                else:
                    nb, resources = execute.preprocess(nb, resources)
                status.kernel_start_s += execute.kernel_start_s
                status.execution_s += time.perf_counter() - t2 - execute.kernel_start_s
                nbformat.write(nb, str(results / f"{notebook}.ipynb"))
                status.notebooks.append(notebook)
                status.reasons += summarize_outputs(nb, notebook)
                if execute.incident and status.state != "failed":
                    status.state = "timed_out" if "time limit" in execute.incident else "failed"
                    status.reasons.append(f"{notebook}: {execute.incident}")
                sandbox.kill_all()
    finally:
        watchdog.cancel()
        sandbox.clean_up()
    if status.state == "graded" and any("time limit" in r for r in status.reasons):
        status.state = "timed_out"
    shutil.rmtree(work, ignore_errors=True)
    status.write(run.status_file(student))
    return status


def claim(run: RunDir, student: str) -> bool:
    try:
        run.claim(student).mkdir()
        return True
    except FileExistsError:
        return False


def _student_log(run: RunDir, student: str) -> logging.Handler:
    run.results(student).mkdir(mode=0o700, exist_ok=True)
    handler = logging.FileHandler(run.results(student) / f"{student}.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(handler)
    return handler


def run_worker(run: RunDir, name: str) -> int:
    spec = run.spec()
    graded = 0
    for student in spec.students:
        if not claim(run, student):
            continue
        handler = _student_log(run, student)
        try:
            st = grade_one(run, spec, student, name)
            logging.getLogger("aifw.grading").info("%s: %s %s", student, st.state, "; ".join(st.reasons))
        except Exception as err:  # noqa: BLE001 - reported, the worker goes on with the next one
            logging.getLogger("aifw.grading").exception("grading %s failed", student)
            Status(student=student, state="failed", worker=name,
                   reasons=[f"the grader failed: {type(err).__name__}: {err}"]).write(run.status_file(student))
        finally:
            logging.getLogger().removeHandler(handler)
            handler.close()
        graded += 1
    print(f"[aifw grade worker {name}] graded {graded} submission(s)", flush=True)
    return 0


def _stop_on_sigterm(signum, _frame) -> None:
    """SIGTERM (the orchestrator stopping local workers, scancel on a Slurm task) unwinds the worker like
    an exception, so that the sandbox of the submission in hand is cleaned up (its uid's processes
    killed) before the process ends."""
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    p = argparse.ArgumentParser(prog="python -m aifw.grading.worker")
    p.add_argument("run_dir", type=Path)
    p.add_argument("--name", default=None)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    name = args.name or f"{socket.gethostname()}:{os.environ.get('SLURM_ARRAY_TASK_ID', os.getpid())}"
    return run_worker(RunDir(args.run_dir.resolve()), name)


if __name__ == "__main__":
    sys.exit(main())
