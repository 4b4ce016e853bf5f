"""The Slurm client (I/O): runs Slurm's commands as argv lists, with timeouts, and hands back typed values
through the pure parsers of `aifw.slurm.parse`.

Every call has a blocking twin (`*_sync`) for command-line tools and notebooks; both build the same
argv and parse with the same function. Errors: `SlurmRejected` (Slurm answered no), `SlurmUnavailable`
(no answer in time), `SlurmNotInstalled` (a command cannot be run here).
"""
from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from aifw.names import JOB_ID, SLURM_NAME, UNIX_USER, matches

from .accounting import ProjectBudget, UserAssociations, parse_assoc_mgr_budgets, parse_assoc_mgr_user
from .rest import SlurmRestClient

from .parse import (
    INVALID_JOB,
    JOB_IDS_FORMAT,
    NODE_FORMAT,
    SQUEUE_JOB_FORMAT,
    UNAVAILABLE,
    JobInfo,
    NodeInfo,
    PartitionInfo,
    RpcCounts,
    SlurmError,
    SlurmNotInstalled,
    SlurmRejected,
    SlurmTimedOut,
    SlurmUnavailable,
    parse_gpus_in_use,
    parse_job_ids,
    parse_named_jobs,
    parse_nodes,
    parse_partitions,
    parse_sbatch_job_id,
    parse_scontrol_job,
    parse_scontrol_records,
    parse_sdiag_rpcs,
    parse_squeue_jobs,
    parse_start_estimates,
)


@dataclass(frozen=True)
class CommandResult:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


def _job_id(job_id: str) -> str:
    if not matches(JOB_ID, job_id):
        raise ValueError(f"not a Slurm job id: {job_id!r}")
    return job_id


def _user(name: str) -> str:
    if not matches(UNIX_USER, name):
        raise ValueError(f"not a unix user name: {name!r}")
    return name


def _name(name: str) -> str:
    if not matches(SLURM_NAME, name):
        raise ValueError(f"not a Slurm job name: {name!r}")
    return name


def _first_word(text: str) -> str:
    words = text.split()
    return words[0] if words else ""


def _sbatch_args(hold: bool) -> list[str]:
    return ["--parsable", "--hold"] if hold else ["--parsable"]


def _failure(command: str, returncode: int, stdout: str, stderr: str) -> SlurmError:
    message = stderr.strip() or stdout.strip() or f"{command}: exit status {returncode}"
    return SlurmUnavailable(message) if UNAVAILABLE.search(message) else SlurmRejected(message)


@dataclass
class SlurmClient:
    """Runs Slurm's commands. `exec_prefix` (argv, '{username}' replaced) runs a command as a user.
    `bin_dir` None: the commands are found on PATH."""

    bin_dir: str | None = "/usr/bin"
    conf: str | None = None
    timeout_s: float = 10.0
    exec_prefix: Sequence[str] = ("runuser", "-u", "{username}", "--")

    #: At most this many job ids go into one ``squeue -j`` (its argument stays a few kB).
    max_jobs_per_query: int = 1000

    @classmethod
    def for_site(cls, slurm: Any, *, timeout_s: float | None = None) -> "SlurmClient | SlurmRestClient":
        """The client a site's `slurm` settings describe: with `access: rest` a `SlurmRestClient` (slurmrestd,
        a token per user), else this one (bin_dir, conf, command_timeout_s, exec_prefix)."""
        if getattr(slurm, "access", "cli") == "rest":
            return SlurmRestClient.for_site(slurm, timeout_s=timeout_s)
        return cls(bin_dir=slurm.bin_dir, conf=slurm.conf, timeout_s=timeout_s or slurm.command_timeout_s,
                   exec_prefix=tuple(slurm.exec_prefix))

    @property
    def identity(self) -> tuple:
        """What makes two clients run the same commands the same way (commands, configuration, time limit,
        exec prefix): clients with the same identity can share one query (`aifw.spawners.job_watch`)."""
        return (self.bin_dir, self.conf, self.timeout_s, tuple(self.exec_prefix), self.max_jobs_per_query)

    # -- running ------------------------------------------------------------------------------
    def _env(self, env: Mapping[str, str] | None = None) -> dict[str, str]:
        """A command's environment: `env` as it is when given (for sbatch it becomes the job's environment,
        so nothing of the caller's process, such as the hub's own tokens, reaches a job), else the caller's;
        SLURM_CONF from `conf` in both cases."""
        out = dict(os.environ if env is None else env)
        if self.conf:
            out["SLURM_CONF"] = self.conf
        return out

    def _argv(self, command: str, args: Sequence[str], as_user: str | None) -> list[str]:
        if self.bin_dir:
            argv = [os.path.join(self.bin_dir, command), *args]
        else:
            argv = [shutil.which(command) or command, *args]
        if as_user:
            prefix = [part.replace("{username}", as_user) for part in self.exec_prefix]
            if prefix and not os.path.isabs(prefix[0]):
                # Resolve with the hub's PATH (plus sbin), not the job environment's PATH.
                search = os.environ.get("PATH", "") + ":/usr/local/sbin:/usr/sbin:/sbin"
                prefix[0] = shutil.which(prefix[0], path=search) or prefix[0]
            argv = prefix + argv
        return argv

    async def run(self, command: str, args: Sequence[str], *, as_user: str | None = None,
                  stdin: str | None = None, env: Mapping[str, str] | None = None,
                  timeout_s: float | None = None) -> CommandResult:
        argv = self._argv(command, args, as_user)
        limit = timeout_s or self.timeout_s
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, env=self._env(env), start_new_session=True,
            )
        except OSError as err:
            raise SlurmNotInstalled(f"cannot run {argv[0]}: {err.strerror}; check the site file's slurm settings") from None
        try:
            out, err = await asyncio.wait_for(proc.communicate(stdin.encode() if stdin is not None else None), limit)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()
            raise SlurmTimedOut(f"{command} did not answer within {limit:g} s") from None
        result = CommandResult(tuple(argv), proc.returncode, out.decode(errors="replace"), err.decode(errors="replace"))
        if result.returncode != 0:
            raise _failure(command, result.returncode, result.stdout, result.stderr)
        return result

    def run_sync(self, command: str, args: Sequence[str], *, as_user: str | None = None,
                 stdin: str | None = None, env: Mapping[str, str] | None = None,
                 timeout_s: float | None = None) -> CommandResult:
        """Blocking variant for scripts, the CLI and notebooks (safe inside a running event loop)."""
        argv = self._argv(command, args, as_user)
        limit = timeout_s or self.timeout_s
        try:
            p = subprocess.run(argv, input=stdin, capture_output=True, text=True, env=self._env(env), timeout=limit)
        except subprocess.TimeoutExpired:
            raise SlurmTimedOut(f"{command} did not answer within {limit:g} s") from None
        except OSError as err:
            raise SlurmNotInstalled(f"cannot run {argv[0]}: {err.strerror}; check the site file's slurm settings") from None
        if p.returncode != 0:
            raise _failure(command, p.returncode, p.stdout, p.stderr)
        return CommandResult(tuple(argv), p.returncode, p.stdout, p.stderr)

    # -- jobs ---------------------------------------------------------------------------------
    async def submit(self, script: str, *, user: str | None = None, env: Mapping[str, str] | None = None,
                     hold: bool = False) -> str:
        """Submit a batch script (on stdin), as `user` when given; returns the job id. `env`: the job's whole
        environment (sbatch exports it); None: the caller's. `hold`: the job waits in the queue (reason
        JobHeldUser) until it is released or cancelled: it uses no node meanwhile (benchmarks of the queue)."""
        result = await self.run("sbatch", _sbatch_args(hold), as_user=user, stdin=script, env=env)
        return parse_sbatch_job_id(result.stdout)

    def submit_sync(self, script: str, *, user: str | None = None, env: Mapping[str, str] | None = None,
                    hold: bool = False) -> str:
        result = self.run_sync("sbatch", _sbatch_args(hold), as_user=user, stdin=script, env=env)
        return parse_sbatch_job_id(result.stdout)

    async def job(self, job_id: str) -> JobInfo:
        """The job's state. GONE when Slurm no longer knows it. Raises SlurmUnavailable when Slurm is silent."""
        listed = await self.jobs([job_id])
        return listed[job_id] if job_id in listed else await self.ended_job(job_id)

    async def jobs(self, job_ids: Sequence[str]) -> dict[str, JobInfo]:
        """The jobs of `job_ids` that squeue lists (pending, running, completing, ...), by id, from one
        ``squeue -j id1,id2,...`` per `max_jobs_per_query` ids. slurmctld serves several ids as one job
        listing whatever their number (measured on 22.05: REQUEST_JOB_INFO + REQUEST_PARTITION_INFO; one id:
        REQUEST_FED_INFO + REQUEST_JOB_INFO_SINGLE + REQUEST_PARTITION_INFO), and squeue prints only the
        jobs asked for. A job that has ended is left out: ask `ended_job` for it. Raises SlurmUnavailable
        when Slurm is silent."""
        ids = list(dict.fromkeys(_job_id(j) for j in job_ids))
        listed: dict[str, JobInfo] = {}
        step = max(1, self.max_jobs_per_query)
        for start in range(0, len(ids), step):
            chunk = ids[start:start + step]
            try:
                res = await self.run("squeue", ["-h", "-j", ",".join(chunk), "-o", SQUEUE_JOB_FORMAT])
            except SlurmRejected as err:
                if INVALID_JOB.search(str(err)):
                    continue  # one id that Slurm no longer knows (with several, squeue just leaves it out)
                raise
            wanted = set(chunk)
            listed.update((j.job_id, j) for j in parse_squeue_jobs(res.stdout) if j.job_id in wanted)
        return listed

    async def ended_job(self, job_id: str) -> JobInfo:
        """A job squeue no longer lists: scontrol still knows it for MinJobAge seconds after it ended (state,
        reason, exit code); GONE when Slurm does not know it at all. Raises SlurmUnavailable when silent."""
        _job_id(job_id)
        try:
            res = await self.run("scontrol", ["show", "job", "-o", job_id])
            return parse_scontrol_job(res.stdout, job_id)
        except SlurmRejected:
            return JobInfo(job_id=job_id, state="GONE")

    async def job_record(self, job_id: str) -> dict[str, str] | None:
        """Slurm's whole record of a job (``scontrol show job -o``: EndTime, TimeLimit, Account, TRES,
        StdOut, ...) as text fields, for a caller that types the fields it reads; None when Slurm no longer
        knows the job. Raises SlurmUnavailable when Slurm is silent."""
        _job_id(job_id)
        try:
            res = await self.run("scontrol", ["show", "job", "-o", job_id])
        except SlurmRejected:
            return None
        records = [r for r in parse_scontrol_records(res.stdout) if r.get("JobId") == job_id]
        return records[0] if records else None

    def job_tasks_sync(self, job_id: str) -> list[JobInfo]:
        """The queued tasks of a (possibly array) job; [] when Slurm no longer lists it."""
        _job_id(job_id)
        try:
            res = self.run_sync("squeue", ["-h", "-j", job_id, "-o", SQUEUE_JOB_FORMAT])
        except SlurmRejected as err:
            if INVALID_JOB.search(str(err)):
                return []
            raise
        return parse_squeue_jobs(res.stdout)

    def reservations_sync(self) -> dict[str, dict[str, str]]:
        """The reservations slurmctld holds now, by name: scontrol's fields (Nodes, CoreCnt, Accounts, ...)."""
        res = self.run_sync("scontrol", ["-o", "show", "reservation"])
        return {r["ReservationName"]: r for r in parse_scontrol_records(res.stdout) if r.get("ReservationName")}

    def delete_reservation_sync(self, name: str) -> None:
        self.run_sync("scontrol", ["delete", f"ReservationName={_name(name)}"])

    def create_reservation_sync(self, name: str, *, accounts: Sequence[str], nodes: Sequence[str],
                                cores: int | None = None, days: int = 365) -> None:
        """A reservation from now on for `days` days, for the jobs of `accounts`, on `nodes`; with `cores`, only
        that many cores of them, spread evenly over the nodes (the rest stays free for other jobs)."""
        if not accounts or not nodes or not 1 <= days <= 3650 or (
                cores is not None and not len(nodes) <= cores <= 1_000_000):
            raise ValueError(f"a reservation needs accounts, nodes, 1-3650 days and at least one core per node; got "
                             f"{accounts!r}, {nodes!r}, {days!r}, {cores!r}")
        args = ["create", "reservation", f"ReservationName={_name(name)}", "StartTime=now",
                f"Duration={int(days)}-00:00:00", f"Accounts={','.join(_name(a) for a in accounts)}",
                f"Nodes={','.join(_name(n) for n in nodes)}"]
        if cores is not None:  # slurmctld wants one count per node when there are several
            per_node = [cores // len(nodes) + (1 if i < cores % len(nodes) else 0) for i in range(len(nodes))]
            args.append(f"CoreCnt={','.join(str(c) for c in per_node)}")
        self.run_sync("scontrol", args)

    def named_jobs_sync(self, names: Sequence[str]) -> dict[str, list[JobInfo]]:
        """The jobs squeue lists now under each of the job names `names` (sessions are named
        ``aifw-<user>``), in one ``squeue --name``; a name without jobs is left out."""
        wanted = [_name(n) for n in dict.fromkeys(names)]
        if not wanted:
            return {}
        res = self.run_sync("squeue", ["-h", "--name", ",".join(wanted), "-o", "%j|" + SQUEUE_JOB_FORMAT])
        return {n: jobs for n, jobs in parse_named_jobs(res.stdout).items() if n in wanted}

    async def cancel(self, job_id: str, *, user: str | None = None) -> None:
        """Cancel a job (a job Slurm no longer knows counts as cancelled)."""
        _job_id(job_id)
        try:
            await self.run("scancel", [job_id], as_user=user)
        except SlurmRejected as err:
            if not INVALID_JOB.search(str(err)):
                raise

    def cancel_sync(self, job_ids: Sequence[str], *, user: str | None = None) -> None:
        ids = [_job_id(j) for j in job_ids]
        if not ids:
            return
        try:
            self.run_sync("scancel", ids, as_user=user)
        except SlurmRejected as err:
            if not INVALID_JOB.search(str(err)):
                raise

    def job_ids_sync(self, *, timeout_s: float | None = None) -> list[str]:
        """Ids of every job Slurm lists now (all users); an array once, as its base id (what scancel takes)."""
        return parse_job_ids(self.run_sync("squeue", ["-h", "-o", JOB_IDS_FORMAT], timeout_s=timeout_s).stdout)

    async def pending_order(self, partition: str) -> list[str]:
        """Ids of the jobs pending in a partition, in the order Slurm will consider them (priority)."""
        res = await self.run("squeue", ["-h", "-t", "PENDING", "-p", partition, "--sort=-p,i", "-o", "%i"])
        return [line.strip() for line in res.stdout.splitlines() if line.strip()]

    async def start_estimates(self, job_ids: Sequence[str]) -> dict[str, str]:
        """`squeue --start`: Slurm's estimated start of pending jobs."""
        if not job_ids:
            return {}
        res = await self.run("squeue", ["--start", "-h", "-j", ",".join(_job_id(j) for j in job_ids), "-o", "%i|%S"])
        return parse_start_estimates(res.stdout)

    async def user_associations(self, user: str) -> UserAssociations:
        """The user's accounts, default account and those accounts' GPU budgets, in one question to
        slurmctld (its association manager: no slurmdbd round trip). Raises SlurmError when Slurm does not
        answer or holds no accounting data: that is not "no projects"."""
        res = await self.run("scontrol", ["-o", "show", "assoc_mgr", f"users={_user(user)}", "flags=users,assoc"])
        return parse_assoc_mgr_user(res.stdout, user)

    def project_budgets_sync(self, accounts: Sequence[str]) -> dict[str, ProjectBudget]:
        """The GPU budget of each account as slurmctld counts it now (accounts it does not know are left
        out). Raises SlurmError when Slurm does not answer."""
        names = [a for a in accounts if matches(SLURM_NAME, a)]
        if not names:
            return {}
        res = self.run_sync("scontrol", ["-o", "show", "assoc_mgr", f"accounts={','.join(names)}", "flags=assoc"])
        return parse_assoc_mgr_budgets(res.stdout)

    # -- cluster ------------------------------------------------------------------------------
    async def node_address(self, node: str) -> str:
        """The address Slurm reaches a node at (its NodeAddr): node names need not resolve anywhere.
        Falls back to the name when Slurm lists no such node."""
        if not matches(SLURM_NAME, node):
            raise ValueError(f"not a Slurm node name: {node!r}")
        res = await self.run("sinfo", ["-h", "-N", "-n", node, "-o", "%o"])
        return _first_word(res.stdout) or node

    def node_address_sync(self, node: str) -> str:
        if not matches(SLURM_NAME, node):
            raise ValueError(f"not a Slurm node name: {node!r}")
        return _first_word(self.run_sync("sinfo", ["-h", "-N", "-n", node, "-o", "%o"]).stdout) or node

    async def rpc_counts(self) -> RpcCounts:
        """slurmctld's RPC counters (``sdiag``). Two readings give the requests served in between
        (`RpcCounts.since`), without resetting them (``sdiag -r``) under anyone else who reads them; each
        reading is one request itself (REQUEST_STATS_INFO)."""
        return parse_sdiag_rpcs((await self.run("sdiag", [])).stdout)

    def rpc_counts_sync(self) -> RpcCounts:
        return parse_sdiag_rpcs(self.run_sync("sdiag", []).stdout)

    def nodes_sync(self, *, timeout_s: float | None = None) -> list[NodeInfo]:
        """Every (node, partition) pair as sinfo reports it now."""
        return parse_nodes(self.run_sync("sinfo", ["-N", "-h", "-o", NODE_FORMAT], timeout_s=timeout_s).stdout)

    def partitions_sync(self) -> list[PartitionInfo]:
        """Partitions with their limits and nodes (without GPUs in use: see `partitions`)."""
        return parse_partitions(self.run_sync("scontrol", ["show", "partition", "-o"]).stdout,
                                self.run_sync("sinfo", ["-N", "-h", "-o", NODE_FORMAT]).stdout)

    async def partitions(self) -> list[PartitionInfo]:
        parts, nodes, running = await asyncio.gather(
            self.run("scontrol", ["show", "partition", "-o"]),
            self.run("sinfo", ["-N", "-h", "-o", NODE_FORMAT]),
            self.run("squeue", ["-h", "-t", "RUNNING", "-o", "%N|%b"]),
        )
        infos = parse_partitions(parts.stdout, nodes.stdout)
        in_use = parse_gpus_in_use(running.stdout)
        return [
            PartitionInfo(**{**p.__dict__, "gpus_idle": max(0, p.gpus_idle - sum(in_use.get(n, 0) for n in p.node_names))})
            for p in infos
        ]
