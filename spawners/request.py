"""The session request: user options checked once against the site policy and the live cluster into a
`SessionRequest`. This is the trust boundary: everything downstream (batch script, Slurm commands, the
spawner's state) takes only a `SessionRequest`.

Besides the site and the live partitions, a request is checked against the user's projects as Slurm's
accounting reports them (`UserProjects`): the account must be one of the user's associations, and a GPU
request must fit what is left of the project's GPU-hours budget (the named account, else the user's
default one). When accounting does not answer, the site file's accounts are offered and no budget is
checked here (Slurm still enforces both at submit and while the job waits).

On a site with several clusters (site `clusters`) the request names its cluster first; the partition,
the account and the reservation are then checked against that cluster (its partitions, its `slurm`
settings, the user's associations there), and `live` is that cluster's live state.

Three ways in, each validated once: the spawn form (`form_to_options` turns its strings into typed values,
then `validate_options`), REST `user_options` (`validate_options`, which takes typed JSON values only),
and the spawner's state read back from the hub's database after a restart (`request_from_state`).

Documented `user_options` keys and types:

==================  =====  ===================================================================
key                 type   meaning
==================  =====  ===================================================================
cluster             str    the cluster, on a site with several (site ``clusters``; "" = the first)
partition           str    Slurm partition (one the site offers, on that cluster)
cpus                int    CPUs for the session (``--cpus-per-task``)
memory_gb           int    memory in GB (``--mem``)
gpus                int    GPUs (``--gres=gpu:N``); 0 on partitions without GPUs
runtime_minutes     int    walltime in minutes (``--time``)
account             str    Slurm account / project to bill ("" = the user's default)
reservation         str    Slurm reservation, e.g. a training event ("" = none)
environment         str    named software environment from the site file
stop_if_unused_s    int    stop the session when no one has used it this many seconds after it
                           became ready (0 = never; a class pre-start sets it, see aifw.classroom)
==================  =====  ===================================================================
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any, Mapping

from aifw.names import SLURM_NAME, matches
from aifw.site import Cluster, Partition, Site
from aifw.slurm import PartitionInfo, ProjectBudget

INT_KEYS = ("cpus", "memory_gb", "gpus", "runtime_minutes", "stop_if_unused_s")
STR_KEYS = ("cluster", "partition", "account", "reservation", "environment")
OPTION_KEYS = STR_KEYS[:2] + INT_KEYS + STR_KEYS[2:]
MAX_TEXT = 64
DEFAULT_CPUS = 1
DEFAULT_MEMORY_GB = 1
#: The shortest and longest wait before an unused session stops (`stop_if_unused_s`; 0 = never).
UNUSED_STOP_RANGE_S = (10, 7 * 86400)


class OptionsError(ValueError):
    """The request is not acceptable; `problems` lists each thing to fix, in words for the user."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("; ".join(problems))


@dataclass(frozen=True)
class SessionRequest:
    """A validated request. Every field is safe to put in a batch script (names are from allowed sets)."""

    partition: str
    cpus: int
    memory_gb: int
    gpus: int
    runtime_minutes: int
    account: str = ""
    reservation: str = ""
    environment: str = "default"
    gpu_type: str | None = None
    stop_if_unused_s: int = 0  # 0: the session runs until it is stopped or its walltime ends
    cluster: str = ""  # the cluster on a site with several; "" on a site with one

    def as_user_options(self) -> dict[str, Any]:
        """The request as JSON-able `user_options` (what JupyterHub stores, and the spawner's state)."""
        d = asdict(self)
        d.pop("gpu_type")
        if not d["stop_if_unused_s"]:
            d.pop("stop_if_unused_s")
        if not d["cluster"]:
            d.pop("cluster")
        return d


@dataclass(frozen=True)
class UserProjects:
    """A user's projects (Slurm accounts) as accounting reports them now.

    `known`: the associations were read from Slurm (then `accounts` is exactly the user's associations,
    the default first); False: accounting did not answer, and `accounts` is what the site file offers.
    `budgets`: each account's GPU budget as slurmctld counts it; None when it could not be read."""

    accounts: tuple[str, ...] = ()
    default: str = ""
    budgets: Mapping[str, ProjectBudget] | None = None
    known: bool = False

    @classmethod
    def from_slurm(cls, accounts: list[str], default: str,
                   budgets: Mapping[str, ProjectBudget] | None) -> "UserProjects":
        """The associations Slurm listed, the default one first (kept only when it is one of them)."""
        default = default if default in accounts else ""
        ordered = ([default] if default else []) + [a for a in accounts if a != default]
        return cls(tuple(ordered), default, budgets, known=True)

    @classmethod
    def from_site(cls, site: Site, user: str, cluster: str = "") -> "UserProjects":
        """What the site file says when accounting cannot be asked: the cluster's offered accounts ("": the
        default cluster's), then the projects it puts the user in (the first is their default there);
        budgets unknown."""
        mine = site.projects_of(user)
        return cls(tuple(offered_accounts(site, mine, cluster)), default=mine[0] if mine else "", known=False)

    def budget(self, account: str) -> ProjectBudget | None:
        """The GPU budget of `account` ("" = the default), or None when unknown."""
        name = account or self.default
        if not name or self.budgets is None:
            return None
        return self.budgets.get(name)


@dataclass(frozen=True)
class Limits:
    """What one session may ask for on a partition: the site's policy capped by what Slurm has."""

    max_cpus: int
    max_memory_gb: int
    max_gpus: int
    max_runtime_minutes: int


def limits_for(part: Partition, live: PartitionInfo | None) -> Limits:
    cpus, mem, gpus, runtime = part.max_cpus, part.max_memory_gb, part.max_gpus, part.max_runtime_minutes
    if live is not None:
        if live.cpus_per_node:
            cpus = min(cpus, live.cpus_per_node)
        if live.memory_mb_per_node:
            mem = min(mem, max(1, live.memory_mb_per_node // 1024))
        gpus = min(gpus, live.gpus_per_node)
        if live.max_time_minutes is not None:
            runtime = min(runtime, live.max_time_minutes)
    return Limits(cpus, mem, gpus, runtime)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _as_int(key: str, value: Any, problems: list[str]) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    problems.append(f"{key} must be a whole number, not {_show(value)}")
    return None


def _as_text(key: str, value: Any, problems: list[str]) -> str | None:
    if not isinstance(value, str):
        problems.append(f"{key} must be text, not {_show(value)}")
        return None
    if len(value) > MAX_TEXT:
        problems.append(f"{key} is too long ({len(value)} characters; names have at most {MAX_TEXT})")
        return None
    return value.strip()


def _in_range(key: str, value: int, low: int, high: int, unit: str, where: str, problems: list[str]) -> None:
    if value < low or value > high:
        if high < low:
            problems.append(f"{where} offers no {unit}; you asked for {value}")
        else:
            problems.append(f"{where} allows {low} to {high} {unit}; you asked for {value}")


def validate_options(
    raw: Mapping[str, Any] | None,
    site: Site,
    live: Mapping[str, PartitionInfo] | None = None,
    *,
    projects: UserProjects | None = None,
) -> SessionRequest:
    """Check user options (JSON values: numbers are ints, names are text). `live` maps partition name →
    what the requested cluster's Slurm reports now (None: it did not answer; the site policy alone applies).
    `projects`: the user's projects and budgets on that cluster (None: only the site file's accounts are
    offered).
    Raises OptionsError listing every problem; returns a SessionRequest otherwise."""
    raw = dict(raw or {})
    problems: list[str] = []
    unknown = sorted(k for k in raw if k not in OPTION_KEYS)
    if unknown:
        shown = ", ".join(_show(k) for k in unknown[:5])
        problems.append(f"unknown option(s) {shown}; allowed: {', '.join(OPTION_KEYS)}")

    text: dict[str, str] = {}
    for key in STR_KEYS:
        if key in raw and raw[key] is not None:
            v = _as_text(key, raw[key], problems)
            if v is not None:
                text[key] = v
    nums: dict[str, int] = {}
    for key in INT_KEYS:
        if key in raw and raw[key] is not None and raw[key] != "":
            v = _as_int(key, raw[key], problems)
            if v is not None:
                nums[key] = v

    # The cluster, then the partition: everything else is checked against them.
    cluster = _cluster_of(text.get("cluster", ""), site, problems)
    offered = [p.name for p in cluster.visible_partitions]
    pname = text.get("partition") or cluster.default_partition.name
    part = cluster.partition(pname)
    if part is None or part.hidden:
        problems.append(_not_offered(pname, cluster, site, offered))
        raise OptionsError(problems)
    live_part = live.get(pname) if live is not None else None
    if live is not None and live_part is None:
        problems.append(f"partition {pname} is not in Slurm right now; choose one of: {', '.join(sorted(live))}")
        raise OptionsError(problems)
    if live_part is not None and not live_part.available:
        problems.append(f"partition {pname} is down in Slurm right now; choose another one")
    lim = limits_for(part, live_part)
    where = f"partition {pname}"

    cpus = nums.get("cpus", DEFAULT_CPUS)
    _in_range("cpus", cpus, 1, lim.max_cpus, "CPUs", where, problems)
    mem = nums.get("memory_gb", min(DEFAULT_MEMORY_GB, lim.max_memory_gb))
    _in_range("memory_gb", mem, 1, lim.max_memory_gb, "GB of memory", where, problems)
    gpus = nums.get("gpus", 0)
    if gpus and lim.max_gpus == 0:
        with_gpus = [p.name for p in cluster.visible_partitions if p.max_gpus > 0]
        hint = f"; GPUs are on: {', '.join(with_gpus)}" if with_gpus else ""
        problems.append(f"{where} has no GPUs; you asked for {gpus}{hint}")
    elif gpus < 0 or gpus > lim.max_gpus:
        problems.append(f"{where} allows at most {lim.max_gpus} GPUs per node; you asked for {gpus}")
    runtime = nums.get("runtime_minutes", min(part.default_runtime_minutes, lim.max_runtime_minutes))
    if runtime < 1:
        problems.append(f"runtime_minutes must be at least 1; you asked for {runtime}")
    elif runtime > lim.max_runtime_minutes:
        problems.append(
            f"{where} allows at most {lim.max_runtime_minutes} minutes of walltime; you asked for {runtime}"
        )

    account = text.get("account", "")
    projects = projects if projects is not None else UserProjects(tuple(offered_accounts(site, cluster=cluster.name)))
    accounts = list(projects.accounts)
    if account and account not in accounts:
        if projects.known:
            yours = f"your projects: {', '.join(accounts)}" if accounts else (
                "you are in no project; ask an administrator to add you to one")
            problems.append(f"you are not a member of project {_show(account)} (you have no Slurm association "
                            f"with it); {yours}")
        else:
            allowed = ", ".join(accounts) or "none are configured"
            problems.append(f"account {_show(account)} is not offered; allowed: {allowed}")
    if not account and cluster.slurm.account_required:
        problems.append(f"an account (project) is required; choose one of: {', '.join(accounts)}")
    qos_problem = _qos_refusal(site, account or projects.default, gpus, runtime)
    if qos_problem and not problems:
        problems.append(qos_problem)
    budget = projects.budget(account) if account in accounts or not account else None
    refusal = budget.refusal(gpus, runtime) if budget is not None and not problems else None
    if refusal:
        problems.append(f"{refusal}; ask for fewer GPUs or a shorter walltime, or choose another project")
    unused = nums.get("stop_if_unused_s", 0)
    low, high = UNUSED_STOP_RANGE_S
    if unused and not low <= unused <= high:
        problems.append(f"stop_if_unused_s must be 0 (never) or between {low} and {high} seconds; you asked for {unused}")
    reservation = text.get("reservation", "")
    if reservation and reservation not in cluster.slurm.reservations:
        allowed = ", ".join(cluster.slurm.reservations) or "none are configured"
        problems.append(f"reservation {_show(reservation)} is not offered; allowed: {allowed}")
    env_name = text.get("environment") or site.environments[0].name
    if site.environment(env_name) is None:
        problems.append(
            f"environment {_show(env_name)} is not offered; choose one of: "
            f"{', '.join(e.name for e in site.environments)}"
        )
    if problems:
        raise OptionsError(problems)
    return SessionRequest(
        partition=pname,
        cpus=cpus,
        memory_gb=mem,
        gpus=gpus,
        runtime_minutes=runtime,
        account=account,
        reservation=reservation,
        environment=env_name,
        gpu_type=part.gpu_type if gpus else None,
        stop_if_unused_s=unused,
        cluster=cluster.name if site.several_clusters else "",
    )


def _cluster_of(name: str, site: Site, problems: list[str]) -> Cluster:
    """The cluster a request names ("": the default one). Raises OptionsError for a name the site lacks."""
    cluster = site.cluster(name)
    if cluster is not None:
        return cluster
    names = [c.name for c in site.all_clusters]
    if site.several_clusters:
        problems.append(f"cluster {_show(name)} is not offered here; choose one of: {', '.join(names)}")
    else:
        problems.append(f"cluster {_show(name)} is not offered here: this hub has one cluster; leave cluster out")
    raise OptionsError(problems)


def _not_offered(pname: str, cluster: Cluster, site: Site, offered: list[str]) -> str:
    """A partition the chosen cluster does not offer, in words; on a site with several clusters, with the
    cluster that does offer it."""
    if not site.several_clusters:
        return f"partition {_show(pname)} is not offered here; choose one of: {', '.join(offered)}"
    elsewhere = [c.name for c in site.all_clusters
                 if c.name != cluster.name and (p := c.partition(pname)) is not None and not p.hidden]
    hint = f" (it is a partition of cluster {', '.join(elsewhere)}: choose that cluster first)" if elsewhere else ""
    return (f"partition {_show(pname)} is not offered on cluster {cluster.name}{hint}; choose one of: "
            f"{', '.join(offered)}")


def requested_cluster(raw: Mapping[str, Any] | None, site: Site) -> Cluster | None:
    """The cluster options name, before they are validated: whose live state and projects the validation
    needs (`validate_options` then checks the name itself). None when the name is not one of the site's."""
    name = (raw or {}).get("cluster") or ""
    return site.cluster(name.strip()) if isinstance(name, str) and len(name) <= MAX_TEXT else None


def _qos_refusal(site: Site, account: str, gpus: int, runtime: int) -> str | None:
    """A request beyond the default QOS of a project the site file declares (its first `qos`): refused
    here rather than left pending for ever. QOS that only Slurm knows are Slurm's to enforce (the pending
    page then says why in words)."""
    project = site.project(account) if account else None
    if project is None or not project.qos:
        return None
    qos = next((q for q in site.qos if q.name == project.qos[0]), None)
    if qos is None:
        return None
    if qos.max_gpus_per_user is not None and gpus > qos.max_gpus_per_user:
        return (f"project {project.name} runs under QOS {qos.name}, which allows {qos.max_gpus_per_user} GPU(s) "
                f"per user; you asked for {gpus}")
    if qos.max_walltime_minutes is not None and runtime > qos.max_walltime_minutes:
        return (f"project {project.name} runs under QOS {qos.name}, which allows {qos.max_walltime_minutes} minutes "
                f"of walltime; you asked for {runtime}")
    return None


def offered_accounts(site: Site, more: list[str] | None = None, cluster: str = "") -> list[str]:
    """The accounts of the site's cluster `cluster` ("": the default one), then `more` (the projects the site
    file puts a user in), without repeats."""
    chosen = site.cluster(cluster) or site.default_cluster
    out = list(chosen.slurm.accounts)
    out += [a for a in (more or []) if a not in out]
    return out


def request_from_state(data: Mapping[str, Any], site: Site) -> SessionRequest:
    """A request read back from the spawner's state (the hub's database, after a restart): checked again
    against the site as it is now, without Slurm (it is not asked while the hub loads its spawners). Its
    account was checked against the user's Slurm associations when the job was submitted; here it only
    has to be a safe Slurm name. Raises OptionsError."""
    if not isinstance(data, Mapping):
        raise OptionsError([f"the stored request is not a mapping: {_show(data)}"])
    account = data.get("account")
    stored = (account,) if isinstance(account, str) and matches(SLURM_NAME, account) else ()
    cluster = requested_cluster(data, site)
    offered = offered_accounts(site, list(stored), cluster.name if cluster is not None else "")
    return validate_options(data, site, projects=UserProjects(tuple(offered)))


def form_to_options(formdata: Mapping[str, list[str]]) -> dict[str, Any]:
    """JupyterHub form data (dict of lists of strings) → typed options: the first value of each key,
    whole numbers as ints. Empty fields mean "default" and are left out; unknown keys and text where a
    number belongs are kept as they are, so that `validate_options` reports them."""
    out: dict[str, Any] = {}
    for key, values in formdata.items():
        if key.startswith("_") or not values:  # _xsrf and friends belong to JupyterHub
            continue
        value = values[0]
        if value == "" and key in OPTION_KEYS:
            continue
        if key in INT_KEYS and isinstance(value, str) and re.fullmatch(r"\s*-?\d{1,9}\s*", value):
            out[key] = int(value)
        else:
            out[key] = value
    return out
