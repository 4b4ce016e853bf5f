"""The site model: one validated YAML file describes a site (partitions, environments, auth, paths, courses).

Ground floor of the project: imports only the ground floor (`aifw.names`, `aifw.yamlfile`; its shared field types
are `aifw.site_fields`, its `lti` section `aifw.site_lti`). Everything that needs to know about the site
(the hub config, the spawner, the sandbox, grading) takes a `Site` built here.

A wrong site file fails at load time with `SiteError`, whose message names the file, the key path and
what is expected, e.g. ``sandbox.yaml: invalid site file (1 problem(s)): - key 'partitions[1] (gpu).max_gpus':
expected a number >= 0; got -1``. A key written twice is refused too (YAML would keep the last one).
"""
from __future__ import annotations

import importlib.resources
import ipaddress
import os

from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_serializer, model_validator
from pydantic_core import PydanticCustomError

from .names import PLAIN_PATH, SLUG, UNIX_USER, matches
from .site_fields import LOOPBACK_HOSTS, SlurmName, UnixUser, _Model, plain_url  # noqa: F401 (re-exported)
from .site_lti import DEFAULT_LEARNER_ROLES, DEFAULT_TRAINER_ROLES, LIS_MEMBERSHIP, LtiCourse, LtiSettings  # noqa: F401
from .yamlfile import FileProblems, read_yaml, refuse_repeats, validation_problems

SITE_KIND = "invalid site file"
SITE_DOC = "docs/config-reference.md"


class SiteError(FileProblems):
    """The site file is missing or invalid; the message says where and what to fix."""


class Partition(_Model):
    """A Slurm partition as the site offers it to hub users (policy; live limits come from Slurm)."""

    name: SlurmName = Field(description="Slurm partition name.")
    description: str = Field("", description="Shown in the spawn form.")
    default: bool = Field(False, description="Pre-selected in the form and used when a request names none.")
    hidden: bool = Field(False, description="Exists in Slurm but is not offered in the spawn form.")
    max_cpus: int = Field(4, ge=1, le=4096, description="Most CPUs one session may request.")
    max_memory_gb: int = Field(8, ge=1, le=65536, description="Most memory (GB) one session may request.")
    max_gpus: int = Field(0, ge=0, le=64, description="Most GPUs one session may request (0: no GPUs).")
    gpu_type: SlurmName | None = Field(None, description="GRES type, e.g. 'mi250'; None for untyped gpu GRES.")
    max_runtime_minutes: int = Field(480, ge=1, le=60 * 24 * 14, description="Longest walltime a session may ask for.")
    default_runtime_minutes: int = Field(60, ge=1, le=60 * 24 * 14, description="Walltime when a request names none.")

    @model_validator(mode="after")
    def _default_fits(self) -> "Partition":
        if self.default_runtime_minutes > self.max_runtime_minutes:
            raise ValueError(
                f"default_runtime_minutes ({self.default_runtime_minutes}) is above "
                f"max_runtime_minutes ({self.max_runtime_minutes})"
            )
        return self


class Environment(_Model):
    """A named software environment: trusted, admin-written shell lines run before the server starts."""

    name: SlurmName = Field(description="Name users pick in the form or REST options.")
    description: str = Field("", description="Shown in the form.")
    prologue: str = Field("", description="Shell lines (e.g. 'module load ...'), written by the admin.")


class HubSettings(_Model):
    """The hub: where it listens, who may log in, how they authenticate."""

    bind_url: str = Field("http://127.0.0.1:8000", pattern=r"^https?://[^/\s]+(/.*)?$", description="Public URL of the hub (the proxy listens here).")
    hub_ip: str = Field("127.0.0.1", description="Address the hub API listens on (single-user servers call it).")
    hub_connect_ip: str = Field("", description="Address servers on compute nodes use to reach the hub API ('' = hub_ip).")
    hub_port: int = Field(8081, ge=1, le=65535, description="Internal port of the hub API.")
    singleuser_ip: str = Field("0.0.0.0", description="Address the single-user servers listen on, on their node.")
    proxy_api_port: int = Field(8001, ge=1, le=65535, description="Port of the proxy's REST API (loopback).")
    services_port_base: int = Field(8100, ge=1024, le=65000, description="Loopback ports of the hub's managed services: the formgrader of the n-th course listens on services_port_base + n.")
    admin_users: list[UnixUser] = Field([], description="Hub admins (trainers who manage users and courses).")
    allowed_users: list[UnixUser] = Field([], description="Unix users allowed to log in (besides admins).")
    authenticator: Literal["pam", "lti"] = Field(
        "pam",
        description="pam: local unix accounts through PAM (JupyterHub's PAMAuthenticator). lti: learners arrive "
        "from an LMS through an LTI 1.3 launch (jupyterhub-ltiauthenticator), set from the site's `lti` section; "
        "lti.password_logins keeps PAM logins beside it. See docs/lti.md.",
    )
    poll_interval_s: int = Field(30, ge=1, le=3600, description="Seconds between the hub's checks that running sessions are alive.")
    start_timeout_s: int = Field(300, ge=10, le=86400, description="Seconds a session may take to start, queue included.")
    sessions_per_user: int = Field(1, ge=1, le=16, description="Sessions one person may run at once (e.g. 2: a CPU and a GPU session side by side, as JupyterHub named servers, each its own Slurm job); 1: one session.")


#: LTI role URIs (IMS LIS vocabulary, https://www.imsglobal.org/spec/lti/v1p3/#role-vocabularies).
class SlurmSettings(_Model):
    """How the hub runs Slurm commands, and the accounts and reservations it offers."""

    conf: str | None = Field(None, description="Path of slurm.conf (None: Slurm's default).")
    bin_dir: str = Field("/usr/bin", description="Where sbatch, squeue, scancel, sinfo live.")
    command_timeout_s: float = Field(10, gt=0, le=120, description="Seconds before a Slurm command counts as 'Slurm did not answer'.")
    exec_prefix: list[str] = Field(
        ["runuser", "-u", "{username}", "--"],
        description="argv prefix that runs a Slurm command as the hub user ({username} is replaced).",
    )
    account_required: bool = Field(False, description="Every session must name an account (project).")
    accounts: list[SlurmName] = Field([], description="Accounts offered in the form when Slurm accounting does not answer (when it does, the form offers the user's own associations).")
    reservations: list[SlurmName] = Field([], description="Reservations offered in the form (training events).")
    access: Literal["cli", "rest"] = Field(
        "cli",
        description="How the hub reaches Slurm. cli: it runs sbatch, squeue and scancel as the user through exec_prefix "
        "(the hub runs as root, or with sudo rules). rest: it talks to slurmrestd with a short-lived token minted for "
        "each user with the site's JWT key (the hub needs no root); needs rest_url, rest_api_version, jwt_key_file and "
        "token_lifespan_s. See docs/admin.md.",
    )
    rest_url: str | None = Field(
        None,
        description="access: rest. slurmrestd's base URL, e.g. http://127.0.0.1:6820. Tokens travel in its request "
        "headers: https:// unless slurmrestd listens on this host (127.0.0.1, ::1, localhost).",
    )
    rest_api_version: Literal["v0.0.38"] | None = Field(
        None,
        description="access: rest. The OpenAPI version in slurmrestd's paths (/slurm/<version>/...): v0.0.38 "
        "(Slurm 22.05), the one the hub's REST client speaks.",
    )
    jwt_key_file: str | None = Field(
        None,
        pattern=PLAIN_PATH,
        description="access: rest. The HS256 key slurmctld and slurmdbd verify tokens with (their "
        "AuthAltParameters=jwt_key=...). Readable by the hub's service account and no other user: whoever reads it "
        "can act as any Slurm user.",
    )
    token_lifespan_s: int | None = Field(
        None,
        ge=10,
        le=3600,
        description="access: rest. Seconds a minted token is valid. The hub mints one per request, so 60 is plenty; "
        "keep it short (a token that leaks acts for its user until it expires).",
    )

    @field_validator("rest_url")
    @classmethod
    def _rest_url_plain(cls, value: str | None) -> str | None:
        if value is None:
            return value
        return plain_url(value, example="http://127.0.0.1:6820 or https://slurm.example.org", query=False,
                         plain_http_refused=lambda u: (
                             f"tokens would cross the network in plain text to {u.hostname}: use https://, or run "
                             "slurmrestd on the hub's host (127.0.0.1)")).rstrip("/")

    @model_validator(mode="after")
    def _access_settings(self) -> "SlurmSettings":
        rest = {"rest_url": self.rest_url, "rest_api_version": self.rest_api_version,
                "jwt_key_file": self.jwt_key_file, "token_lifespan_s": self.token_lifespan_s}
        if self.access == "rest":
            missing = [k for k, v in rest.items() if v is None]
            if missing:
                raise ValueError(f"access: rest needs {', '.join(missing)} (see docs/admin.md)")
        else:
            given = [k for k, v in rest.items() if v is not None]
            if given:
                raise ValueError(f"{', '.join(given)}: used only with access: rest (access is cli); remove "
                                 f"{'it' if len(given) == 1 else 'them'} or set access: rest")
        return self


def _partitions_unique_one_default(parts: list[Partition]) -> list[Partition]:
    refuse_repeats((p.name for p in parts), "partition names")
    defaults = [p.name for p in parts if p.default]
    if len(defaults) > 1:
        raise ValueError(f"at most one partition may be the default; got {', '.join(defaults)}")
    return parts


class _OffersPartitions:
    """What a cluster offers sessions (a mixin of Cluster and Site, which declare `partitions`): its partitions,
    one of them the default."""

    @property
    def default_partition(self) -> Partition:
        for p in self.partitions:
            if p.default:
                return p
        return self.visible_partitions[0] if self.visible_partitions else self.partitions[0]

    @property
    def visible_partitions(self) -> list[Partition]:
        return [p for p in self.partitions if not p.hidden]

    def partition(self, name: str) -> Partition | None:
        return next((p for p in self.partitions if p.name == name), None)


#: The name of a site's one cluster when the site file lists no `clusters` (its top-level slurm and partitions).
DEFAULT_CLUSTER = "default"


class Cluster(_Model, _OffersPartitions):
    """One Slurm cluster behind the hub: its name, how the hub reaches it, and its partitions.

    Its `slurm` settings say how (its own slurm.conf, or its own slurmrestd) and which accounts and
    reservations it offers; its `partitions` are offered as the top-level ones are on a site with one cluster."""

    name: SlurmName = Field(description="The cluster's name in the spawn form, in REST options (`cluster`) and in a "
                                        "session's state; the hub's own label (it need not be Slurm's ClusterName).")
    description: str = Field("", description="Shown in the spawn form beside the name, e.g. 'the AI Factory (remote, through slurmrestd)'.")
    slurm: SlurmSettings = Field(SlurmSettings(), description="How the hub reaches this cluster (access cli with its own conf, or rest with its slurmrestd) and the accounts and reservations it offers; the keys of the top-level `slurm`.")
    partitions: list[Partition] = Field(min_length=1, description="Partitions of this cluster offered to sessions (one may be the default); the keys of the top-level `partitions`.")

    @field_validator("partitions")
    @classmethod
    def _partitions_fit(cls, parts: list[Partition]) -> list[Partition]:
        return _partitions_unique_one_default(parts)

    @property
    def reached_at(self) -> str:
        """Where the hub reaches this cluster, in words: its slurmrestd URL, or its slurm.conf."""
        if self.slurm.access == "rest":
            return f"slurmrestd {self.slurm.rest_url}"
        return f"slurm.conf {self.slurm.conf or 'of Slurm (its default)'}"


def _clusters_fit(clusters: list[Cluster]) -> list[Cluster]:
    """Unique names, and every cluster reached its own way: a cluster of the command-line path by its own
    slurm.conf (SLURM_CONF: each slurmctld is found through its own file), a REST one by its own slurmrestd."""
    refuse_repeats((c.name for c in clusters), "cluster names")
    if len(clusters) < 2:
        return clusters
    unnamed = [c.name for c in clusters if c.slurm.access == "cli" and not c.slurm.conf]
    if unnamed:
        raise ValueError(f"cluster(s) {', '.join(unnamed)} reached with access: cli need their own slurm.conf "
                         "(slurm.conf: /path/to/that-cluster/slurm.conf): with several clusters, Slurm's default file "
                         "cannot tell which slurmctld is meant")
    seen: dict[str, str] = {}
    for c in clusters:
        where = c.reached_at
        if where in seen:
            raise ValueError(f"clusters {seen[where]} and {c.name} are both reached through {where}: give each "
                             "cluster its own slurm.conf or slurmrestd")
        seen[where] = c.name
    return clusters


class PathSettings(_Model):
    """Where the runtime lives (a prefix readable by every user, on every node)."""

    runtime_prefix: str = Field("/opt/aifw", description="AIFW_HOME: the world-readable runtime prefix.")
    course_dirs: str = Field("", description="Where the nbgrader course directories live, one per course ('' = <runtime_prefix>/grading).")
    exchange: str = Field("", description="Root of the nbgrader exchange, one folder per course ('' = <runtime_prefix>/exchange).")

    @property
    def venv(self) -> Path:
        return Path(self.runtime_prefix) / "venv"

    def course_dir(self, course_id: str) -> Path:
        """The nbgrader course directory of a course (source, release, submitted, autograded, gradebook.db)."""
        return Path(self.course_dirs or Path(self.runtime_prefix) / "grading") / course_id

    @property
    def exchange_root(self) -> Path:
        return Path(self.exchange or Path(self.runtime_prefix) / "exchange")


class GradingSettings(_Model):
    """Defaults of `aifw grade` (each is also a command-line option)."""

    partition: SlurmName | None = Field(None, description="Partition of the grading jobs (None: the default partition).")
    workers: int = Field(2, ge=1, le=1024, description="Grading jobs running at once (Slurm array tasks, or local processes).")
    cell_timeout_s: int = Field(30, ge=1, le=3600, description="Seconds one cell may run before it is interrupted (nbgrader's Execute.timeout).")
    submission_timeout_s: int = Field(300, ge=10, le=86400, description="Seconds one submission may take in all; then its kernel is killed and the rest scores 0.")
    memory_gb: float = Field(4, gt=0, le=1024, description="Address-space limit of a submission's kernel (GB).")
    max_processes: int = Field(64, ge=8, le=4096, description="Most processes a submission's code may run at once (fork storms stop here).")
    sandbox_uid_base: int = Field(2_000_000, ge=65536, le=3_000_000_000, description="Submissions run as throwaway uids from here on (no account needed; must not clash with real uids).")


#: The longest warning lead (minutes) a site may set: a day.
MAX_WARNING_MINUTES = 24 * 60


#: The longest idle limit a site may set (a week, in minutes).
MAX_IDLE_CULL_MINUTES = 7 * 24 * 60


class SessionSettings(_Model):
    """Inside a running session: the warnings before the end of its walltime, Slurm's signal to save, and idle culling."""

    walltime_warnings_minutes: list[int] = Field(
        [10, 2],
        max_length=6,
        description="Minutes before the end of the walltime at which JupyterLab warns (and saves every open "
                    "document); distinct, largest first, each 1 to 1440 ([]: no warnings).")
    end_signal_seconds: int = Field(
        60, ge=30, le=900,
        description="Slurm sends the session's server SIGUSR2 this many seconds before the end (up to 60 s "
                    "earlier: Slurm checks time limits every 30 s); the server then tells JupyterLab to save "
                    "every open document until the job is killed (sbatch --signal=B:USR2@<seconds>).")
    idle_cull_minutes_cpu: int = Field(
        120, ge=0, le=MAX_IDLE_CULL_MINUTES,
        description="A session without GPUs that has been idle this many minutes is stopped by the hub's idle "
                    "culler (jupyterhub-idle-culler), freeing its Slurm job; 0: never. Idle: no browser or API "
                    "traffic, no kernel busy (a silent loop counts as busy).")
    idle_cull_minutes_gpu: int = Field(
        30, ge=0, le=MAX_IDLE_CULL_MINUTES,
        description="The same for a session with GPUs (usually shorter: an idle GPU is the dearest thing to "
                    "hold); GPU use above gpu_busy_percent counts as activity too; 0: never.")
    gpu_busy_percent: int = Field(
        10, ge=1, le=100,
        description="A session's GPU counts as in use (activity that keeps the session) while NVML reports its "
                    "utilisation at or above this percentage.")

    def idle_cull_minutes(self, gpus: int) -> int:
        """The idle limit of a session with `gpus` GPUs (minutes; 0: never culled)."""
        return self.idle_cull_minutes_gpu if gpus > 0 else self.idle_cull_minutes_cpu

    @field_validator("walltime_warnings_minutes")
    @classmethod
    def _warnings_sorted_distinct(cls, minutes: list[int]) -> list[int]:
        wrong = [m for m in minutes if not 1 <= m <= MAX_WARNING_MINUTES]
        if wrong:
            raise ValueError(f"each warning is 1 to {MAX_WARNING_MINUTES} minutes before the end; got "
                             f"{', '.join(map(str, wrong))}")
        refuse_repeats((str(m) for m in minutes), "walltime warnings")
        if minutes != sorted(minutes, reverse=True):
            raise ValueError(f"write the warnings largest first, e.g. {sorted(minutes, reverse=True)}; got {minutes}")
        return minutes


class DemoUser(_Model):
    """A sandbox demo account."""

    name: UnixUser = Field(description="Unix user name, created by the sandbox.")


class SandboxNode(_Model):
    """The size of each of the sandbox's compute nodes."""

    cpus: int = Field(16, ge=1, le=1024, description="CPUs each node declares (job slots, may exceed cores).")
    memory_mb: int = Field(16000, ge=512, description="Memory (MB) each node declares to Slurm.")
    gpus: int = Field(2, ge=0, le=16, description="Fake GPUs (character devices) each node advertises as GRES.")


#: The only addresses the sandbox may give its login node and compute nodes.
SANDBOX_ADDRESSES = ipaddress.IPv4Network("198.18.0.0/24")
#: Compute node i (from 1) gets the address `network + NODE_ADDRESS_OFFSET + i`; the login node `network + 1`.
NODE_ADDRESS_OFFSET = 10
MAX_COMPUTE_NODES = 16
DEFAULT_COMPUTE_NODES = 2


class SandboxReservation(_Model):
    """A Slurm reservation the sandbox makes for a training event (scontrol create reservation), so that a
    class can be started in it (`aifw class start --reservation NAME`)."""

    name: SlurmName = Field(description="Reservation name; list it in slurm.reservations too, so sessions may ask for it.")
    accounts: list[SlurmName] = Field(min_length=1, description="Projects (Slurm accounts) whose jobs may run in it.")
    nodes: list[SlurmName] | None = Field(None, min_length=1, description="Compute nodes it holds cores on (node1, node2, ...; None: every compute node).")
    cores: int | None = Field(None, ge=1, le=4096, description="Cores it holds in all, spread evenly over its nodes (CoreCnt); the rest of the nodes stays free for other jobs, and the least-loaded placement of other jobs stays even (None: the whole nodes).")
    days: int = Field(365, ge=1, le=3650, description="How long it lasts from when the sandbox makes it.")


class SandboxSettings(_Model):
    """Only for the one-machine sandbox: how to stand up the local cluster, its accounting and the demo accounts.

    In `cluster` mode the host is the login node (JupyterHub, the proxy, slurmctld, slurmdbd) and each
    compute node is a network namespace with its own address and its own slurmd; every node shares the
    host's filesystem, as NFS homes do. The sandbox then sets the hub to listen on the login node's
    address (hub_ip, hub_connect_ip) and the servers on their node (singleuser_ip 0.0.0.0 inside the
    node). `single-node` mode runs one slurmd on the host at 127.0.0.1, for machines where network
    namespaces are not allowed (unprivileged containers)."""

    mode: Literal["cluster", "single-node"] = Field("cluster", description="cluster: a login node and compute nodes in network namespaces; single-node: one node on the host at 127.0.0.1.")
    compute_nodes: int | None = Field(None, ge=1, le=MAX_COMPUTE_NODES, description="Compute nodes (node1, node2, ...) in cluster mode (None: 2); single-node mode has one.")
    network: str = Field("198.18.0.0/25", description="Cluster mode: the network of the login node (its first address) and the compute nodes (node i at the 10+i-th address). Must lie in 198.18.0.0/24.")
    netns_prefix: str = Field("aifw", pattern=r"^[a-z][a-z0-9]{0,6}$", description="Cluster mode: prefix of the namespaces (<prefix>-node1) and interfaces (<prefix>-br, <prefix>-v1) the sandbox creates and removes.")
    cluster_name: SlurmName = Field("aifw", description="Slurm ClusterName of the sandbox.")
    slurmctld_port: int = Field(6817, ge=1024, le=65535, description="Port of slurmctld.")
    slurmd_port: int = Field(6818, ge=1024, le=65535, description="Port of slurmd (every compute node uses it, each in its own namespace).")
    slurmdbd_port: int = Field(6819, ge=1024, le=65535, description="Port of slurmdbd (Slurm's accounting daemon), on 127.0.0.1.")
    database_port: int = Field(6306, ge=1024, le=65535, description="Port of the sandbox's own MariaDB (slurmdbd's database), on 127.0.0.1.")
    slurmrestd_port: int = Field(6820, ge=1024, le=65535, description="Port of slurmrestd (Slurm's REST API, JWT authentication) on 127.0.0.1; it runs as the system user <netns_prefix>-rest.")
    node: SandboxNode = Field(SandboxNode(), description="The size of each compute node.")
    demo_users: list[DemoUser] = Field([], description="Unix accounts created with generated passwords.")
    reservations: list[SandboxReservation] = Field([], description="Reservations the sandbox makes for training events (made again when the site file changes them).")

    @field_validator("network")
    @classmethod
    def _network_in_range(cls, value: str) -> str:
        try:
            net = ipaddress.IPv4Network(value, strict=True)
        except ValueError as err:
            raise ValueError(f"expected a network like 198.18.0.0/25; {err}") from None
        if not net.subnet_of(SANDBOX_ADDRESSES):
            raise ValueError(f"the sandbox uses addresses in {SANDBOX_ADDRESSES} only; {net} is outside it")
        if net.num_addresses < 2 ** 5:
            raise ValueError(f"{net} is too small: use a /27 or larger, for the login node and {MAX_COMPUTE_NODES} nodes")
        return str(net)

    @model_validator(mode="after")
    def _reservations_on_the_nodes(self) -> "SandboxSettings":
        refuse_repeats((r.name for r in self.reservations), "reservation names")
        names = {n for n, _ in self.nodes}
        for r in self.reservations:
            if r.cores is not None and r.cores < len(self.reservation_nodes(r)):
                raise ValueError(f"reservation {r.name!r} holds {r.cores} core(s) on {len(self.reservation_nodes(r))} "
                                 "nodes: give it at least one core per node, or name fewer nodes")
            unknown = [n for n in (r.nodes or []) if n not in names]
            if unknown:
                raise ValueError(f"reservation {r.name!r} names node(s) {', '.join(unknown)} the sandbox does not have "
                                 f"(its nodes: {', '.join(sorted(names))})")
        return self

    @model_validator(mode="after")
    def _single_node_has_one(self) -> "SandboxSettings":
        if self.mode == "single-node" and self.compute_nodes not in (None, 1):
            raise ValueError("single-node mode runs one node on the host; remove compute_nodes or set mode: cluster")
        return self

    def reservation_nodes(self, reservation: SandboxReservation) -> list[str]:
        return list(reservation.nodes) if reservation.nodes else [n for n, _ in self.nodes]

    @property
    def is_cluster(self) -> bool:
        return self.mode == "cluster"

    @property
    def rest_user(self) -> str:
        """The unprivileged system account slurmrestd runs as (it refuses root and the SlurmUser)."""
        return f"{self.netns_prefix}-rest"

    @property
    def login_address(self) -> str:
        """The login node's (the host's) address on the cluster network; 127.0.0.1 in single-node mode."""
        if not self.is_cluster:
            return "127.0.0.1"
        return str(ipaddress.IPv4Network(self.network)[1])

    @property
    def nodes(self) -> list[tuple[str, str]]:
        """(name, address) of every compute node, in order."""
        if not self.is_cluster:
            return [("localhost", "127.0.0.1")]
        net = ipaddress.IPv4Network(self.network)
        count = self.compute_nodes or DEFAULT_COMPUTE_NODES
        return [(f"node{i}", str(net[NODE_ADDRESS_OFFSET + i])) for i in range(1, count + 1)]


class Qos(_Model):
    """A Slurm QOS the site defines (e.g. a training QOS with tighter limits)."""

    name: SlurmName = Field(description="QOS name (sacctmgr add qos).")
    description: str = Field("", description="What it is for.")
    max_gpus_per_user: int | None = Field(None, ge=0, le=4096, description="MaxTRESPerUser=gres/gpu=N (None: no limit).")
    max_walltime_minutes: int | None = Field(None, ge=1, le=60 * 24 * 14, description="MaxWall of its jobs (None: the partition's).")


class Project(_Model):
    """A project: a Slurm account with its users and a GPU-hours budget."""

    name: SlurmName = Field(description="Slurm account name (sacctmgr add account).")
    description: str = Field("", description="Shown to admins; Slurm stores it lower-cased.")
    users: list[UnixUser] = Field([], description="Members (sacctmgr add user ... Account=<name>); a user's first project is their default.")
    gpu_hours: float | None = Field(None, ge=0, le=10_000_000, description="GPU-hours budget: GrpTRESMins=gres/gpu=<gpu_hours*60> (None: no budget).")
    qos: list[SlurmName] = Field([], description="QOS its members may use besides 'normal' (names from the site's qos list); the first is their default QOS in this project.")

    @property
    def gpu_minutes(self) -> int | None:
        return None if self.gpu_hours is None else round(self.gpu_hours * 60)


class CourseEntry(_Model):
    """A course offered on this hub and who takes part in it (a plain course id is also accepted)."""

    id: SlurmName = Field(description="Course id: a folder of courses/ with a course.yaml.")
    trainers: list[UnixUser] = Field([], description="Users who teach it: JupyterHub group course-<id>-trainers.")
    learners: list[UnixUser] = Field([], description="Users who take it: JupyterHub group course-<id>-learners.")
    grader: UnixUser | None = Field(None, description="Unix account that owns the course directory and runs its formgrader (default grader-<id>).")
    group: UnixUser | None = Field(None, description="Unix group of the course's learners, trainers and grader: it gates the exchange (default aifw-<id>).")

    @model_validator(mode="after")
    def _account_names_fit(self) -> "CourseEntry":
        for key, name in (("grader", self.grader_account), ("group", self.unix_group)):
            if not matches(UNIX_USER, name):
                raise ValueError(
                    f"the default {key} name {name!r} is not a valid unix name (at most 32 lower-case letters, "
                    f"digits, '-' or '_'); set '{key}' for course {self.id!r} explicitly"
                )
        return self

    @property
    def grader_account(self) -> str:
        """The unix account owning the nbgrader course directory (formgrader, gradebook)."""
        return self.grader or f"grader-{self.id}"

    @property
    def unix_group(self) -> str:
        """The unix group gating the course's exchange (learners, trainers, grader)."""
        return self.group or f"aifw-{self.id}"


class Site(_Model, _OffersPartitions):
    """A site: its hub, its Slurm clusters and their partitions, environments and courses.

    A site with one cluster writes its `slurm` and `partitions` at the top level. A site with several lists
    them under `clusters` instead, each with its own `slurm` and `partitions`; `slurm` and `partitions` of the
    Site are then the first (the default) cluster's, which is what the commands that work on one cluster use
    (the sandbox, `aifw grade`, `aifw class`, `aifw usage`)."""

    name: str = Field(description="Name of the site, shown to admins.")
    hub: HubSettings = Field(HubSettings(), description="The hub: URL, ports, users, authentication.")
    clusters: list[Cluster] = Field(
        [],
        description="Several Slurm clusters behind this hub (e.g. the hosting AI Factory through slurmrestd and the "
        "antenna's own cluster through the command line), each with its own name, slurm settings and partitions; the "
        "first is the default. The form offers the cluster first, then its partitions. [] (absent): the site has one "
        "cluster, the top-level slurm and partitions. See docs/admin.md.",
    )
    slurm: SlurmSettings = Field(
        None, validate_default=True,
        description="How the hub talks to Slurm (a site with one cluster; with `clusters`, each cluster has its own "
        "and this is the first one's).")
    paths: PathSettings = Field(PathSettings(), description="Where the runtime lives.")
    partitions: list[Partition] = Field(
        None, validate_default=True,
        description="Partitions offered to sessions (one may be the default); required for a site with one cluster "
        "(with `clusters`, each cluster lists its own and this is the first one's).")
    environments: list[Environment] = Field([Environment(name="default")], min_length=1, description="Named software environments; the first is the default.")
    courses: list[CourseEntry] = Field([], description="Courses offered on this hub, with their trainers and learners.")
    grading: GradingSettings = Field(GradingSettings(), description="How `aifw grade` runs submissions.")
    session: SessionSettings = Field(SessionSettings(), description="Inside a running session: warnings before the end of the walltime, and the signal to save.")
    qos: list[Qos] = Field([], description="QOS the site defines besides Slurm's 'normal' (applied with sacctmgr).")
    projects: list[Project] = Field([], description="Projects (Slurm accounts) with their users and GPU-hour budgets (applied with sacctmgr).")
    sandbox: SandboxSettings | None = Field(None, description="Only for the one-machine sandbox (absent on a real site).")
    lti: LtiSettings | None = Field(None, description="LTI 1.3 launches from an LMS (with hub.authenticator: lti); see docs/lti.md.")

    @field_validator("clusters")
    @classmethod
    def _clusters_fit(cls, clusters: list[Cluster]) -> list[Cluster]:
        return _clusters_fit(clusters)

    @field_validator("slurm", mode="before")
    @classmethod
    def _slurm_here_or_in_clusters(cls, value, info: ValidationInfo):
        clusters = info.data.get("clusters")
        if clusters:
            if value is not None:
                raise ValueError("with `clusters`, each cluster has its own slurm settings: move these under "
                                 f"clusters[].slurm (of {', '.join(c.name for c in clusters)}), or remove them")
            return clusters[0].slurm
        return SlurmSettings() if value is None else value

    @field_validator("partitions", mode="before")
    @classmethod
    def _partitions_here_or_in_clusters(cls, value, info: ValidationInfo):
        if "clusters" not in info.data:  # `clusters` is wrong itself: its problems are the ones to fix
            return [] if value is None else value
        clusters = info.data["clusters"]
        if clusters:
            if value is not None:
                raise ValueError("with `clusters`, each cluster lists its own partitions: move these under "
                                 f"clusters[].partitions (of {', '.join(c.name for c in clusters)}), or remove them")
            return list(clusters[0].partitions)
        if value is None:
            raise PydanticCustomError("missing", "Field required")
        if isinstance(value, list) and not value:
            raise ValueError("expected at least 1 item(s)")
        return value

    @field_validator("partitions")
    @classmethod
    def _partitions_fit(cls, parts: list[Partition]) -> list[Partition]:
        return _partitions_unique_one_default(parts)

    @model_serializer(mode="wrap")
    def _as_written(self, handler):
        """As a site file says it: with `clusters`, no top-level slurm and partitions (they are the first
        cluster's), so that what is dumped loads again."""
        data = handler(self)
        if self.clusters and isinstance(data, dict):
            data.pop("slurm", None)
            data.pop("partitions", None)
        return data

    @field_validator("courses", mode="before")
    @classmethod
    def _course_ids_as_entries(cls, value):
        if isinstance(value, list):
            return [{"id": v} if isinstance(v, str) else v for v in value]
        return value

    @field_validator("courses")
    @classmethod
    def _courses_unique(cls, courses: list[CourseEntry]) -> list[CourseEntry]:
        ids = [c.id for c in courses]
        if len(set(ids)) != len(ids):
            raise ValueError("course ids must be unique")
        return courses

    @model_validator(mode="after")
    def _projects_fit(self) -> "Site":
        qos_names = [q.name for q in self.qos]
        refuse_repeats(qos_names, "qos names")
        refuse_repeats((p.name for p in self.projects), "project names")
        known = set(qos_names) | {"normal"}
        for p in self.projects:
            unknown = [q for q in p.qos if q not in known]
            if unknown:
                raise ValueError(f"project {p.name!r} names unknown qos {', '.join(unknown)}; define it under 'qos' "
                                 f"(known: {', '.join(sorted(known))})")
        return self

    @model_validator(mode="after")
    def _lti_fits(self) -> "Site":
        if self.hub.authenticator == "lti" and self.lti is None:
            raise ValueError("hub.authenticator: lti needs an `lti` section (the platform's issuer, client ids, "
                             "endpoints and courses; see docs/lti.md)")
        if self.lti is not None and self.hub.authenticator != "lti":
            raise ValueError("the `lti` section is used only with hub.authenticator: lti; set it, or remove `lti`")
        if self.lti is not None:
            unknown = sorted({c.course for c in self.lti.courses} - set(self.course_ids))
            if unknown:
                raise ValueError(f"lti.courses names course(s) {', '.join(unknown)} that the site does not offer; add "
                                 f"them under `courses` (offered: {', '.join(self.course_ids) or 'none'})")
        return self

    @field_validator("environments")
    @classmethod
    def _envs_unique(cls, envs: list[Environment]) -> list[Environment]:
        names = [e.name for e in envs]
        if len(set(names)) != len(names):
            raise ValueError("environment names must be unique")
        return envs

    # -- conveniences -------------------------------------------------------------------------
    # default_partition, visible_partitions and partition(name) are the default (first) cluster's.
    @property
    def all_clusters(self) -> list[Cluster]:
        """Every cluster sessions may run on, the default first: those of `clusters`, else the one cluster
        that the top-level slurm and partitions describe, named DEFAULT_CLUSTER."""
        if self.clusters:
            return list(self.clusters)
        return [Cluster.model_construct(name=DEFAULT_CLUSTER, description="", slurm=self.slurm,
                                        partitions=self.partitions)]

    @property
    def several_clusters(self) -> bool:
        """Whether the form offers a choice of cluster (and sessions record theirs)."""
        return len(self.clusters) > 1

    @property
    def default_cluster(self) -> Cluster:
        return self.all_clusters[0]

    def cluster(self, name: str | None = None) -> Cluster | None:
        """The cluster of that name; the default one for "" or None; None when the site has no such cluster."""
        clusters = self.all_clusters
        if not name:
            return clusters[0]
        return next((c for c in clusters if c.name == name), None)

    def environment(self, name: str) -> Environment | None:
        return next((e for e in self.environments if e.name == name), None)

    def course(self, course_id: str) -> CourseEntry | None:
        return next((c for c in self.courses if c.id == course_id), None)

    def project(self, name: str) -> Project | None:
        return next((p for p in self.projects if p.name == name), None)

    def projects_of(self, user: str) -> list[str]:
        """The projects the site file puts `user` in (Slurm's associations are the live truth)."""
        return [p.name for p in self.projects if user in p.users]

    def courses_of(self, user: str) -> list[str]:
        """Ids of the courses `user` takes or teaches; a course that lists no learners is open to everyone."""
        return [c.id for c in self.courses if not c.learners or user in c.learners or user in c.trainers]

    def service_port(self, service: str) -> int:
        """The port of one of the hub's own services, from `hub.services_port_base` on: each course's formgrader
        (`formgrader-<id>`, by the course's index), then `aifw-lti-grades`, then `aifw-progress`. ValueError for
        a name that is none of them."""
        base, courses = self.hub.services_port_base, self.course_ids
        if service.startswith("formgrader-") and service[len("formgrader-"):] in courses:
            return base + courses.index(service[len("formgrader-"):])
        after = {"aifw-lti-grades": 0, "aifw-progress": 1}
        if service not in after:
            raise ValueError(f"no hub service {service!r} has a port here")
        return base + len(courses) + after[service]

    @property
    def progress_service_url(self) -> str:
        """Where the progress service listens: on the address compute nodes reach the login node on (the hub's),
        so that a learner's kernel on a node can post to it directly (the proxy may listen on loopback only)."""
        return f"http://{self.hub.hub_connect_ip or self.hub.hub_ip}:{self.service_port('aifw-progress')}"

    @property
    def course_ids(self) -> list[str]:
        return [c.id for c in self.courses]

    @property
    def users(self) -> list[str]:
        """Everyone who may log in: admins, allowed users, course members and the sandbox's demo users."""
        names = list(self.hub.admin_users) + list(self.hub.allowed_users)
        for course in self.courses:
            names += course.trainers + course.learners
        for project in self.projects:
            names += project.users
        if self.sandbox:
            names += [u.name for u in self.sandbox.demo_users]
        return sorted(set(names))


def site_from_dict(data: object, source: str = "<site>") -> Site:
    if not isinstance(data, dict):
        raise SiteError(source, ["the site file must be a YAML mapping at the top level"], SITE_KIND)
    try:
        return Site.model_validate(data)
    except ValidationError as err:
        raise SiteError(source, validation_problems(err, data, doc=SITE_DOC), SITE_KIND) from None


def load_site(path: str | os.PathLike | None = None) -> Site:
    """Load and validate a site file. `path` None: $AIFW_SITE, else the packaged sandbox site."""
    if path is None:
        path = os.environ.get("AIFW_SITE") or example_site_path("sandbox")
    data = read_yaml(Path(path), error=SiteError, kind=SITE_KIND)
    return site_from_dict(data, source=str(path))


def example_site_path(name: str) -> Path:
    if not matches(SLUG, name):
        raise SiteError(f"example site {name!r}", ["unknown example site; the examples are in hub_config/sites/"])
    # The example sites are package data of aifw.hub_config (a data-only package).
    return Path(str(importlib.resources.files("aifw.hub_config"))) / "sites" / f"{name}.yaml"
