"""The Slurm client: the one place that runs Slurm commands (with timeouts) and parses their output.

Ground floor of the project: imports nothing of `aifw`. Commands are argv lists (never a shell string);
the only text that goes to Slurm on stdin is a batch script built from validated values.

Three outcomes of every call, kept apart on purpose:
- a parsed answer (typed dataclasses below);
- `SlurmRejected`: Slurm answered and said no (bad request, unknown job...). Carries Slurm's message.
- `SlurmUnavailable`: Slurm did not answer (controller down, timeout). Callers treat a running job as
  still running: "no answer" is never "gone".
"""
from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from typing import Mapping, Sequence

# Messages Slurm prints when the controller cannot be reached.
_UNAVAILABLE = re.compile(
    r"Unable to contact slurm controller|Socket timed out|Connection refused|"
    r"Zero Bytes were transmitted|slurm_load_\w+ error: .*(?:timed out|contact)|"
    r"Communication connection failure|Slurm backup controller in standby",
    re.I,
)
_INVALID_JOB = re.compile(r"Invalid job id", re.I)

PENDING_STATES = {"PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESIZING", "SUSPENDED"}
RUNNING_STATES = {"RUNNING", "COMPLETING", "STAGE_OUT", "SIGNALING"}


class SlurmError(Exception):
    """Base of the Slurm client's errors."""


class SlurmUnavailable(SlurmError):
    """Slurm did not answer in time (controller down or overloaded)."""


class SlurmNotInstalled(SlurmError):
    """A command (Slurm's or the exec prefix) cannot be run here: a configuration problem."""


class SlurmRejected(SlurmError):
    """Slurm answered with an error; the message is Slurm's own words."""


@dataclass(frozen=True)
class CommandResult:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


@dataclass(frozen=True)
class JobInfo:
    job_id: str
    state: str  # Slurm's long state name, e.g. PENDING, RUNNING, COMPLETED, or GONE when unknown to Slurm
    reason: str = ""
    node: str = ""
    partition: str = ""
    start_time: str = ""  # ISO-like as Slurm prints it, or "" / "N/A"
    exit_code: str = ""

    @property
    def is_pending(self) -> bool:
        return self.state in PENDING_STATES

    @property
    def is_running(self) -> bool:
        return self.state in RUNNING_STATES

    @property
    def is_finished(self) -> bool:
        return not (self.is_pending or self.is_running)


@dataclass(frozen=True)
class PartitionInfo:
    """A partition as Slurm reports it right now."""

    name: str
    available: bool = True
    default: bool = False
    max_time_minutes: int | None = None  # None = UNLIMITED
    nodes_total: int = 0
    nodes_idle: int = 0
    cpus_per_node: int = 0
    cpus_idle: int = 0
    memory_mb_per_node: int = 0
    gpus_per_node: int = 0
    gpus_idle: int = 0
    node_names: tuple[str, ...] = field(default_factory=tuple)


# ---------------------------------------------------------------------------------------------
# Pure parsers
# ---------------------------------------------------------------------------------------------
def parse_slurm_minutes(text: str) -> int | None:
    """Slurm time strings ('30', '1:00:00', '2-00:00:00', 'UNLIMITED') to whole minutes."""
    text = text.strip()
    if not text or text.upper() in {"UNLIMITED", "INFINITE", "NONE", "N/A"}:
        return None
    days = 0
    if "-" in text:
        d, text = text.split("-", 1)
        days = int(d)
    parts = [int(p) for p in text.split(":")]
    if len(parts) == 1:  # minutes
        h, m, s = 0, parts[0], 0
    elif len(parts) == 2:  # minutes:seconds
        h, m, s = 0, parts[0], parts[1]
    else:
        h, m, s = parts[-3], parts[-2], parts[-1]
    return days * 24 * 60 + h * 60 + m + (1 if s else 0)


def format_slurm_minutes(minutes: int) -> str:
    """Whole minutes to Slurm's D-HH:MM:SS."""
    days, rem = divmod(int(minutes), 24 * 60)
    hours, mins = divmod(rem, 60)
    return f"{days}-{hours:02d}:{mins:02d}:00" if days else f"{hours:02d}:{mins:02d}:00"


def parse_gres_gpus(gres: str) -> int:
    """Count GPUs in a GRES string such as 'gpu:2', 'gpu:a100:4(S:0-1)', 'gpu:mi250:8,craynetwork:4'."""
    total = 0
    for item in gres.split(","):
        item = re.sub(r"\(.*?\)", "", item.strip())
        if not item.startswith("gpu"):
            continue
        bits = item.split(":")
        if len(bits) >= 2 and bits[-1].isdigit():
            total += int(bits[-1])
        elif len(bits) >= 1:
            total += 1 if len(bits) == 1 else 0
    return total


def parse_scontrol_records(text: str) -> list[dict[str, str]]:
    """`scontrol show ... -o` (one record per line, Key=Value pairs) into dicts."""
    records = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        rec: dict[str, str] = {}
        # Values may contain spaces only in a few keys (e.g. Reason=...); split on ' Key='.
        for m in re.finditer(r"(\S+?)=(.*?)(?=\s+\S+?=|$)", line):
            rec[m.group(1)] = m.group(2).strip()
        records.append(rec)
    return records


def parse_partitions(scontrol_text: str, nodes_text: str) -> list[PartitionInfo]:
    """Merge `scontrol show partition -o` with `sinfo -N -h -o '%N|%P|%t|%c|%C|%m|%G|%a'` (one line per
    node and partition) into PartitionInfo records. GPU use comes from `%G` totals minus GresUsed when
    present; callers may refine idle GPUs with `parse_gpus_in_use`."""
    parts: dict[str, dict] = {}
    for rec in parse_scontrol_records(scontrol_text):
        name = rec.get("PartitionName")
        if not name:
            continue
        parts[name] = {
            "name": name,
            "available": rec.get("State", "UP").upper() == "UP",
            "default": rec.get("Default", "NO").upper() == "YES",
            "max_time_minutes": parse_slurm_minutes(rec.get("MaxTime", "UNLIMITED")),
            "nodes": [],
        }
    for line in nodes_text.splitlines():
        bits = line.strip().split("|")
        if len(bits) < 8:
            continue
        node, pname, state, cpus, cpus_aio, mem, gres, _avail = bits[:8]
        pname = pname.rstrip("*")
        entry = parts.setdefault(
            pname, {"name": pname, "available": True, "default": False, "max_time_minutes": None, "nodes": []}
        )
        try:
            _alloc, idle, _other, _total = (int(x) for x in cpus_aio.split("/"))
        except ValueError:
            idle = 0
        entry["nodes"].append(
            {
                "name": node,
                "state": state.rstrip("*~#!%$@^-"),
                "cpus": int(cpus) if cpus.isdigit() else 0,
                "cpus_idle": idle,
                "mem": int(re.sub(r"\D", "", mem) or 0),
                "gpus": parse_gres_gpus(gres),
            }
        )
    out = []
    for p in parts.values():
        nodes = p.pop("nodes")
        usable = [n for n in nodes if n["state"] not in {"down", "drain", "drng", "fail", "maint", "inval"}]
        out.append(
            PartitionInfo(
                **p,
                nodes_total=len(nodes),
                nodes_idle=sum(1 for n in usable if n["state"] == "idle"),
                cpus_per_node=max((n["cpus"] for n in nodes), default=0),
                cpus_idle=sum(n["cpus_idle"] for n in usable),
                memory_mb_per_node=max((n["mem"] for n in nodes), default=0),
                gpus_per_node=max((n["gpus"] for n in nodes), default=0),
                gpus_idle=sum(n["gpus"] for n in usable),
                node_names=tuple(n["name"] for n in nodes),
            )
        )
    return out


def parse_gpus_in_use(squeue_text: str) -> dict[str, int]:
    """`squeue -h -t RUNNING -o '%N|%b'` → GPUs allocated per node (tres-per-node like 'gres/gpu:1')."""
    used: dict[str, int] = {}
    for line in squeue_text.splitlines():
        bits = line.strip().split("|")
        if len(bits) != 2 or not bits[0]:
            continue
        node, tres = bits
        n = 0
        for item in tres.split(","):
            item = item.strip().replace("gres/", "").replace("gres:", "")
            if item.startswith("gpu"):
                tail = item.split(":")[-1]
                n += int(tail) if tail.isdigit() else 1
        used[node] = used.get(node, 0) + n
    return used


SQUEUE_JOB_FORMAT = "%i|%T|%r|%N|%P|%S"


def parse_squeue_jobs(text: str) -> list[JobInfo]:
    """`squeue -h -o '%i|%T|%r|%N|%P|%S'` lines into JobInfo."""
    jobs = []
    for line in text.splitlines():
        bits = line.strip().split("|")
        if len(bits) != 6:
            continue
        job_id, state, reason, node, partition, start = bits
        jobs.append(
            JobInfo(
                job_id=job_id,
                state=state,
                reason="" if reason in {"None", "(null)"} else reason,
                node=node,
                partition=partition,
                start_time="" if start in {"N/A", "(null)"} else start,
            )
        )
    return jobs


def parse_scontrol_job(text: str, job_id: str) -> JobInfo:
    recs = parse_scontrol_records(text)
    if not recs:
        return JobInfo(job_id=job_id, state="GONE")
    r = recs[0]
    node = r.get("BatchHost", "") or r.get("NodeList", "")
    return JobInfo(
        job_id=job_id,
        state=r.get("JobState", "GONE"),
        reason="" if r.get("Reason", "None") in {"None", "(null)"} else r.get("Reason", ""),
        node="" if node in {"(null)", "None"} else node,
        partition=r.get("Partition", ""),
        start_time=r.get("StartTime", ""),
        exit_code=r.get("ExitCode", ""),
    )


def parse_sbatch_job_id(output: str) -> str:
    """`sbatch --parsable` prints 'JOBID' or 'JOBID;CLUSTER' (last line)."""
    lines = [ln for ln in output.strip().splitlines() if ln.strip()]
    if not lines:
        raise SlurmRejected("sbatch printed no job id")
    job_id = lines[-1].split(";")[0].strip()
    if not job_id.isdigit():
        raise SlurmRejected(f"sbatch printed no job id: {output.strip()[:200]!r}")
    return job_id


# ---------------------------------------------------------------------------------------------
# The client (I/O)
# ---------------------------------------------------------------------------------------------
@dataclass
class SlurmClient:
    """Runs Slurm's commands. `exec_prefix` (argv, '{username}' replaced) runs a command as a user."""

    bin_dir: str = "/usr/bin"
    conf: str | None = None
    timeout_s: float = 10.0
    exec_prefix: Sequence[str] = ("runuser", "-u", "{username}", "--")

    def _env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        env = dict(os.environ)
        if extra:
            env.update(extra)
        if self.conf:
            env["SLURM_CONF"] = self.conf
        return env

    def _argv(self, command: str, args: Sequence[str], as_user: str | None) -> list[str]:
        argv = [os.path.join(self.bin_dir, command), *args]
        if as_user:
            prefix = [part.replace("{username}", as_user) for part in self.exec_prefix]
            if prefix and not os.path.isabs(prefix[0]):
                # Resolve with the hub's PATH (plus sbin), not the job environment's PATH.
                search = os.environ.get("PATH", "") + ":/usr/local/sbin:/usr/sbin:/sbin"
                prefix[0] = shutil.which(prefix[0], path=search) or prefix[0]
            argv = prefix + argv
        return argv

    async def run(
        self,
        command: str,
        args: Sequence[str],
        *,
        as_user: str | None = None,
        stdin: str | None = None,
        env: Mapping[str, str] | None = None,
        timeout_s: float | None = None,
    ) -> CommandResult:
        argv = self._argv(command, args, as_user)
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=self._env(env),
                start_new_session=True,
            )
        except OSError as err:
            raise SlurmNotInstalled(f"cannot run {argv[0]}: {err.strerror}; check the site file's slurm settings") from None
        try:
            out, err = await asyncio.wait_for(
                proc.communicate(stdin.encode() if stdin is not None else None),
                timeout_s or self.timeout_s,
            )
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()
            raise SlurmUnavailable(f"{command} did not answer within {timeout_s or self.timeout_s:.0f} s") from None
        result = CommandResult(tuple(argv), proc.returncode, out.decode(errors="replace"), err.decode(errors="replace"))
        if result.returncode != 0:
            message = (result.stderr.strip() or result.stdout.strip() or f"exit status {result.returncode}")
            if _UNAVAILABLE.search(message):
                raise SlurmUnavailable(message)
            raise SlurmRejected(message)
        return result

    def run_sync(self, command: str, args: Sequence[str], timeout_s: float | None = None,
                 stdin: str | None = None) -> CommandResult:
        """Blocking variant for scripts and the CLI."""
        argv = self._argv(command, args, None)
        try:
            p = subprocess.run(argv, input=stdin, capture_output=True, text=True, env=self._env(),
                               timeout=timeout_s or self.timeout_s)
        except subprocess.TimeoutExpired:
            raise SlurmUnavailable(f"{command} did not answer within {timeout_s or self.timeout_s:.0f} s") from None
        except OSError as err:
            raise SlurmNotInstalled(f"cannot run {argv[0]}: {err.strerror}; check the site file's slurm settings") from None
        if p.returncode != 0:
            message = p.stderr.strip() or p.stdout.strip() or f"exit status {p.returncode}"
            raise (SlurmUnavailable if _UNAVAILABLE.search(message) else SlurmRejected)(message)
        return CommandResult(tuple(argv), p.returncode, p.stdout, p.stderr)

    # -- jobs ---------------------------------------------------------------------------------
    async def submit(self, script: str, *, user: str, env: Mapping[str, str] | None = None) -> str:
        """Submit a batch script (on stdin) as `user`; returns the job id."""
        result = await self.run("sbatch", ["--parsable"], as_user=user, stdin=script, env=env)
        return parse_sbatch_job_id(result.stdout)

    async def job(self, job_id: str) -> JobInfo:
        """The job's state. GONE when Slurm no longer knows it. Raises SlurmUnavailable when Slurm is silent."""
        if not job_id.isdigit():
            raise ValueError(f"not a Slurm job id: {job_id!r}")
        try:
            res = await self.run("squeue", ["-h", "-j", job_id, "-o", SQUEUE_JOB_FORMAT])
            jobs = parse_squeue_jobs(res.stdout)
            if jobs:
                return jobs[0]
        except SlurmRejected as err:
            if not _INVALID_JOB.search(str(err)):
                raise
        # squeue forgot it (finished): scontrol still knows for MinJobAge seconds.
        try:
            res = await self.run("scontrol", ["show", "job", "-o", job_id])
            return parse_scontrol_job(res.stdout, job_id)
        except SlurmRejected:
            return JobInfo(job_id=job_id, state="GONE")

    async def cancel(self, job_id: str, *, user: str | None = None) -> None:
        if not job_id.isdigit():
            raise ValueError(f"not a Slurm job id: {job_id!r}")
        try:
            await self.run("scancel", [job_id], as_user=user)
        except SlurmRejected as err:
            if not _INVALID_JOB.search(str(err)):
                raise

    async def pending_order(self, partition: str) -> list[str]:
        """Ids of the jobs pending in a partition, in the order Slurm will consider them (priority)."""
        res = await self.run("squeue", ["-h", "-t", "PENDING", "-p", partition, "--sort=-p,i", "-o", "%i"])
        return [line.strip() for line in res.stdout.splitlines() if line.strip()]

    async def start_estimates(self, job_ids: Sequence[str]) -> dict[str, str]:
        """`squeue --start`: Slurm's estimated start of pending jobs."""
        if not job_ids:
            return {}
        res = await self.run("squeue", ["--start", "-h", "-j", ",".join(job_ids), "-o", "%i|%S"])
        out = {}
        for line in res.stdout.splitlines():
            bits = line.strip().split("|")
            if len(bits) == 2 and bits[1] not in {"N/A", "(null)"}:
                out[bits[0]] = bits[1]
        return out

    async def user_accounts(self, user: str) -> list[str]:
        """The user's Slurm associations (accounts), or [] when accounting (slurmdbd) is not there."""
        try:
            res = await self.run("sacctmgr", ["-nP", "show", "assoc", f"user={user}", "format=account"], timeout_s=5)
        except SlurmError:
            return []
        return sorted({a.strip() for a in res.stdout.splitlines() if re.fullmatch(r"[A-Za-z0-9_.\-]{1,64}", a.strip())})

    # -- cluster ------------------------------------------------------------------------------
    async def partitions(self) -> list[PartitionInfo]:
        parts, nodes, running = await asyncio.gather(
            self.run("scontrol", ["show", "partition", "-o"]),
            self.run("sinfo", ["-N", "-h", "-o", "%N|%P|%t|%c|%C|%m|%G|%a"]),
            self.run("squeue", ["-h", "-t", "RUNNING", "-o", "%N|%b"]),
        )
        infos = parse_partitions(parts.stdout, nodes.stdout)
        in_use = parse_gpus_in_use(running.stdout)
        return [
            PartitionInfo(**{**p.__dict__, "gpus_idle": max(0, p.gpus_idle - sum(in_use.get(n, 0) for n in p.node_names))})
            for p in infos
        ]
