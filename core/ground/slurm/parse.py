"""Slurm's words as typed values: job and partition records, node states, time strings, and the pure
parsers of what squeue, sinfo, scontrol and sbatch print. No I/O here."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable

from aifw.names import JOB_ID, SLURM_NAME, matches

# Messages Slurm prints when the controller cannot be reached.
UNAVAILABLE = re.compile(
    r"Unable to contact slurm controller|Socket timed out|Connection refused|"
    r"Zero Bytes were transmitted|slurm_load_\w+ error: .*(?:timed out|contact)|"
    r"Communication connection failure|Slurm backup controller in standby",
    re.I,
)
INVALID_JOB = re.compile(r"Invalid job id", re.I)

PENDING_STATES = {"PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESIZING", "SUSPENDED"}
RUNNING_STATES = {"RUNNING", "COMPLETING", "STAGE_OUT", "SIGNALING"}

#: Node states (``sinfo %t``, lower case, flags stripped) in which a node takes jobs.
NODE_USABLE_STATES = frozenset({"idle", "mix", "alloc", "comp", "resv", "plnd", "futr"})
#: The flags sinfo appends to a short node state (``*`` = not responding, ``~`` = powered off, ...).
NODE_STATE_FLAGS = "*~#!%$@^-+"


def node_state_base(state: str) -> str:
    """``'idle*'`` -> ``'idle'``: sinfo's short state without its flags, lower case."""
    return state.strip().lower().rstrip(NODE_STATE_FLAGS)


def node_takes_jobs(state: str) -> bool:
    """Whether a node in this sinfo state takes jobs (a usable state, and responding)."""
    state = state.strip().lower()
    return not state.endswith("*") and node_state_base(state) in NODE_USABLE_STATES


class SlurmError(Exception):
    """Base of the Slurm client's errors."""


class SlurmUnavailable(SlurmError):
    """Slurm did not answer in time (controller down or overloaded)."""


class SlurmTimedOut(SlurmUnavailable):
    """A command gave no answer within its time limit (a kind of SlurmUnavailable)."""


class SlurmNotInstalled(SlurmError):
    """A command (Slurm's or the exec prefix) cannot be run here: a configuration problem."""


class SlurmRejected(SlurmError):
    """Slurm answered with an error; the message is Slurm's own words."""


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
class NodeInfo:
    """One node of one partition, as ``sinfo -N`` reports it (NODE_FORMAT)."""

    name: str
    partition: str
    state: str  # sinfo's short state, lower case, flags kept ('idle', 'mix', 'down*', ...)
    cpus: int = 0
    cpus_idle: int = 0
    memory_mb: int = 0
    gpus: int = 0
    address: str = ""  # NodeAddr (the node's name when Slurm has no other)
    default_partition: bool = False  # the partition is Slurm's default (sinfo marks it with '*')

    @property
    def takes_jobs(self) -> bool:
        return node_takes_jobs(self.state)


@dataclass(frozen=True)
class PartitionInfo:
    """A partition as Slurm reports it right now."""

    name: str
    available: bool = True
    default: bool = False
    max_time_minutes: int | None = None  # None = UNLIMITED
    cpus_per_node: int = 0
    cpus_idle: int = 0
    memory_mb_per_node: int = 0
    gpus_per_node: int = 0
    gpus_idle: int = 0
    nodes: tuple[NodeInfo, ...] = field(default_factory=tuple)

    @property
    def node_names(self) -> tuple[str, ...]:
        return tuple(n.name for n in self.nodes)

    @property
    def usable_nodes(self) -> tuple[NodeInfo, ...]:
        return tuple(n for n in self.nodes if n.takes_jobs)


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


#: ``sinfo -N -h -o NODE_FORMAT``: one line per (node, partition).
NODE_FORMAT = "%N|%P|%t|%c|%C|%m|%G|%a|%o"


def _int(text: str) -> int:
    digits = re.sub(r"\D", "", text.split("(")[0])
    return int(digits) if digits else 0


def parse_nodes(text: str) -> list[NodeInfo]:
    """``sinfo -N -h -o NODE_FORMAT`` lines into NodeInfo (lines of another shape are skipped)."""
    out = []
    for line in text.splitlines():
        bits = [b.strip() for b in line.strip().split("|")]
        if len(bits) != 9 or not bits[0] or not bits[1]:
            continue
        node, pname, state, cpus, cpus_aio, mem, gres, _avail, addr = bits
        try:
            idle = int(cpus_aio.split("/")[1])
        except (IndexError, ValueError):
            idle = 0
        out.append(NodeInfo(
            name=node, partition=pname.rstrip("*"), state=state.lower(), cpus=_int(cpus), cpus_idle=idle,
            memory_mb=_int(mem), gpus=parse_gres_gpus(gres), address=addr or node,
            default_partition=pname.endswith("*"),
        ))
    return out


def parse_partitions(scontrol_text: str, nodes_text: str) -> list[PartitionInfo]:
    """Merge `scontrol show partition -o` with `sinfo -N -h -o NODE_FORMAT` into PartitionInfo records.
    Idle GPUs count every GPU of a usable node; callers subtract those in use (`parse_gpus_in_use`)."""
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
    for node in parse_nodes(nodes_text):
        entry = parts.setdefault(node.partition, {"name": node.partition, "available": True,
                                                  "default": node.default_partition, "max_time_minutes": None,
                                                  "nodes": []})
        entry["nodes"].append(node)
    return [_partition(p.pop("nodes"), **p) for p in parts.values()]


def _partition(nodes: list[NodeInfo], **limits) -> PartitionInfo:
    """A partition of these nodes, with the sizes and idle counts they add up to."""
    usable = [n for n in nodes if n.takes_jobs]
    return PartitionInfo(
        **limits,
        cpus_per_node=max((n.cpus for n in nodes), default=0),
        cpus_idle=sum(n.cpus_idle for n in usable),
        memory_mb_per_node=max((n.memory_mb for n in nodes), default=0),
        gpus_per_node=max((n.gpus for n in nodes), default=0),
        gpus_idle=sum(n.gpus for n in usable),
        nodes=tuple(nodes),
    )


def partitions_from_nodes(nodes: Iterable[NodeInfo]) -> dict[str, PartitionInfo]:
    """Group `sinfo -N` records (`parse_nodes`) into partitions by name, in sinfo's order. `default` is
    sinfo's '*' mark; availability and time limits are scontrol's, so they keep their defaults here (use
    `parse_partitions` for those)."""
    groups: dict[str, list[NodeInfo]] = {}
    for node in nodes:
        groups.setdefault(node.partition, []).append(node)
    return {name: _partition(ns, name=name, default=any(n.default_partition for n in ns))
            for name, ns in groups.items()}


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


def parse_named_jobs(text: str) -> dict[str, list[JobInfo]]:
    """`squeue -h -o '%j|%i|%T|%r|%N|%P|%S'` lines: the jobs by job name (a name may have several jobs)."""
    named: dict[str, list[JobInfo]] = {}
    for line in text.splitlines():
        name, sep, rest = line.strip().partition("|")
        if not sep:
            continue
        named.setdefault(name, []).extend(parse_squeue_jobs(rest))
    return {n: jobs for n, jobs in named.items() if jobs}


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
    if not matches(JOB_ID, job_id):
        raise SlurmRejected(f"sbatch printed no job id: {output.strip()[:200]!r}")
    return job_id


#: ``squeue -h -o JOB_IDS_FORMAT``: one line per job, an array as its base job id (``%F``).
JOB_IDS_FORMAT = "%F"


def parse_job_ids(text: str) -> list[str]:
    """``squeue -h -o JOB_IDS_FORMAT`` lines: the job ids, each once (an array's tasks share one id), in
    squeue's order. A line that is no job id is an error, never skipped."""
    out: list[str] = []
    for line in text.split():
        if not matches(JOB_ID, line):
            raise SlurmRejected(f"squeue printed {line[:60]!r} where a job id belongs")
        if line not in out:
            out.append(line)
    return out


def parse_start_estimates(text: str) -> dict[str, str]:
    """``squeue --start -h -o '%i|%S'`` lines: job id -> estimated start (jobs without one left out)."""
    out = {}
    for line in text.splitlines():
        bits = line.strip().split("|")
        if len(bits) == 2 and bits[1] not in {"N/A", "(null)"}:
            out[bits[0]] = bits[1]
    return out


def first_node(nodelist: str) -> str:
    """The first node of a Slurm node list such as ``node[1-2]``, ``gpu[03-04,07],cpu1`` or ``r[1-2]n[5-6]``
    (what ``scontrol show hostnames`` would print first). Raises ValueError for text that is not a node list."""
    text = nodelist.strip() if isinstance(nodelist, str) else ""
    name, i = [], 0
    while i < len(text) and text[i] != ",":
        if text[i] == "[":
            end = text.find("]", i)
            if end < 0:
                raise ValueError(f"node list {nodelist!r} has a '[' without its ']'")
            first = text[i + 1:end].split(",")[0].split("-")[0]
            if not first.isdigit():
                raise ValueError(f"node list {nodelist!r}: {text[i:end + 1]!r} is not a range of numbers")
            name.append(first)
            i = end + 1
        else:
            name.append(text[i])
            i += 1
    node = "".join(name)
    if not matches(SLURM_NAME, node):
        raise ValueError(f"{nodelist!r} is not a Slurm node list such as 'node[1-2]'")
    return node


def tasks_per_node(spec: str, node_id: int) -> int:
    """Tasks of a step on node ``node_id`` from ``SLURM_STEP_TASKS_PER_NODE`` (e.g. ``2(x3),1``: 2 tasks on
    each of the first three nodes, 1 on the fourth)."""
    counts: list[int] = []
    for part in spec.split(","):
        number, _, times = part.strip().partition("(x")
        try:
            counts += [int(number)] * int(times.rstrip(")") or 1)
        except ValueError:
            raise ValueError(f"SLURM_STEP_TASKS_PER_NODE {spec!r} is not a list like '2(x3),1'") from None
    if not counts:
        raise ValueError(f"SLURM_STEP_TASKS_PER_NODE {spec!r} names no node")
    return counts[min(max(node_id, 0), len(counts) - 1)]


@dataclass(frozen=True)
class RpcCounts:
    """slurmctld's RPC counters (``sdiag``): how many requests of each message type, and from each user, it
    has served since its start or since the last ``sdiag -r``. Two readings give the requests in between."""

    by_type: dict[str, int] = field(default_factory=dict)
    by_user: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.by_type.values())

    def since(self, earlier: "RpcCounts") -> "RpcCounts":
        """The requests served between `earlier` and this reading (a counter lower than before means the
        counters were reset in between: it counts from zero)."""
        def diff(now: dict[str, int], then: dict[str, int]) -> dict[str, int]:
            out = {k: v - then.get(k, 0) if v >= then.get(k, 0) else v for k, v in now.items()}
            return {k: v for k, v in out.items() if v}

        return RpcCounts(diff(self.by_type, earlier.by_type), diff(self.by_user, earlier.by_user))


_SDIAG_TYPE = re.compile(r"^\s*([A-Z][A-Z0-9_]+)\s+\(\s*\d+\)\s+count:(\d+)\b")
_SDIAG_USER = re.compile(r"^\s*(\S+?)\s*\(\s*\d+\)\s+count:(\d+)\b")


def parse_sdiag_rpcs(text: str) -> RpcCounts:
    """``sdiag``'s "Remote Procedure Call statistics by message type" and "... by user" sections into
    counts (lines such as ``REQUEST_JOB_INFO  ( 2003) count:31  ave_time:367 ...``). Text without the
    first section is no sdiag output: an error, never "no requests"."""
    section = ""
    by_type: dict[str, int] = {}
    by_user: dict[str, int] = {}
    seen = False
    for line in text.splitlines():
        if line.startswith("Remote Procedure Call statistics by message type"):
            section, seen = "type", True
            continue
        if line.startswith("Remote Procedure Call statistics by user"):
            section = "user"
            continue
        if line and not line[0].isspace():
            section = ""  # any other heading ends the section
            continue
        if section == "type" and (m := _SDIAG_TYPE.match(line)):
            by_type[m.group(1)] = by_type.get(m.group(1), 0) + int(m.group(2))
        elif section == "user" and (m := _SDIAG_USER.match(line)):
            by_user[m.group(1)] = by_user.get(m.group(1), 0) + int(m.group(2))
    if not seen:
        raise SlurmRejected(f"sdiag printed no RPC statistics: {text.strip()[:200]!r}")
    return RpcCounts(by_type, by_user)
