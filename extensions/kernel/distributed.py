"""Where the processes of a torch.distributed run meet when Slurm starts them on several nodes.

``torch.distributed.init_process_group(init_method="env://")`` reads variables that ``srun`` does not set:
``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` (srun says ``SLURM_PROCID``, ``SLURM_NTASKS``, ``SLURM_LOCALID``), and
``MASTER_ADDR``/``MASTER_PORT``, the address and port where rank 0 listens. On a cluster two more matter:
gloo and NCCL must talk on the interface that reaches the other nodes (``GLOO_SOCKET_IFNAME``,
``NCCL_SOCKET_IFNAME``); left alone, gloo may pick loopback and every other rank fails after its timeout.

Two calls, one on each side of ``srun``::

    # the launcher (a notebook or a batch script inside an allocation, e.g. sbatch -N2 -n2):
    env = os.environ | rendezvous_env()          # MASTER_ADDR = the first node's NodeAddr, MASTER_PORT
    subprocess.run(["srun", ..., sys.executable, "train.py"], env=env)

    # every process, before init_process_group:
    os.environ.update(process_env(os.environ))    # RANK... from SLURM_*, the socket interface of this node

Node names need not resolve anywhere (they do not in the sandbox, nor on many sites): MASTER_ADDR is the
first node's ``NodeAddr`` as Slurm knows it (`aifw.slurm.SlurmClient.node_address_sync`). The interface is
found on each node at run time from its routing table (``/proc/net/route``), never assumed to be ``eth0``.
What you set yourself (``MASTER_PORT=...`` before launching, ``GLOO_SOCKET_IFNAME=...``) is kept.

In a batch script, ``eval "$(python -m aifw.extensions.kernel.distributed)"`` exports the rendezvous before
``srun``.

Pure parts: `first_node`, `tasks_per_node`, `rank_env`, `port_for_job`, `parse_routes`, `route_interface`,
`export_lines`.
"""
from __future__ import annotations

import argparse
import ipaddress
import os
import shlex
import socket
import sys
from dataclasses import dataclass
from typing import Mapping

from aifw.names import SLURM_NAME, matches
from aifw.slurm import SlurmClient, SlurmError, first_node, tasks_per_node

__all__ = [
    "Route",
    "first_node",
    "tasks_per_node",
    "rank_env",
    "port_for_job",
    "parse_routes",
    "route_interface",
    "socket_interface",
    "rendezvous_env",
    "process_env",
    "export_lines",
    "main",
]

PORT_BASE = 20000
PORT_SPAN = 12000  # job-derived ports lie in 20000-31999: above the usual services, below Linux's ephemeral ports (32768-)
ROUTE_TABLE = "/proc/net/route"
SOCKET_IFNAME_VARIABLES = ("GLOO_SOCKET_IFNAME", "NCCL_SOCKET_IFNAME")


# --------------------------------------------------------------------------- Slurm's words (pure)
def rank_env(environ: Mapping[str, str]) -> dict[str, str]:
    """``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE`` of a process that srun started, from its
    ``SLURM_*`` variables; ``{}`` when a launcher already set ``RANK`` (torchrun) or srun did not start it."""
    if "RANK" in environ or "SLURM_PROCID" not in environ:
        return {}
    node_id = environ.get("SLURM_NODEID", "0")
    if not node_id.isdigit():
        raise ValueError(f"SLURM_NODEID {node_id!r} is not a node index")
    per_node = environ.get("SLURM_STEP_TASKS_PER_NODE") or environ.get("SLURM_TASKS_PER_NODE") or "1"
    return {
        "RANK": environ["SLURM_PROCID"],
        "WORLD_SIZE": environ.get("SLURM_STEP_NUM_TASKS") or environ.get("SLURM_NTASKS", "1"),
        "LOCAL_RANK": environ.get("SLURM_LOCALID", "0"),
        "LOCAL_WORLD_SIZE": str(tasks_per_node(per_node, int(node_id))),
    }


def port_for_job(job_id: str) -> int:
    """A rendezvous port that every node of job ``job_id`` computes alike (``20000 + id % 12000``)."""
    base = str(job_id).split("_")[0]  # an array task "123_4" rendezvous like its job
    if not base.isdigit():
        raise ValueError(f"not a Slurm job id: {job_id!r}")
    return PORT_BASE + int(base) % PORT_SPAN


# --------------------------------------------------------------------------- the routing table (pure)
@dataclass(frozen=True)
class Route:
    """One line of ``/proc/net/route``: traffic to ``network`` leaves through ``interface``."""

    interface: str
    network: ipaddress.IPv4Network
    metric: int = 0


def _hex_address(text: str, byteorder: str) -> ipaddress.IPv4Address:
    return ipaddress.IPv4Address(int(text, 16).to_bytes(4, byteorder))


def parse_routes(text: str, *, byteorder: str = sys.byteorder) -> list[Route]:
    """The routes of ``/proc/net/route`` (header and lines of another shape skipped; routes that are not up,
    flag RTF_UP, left out). The file prints each address as 8 hex digits of a number in the machine's byte
    order (``byteorder``)."""
    routes = []
    for line in text.splitlines():
        bits = line.split()
        if len(bits) < 8 or bits[0] == "Iface":
            continue
        try:
            destination, mask = _hex_address(bits[1], byteorder), _hex_address(bits[7], byteorder)
            flags, metric = int(bits[3], 16), int(bits[6])
            network = ipaddress.IPv4Network(f"{destination}/{mask}", strict=False)
        except ValueError:
            continue
        if flags & 0x1:  # RTF_UP
            routes.append(Route(bits[0], network, metric))
    return routes


def route_interface(routes: list[Route], address: str) -> str | None:
    """The interface that carries traffic to ``address``: the longest matching prefix, then the lowest metric
    (as the kernel chooses in its main table). ``None`` when no route matches."""
    target = ipaddress.IPv4Address(address)
    matching = [r for r in routes if target in r.network]
    if not matching:
        return None
    return min(matching, key=lambda r: (-r.network.prefixlen, r.metric)).interface


# --------------------------------------------------------------------------- this machine (I/O)
def socket_interface(master_addr: str, *, route_table: str = ROUTE_TABLE) -> str:
    """The network interface of this node that reaches ``master_addr`` (an IPv4 address, or a name this node
    resolves), read from the routing table now. Loopback addresses are ``lo``. Rank 0's own address matches its subnet's route, so every
    rank, rank 0 included, gets the interface the others reach it on. RuntimeError when no route matches."""
    try:
        address = ipaddress.IPv4Address(master_addr)
    except ValueError:  # a name, e.g. torchrun's "localhost"
        try:
            address = ipaddress.IPv4Address(socket.gethostbyname(master_addr))
        except OSError:
            raise RuntimeError(f"MASTER_ADDR {master_addr!r} does not resolve on this node ({socket.gethostname()}); "
                               "give the master node's address instead (node names may resolve nowhere)") from None
    if address.is_loopback:
        return "lo"
    try:
        with open(route_table, encoding="ascii") as fh:
            routes = parse_routes(fh.read())
    except OSError as err:
        raise RuntimeError(f"cannot read the routing table {route_table} ({err.strerror}); set "
                           "GLOO_SOCKET_IFNAME (and NCCL_SOCKET_IFNAME) to the interface that reaches "
                           f"{master_addr}") from None
    interface = route_interface(routes, str(address))
    if interface is None:
        raise RuntimeError(f"this node ({socket.gethostname()}) has no route to MASTER_ADDR {master_addr}; "
                           "set GLOO_SOCKET_IFNAME (and NCCL_SOCKET_IFNAME) to the interface that reaches it")
    return interface


def _holds(address: str) -> bool:
    """Whether this machine has ``address`` on one of its interfaces (a socket can bind it)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind((address, 0))
        return True
    except OSError:
        return False


def _free_port(address: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((address, 0))
        return s.getsockname()[1]


def rendezvous_env(environ: Mapping[str, str] | None = None, *, client: SlurmClient | None = None) -> dict[str, str]:
    """``MASTER_ADDR`` and ``MASTER_PORT`` for the processes of an srun step in this allocation.

    MASTER_ADDR is the first node's NodeAddr (where srun starts rank 0); MASTER_PORT is the environment's when
    set, else a free port when this machine is that node (a notebook or batch script on the first node), else
    `port_for_job`. Raises RuntimeError outside an allocation or when Slurm cannot say the node's address.
    """
    environ = os.environ if environ is None else environ
    nodelist = environ.get("SLURM_JOB_NODELIST") or environ.get("SLURM_NODELIST")
    job_id = environ.get("SLURM_JOB_ID")
    if not nodelist or not job_id:
        raise RuntimeError("not inside a Slurm allocation (no SLURM_JOB_NODELIST): start the run in a job with "
                           "several tasks, e.g. sbatch -N2 -n2, or launch with torchrun on this machine")
    node = first_node(nodelist)
    client = client or SlurmClient(bin_dir=None)
    try:
        address = client.node_address_sync(node)
    except SlurmError as err:
        raise RuntimeError(f"Slurm could not say the address of node {node} ({err}); set MASTER_ADDR yourself") from None
    if environ.get("MASTER_PORT"):
        port = environ["MASTER_PORT"]
    else:
        port = str(_free_port(address) if _holds(address) else port_for_job(job_id))
    return {"MASTER_ADDR": address, "MASTER_PORT": port}


def process_env(environ: Mapping[str, str] | None = None, *, route_table: str = ROUTE_TABLE) -> dict[str, str]:
    """What one process adds to its environment before ``init_process_group``: `rank_env` under srun, and
    ``GLOO_SOCKET_IFNAME``/``NCCL_SOCKET_IFNAME`` set to `socket_interface` (MASTER_ADDR) unless already set.
    Only keys the environment lacks are returned."""
    environ = os.environ if environ is None else environ
    out = rank_env(environ)
    master = environ.get("MASTER_ADDR")
    missing = [name for name in SOCKET_IFNAME_VARIABLES if not environ.get(name)]
    if master and missing:
        interface = socket_interface(master, route_table=route_table)
        out.update({name: interface for name in missing})
    return {k: v for k, v in out.items() if k not in environ}


def export_lines(env: Mapping[str, str]) -> str:
    """``export NAME=value`` lines (values shell-quoted) for a batch script's ``eval``."""
    return "".join(f"export {name}={shlex.quote(value)}\n" for name, value in env.items())


def main(argv: list[str] | None = None) -> int:
    """``python -m aifw.extensions.kernel.distributed``: print `rendezvous_env` as export lines, for
    ``eval "$(...)"`` in a batch script before ``srun``."""
    parser = argparse.ArgumentParser(
        prog="python -m aifw.extensions.kernel.distributed",
        description="Print 'export MASTER_ADDR=... MASTER_PORT=...' for an srun step of this Slurm allocation "
                    "(use: eval \"$(python -m aifw.extensions.kernel.distributed)\").")
    parser.parse_args(argv)
    try:
        env = rendezvous_env()
    except (RuntimeError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    sys.stdout.write(export_lines(env))
    return 0


if __name__ == "__main__":
    sys.exit(main())
