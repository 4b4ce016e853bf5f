"""`dask_cluster()`: a Dask cluster whose workers are Slurm jobs when Slurm answers, else local processes.

One call for notebooks that must work both on the AI Factory and on a laptop::

    from aifw.extensions.kernel.dask_cluster import dask_cluster
    from dask.distributed import Client

    cluster = dask_cluster(n_workers=2, partition="cpu", cores=1, memory="1GiB", walltime="00:20:00")
    client = Client(cluster)
    client.wait_for_workers(2, timeout=120)
    ...
    client.close(); cluster.close()          # the Slurm jobs are cancelled here

How it decides (`backend="auto"`, the default):

1. It asks ``sinfo`` through the project's Slurm layer (`aifw.slurm`), with ``SLURM_CONF`` from the
   environment or the ``slurm_conf`` you pass, and waits at most ``timeout`` seconds. If ``sinfo`` is missing, fails, hangs or lists no partition, Slurm "does not
   answer" and you get a :class:`distributed.LocalCluster` on this machine, with a printed note saying why.
2. If Slurm answers, you get a :class:`dask_jobqueue.SLURMCluster`: every worker is one Slurm job
   (``#SBATCH -n 1 --cpus-per-task=<cores>``) that runs ``sys.executable -m distributed.cli.dask_worker``,
   so the workers use exactly the Python environment of your notebook. A partition you name must exist
   (otherwise ``ValueError`` lists the ones that do); a partition whose nodes are all down or drained is
   reported and you get a LocalCluster instead of jobs that would wait forever.
3. The scheduler runs inside your notebook's process. It listens on ``127.0.0.1`` when every node of the
   partition is this machine (single-node mode); otherwise on this machine's address towards the partition's
   nodes, so that workers on every node reach it: the source address of a route to the first node that is
   another machine (its ``NodeAddr`` from Slurm; a UDP ``connect`` picks it, no packet is sent). That is the
   login node's address on the cluster network when the kernel runs there, the node's own address when it
   runs in a session on a compute node. (dask-jobqueue would otherwise bind the address of the default
   route, which the compute nodes may not reach.) Each worker advertises its own address towards the
   scheduler.
4. Which nodes the worker jobs land on is Slurm's choice: each worker is its own job, so on a partition
   with ``LLN=YES`` (least loaded node) successive workers go to different nodes.

``backend="local"`` or ``"slurm"`` (or the environment variable ``AIFW_DASK_BACKEND``) forces a choice;
``"slurm"`` raises ``RuntimeError`` when Slurm does not answer instead of falling back.

What goes into the worker jobs' ``#SBATCH`` lines is checked first, whatever the backend: ``partition`` and
``account`` must be Slurm names (`aifw.names.SLURM_NAME`), ``walltime`` a Slurm time, and each of
``job_extra_directives`` one sbatch option on one line; otherwise ``ValueError`` says which and why.
(The batch script itself is dask-jobqueue's ``SLURMCluster`` job template.)

The returned cluster carries two extra attributes: ``aifw_backend`` (``"slurm"`` or ``"local"``) and
``aifw_reason`` (the sentence that was printed).

The dashboard: inside a JupyterHub session (``JUPYTERHUB_SERVICE_PREFIX`` set, as in every kernel of a
single-user server) the scheduler's dashboard listens on ``127.0.0.1`` of the session's node only, and
``distributed.dashboard.link`` becomes ``<prefix>proxy/127.0.0.1:<port>/status``: the page through the user's
own server (jupyter-server-proxy, whose ``ServerProxy.host_allowlist`` is ``localhost``/``127.0.0.1``), which
dask-labextension's "auto-detect" reads from the kernel's default client. Elsewhere nothing changes (a free
port on every interface, dask's own link). See `dashboard_settings`.
"""
from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

from aifw.names import SLURM_NAME, require
from aifw.slurm import (
    PartitionInfo,
    SlurmClient,
    SlurmError,
    SlurmNotInstalled,
    SlurmTimedOut,
    parse_slurm_minutes,
    partitions_from_nodes,
)
from aifw.slurm.script import LINE_BREAKS

__all__ = [
    "SlurmProbe",
    "Decision",
    "probe_slurm",
    "decide",
    "pick_scheduler_host",
    "check_job_text",
    "DashboardSettings",
    "dashboard_settings",
    "dask_cluster",
]

BACKEND_ENV = "AIFW_DASK_BACKEND"
DEFAULT_TIMEOUT_S = 5.0
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})
HUB_PREFIX_ENV = "JUPYTERHUB_SERVICE_PREFIX"  # set by JupyterHub in the single-user server, and so in its kernels
# distributed's own default for ``distributed.dashboard.link``; any other value was set on purpose and is kept.
DASK_DEFAULT_LINK = "{scheme}://{host}:{port}/status"
# The dashboard's host inside a session: jupyter-server-proxy proxies only the hosts of its allow-list
# (extensions/kernel/jupyter-config/aifw-dask-dashboard.json: localhost and 127.0.0.1).
SESSION_DASHBOARD_HOST = "127.0.0.1"
_URL_PATH = re.compile(r"/(?:[A-Za-z0-9._~!$&'()*+,;=:@%-]+/)*")  # "/user/NAME/", "/user/NAME/SERVER/"


@dataclass(frozen=True)
class SlurmProbe:
    """What ``sinfo`` said: whether Slurm answered, why (not), and its partitions by name
    (`aifw.slurm.PartitionInfo`, each with its `nodes` and `usable_nodes`)."""

    available: bool
    reason: str
    partitions: Mapping[str, PartitionInfo] = field(default_factory=dict)

    @property
    def default_partition(self) -> PartitionInfo | None:
        for p in self.partitions.values():
            if p.default:
                return p
        return next(iter(self.partitions.values()), None)


@dataclass(frozen=True)
class Decision:
    """The outcome of :func:`decide`: ``backend`` is ``"slurm"`` or ``"local"``; ``reason`` is printed."""

    backend: str
    reason: str
    partition: PartitionInfo | None = None
    skip_mem_directive: bool = False


def probe_slurm(
    *, timeout: float = DEFAULT_TIMEOUT_S, slurm_conf: str | None = None, bin_dir: str | None = None
) -> SlurmProbe:
    """Ask ``sinfo`` (at most ``timeout`` seconds) whether Slurm answers and which partitions it has.

    ``slurm_conf``: a ``slurm.conf`` other than the environment's ``SLURM_CONF``; ``bin_dir``: the folder
    of Slurm's commands (default: found on ``PATH``). Never raises: a Slurm that does not answer is a
    probe with ``available=False`` and the reason in words.
    """
    client = SlurmClient(bin_dir=bin_dir, conf=slurm_conf, timeout_s=timeout)
    try:
        nodes = client.nodes_sync()
    except SlurmNotInstalled:
        return SlurmProbe(False, "the Slurm command 'sinfo' is not installed on this machine")
    except SlurmTimedOut:
        return SlurmProbe(False, f"'sinfo' did not answer within {timeout:g} s")
    except SlurmError as err:  # rejected, or "unable to contact slurm controller" and the like
        lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
        return SlurmProbe(False, f"'sinfo' failed: {lines[-1] if lines else err}")
    partitions = partitions_from_nodes(nodes)
    if not partitions:
        return SlurmProbe(False, "'sinfo' answered but lists no partition")
    return SlurmProbe(True, "Slurm answered", partitions)


def _parse_bytes(memory: str | int | float) -> int:
    from dask.utils import parse_bytes

    return int(parse_bytes(memory)) if isinstance(memory, str) else int(memory)


def decide(
    probe: SlurmProbe,
    *,
    backend: str = "auto",
    partition: str | None = None,
    cores: int = 1,
    memory: str | int = "1GiB",
) -> Decision:
    """Choose Slurm or local from a probe and the request (pure).

    Raises ``ValueError`` for requests that are wrong on this cluster (unknown partition, more cores than a
    node has, unknown backend) and ``RuntimeError`` when ``backend="slurm"`` but Slurm does not answer.
    """
    backend = (backend or "auto").strip().lower()
    if backend not in {"auto", "slurm", "local"}:
        raise ValueError(f"backend must be 'auto', 'slurm' or 'local'; you gave {backend!r}")
    if backend == "local":
        return Decision("local", "you asked for a local cluster (backend='local')")
    if not probe.available:
        if backend == "slurm":
            raise RuntimeError(f"backend='slurm' but Slurm does not answer here: {probe.reason}")
        return Decision("local", f"Slurm is not available here ({probe.reason})")

    if partition is None:
        part = probe.default_partition
    else:
        part = probe.partitions.get(partition)
        if part is None:
            known = ", ".join(probe.partitions) or "none"
            raise ValueError(f"Slurm has no partition {partition!r}; the partitions here are: {known}")
    assert part is not None  # probe.available implies at least one partition
    usable = part.usable_nodes
    if not usable:
        states = ", ".join(sorted({n.state for n in part.nodes})) or "no nodes"
        reason = f"partition {part.name!r} has no node that takes jobs (node states: {states})"
        if backend == "slurm":
            raise RuntimeError(f"backend='slurm' but {reason}")
        return Decision("local", reason)

    max_cpus = max(n.cpus for n in usable)
    if max_cpus and cores > max_cpus:
        raise ValueError(
            f"partition {part.name!r} has at most {max_cpus} CPUs per node; you asked for cores={cores} per worker"
        )
    # Slurm refuses --mem above a node's RealMemory; nodes configured without it report 1 MB or so.
    want_mb = -(-_parse_bytes(memory) // 2**20)
    max_mb = max(n.memory_mb for n in usable)
    skip_mem = bool(max_mb) and want_mb > max_mb
    where = f"partition {part.name!r}" + (" (the default)" if partition is None else "")
    reason = f"Slurm answered: each worker is a Slurm job on {where}"
    if skip_mem:
        reason += (
            f"; its nodes declare only {max_mb} MB, so no --mem is requested "
            f"(each worker still limits itself to {memory})"
        )
    return Decision("slurm", reason, partition=part, skip_mem_directive=skip_mem)


def _is_loopback(address: str) -> bool:
    if address.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def pick_scheduler_host(
    node_addresses: Iterable[str], local_names: Iterable[str], route_address: str | None = None
) -> str:
    """Where the scheduler listens (pure).

    ``127.0.0.1`` when every node address is loopback or one of this machine's names/addresses
    (``local_names``); otherwise ``route_address`` (this node's address towards the compute nodes).
    """
    local = {n.lower() for n in local_names if n}
    addrs = [a for a in node_addresses if a]
    if all(_is_loopback(a) or a.lower() in local for a in addrs):
        return "127.0.0.1"
    if route_address and not _is_loopback(route_address):
        return route_address
    raise RuntimeError(
        "the compute nodes are other machines but this node's address towards them could not be found; "
        "pass scheduler_host='<this node's address>'"
    )


def _local_names() -> set[str]:
    names = {socket.gethostname(), socket.getfqdn()}
    for name in list(names):
        try:
            names.update(socket.gethostbyname_ex(name)[2])
        except OSError:
            pass
    return {n for n in names if n}


def _is_ip(address: str) -> bool:
    try:
        ipaddress.ip_address(address)
        return True
    except ValueError:
        return False


def _holds(address: str) -> bool:
    """Whether ``address`` (an IP address) is on one of this machine's interfaces: a socket can bind it."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.bind((address, 0))
        return True
    except OSError:
        return False


def _scheduler_host(node_addresses: list[str]) -> str:
    """`pick_scheduler_host` for these nodes, from this machine's names, the node addresses it holds itself
    (a kernel on a compute node), and its source address towards the first node that is another machine."""
    local = _local_names() | {a for a in dict.fromkeys(node_addresses) if _is_ip(a) and _holds(a)}
    lowered = {n.lower() for n in local}
    remote = next((a for a in node_addresses if not _is_loopback(a) and a.lower() not in lowered), None)
    return pick_scheduler_host(node_addresses, local, _route_address(remote) if remote else None)


def _route_address(target: str) -> str | None:
    """This machine's source address towards ``target`` (a UDP connect sends no packet)."""
    address = None
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect((target, 9))
            address = s.getsockname()[0]
    except OSError:
        with contextlib.suppress(OSError):
            address = socket.gethostbyname(socket.gethostname())
    return address


def check_job_text(
    *,
    partition: str | None = None,
    account: str | None = None,
    walltime: str = "00:30:00",
    job_extra_directives: Iterable[str] = (),
    log_directory: str | None = None,
) -> list[str]:
    """Check what `dask_cluster` hands to dask-jobqueue for the worker jobs' ``#SBATCH`` lines (pure).

    Returns the extra directives as a list; raises ``ValueError`` naming the value that would not be one
    sound ``#SBATCH`` line: a partition or account that is not a Slurm name, a walltime Slurm does not
    read, a directive that is not one sbatch option on one line, a log folder with a line break.
    """
    if partition is not None:
        require(SLURM_NAME, partition, "partition")
    if account is not None:
        require(SLURM_NAME, account, "account")
    if not isinstance(walltime, str) or any(c in walltime for c in LINE_BREAKS):
        raise ValueError(f"walltime {walltime!r} is not a Slurm time such as '00:30:00' or '1-00:00:00'")
    try:
        minutes = parse_slurm_minutes(walltime)
    except ValueError:
        minutes = None
    if minutes is None and walltime.strip().upper() not in {"UNLIMITED", "INFINITE"}:
        raise ValueError(f"walltime {walltime!r} is not a Slurm time such as '00:30:00' or '1-00:00:00'")
    if isinstance(job_extra_directives, str):
        raise ValueError(f"job_extra_directives must be a list of sbatch options, e.g. ['--gres=gpu:1']; "
                         f"you gave the text {job_extra_directives!r}")
    directives = list(job_extra_directives)
    for d in directives:
        if not isinstance(d, str) or any(c in d for c in LINE_BREAKS):
            raise ValueError(f"job_extra_directives: {d!r} is not one line; give one sbatch option per item, "
                             "e.g. ['--gres=gpu:1', '--constraint=a100']")
        if not d.strip().startswith("-"):
            raise ValueError(f"job_extra_directives: {d!r} is not an sbatch option; give the option alone, "
                             "e.g. '--gres=gpu:1' (dask-jobqueue writes the '#SBATCH ' in front)")
    if log_directory is not None and any(c in str(log_directory) for c in LINE_BREAKS):
        raise ValueError(f"log_directory {str(log_directory)!r} contains a line break")
    return directives


@dataclass(frozen=True)
class DashboardSettings:
    """Where the scheduler's dashboard listens (``address``, for ``dashboard_address``) and the link template
    for ``distributed.dashboard.link`` (``None``: dask's own, left alone)."""

    address: str
    link: str | None


def dashboard_settings(env: Mapping[str, str], current_link: str | None = DASK_DEFAULT_LINK) -> DashboardSettings:
    """The dashboard's address and link for this environment (pure).

    In a JupyterHub session (``JUPYTERHUB_SERVICE_PREFIX`` in ``env``, e.g. ``/user/ada/``): the dashboard on
    ``127.0.0.1:<free port>`` and the link ``/user/ada/proxy/127.0.0.1:{port}/status`` (a template for
    distributed: ``{port}`` is filled in by it), which the browser opens through the user's own server and
    jupyter-server-proxy. A ``current_link`` other than dask's default was chosen by the user or the site
    and is kept (``link=None``). Outside a session: a free port on every interface and dask's link, as
    dask-jobqueue and distributed do by default.

    Raises ``ValueError`` for a ``JUPYTERHUB_SERVICE_PREFIX`` that is not a URL path such as ``/user/NAME/``.
    """
    prefix = env.get(HUB_PREFIX_ENV, "")
    if not prefix:
        return DashboardSettings(address=":0", link=None)
    if not _URL_PATH.fullmatch(prefix):
        raise ValueError(f"{HUB_PREFIX_ENV}={prefix!r} is not a URL path such as '/user/NAME/', so the dashboard "
                         f"link cannot be built; unset it outside a JupyterHub session")
    address = f"{SESSION_DASHBOARD_HOST}:0"
    if current_link not in (None, DASK_DEFAULT_LINK):
        return DashboardSettings(address=address, link=None)
    return DashboardSettings(address=address, link=f"{prefix}proxy/{SESSION_DASHBOARD_HOST}:{{port}}/status")


def _default_log_directory() -> str:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return str(base / "aifw" / "dask-worker-logs")


def dask_cluster(
    n_workers: int = 1,
    *,
    partition: str | None = None,
    cores: int = 1,
    memory: str = "1GiB",
    walltime: str = "00:30:00",
    processes: int = 1,
    account: str | None = None,
    backend: str | None = None,
    scheduler_host: str | None = None,
    slurm_conf: str | None = None,
    job_extra_directives: Iterable[str] = (),
    log_directory: str | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
    quiet: bool = False,
    **cluster_kwargs,
):
    """Start a Dask cluster: Slurm jobs as workers when Slurm answers, else a LocalCluster.

    Parameters
    ----------
    n_workers:
        Workers to start now (Slurm: one job per worker; ``cluster.scale(...)``/``cluster.adapt(...)`` later
        as usual). Default 1.
    partition:
        Slurm partition for the worker jobs; ``None`` = Slurm's default partition.
    cores, memory, walltime, processes:
        Per worker job: CPUs (``--cpus-per-task``), memory (``--mem`` and the workers' own limit, e.g.
        ``"1GiB"``), time limit (``-t``, ``"HH:MM:SS"``) and the Dask worker processes that share those
        cores. Small defaults: 1 core, 1 GiB, 30 minutes, 1 process. Locally the same shape runs as
        ``n_workers * processes`` processes of ``cores // processes`` threads.
    account:
        Slurm account (``-A``), if your site needs one.
    backend:
        ``"auto"`` (default, or ``$AIFW_DASK_BACKEND``), ``"slurm"`` (no fallback) or ``"local"``.
    scheduler_host:
        Address the scheduler listens on; default: ``127.0.0.1`` when the partition's nodes are this machine,
        else this node's address towards them.
    slurm_conf:
        Path of a non-default ``slurm.conf``; it is put into ``os.environ['SLURM_CONF']`` so that ``sinfo``,
        ``sbatch``, ``scancel`` and the worker jobs all use it. Default: whatever ``SLURM_CONF`` already says.
    job_extra_directives:
        More ``#SBATCH`` options, one per item, e.g. ``["--gres=gpu:1"]`` (checked: see `check_job_text`).
    log_directory:
        Where the worker jobs write their stdout/stderr (default ``~/.cache/aifw/dask-worker-logs``, so that
        ``slurm-*.out`` files do not pile up next to your notebook).
    timeout:
        Seconds to wait for ``sinfo`` before deciding Slurm does not answer.
    quiet:
        Do not print the note that says which kind of cluster you got and why.
    cluster_kwargs:
        Passed on to ``SLURMCluster`` or ``LocalCluster``.
    """
    if n_workers < 0 or cores < 1 or not 1 <= processes <= cores:
        raise ValueError("n_workers must be >= 0, cores >= 1 and 1 <= processes <= cores")
    extra_directives = check_job_text(partition=partition, account=account, walltime=walltime,
                                      job_extra_directives=job_extra_directives, log_directory=log_directory)
    if slurm_conf:
        os.environ["SLURM_CONF"] = str(slurm_conf)
    backend = backend or os.environ.get(BACKEND_ENV) or "auto"
    if backend.strip().lower() == "local":
        probe = SlurmProbe(False, "not asked")
    else:
        probe = probe_slurm(timeout=timeout)
    decision = decide(probe, backend=backend, partition=partition, cores=cores, memory=memory)
    # A free port for the scheduler's HTTP server/dashboard (several people share a node); in a hub session on
    # 127.0.0.1 only, linked through the user's own server (`dashboard_settings`).
    import dask

    board = dashboard_settings(os.environ, dask.config.get("distributed.dashboard.link", None))
    if board.link is not None:
        dask.config.set({"distributed.dashboard.link": board.link})  # for this kernel: its clusters and clients
    dashboard = board.address

    if decision.backend == "local":
        from distributed import LocalCluster

        cluster = LocalCluster(
            n_workers=n_workers * processes,
            threads_per_worker=cores // processes,
            processes=True,
            memory_limit=memory,
            host=scheduler_host or "127.0.0.1",
            dashboard_address=dashboard,
            **cluster_kwargs,
        )
        note = (
            f"dask_cluster: {decision.reason} - using a LocalCluster on this machine instead "
            f"({n_workers * processes} worker process(es) x {cores // processes} thread(s))."
        )
    else:
        from dask_jobqueue import SLURMCluster

        part = decision.partition
        assert part is not None
        if scheduler_host is None:
            scheduler_host = _scheduler_host([n.address for n in part.usable_nodes])
        cluster = SLURMCluster(
            queue=partition,  # None = the site's default partition
            account=account,
            cores=cores,
            processes=processes,
            memory=memory,
            walltime=walltime,
            python=sys.executable,
            job_name="aifw-dask",
            log_directory=log_directory or _default_log_directory(),
            job_extra_directives=extra_directives,
            job_directives_skip=["--mem"] if decision.skip_mem_directive else [],
            scheduler_options={"host": scheduler_host, "dashboard_address": dashboard},
            **cluster_kwargs,
        )
        if n_workers:
            cluster.scale(jobs=n_workers)
        note = (
            f"dask_cluster: {decision.reason}; scheduler at {cluster.scheduler_address}; "
            f"{n_workers} worker job(s) of {cores} CPU(s), {memory}, {walltime} requested "
            "(they are cancelled by cluster.close())."
        )
    cluster.aifw_backend = decision.backend
    cluster.aifw_reason = decision.reason
    if cluster.dashboard_link:  # empty when the scheduler runs no HTTP server
        note += f" Dashboard: {cluster.dashboard_link}"
    if not quiet:
        print(note)
    return cluster
