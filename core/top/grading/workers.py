"""The workers of an `aifw grade` run: ``python -m aifw.grading.worker RUN_DIR`` started as the tasks of one
Slurm array job (`SlurmWorkers`) or as local processes (`LocalWorkers`). Each claims submissions from the
run directory until none is left; the orchestrator only starts them, asks whether any is still alive, and
stops them when the run ends early.

Slurm is reached only through `aifw.slurm`: the array's batch script is built by `build_batch_script`,
submitted with `SlurmClient.submit_sync`, watched with `job_tasks_sync` and cancelled with `cancel_sync`.
"""
from __future__ import annotations

import os
import shlex
import subprocess
import time

from aifw.slurm import (
    BatchJob,
    BatchScript,
    JobInfo,
    SlurmClient,
    SlurmError,
    SlurmRejected,
    SlurmUnavailable,
    UnsafeValue,
    build_batch_script,
)

from .plan import GradeError, GradeOptions, job_minutes
from .rundir import RunDir


class WorkersNotStopped(GradeError):
    """The workers could not be stopped; the message says which and how to stop them by hand."""


class Workers:
    """Started workers; `alive()` says whether any may still report a result; `stop()` ends them all or
    raises WorkersNotStopped."""

    def alive(self) -> bool:  # pragma: no cover - interface
        raise NotImplementedError

    def stop(self) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    describe = ""
    note = ""  # a warning about the run, said once at the start
    state = ""  # what the workers are doing, in words, for the progress line ("" when nothing to say)


def start_workers(run: RunDir, opts: GradeOptions, n_submissions: int) -> Workers:
    """The workers `opts` asks for: a Slurm array job, or local processes (no more than submissions)."""
    if opts.mode == "slurm":
        return SlurmWorkers(run, opts, n_submissions)
    return LocalWorkers(run, min(opts.workers, n_submissions), opts.python)


def worker_command(python: str, run: RunDir, *extra: str) -> list[str]:
    return [python, "-m", "aifw.grading.worker", str(run.path), *extra]


# --------------------------------------------------------------------------- local processes
class LocalWorkers(Workers):
    def __init__(self, run: RunDir, n: int, python: str):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTERHUB_", "AIFW_ADMIN"))}
        self.procs = []
        for i in range(n):
            log = open(run.worker_log(str(i)), "ab")  # noqa: SIM115 - owned by the child
            self.procs.append(subprocess.Popen(
                worker_command(python, run, "--name", f"local-{i}"),
                stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
            ))
            log.close()
        self.describe = f"{n} local worker process(es)"

    def alive(self) -> bool:
        return any(p.poll() is None for p in self.procs)

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


# --------------------------------------------------------------------------- a Slurm array job
def array_script(run: RunDir, opts: GradeOptions, minutes: int) -> str:
    """The Slurm array job: one worker per task, each pulling submissions until none is left."""
    job = BatchJob(
        job_name=f"aifw-grade-{opts.course}"[:64],
        partition=opts.partition,
        array_size=opts.workers,
        memory_mb=opts.limits.memory_mb + 1024,  # the submission's limit plus the worker itself
        time_minutes=minutes,
        output=str(run.worker_log("%a")),
    )
    body = BatchScript(
        command=worker_command(opts.python, run),
        purpose="grading worker",
        exports={"SLURM_CONF": opts.slurm_conf} if opts.slurm_conf else {},
    )
    try:
        return build_batch_script(job, body)
    except UnsafeValue as err:
        raise GradeError(f"{err}: use plain names (letters, digits, '_', '.', '-') and a --runs-dir of plain "
                         "characters, or grade without Slurm: --local N") from None


def describe_array(job_id: str, tasks: list[JobInfo]) -> str:
    """The queued tasks of an array job, in words ("" when Slurm lists none)."""
    running = sum(1 for t in tasks if t.is_running)
    pending = [t for t in tasks if t.is_pending]
    parts = []
    if running:
        parts.append(f"{running} task(s) running")
    if pending:
        reason = pending[0].reason
        parts.append("tasks pending" + (f" ({reason})" if reason else ""))
    return f"Slurm job {job_id}: " + ", ".join(parts) if parts else ""


class SlurmWorkers(Workers):
    def __init__(self, run: RunDir, opts: GradeOptions, n_submissions: int, client: SlurmClient | None = None):
        self.client = client or SlurmClient(bin_dir=opts.slurm_bin, conf=opts.slurm_conf, timeout_s=20)
        minutes = job_minutes(n_submissions, opts.workers, opts.limits, self._partition_max(opts.partition))
        if minutes < job_minutes(n_submissions, opts.workers, opts.limits):
            self.note = (f"partition {opts.partition} allows {minutes} min per job: if submissions run long, some may "
                         "not be reached (they are reported as not run); more --workers share the load")
        script = array_script(run, opts, minutes)
        run.job_script.write_text(script)
        try:
            self.job_id = self.client.submit_sync(script)
        except SlurmRejected as err:
            raise GradeError(f"Slurm refused the grading job: {err}") from None
        except SlurmError as err:
            raise GradeError(f"Slurm is not reachable ({err}); start it, or grade without it: --local N") from None
        self.describe = f"Slurm array job {self.job_id} ({opts.workers} task(s) on partition {opts.partition or 'default'})"
        self._as_root = os.geteuid() == 0
        self._last_check = 0.0
        self._alive = True

    def _partition_max(self, partition: str | None) -> int | None:
        try:
            parts = self.client.partitions_sync()
        except SlurmError:
            return None  # sbatch will say what is wrong
        for part in parts:
            if (partition and part.name == partition) or (not partition and part.default):
                return part.max_time_minutes
        return None

    def alive(self) -> bool:
        if time.monotonic() - self._last_check < 2:
            return self._alive
        self._last_check = time.monotonic()
        try:
            tasks = self.client.job_tasks_sync(self.job_id)
            self._alive = bool(tasks)
            self.state = describe_array(self.job_id, tasks)
        except SlurmUnavailable:
            pass  # no answer is not "gone"
        except SlurmError as err:
            self._alive = False  # squeue refuses to answer about the job: it cannot report results
            self.state = f"Slurm job {self.job_id}: squeue says {err}"
        return self._alive

    def cancel_command(self) -> str:
        """How to cancel the array job by hand."""
        scancel = os.path.join(self.client.bin_dir, "scancel") if self.client.bin_dir else "scancel"
        conf = f"SLURM_CONF={shlex.quote(self.client.conf)} " if self.client.conf else ""
        sudo = "sudo " if self._as_root else ""  # the job is root's when root submitted it
        return f"{sudo}{conf}{shlex.quote(scancel)} {self.job_id}"

    def stop(self) -> None:
        try:
            self.client.cancel_sync([self.job_id])
        except SlurmError as err:
            raise WorkersNotStopped(f"Slurm array job {self.job_id} could not be cancelled ({err}); "
                                    f"cancel it by hand: {self.cancel_command()}") from None
