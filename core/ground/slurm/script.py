"""The one batch-script builder: every script we submit (sessions, grading arrays, ...) is made here.

Pure. A `BatchJob` holds the ``#SBATCH`` directives as typed values; `build_batch_script` checks each
again against `aifw.names` (so that a bug upstream cannot become ``#SBATCH`` injection), and writes the
body from argv lists (shell-quoted, one line each) and from admin-written shell text (a site's
environment prologue), which is the only text that goes in as it is.

    #!/bin/bash
    #SBATCH ...                 directives, in a fixed order (with `end_signal`: --signal=B:SIG@seconds)
    <banner>                    one echo: which job, as whom, on which node (name, hostname, address)
    trap '' SIG                 with `end_signal`: the signal is ignored until the command installs its
                                own handler (an ignored signal stays ignored across exec), so that it
                                cannot end the command while it starts
    export NAME=value           `exports` (names checked, values quoted)
    # <label>                   `prologue`: admin-written shell lines
    { argv || echo ...; } &     `beside` steps: trusted commands started in the background beside the
                                command; a failure is said in the log and does not stop the job
    exec argv                   `command`
"""
from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from typing import Mapping, Sequence

from aifw.names import PLAIN_PATH, SLURM_NAME, UnsafeName, matches

from .parse import format_slurm_minutes

# What ends a line for bash or for a reader of the script (str.splitlines), and NUL.
LINE_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029\0"
_ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]{0,63}")
# Output paths may carry sbatch's replacement symbols: %j job id, %a array task, %A array job, %x job name.
_OUTPUT_SYMBOLS = re.compile(r"%[jaAx]")


class UnsafeValue(UnsafeName):
    """A value that must never reach a batch script (a bug upstream, not a user error)."""


def _name(value: str, what: str) -> str:
    if not matches(SLURM_NAME, value):
        raise UnsafeValue(f"refusing to put {what} {value!r} in a batch script")
    return value


def _path(value: str, what: str, *, symbols: bool = False) -> str:
    plain = _OUTPUT_SYMBOLS.sub("x", value) if symbols else value
    if not matches(PLAIN_PATH, plain):
        raise UnsafeValue(f"refusing to put {what} {value!r} in a batch script")
    return value


def _count(value: int, what: str, low: int = 1, high: int = 1_000_000) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise UnsafeValue(f"refusing to put {what} {value!r} in a batch script ({low} to {high})")
    return value


def _line(argv: Sequence[str], what: str) -> str:
    if not argv:
        raise UnsafeValue(f"refusing an empty {what} in a batch script")
    for arg in argv:
        if not isinstance(arg, str) or any(c in arg for c in LINE_BREAKS):
            raise UnsafeValue(f"refusing {what} argument {arg!r} in a batch script (one line per command)")
    return shlex.join(list(argv))


#: Signals a job may ask Slurm for ahead of its end (`EndSignal`).
END_SIGNALS = ("USR1", "USR2", "URG", "HUP", "INT", "TERM")


@dataclass(frozen=True)
class EndSignal:
    """``--signal=B:<name>@<seconds>``: Slurm sends `name` to the job's batch shell (only to it: with our
    ``exec`` line that is the command itself) `seconds` before the end of the walltime. Slurm checks time
    limits every 30 s, so the signal may come up to 60 s earlier than asked (sbatch(1))."""

    name: str  # one of END_SIGNALS, without "SIG"
    seconds: int  # 0 to 65535 (sbatch's range)

    def directive(self) -> str:
        if self.name not in END_SIGNALS:
            raise UnsafeValue(f"refusing signal {self.name!r} in a batch script (one of {', '.join(END_SIGNALS)})")
        return f"--signal=B:{self.name}@{_count(self.seconds, 'signal lead time', 0, 65535)}"


@dataclass(frozen=True)
class BatchJob:
    """The ``#SBATCH`` directives of one job, as typed values."""

    job_name: str
    time_minutes: int
    partition: str | None = None
    account: str | None = None
    reservation: str | None = None
    nodes: int = 1
    ntasks: int = 1
    cpus_per_task: int = 1
    memory_mb: int | None = None
    gpus: int = 0
    gpu_type: str | None = None
    output: str | None = None  # absolute path; %j, %a, %A, %x allowed
    chdir: str | None = None
    array_size: int | None = None  # tasks 0..N-1
    # False: --no-requeue (a node failure ends the job as NODE_FAIL instead of re-running it); True:
    # --requeue; None: Slurm's default (JobRequeue in slurm.conf).
    requeue: bool | None = None
    # Slurm signals the command this long before the end (a session saves its documents); None: no signal.
    end_signal: EndSignal | None = None

    def directives(self) -> list[str]:
        d = [f"--job-name={_name(self.job_name, 'job name')}"]
        if self.partition:
            d.append(f"--partition={_name(self.partition, 'partition')}")
        if self.array_size is not None:
            d.append(f"--array=0-{_count(self.array_size, 'array size', 1, 100_000) - 1}")
        d.append(f"--cpus-per-task={_count(self.cpus_per_task, 'CPU count', 1, 4096)}")
        if self.memory_mb is not None:
            mb = _count(self.memory_mb, "memory", 1, 2**31)
            d.append(f"--mem={mb // 1024}G" if mb % 1024 == 0 else f"--mem={mb}M")
        d.append(f"--time={format_slurm_minutes(_count(self.time_minutes, 'time limit', 1, 366 * 24 * 60))}")
        if self.output:
            d.append(f"--output={_path(self.output, 'output path', symbols=True)}")
        if self.chdir:
            d.append(f"--chdir={_path(self.chdir, 'working directory')}")
        d.append(f"--nodes={_count(self.nodes, 'node count', 1, 100_000)}")
        d.append(f"--ntasks={_count(self.ntasks, 'task count', 1, 1_000_000)}")
        if self.gpus:
            gtype = f"{_name(self.gpu_type, 'GPU type')}:" if self.gpu_type else ""
            d.append(f"--gres=gpu:{gtype}{_count(self.gpus, 'GPU count', 1, 1024)}")
        if self.account:
            d.append(f"--account={_name(self.account, 'account')}")
        if self.reservation:
            d.append(f"--reservation={_name(self.reservation, 'reservation')}")
        if self.requeue is not None:
            if not isinstance(self.requeue, bool):
                raise UnsafeValue(f"refusing requeue {self.requeue!r} in a batch script (True, False or None)")
            d.append("--requeue" if self.requeue else "--no-requeue")
        if self.end_signal is not None:
            if not isinstance(self.end_signal, EndSignal):
                raise UnsafeValue(f"refusing end signal {self.end_signal!r} in a batch script (an EndSignal)")
            d.append(self.end_signal.directive())
        return d


@dataclass(frozen=True)
class BatchScript:
    """What a job runs: admin-written prologue text, trusted steps beside the command, then one command."""

    command: Sequence[str]
    purpose: str = "job"  # said in the banner and the header comment: "JupyterHub session", "grading worker"
    exports: Mapping[str, str] = field(default_factory=dict)
    prologue: str = ""
    prologue_label: str = ""
    # Trusted steps the command need not wait for: started in the background (after the prologue, so in
    # the same environment) just before the command; a failure is said in the log and stops nothing.
    beside: Sequence[Sequence[str]] = ()


def build_batch_script(job: BatchJob, body: BatchScript) -> str:
    """The whole script, or UnsafeValue when anything would not be safe in it."""
    purpose = body.purpose
    if not re.fullmatch(r"[A-Za-z0-9 _.\-]{1,64}", purpose):
        raise UnsafeValue(f"refusing purpose {purpose!r} in a batch script")
    lines = ["#!/bin/bash", *(f"#SBATCH {opt}" for opt in job.directives()), ""]
    lines += [
        f"# Generated by AIF Workbench for a {purpose}.",
        "set -eo pipefail",
        # The node by Slurm's name and by the addresses it has: node names need not resolve anywhere.
        f'echo "AIF Workbench {purpose}: job $SLURM_JOB_ID as $(id -un) on node ${{SLURMD_NODENAME:-$(hostname)}}, '
        f'hostname $(hostname), address $(hostname -I 2>/dev/null || echo unknown)"',
    ]
    if job.end_signal is not None:
        # Ignored, it stays ignored across exec until the command sets its own handler: a signal that comes
        # while the command starts (a walltime shorter than the lead time) cannot kill it.
        lines.append(f"trap '' {job.end_signal.name}")
    for name, value in body.exports.items():
        if not _ENV_NAME.fullmatch(name) or any(c in value for c in LINE_BREAKS):
            raise UnsafeValue(f"refusing to export {name!r} in a batch script")
        lines.append(f"export {name}={shlex.quote(value)}")
    if body.prologue.strip():
        label = _name(body.prologue_label, "prologue label") if body.prologue_label else "prologue"
        lines += [f"# environment: {label}", body.prologue.rstrip()]
    for argv in body.beside:
        lines.append("{ " + _line(argv, "background step")
                     + f" || echo 'AIF Workbench: {purpose} background step failed (continuing)' >&2; }} &")
    lines += ["exec " + _line(body.command, "command"), ""]
    return "\n".join(lines)
