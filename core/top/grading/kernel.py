"""Kernels for students' code: started through ``aifw.grading.jail`` as a throwaway uid, in a private
working copy of the submission, with a clean environment; everything the uid ran is killed afterwards.

``Sandbox`` says who and where; ``sandboxed(sandbox)`` makes it the one the next kernels use;
``SandboxedExecute`` is nbgrader's ``Execute`` with that kernel manager, the time it spends starting
kernels measured, and a kernel that dies (memory, crash, ``os._exit``, the submission's time limit) turned
into error outputs on every cell that did not finish, so those cells score 0 instead of failing the
whole submission.
"""
from __future__ import annotations

import contextlib
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from jupyter_client.manager import AsyncKernelManager
from nbclient.util import run_sync
from nbformat.notebooknode import NotebookNode
from nbgrader.preprocessors import Execute

from .jail import chown_tree, kill_uid, remove_files_of


@dataclass
class Sandbox:
    """Where and as whom one submission's kernels run. uid None: as this process's user (no jail)."""

    workdir: Path
    uid: int | None
    memory_mb: int = 4096
    nproc: int = 64
    fsize_mb: int = 1024
    python: str = sys.executable
    log: Path | None = None  # kernel stdout/stderr (opened by root, the kernel only gets the descriptor)
    killed_reason: str | None = field(default=None, repr=False)  # set by the watchdog

    def env(self) -> dict[str, str]:
        """A clean environment: nothing of the grader's (tokens, SLURM_*, paths) reaches the student's code."""
        w = str(self.workdir)
        venv_bin = str(Path(self.python).parent)
        return {
            "PATH": f"{venv_bin}:/usr/local/bin:/usr/bin:/bin",
            "HOME": w,
            "USER": "aifw-grading",
            "LOGNAME": "aifw-grading",
            "LANG": os.environ.get("LANG", "C.UTF-8"),
            "TMPDIR": str(self.workdir / ".tmp"),
            "IPYTHONDIR": str(self.workdir / ".ipython"),
            "MPLCONFIGDIR": str(self.workdir / ".matplotlib"),
            "JUPYTER_RUNTIME_DIR": str(self.workdir / ".jupyter"),
            "NBGRADER_EXECUTION": "autograde",
            "OMP_NUM_THREADS": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
        }

    def prepare(self) -> None:
        """Hand the working copy to the uid (0700): nobody else's code can read it."""
        for sub in (".tmp", ".ipython", ".matplotlib", ".jupyter"):
            (self.workdir / sub).mkdir(parents=True, exist_ok=True)
        if self.uid is None:
            return
        chown_tree(self.workdir, self.uid, self.uid)
        self.workdir.chmod(0o700)

    def kill_all(self) -> None:
        if self.uid is not None:
            kill_uid(self.uid)

    def clean_up(self) -> None:
        """After the submission: nothing of the uid runs, nothing of it stays in /tmp, /var/tmp, /dev/shm."""
        if self.uid is not None:
            kill_uid(self.uid)
            remove_files_of(self.uid)


_current: Sandbox | None = None


@contextlib.contextmanager
def sandboxed(sandbox: Sandbox) -> Iterator[Sandbox]:
    """Kernels started inside this block run in `sandbox`; its uid's processes are killed at the end."""
    global _current
    previous, _current = _current, sandbox
    try:
        yield sandbox
    finally:
        _current = previous
        sandbox.kill_all()


class SandboxKernelManager(AsyncKernelManager):
    """A kernel manager that starts the kernel through the jail, in the sandbox's working copy."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        if _current is None:
            raise RuntimeError("SandboxKernelManager used outside `sandboxed(...)`")
        self.sandbox = _current
        self.connection_file = str(self.sandbox.workdir / ".jupyter" / f"kernel-{os.getpid()}-{id(self)}.json")

    def write_connection_file(self, **kwargs) -> None:
        super().write_connection_file(**kwargs)
        if self.sandbox.uid is not None and os.path.exists(self.connection_file):
            os.chown(self.connection_file, self.sandbox.uid, self.sandbox.uid)

    def format_kernel_cmd(self, extra_arguments=None) -> list[str]:
        cmd = super().format_kernel_cmd(extra_arguments)
        if cmd and Path(cmd[0]).name.startswith("python"):
            cmd[0] = self.sandbox.python  # the grading venv's interpreter, not whatever is on PATH
        sb = self.sandbox
        if sb.uid is None:
            return cmd
        return [sb.python, "-m", "aifw.grading.jail", "--uid", str(sb.uid), "--memory-mb", str(sb.memory_mb),
                "--nproc", str(sb.nproc), "--fsize-mb", str(sb.fsize_mb), "--", *cmd]

    async def _async_launch_kernel(self, kernel_cmd: list[str], **kw) -> None:
        kw["cwd"] = str(self.sandbox.workdir)
        kw["env"] = self.sandbox.env()
        if self.sandbox.log is not None:
            log = open(self.sandbox.log, "ab")  # noqa: SIM115 - handed to the kernel process
            kw["stdout"] = log
            kw["stderr"] = log
        await super()._async_launch_kernel(kernel_cmd, **kw)


class SandboxedExecute(Execute):
    """nbgrader's Execute, with kernels in the current sandbox and an answer for kernels that die."""

    def __init__(self, **kwargs):
        kwargs.setdefault("kernel_manager_class", SandboxKernelManager)
        super().__init__(**kwargs)
        self.kernel_start_s = 0.0
        self.incident: str | None = None
        self._finished: set[int] = set()

    # Kernel start = launching the process + waiting until it answers (timed for the report).
    async def async_start_new_kernel(self, **kwargs):
        t0 = time.perf_counter()
        try:
            return await super().async_start_new_kernel(**kwargs)
        finally:
            self.kernel_start_s += time.perf_counter() - t0

    async def async_start_new_kernel_client(self):
        t0 = time.perf_counter()
        try:
            return await super().async_start_new_kernel_client()
        finally:
            self.kernel_start_s += time.perf_counter() - t0

    start_new_kernel = run_sync(async_start_new_kernel)
    start_new_kernel_client = run_sync(async_start_new_kernel_client)

    def on_cell_executed(self, **kwargs):
        super().on_cell_executed(**kwargs)
        self._finished.add(kwargs["cell_index"])

    def preprocess(self, nb: NotebookNode, resources=None, km=None):
        self._finished = set()
        kernel_name = nb.metadata.get("kernelspec", {}).get("name", "python")
        if self.extra_arguments == [] and kernel_name.startswith("python"):
            self.extra_arguments = ["--HistoryManager.hist_file=:memory:"]
        try:
            return super().preprocess(nb, resources, km)
        except Exception as err:  # the kernel died, or never answered again
            sandbox = _current
            reason = (sandbox.killed_reason if sandbox and sandbox.killed_reason else None) or _describe(err)
            self.incident = reason
            self._mark_unfinished(nb, reason)
            return nb, resources

    def _mark_unfinished(self, nb: NotebookNode, reason: str) -> None:
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code" or index in self._finished:
                continue
            ename = "SubmissionTimeout" if "time limit" in reason else "KernelDied"
            cell.setdefault("outputs", []).append(NotebookNode(
                output_type="error", ename=ename, evalue=reason,
                traceback=[f"\x1b[0;31m{ename}\x1b[0m: {reason}"],
            ))


def _describe(err: Exception) -> str:
    name = type(err).__name__
    if name == "DeadKernelError":
        return "the kernel died (memory limit, a crash or an exit in the code); later cells did not run"
    if name in ("CellTimeoutError", "TimeoutError"):
        return "a cell did not stop when interrupted after its time limit; later cells did not run"
    if name == "RuntimeError" and "Kernel didn't respond" in str(err):
        return "the kernel did not start in time"
    return f"execution stopped: {name}: {str(err).strip()[:300]}"
