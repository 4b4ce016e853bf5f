"""The batch script of a JupyterHub session (pure): a validated `SessionRequest` plus what the spawner knows
(who, where, the command, trusted set-up steps) and the environment's prologue, as an `aifw.slurm.BatchJob`
and `BatchScript`, written by the one guarded builder `aifw.slurm.build_batch_script`.

The builder checks every name and number again (`aifw.names`) and refuses line breaks in the command, so
that a bug upstream raises `UnsafeValue` instead of becoming ``#SBATCH`` injection.

The end of the walltime (the site's `session` section): the job asks Slurm for SIGUSR2 to its batch shell
(``--signal=B:USR2@<end_signal_seconds>``; `exec` makes the server that shell), and exports what the
session panel's server extension reads: `WARNINGS_ENV` (minutes before the end at which JupyterLab warns,
largest first, comma-separated) and `END_SIGNAL_ENV` (the signal's lead in seconds).

The job's allocation for jupyter-resource-usage (its memory and CPU display in JupyterLab, and
``/api/metrics/v1``): ``MEM_LIMIT`` (bytes) and ``CPU_LIMIT`` (CPUs), the job's own ``--mem`` and
``--cpus-per-task``, not the node's totals.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from aifw.names import UNIX_USER, matches
from aifw.site import Environment, SessionSettings
from aifw.slurm import BatchJob, BatchScript, EndSignal, UnsafeValue, build_batch_script

from .request import SessionRequest

PURPOSE = "JupyterHub session"  # said in the script's banner: "AIF Workbench JupyterHub session: job ..."
#: The signal Slurm sends the server ahead of the end (jupyter_server itself uses SIGUSR1 and SIGTERM).
END_SIGNAL = "USR2"
#: The environment the session panel's server extension reads (aifw.extensions.server.ending).
WARNINGS_ENV = "AIFW_WALLTIME_WARNINGS_MINUTES"
END_SIGNAL_ENV = "AIFW_END_SIGNAL_SECONDS"
#: ... and the idle cull's (aifw.extensions.server.activity): this session's limit, the GPU threshold.
IDLE_CULL_ENV = "AIFW_IDLE_CULL_MINUTES"
GPU_BUSY_ENV = "AIFW_GPU_BUSY_PERCENT"


@dataclass(frozen=True)
class ScriptContext:
    """What the spawner knows besides the request: who, where, and the command to run."""

    username: str
    home: str
    command: Sequence[str]
    job_name_prefix: str = "aifw"
    server_name: str = ""  # a named server's name ("" for the user's default one): its job is aifw-<user>-<name>
    # Trusted set-up commands (argv lists from the hub's own config, e.g. copying course notebooks into
    # the learner's home); each runs in the background beside the server's start (which need not wait
    # for it), and its failure does not stop the session.
    beside: Sequence[Sequence[str]] = ()


#: What a named server's name may be, so that it fits a Slurm job name beside the user's.
SERVER_NAME = r"^[a-z0-9][a-z0-9_\-]{0,23}$"
SERVER_NAME_MEANING = "at most 24 lower-case letters, digits, '-' or '_', starting with a letter or digit"


def job_name(ctx: ScriptContext) -> str:
    """aifw-<user> for a user's default server, aifw-<user>-<name> for a named one."""
    if ctx.server_name and not matches(SERVER_NAME, ctx.server_name):
        raise UnsafeValue(f"refusing to put server name {ctx.server_name!r} in a job name")
    return f"{ctx.job_name_prefix}-{ctx.username}" + (f"-{ctx.server_name}" if ctx.server_name else "")


def log_path(home: str) -> str:
    """Where a session's job writes its output (%j is the job id)."""
    return f"{home}/.aifw-session-%j.log"


def session_script(request: SessionRequest, environment: Environment, ctx: ScriptContext,
                   session: SessionSettings = SessionSettings()) -> str:
    """The session's whole batch script, or UnsafeValue when anything would not be safe in it. `session`:
    the site's `session` section (its warnings and the lead of Slurm's signal before the end)."""
    if not matches(UNIX_USER, ctx.username):
        raise UnsafeValue(f"refusing to put user name {ctx.username!r} in a batch script")
    job = BatchJob(
        job_name=job_name(ctx),
        partition=request.partition,
        cpus_per_task=request.cpus,
        memory_mb=request.memory_gb * 1024,
        time_minutes=request.runtime_minutes,
        output=log_path(ctx.home),
        chdir=ctx.home,
        gpus=request.gpus,
        gpu_type=request.gpu_type,
        account=request.account or None,
        reservation=request.reservation or None,
        # A session cannot survive its node: a node failure ends the job (NODE_FAIL), which the hub sees and
        # reports, instead of a silent requeue that would leave the hub waiting on a server that is gone.
        requeue=False,
        end_signal=EndSignal(END_SIGNAL, session.end_signal_seconds),
    )
    body = BatchScript(
        command=list(ctx.command),
        purpose=PURPOSE,
        exports={WARNINGS_ENV: ",".join(str(m) for m in session.walltime_warnings_minutes),
                 END_SIGNAL_ENV: str(session.end_signal_seconds),
                 IDLE_CULL_ENV: str(session.idle_cull_minutes(request.gpus)),
                 GPU_BUSY_ENV: str(session.gpu_busy_percent),
                 "MEM_LIMIT": str(request.memory_gb * 1024 ** 3), "CPU_LIMIT": str(request.cpus)},
        beside=[list(argv) for argv in ctx.beside],
        prologue=environment.prologue,
        prologue_label=environment.name,
    )
    return build_batch_script(job, body)
