"""Slurm through slurmrestd (Slurm's REST API) with a short-lived JWT per user: the second way to reach
Slurm, for sites whose hub must not run as root (site `slurm.access: rest`).

`SlurmRestClient` has the methods of `SlurmClient` that the spawner calls, with the same arguments, the
same typed answers (`JobInfo`, `PartitionInfo`, ... of `aifw.slurm.parse`) and the same three outcomes:
a parsed answer, `SlurmRejected` (Slurm said no, in plain words) or `SlurmUnavailable` (no answer).

Who acts: every request carries a token minted for one user only (`JwtMinter`: HS256 with the site's
JWT key, claims ``sun`` = user name, ``iat``, ``exp``, as ``scontrol token`` makes them). A submit or a
cancel goes with the token of the user it is for; reads without a user (a job's state, the partitions)
go with the token of `query_user`, by default the account this process runs as. A token is never minted
for root: a token of the SlurmUser accepts any user name, an all-users credential.

Pure parts (table-tested): `batch_job_from_script` (the ``#SBATCH`` lines of a script that
`build_batch_script` wrote, back to its `BatchJob`: slurmrestd ignores ``#SBATCH`` lines, so every one
becomes a job property or the script is refused), `submit_body` (the request body), `token_claims`,
`rest_failure` (slurmrestd's answers as our errors) and the record readers (`job_info`,
`partitions_from_records`, `pending_order_from_jobs`).

What slurmrestd 22.05 (API v0.0.38) does, measured on the test stack
(../shared/notes/slurm-accounting-and-rest.md):
- ``#SBATCH`` lines in the script are ignored (name, time limit, output...): all go as job properties;
  without ``current_working_directory`` the job runs in slurmrestd's directory and fails; without
  ``environment`` the request is refused. Both are always sent.
- ``requeue: false`` is accepted and not applied (Requeue=1 whatever is sent, at submit and by update):
  a session submitted through REST may be requeued after a node failure unless slurm.conf says
  JobRequeue=0 (the spawner already ends a session whose job waits again).
- Errors are coarse. An expired or wrong-key token and a slurmctld that does not answer look the same on
  reads (HTTP 500, error -1 "Unspecified error"); on submit and cancel a refused token reads "Zero Bytes
  were transmitted or received" (5005), a silent slurmctld "Unable to contact slurm controller" (1800).
  So a token the hub knows to be expired reads "your session token expired; try again"; a refused token
  on a submit or a cancel (5005: forged, wrong key, or a token of another user than the one named, as
  measured with test-learner1's token sent for test-learner2) is a refusal in words (`TOKEN_REFUSED`);
  any other unclear answer counts as no answer (a running session stays), with a hint about the key and
  clocks.
- A submit can answer HTTP 200 with a job id *and* errors (time limit above the partition's): the job
  is queued (pending), as sbatch's warnings; the id is returned.
"""
from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import pwd
import logging
import re
import stat
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence
from urllib.parse import quote

import jwt
import requests

from aifw.names import JOB_ID, PLAIN_PATH, SLURM_NAME, UNIX_USER, matches, require

from .accounting import UserAssociations
from .parse import (
    INVALID_JOB,
    UNAVAILABLE,
    JobInfo,
    NodeInfo,
    PartitionInfo,
    SlurmError,
    SlurmNotInstalled,
    SlurmRejected,
    SlurmTimedOut,
    SlurmUnavailable,
    parse_gres_gpus,
    parse_slurm_minutes,
    partitions_from_nodes,
)
from .script import BatchJob, EndSignal, UnsafeValue

#: The OpenAPI versions this client speaks (their JSON shapes were measured; v0.0.39 changed them).
API_VERSIONS = ("v0.0.38",)
#: Why a script's ``--signal=B:SIG@S`` (the session's end-of-walltime save signal) is not sent: measured on
#: slurmrestd 22.05, its ``signal`` property refuses the batch flag ``B:`` ("Invalid SIGNAL specification")
#: and without it Slurm signals the job's steps only, never the batch shell (the session's server).
END_SIGNAL_UNSENT = ("slurmrestd 22.05 cannot ask Slurm to signal the batch shell (--signal=B:), so sessions "
                     "submitted through slurm.access rest get no end-of-walltime signal (session.end_signal_seconds); "
                     "the walltime warnings (session.walltime_warnings_minutes) still save open documents")
_log = logging.getLogger(__name__)
#: The message a user sees when Slurm refused a token that had expired.
TOKEN_EXPIRED = "your session token expired; try again"
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DIRECTIVE = re.compile(r"#SBATCH (--[a-z][a-z-]*)(?:=(\S+))?")
_NUMBER = re.compile(r"[0-9]{1,9}")
#: The sbatch options `BatchJob.directives()` writes, each sent as a job property.
_OPTIONS = frozenset({"--job-name", "--partition", "--array", "--cpus-per-task", "--mem", "--time", "--output",
                      "--chdir", "--nodes", "--ntasks", "--gres", "--account", "--reservation", "--requeue",
                      "--no-requeue", "--signal"})
#: Slurm error numbers that say plainly what was wrong.
_PERMISSION_DENIED = 2002
_AUTHENTICATION = 1007
#: Answers that do not say whether Slurm refused the token or did not answer (see the module docstring).
_UNCLEAR = {-1, 5005}
#: On a submit or a cancel, slurmctld closing the connection without a word: it refused the token.
_ZERO_BYTES = 5005
#: How a submit or a cancel whose token slurmctld refused reads (``{user}``, ``{action}`` filled in).
TOKEN_REFUSED = ("Slurm refused the token sent for {user} to {action}: it is not a token of that user signed with "
                 "slurmctld's key (forged, of another user, or the hub's slurm.jwt_key_file is not slurmctld's "
                 "jwt_key)")


# ---------------------------------------------------------------------------------------------
# Tokens
# ---------------------------------------------------------------------------------------------
def token_claims(user: str, *, now: float, lifespan_s: int) -> dict[str, Any]:
    """The claims ``scontrol token username=USER lifespan=S`` signs: ``sun`` (Slurm user name), ``iat``
    and ``exp`` (seconds since the epoch). Refuses root and anything that is not a unix user name."""
    require(UNIX_USER, user, "Slurm user")
    if user == "root":
        raise UnsafeValue("refusing to mint a token for root: it would act for every Slurm user")
    if isinstance(lifespan_s, bool) or not isinstance(lifespan_s, int) or lifespan_s < 1:
        raise UnsafeValue(f"refusing a token lifespan of {lifespan_s!r} seconds (a whole number, at least 1)")
    issued = int(now)
    return {"iat": issued, "exp": issued + lifespan_s, "sun": user}


@dataclass(frozen=True)
class Token:
    user: str
    value: str = field(repr=False)
    expires_at: int  # seconds since the epoch


@dataclass
class JwtMinter:
    """Mints one user's token with the site's HS256 key (the file slurmctld's AuthAltParameters=jwt_key
    names). The key is read at every mint (a rotated key takes effect at once) and refused when every
    user of this host may read it: whoever reads it can act as any Slurm user."""

    key_file: str
    lifespan_s: int = 60
    clock: Callable[[], float] = time.time

    def _key(self) -> bytes:
        try:
            fd = os.open(self.key_file, os.O_RDONLY)
        except OSError as err:
            raise SlurmNotInstalled(
                f"cannot read the JWT key {self.key_file} (site slurm.jwt_key_file): {err.strerror}; it must be "
                "readable by the account the hub runs as, and by no other user") from None
        with os.fdopen(fd, "rb") as f:
            if stat.S_IMODE(os.fstat(f.fileno()).st_mode) & 0o007:
                raise SlurmNotInstalled(
                    f"the JWT key {self.key_file} is open to every user of this host, who could act as any "
                    f"Slurm user: chmod o-rwx {self.key_file}")
            key = f.read()
        if not key:
            raise SlurmNotInstalled(f"the JWT key {self.key_file} (site slurm.jwt_key_file) is empty")
        return key

    def mint(self, user: str) -> Token:
        claims = token_claims(user, now=self.clock(), lifespan_s=self.lifespan_s)
        return Token(user, jwt.encode(claims, self._key(), algorithm="HS256"), claims["exp"])


# ---------------------------------------------------------------------------------------------
# The request body (pure)
# ---------------------------------------------------------------------------------------------
def _directive_lines(script: str) -> list[str]:
    """The ``#SBATCH`` lines sbatch would read: those before the first command (blank lines and other
    comments do not end them). A line that only starts like one after spaces counts too: refused below
    rather than silently dropped."""
    lines = script.splitlines()
    if not lines or not lines[0].startswith("#!"):
        raise UnsafeValue("refusing a batch script without its #! line")
    found = []
    for line in lines[1:]:
        text = line.strip()
        if text and not text.startswith("#"):
            break
        if text.upper().startswith("#SBATCH"):
            found.append(line)
    return found


def _number(value: str | None, option: str) -> int:
    if value is None or not _NUMBER.fullmatch(value):
        raise UnsafeValue(f"refusing #SBATCH {option}={value}: a whole number belongs there")
    return int(value)


def _memory_mb(value: str | None) -> int:
    m = re.fullmatch(r"([0-9]{1,9})([GM])", value or "")
    if not m:
        raise UnsafeValue(f"refusing #SBATCH --mem={value}: expected a number of G or M, as build_batch_script writes")
    return int(m.group(1)) * (1024 if m.group(2) == "G" else 1)


def _gres(value: str | None) -> dict[str, Any]:
    m = re.fullmatch(r"gpu:(?:([^:]+):)?([0-9]{1,4})", value or "")
    if not m:
        raise UnsafeValue(f"refusing #SBATCH --gres={value}: only gpu:N and gpu:TYPE:N can be sent to slurmrestd")
    return {"gpus": int(m.group(2)), "gpu_type": m.group(1)}


def batch_job_from_script(script: str) -> BatchJob:
    """The `BatchJob` whose directives the script carries (the script of `build_batch_script`). slurmrestd
    ignores ``#SBATCH`` lines, so a directive this client cannot send as a job property, a repeated one,
    or lines that are not exactly what `BatchJob.directives()` writes are refused (UnsafeValue): no
    directive is ever dropped silently."""
    lines = _directive_lines(script)
    options: dict[str, str | None] = {}
    for line in lines:
        m = _DIRECTIVE.fullmatch(line)
        if not m:
            raise UnsafeValue(f"refusing the batch script line {line!r}: expected '#SBATCH --option=value'")
        if m.group(1) in options or {m.group(1), *options} >= {"--requeue", "--no-requeue"}:
            raise UnsafeValue(f"refusing the batch script: {m.group(1)} is given twice")
        options[m.group(1)] = m.group(2)
    fields: dict[str, Any] = {}
    for option, value in options.items():
        if option not in _OPTIONS:
            raise UnsafeValue(f"refusing #SBATCH {option}: slurmrestd ignores #SBATCH lines and this client "
                              "cannot send it as a job property")
        if option in ("--requeue", "--no-requeue"):
            if value is not None:
                raise UnsafeValue(f"refusing #SBATCH {option}={value}: it takes no value")
            fields["requeue"] = option == "--requeue"
        elif value is None:
            raise UnsafeValue(f"refusing #SBATCH {option}: a value belongs there")
        elif option in ("--job-name", "--partition", "--account", "--reservation", "--output", "--chdir"):
            fields[{"--job-name": "job_name", "--chdir": "chdir"}.get(option, option[2:])] = value
        elif option in ("--cpus-per-task", "--nodes", "--ntasks"):
            fields[option[2:].replace("-", "_")] = _number(value, option)
        elif option == "--mem":
            fields["memory_mb"] = _memory_mb(value)
        elif option == "--time":
            minutes = parse_slurm_minutes(value) if re.fullmatch(r"[0-9:\-]{1,16}", value) else None
            if minutes is None:
                raise UnsafeValue(f"refusing #SBATCH --time={value}: a time limit such as 01:00:00 belongs there")
            fields["time_minutes"] = minutes
        elif option == "--array":
            m = re.fullmatch(r"0-([0-9]{1,6})", value)
            if not m:
                raise UnsafeValue(f"refusing #SBATCH --array={value}: only 0-N arrays are written by build_batch_script")
            fields["array_size"] = int(m.group(1)) + 1
        elif option == "--signal":
            m = re.fullmatch(r"B:([A-Z0-9]{1,8})@([0-9]{1,5})", value)
            if not m:
                raise UnsafeValue(f"refusing #SBATCH --signal={value}: only B:NAME@SECONDS is written by build_batch_script")
            fields["end_signal"] = EndSignal(m.group(1), int(m.group(2)))
        else:  # --gres
            fields.update(_gres(value))
    for needed, option in (("job_name", "--job-name"), ("time_minutes", "--time")):
        if needed not in fields:
            raise UnsafeValue(f"refusing a batch script without #SBATCH {option} (build_batch_script writes one)")
    job = BatchJob(**fields)
    if [f"#SBATCH {d}" for d in job.directives()] != lines:
        raise UnsafeValue("refusing a batch script whose #SBATCH lines are not those build_batch_script writes "
                          "(same options, same order): each must become a job property unchanged")
    return job


def _environment(env: Mapping[str, str]) -> dict[str, str]:
    if not env:
        raise UnsafeValue("refusing a job without environment variables (slurmrestd refuses one): give it at least PATH")
    out = {}
    for name, value in env.items():
        if not isinstance(name, str) or not _ENV_NAME.fullmatch(name):
            raise UnsafeValue(f"refusing the environment variable name {name!r} in a job")
        if not isinstance(value, str) or "\0" in value:
            raise UnsafeValue(f"refusing the value of environment variable {name} in a job (text without NUL)")
        out[name] = value
    return out


def submit_body(job: BatchJob, script: str, *, environment: Mapping[str, str], home: str,
                hold: bool = False) -> dict[str, Any]:
    """The body of ``POST /slurm/VERSION/job/submit``: the script and the job's properties, one for each
    directive of `job` (every value checked again, as for a batch script). The environment (the job's
    whole environment, as sbatch exports it) and the working directory (`job.chdir`, else `home`) are
    always sent; the output file is sbatch's default there when the job names none."""
    job.directives()  # every value checked as build_batch_script checks it (UnsafeValue)
    cwd = require(PLAIN_PATH, job.chdir or home, "working directory")
    default_output = "slurm-%A_%a.out" if job.array_size is not None else "slurm-%j.out"
    props: dict[str, Any] = {
        "name": require(SLURM_NAME, job.job_name, "job name"),
        "time_limit": job.time_minutes,
        "nodes": [job.nodes, job.nodes],
        "tasks": job.ntasks,
        "cpus_per_task": job.cpus_per_task,
        "current_working_directory": cwd,
        "standard_output": job.output or f"{cwd.rstrip('/')}/{default_output}",
        "environment": _environment(environment),
    }
    for key, value in (("partition", job.partition), ("account", job.account), ("reservation", job.reservation)):
        if value:
            props[key] = require(SLURM_NAME, value, key)
    if job.memory_mb is not None:
        props["memory_per_node"] = job.memory_mb
    if job.gpus:
        gtype = f"{require(SLURM_NAME, job.gpu_type, 'GPU type')}:" if job.gpu_type else ""
        props["gres"] = f"gpu:{gtype}{job.gpus}"
    if job.array_size is not None:
        props["array"] = f"0-{job.array_size - 1}"
    if job.requeue is not None:
        props["requeue"] = job.requeue  # accepted, not applied by slurmrestd 22.05 (module docstring)
    # job.end_signal is not sent: slurmrestd 22.05 cannot ask for it (END_SIGNAL_UNSENT; the client logs it).
    if hold:
        props["hold"] = True
    return {"script": script, "job": props}


# ---------------------------------------------------------------------------------------------
# Answers (pure)
# ---------------------------------------------------------------------------------------------
def _errors(payload: Any) -> list[dict[str, Any]]:
    errors = payload.get("errors") if isinstance(payload, dict) else None
    return [e for e in errors if isinstance(e, dict)] if isinstance(errors, list) else []


def _error_number(error: Mapping[str, Any]) -> int | None:
    for key in ("error_number", "error_code", "errno"):
        if isinstance(error.get(key), int):
            return error[key]
    return None


def _error_text(error: Mapping[str, Any]) -> str:
    description, name = str(error.get("description") or ""), str(error.get("error") or "")
    if description and name and name not in description:
        return f"{description}: {name}"
    return description or name or "no message"


def rest_failure(status: int, payload: Any, *, action: str, user: str, token_expired: bool, url: str,
                 write: bool = False) -> SlurmError:
    """A failed answer of slurmrestd as one of our errors, in plain words. `action` says what was asked
    ("cancel job 12"), `user` whose token went with it, `token_expired` whether that token's ``exp`` had
    passed when the answer came, `write` whether it was a submit or a cancel (where a refused token reads
    differently from a silent slurmctld)."""
    if status == 401:
        return SlurmNotInstalled(
            f"slurmrestd at {url} refused the hub's request without reading its token (HTTP 401): it must run "
            "with SLURM_JWT=daemon and -a rest_auth/jwt (docs/admin.md)")
    if status == 404:
        return SlurmNotInstalled(
            f"slurmrestd at {url} does not know the path for {action} (HTTP 404): check the site's "
            f"slurm.rest_url and slurm.rest_api_version (this client speaks {', '.join(API_VERSIONS)})")
    errors = _errors(payload)
    numbers = {_error_number(e) for e in errors}
    words = "; ".join(_error_text(e) for e in errors)
    if status == 400 and errors:  # slurmrestd read the request and refused it before asking slurmctld
        return SlurmRejected(f"slurmrestd refused the request to {action}: {words}")
    if not errors:
        what = f"HTTP {status}" + ("" if isinstance(payload, dict) else ", not a Slurm answer")
        return SlurmUnavailable(f"slurmrestd at {url} answered {action} with {what}")
    if token_expired and (numbers & (_UNCLEAR | {_AUTHENTICATION}) or UNAVAILABLE.search(words)):
        return SlurmRejected(TOKEN_EXPIRED)
    if _AUTHENTICATION in numbers:
        return SlurmNotInstalled(
            f"Slurm did not accept the hub's token for {user} ({words}): the site's slurm.jwt_key_file must be "
            "the key of slurmctld's and slurmdbd's AuthAltParameters=jwt_key, and the clocks must agree")
    if write and _ZERO_BYTES in numbers:
        return SlurmRejected(TOKEN_REFUSED.format(user=user, action=action))
    if UNAVAILABLE.search(words) and not numbers & _UNCLEAR:
        return SlurmUnavailable(f"Slurm did not answer {action}: {words}")
    if numbers & _UNCLEAR:
        return SlurmUnavailable(
            f"slurmctld gave no answer through slurmrestd to {action} ({words}). If this lasts while slurmctld "
            f"is up, it does not accept the hub's tokens for {user}: check that slurm.jwt_key_file is slurmctld's "
            "jwt_key and that this host's clock agrees with slurmctld's")
    if _PERMISSION_DENIED in numbers:
        return SlurmRejected(f"Slurm refused to {action} for {user}: only a job's owner (or an administrator) "
                             f"may do that ({words})")
    return SlurmRejected(words)


def _when(epoch: Any) -> str:
    """Seconds since the epoch as Slurm prints times (local, 2026-01-31T12:00:00); "" for none."""
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch <= 0:
        return ""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(epoch))


def _exit_code(status: Any) -> str:
    """A raw wait status (slurmrestd's exit_code) as scontrol prints it: exit code:signal."""
    if isinstance(status, bool) or not isinstance(status, int) or status < 0:
        return ""
    return f"{(status >> 8) & 0xFF}:{status & 0x7F}"


def job_info(record: Mapping[str, Any]) -> JobInfo:
    """One job of ``GET /slurm/VERSION/job/ID`` (or ``/jobs``) as JobInfo, as squeue and scontrol give it."""
    job_id = str(record.get("job_id", ""))
    if not matches(JOB_ID, job_id):
        raise SlurmRejected(f"slurmrestd listed a job without a job id: {job_id[:40]!r}")
    reason = str(record.get("state_reason") or "")
    node = str(record.get("nodes") or record.get("batch_host") or "")
    return JobInfo(
        job_id=job_id,
        state=str(record.get("job_state") or "GONE").upper(),
        reason="" if reason in ("None", "(null)") else reason,
        node="" if node in ("(null)", "None") else node,
        partition=str(record.get("partition") or ""),
        start_time=_when(record.get("start_time")),
        exit_code=_exit_code(record.get("exit_code")),
    )


def _jobs(payload: Any) -> list[Mapping[str, Any]]:
    jobs = payload.get("jobs") if isinstance(payload, dict) else None
    return [j for j in jobs if isinstance(j, dict)] if isinstance(jobs, list) else []


def pending_order_from_jobs(records: Iterable[Mapping[str, Any]], partition: str) -> list[str]:
    """Ids of the jobs pending in `partition`, in the order Slurm considers them (highest priority first,
    then the older job), as ``squeue -t PENDING -p P --sort=-p,i`` lists them."""
    pending = []
    for rec in records:
        parts = str(rec.get("partition") or "").split(",")
        if str(rec.get("job_state", "")).upper() == "PENDING" and partition in parts and matches(JOB_ID, str(rec.get("job_id"))):
            priority = rec.get("priority") if isinstance(rec.get("priority"), int) else 0
            pending.append((-priority, int(rec["job_id"]), str(rec["job_id"])))
    return [job_id for _p, _i, job_id in sorted(pending)]


_NODE_STATES = {"idle": "idle", "mixed": "mix", "allocated": "alloc", "down": "down", "error": "err",
                "future": "futr", "unknown": "unk"}


def node_state(state: str, flags: Sequence[str]) -> str:
    """slurmrestd's node state and flags as sinfo's short state (``%t``), which `node_takes_jobs` reads."""
    base, flags = str(state).lower(), {str(f).upper() for f in flags}
    short = _NODE_STATES.get(base, base[:5] or "unk")
    if "DRAIN" in flags:
        short = "drng" if base in ("mixed", "allocated") else "drain"
    elif "FAIL" in flags:
        short = "fail"
    elif "MAINTENANCE" in flags:
        short = "maint"
    elif "RESERVED" in flags:
        short = "resv"
    elif "COMPLETING" in flags:
        short = "comp"
    elif "PLANNED" in flags:
        short = "plnd"
    if "NOT_RESPONDING" in flags:
        short += "*"
    elif "POWERED_DOWN" in flags:
        short += "~"
    return short


def _minutes(value: Any) -> int | None:
    """A partition's time limit in minutes; None for unlimited (slurmrestd says null or a huge number)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0 or value >= 0xFFFFFFFE:
        return None
    return value


def partitions_from_records(partitions: Iterable[Mapping[str, Any]], nodes: Iterable[Mapping[str, Any]]) -> list[PartitionInfo]:
    """``GET /partitions`` and ``GET /nodes`` as the PartitionInfo records `SlurmClient.partitions` makes,
    idle GPUs already net of those in use (each node's ``gres_used``)."""
    parts = [p for p in partitions if matches(SLURM_NAME, p.get("name"))]
    defaults = {p["name"] for p in parts if "default" in [str(f).lower() for f in p.get("flags") or ()]}
    members: dict[str, list[NodeInfo]] = {p["name"]: [] for p in parts}
    in_use: dict[str, int] = {}
    for rec in nodes:
        name = rec.get("name")
        if not matches(SLURM_NAME, name):
            continue
        in_use[name] = parse_gres_gpus(str(rec.get("gres_used") or ""))
        for pname in rec.get("partitions") or ():
            if pname in members:
                members[pname].append(NodeInfo(
                    name=name, partition=pname, state=node_state(rec.get("state", ""), rec.get("state_flags") or ()),
                    cpus=int(rec.get("cpus") or 0), cpus_idle=int(rec.get("idle_cpus") or 0),
                    memory_mb=int(rec.get("real_memory") or 0), gpus=parse_gres_gpus(str(rec.get("gres") or "")),
                    address=str(rec.get("address") or name), default_partition=pname in defaults))
    out = []
    for p in parts:
        name = p["name"]
        info = partitions_from_nodes(members[name]).get(name, PartitionInfo(name=name))
        out.append(dataclasses.replace(
            info,
            available=str(p.get("state", "UP")).upper() == "UP",
            default=name in defaults,
            max_time_minutes=_minutes(p.get("max_time_limit")),
            gpus_idle=sum(max(0, n.gpus - in_use.get(n.name, 0)) for n in info.usable_nodes),
        ))
    return out


# ---------------------------------------------------------------------------------------------
# The client (I/O)
# ---------------------------------------------------------------------------------------------
#: (method, url, headers, JSON body or None, timeout in seconds) -> (HTTP status, response text). Raises
#: TimeoutError when there is no answer in time, OSError when there is no connection.
Transport = Callable[[str, str, Mapping[str, str], Any, float], "tuple[int, str]"]


def requests_transport(method: str, url: str, headers: Mapping[str, str], body: Any, timeout_s: float) -> tuple[int, str]:
    """One HTTP request with `requests`: no proxy from the environment and no redirects (the token is in the
    headers and goes to slurmrestd only)."""
    with requests.Session() as session:
        session.trust_env = False
        try:
            r = session.request(method, url, headers=dict(headers), json=body, timeout=timeout_s, allow_redirects=False)
        except requests.Timeout as err:
            raise TimeoutError(str(err)) from None
        except requests.RequestException as err:
            cause = re.search(r"\[Errno -?[0-9]+\] ([^'\")]+)", str(err))
            raise ConnectionError(cause.group(1).strip() if cause else type(err).__name__) from None
        return r.status_code, r.text


def _process_user() -> str:
    return pwd.getpwuid(os.geteuid()).pw_name


@dataclass
class SlurmRestClient:
    """Talks to slurmrestd at `url` (``http://127.0.0.1:6820``) with API `api_version`. `query_user`: whose
    token reads the queue (job states, partitions, nodes); None: the account this process runs as, which
    must not be root."""

    url: str
    api_version: str
    minter: JwtMinter
    timeout_s: float = 10.0
    conf: str | None = None  # SLURM_CONF given to every job, as the command-line client gives it
    query_user: str | None = None
    transport: Transport = requests_transport
    _end_signal_logged: bool = field(default=False, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.api_version not in API_VERSIONS:
            raise ValueError(f"slurmrestd API {self.api_version!r}: this client speaks {', '.join(API_VERSIONS)}")
        self.url = self.url.rstrip("/")

    @classmethod
    def for_site(cls, slurm: Any, *, timeout_s: float | None = None) -> "SlurmRestClient":
        """The client a site's `slurm` settings describe (access: rest)."""
        return cls(url=slurm.rest_url, api_version=slurm.rest_api_version,
                   minter=JwtMinter(slurm.jwt_key_file, slurm.token_lifespan_s),
                   timeout_s=timeout_s or slurm.command_timeout_s, conf=slurm.conf)

    @property
    def identity(self) -> tuple:
        """What makes two clients ask the same Slurm the same way (see SlurmClient.identity)."""
        return ("rest", self.url, self.api_version, self.minter.key_file, self.timeout_s, self.query_user)

    # -- requests -------------------------------------------------------------------------------
    def _who(self, user: str | None) -> str:
        who = user if user is not None else (self.query_user or _process_user())
        if who == "root":
            raise SlurmNotInstalled(
                "with slurm.access rest the hub must not act as root: a root token would act for every Slurm user; "
                "run the hub as its unprivileged service account (docs/admin.md)")
        return require(UNIX_USER, who, "Slurm user")

    def _path(self, *parts: str, db: bool = False) -> str:
        return f"{self.url}/{'slurmdb' if db else 'slurm'}/{self.api_version}/" + "/".join(quote(p, safe="") for p in parts)

    def call_sync(self, method: str, url: str, *, user: str | None, action: str, body: Any = None,
                  job_id_ok: bool = False) -> dict[str, Any]:
        """One request with a fresh token of `user` (None: `query_user`): the answer, or our error.
        `job_id_ok`: an answer with a job id counts as done even when it carries errors (submit)."""
        who = self._who(user)
        token = self.minter.mint(who)
        headers = {"X-SLURM-USER-NAME": who, "X-SLURM-USER-TOKEN": token.value, "Accept": "application/json"}
        try:
            status, text = self.transport(method, url, headers, body, self.timeout_s)
        except TimeoutError:
            raise SlurmTimedOut(f"slurmrestd at {self.url} did not answer {action} within {self.timeout_s:g} s") from None
        except OSError as err:
            raise SlurmUnavailable(f"slurmrestd at {self.url} does not answer ({action}): {err}") from None
        try:
            payload = json.loads(text)
        except ValueError:
            payload = None
        if isinstance(payload, dict):
            if status == 200 and (not _errors(payload) or (job_id_ok and isinstance(payload.get("job_id"), int))):
                return payload
        raise rest_failure(status, payload, action=action, user=who, url=self.url,
                           token_expired=time.time() >= token.expires_at, write=method in ("POST", "DELETE"))

    async def _call(self, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
        return await asyncio.to_thread(self.call_sync, method, url, **kwargs)

    # -- jobs -----------------------------------------------------------------------------------
    def _home(self, user: str) -> str:
        try:
            return pwd.getpwnam(user).pw_dir
        except KeyError:
            raise SlurmNotInstalled(f"this host has no account {user}, so the hub cannot tell the job's working "
                                    "directory: the script must name one (--chdir)") from None

    async def submit(self, script: str, *, user: str | None = None, env: Mapping[str, str] | None = None,
                     hold: bool = False) -> str:
        """Submit a script of `build_batch_script` as `user` (None: `query_user`); returns the job id. `env`:
        the job's whole environment (None: the caller's), SLURM_CONF from `conf` added, as for sbatch.
        `hold`: the job waits (JobHeldUser) until released or cancelled."""
        job = batch_job_from_script(script)
        who = self._who(user)
        if job.end_signal is not None and not self._end_signal_logged:
            _log.warning(END_SIGNAL_UNSENT)
            self._end_signal_logged = True
        environment = dict(os.environ if env is None else env)
        if self.conf:
            environment["SLURM_CONF"] = self.conf
        body = submit_body(job, script, environment=environment, home=job.chdir or self._home(who), hold=hold)
        answer = await self._call("POST", self._path("job", "submit"), user=who, body=body,
                                  action=f"submit job {job.job_name}", job_id_ok=True)
        job_id = str(answer.get("job_id", ""))
        if not matches(JOB_ID, job_id):
            raise SlurmRejected(f"slurmrestd gave no job id for job {job.job_name}: {str(answer)[:200]}")
        return job_id

    async def job(self, job_id: str) -> JobInfo:
        """The job's state. GONE when Slurm no longer knows it. Raises SlurmUnavailable when Slurm is silent."""
        return await self.ended_job(job_id)

    async def ended_job(self, job_id: str) -> JobInfo:
        """A job as Slurm knows it (also one that ended less than MinJobAge ago); GONE when unknown."""
        require(JOB_ID, job_id, "job id")
        try:
            answer = await self._call("GET", self._path("job", job_id), user=None, action=f"show job {job_id}")
        except SlurmRejected as err:
            if INVALID_JOB.search(str(err)):
                return JobInfo(job_id=job_id, state="GONE")
            raise
        for rec in _jobs(answer):
            info = job_info(rec)
            if info.job_id == job_id:
                return info
        return JobInfo(job_id=job_id, state="GONE")

    async def jobs(self, job_ids: Sequence[str]) -> dict[str, JobInfo]:
        """The jobs of `job_ids` that are still queued or running, by id, from one listing of every job
        (what squeue lists; a job that has ended is left out: ask `ended_job`)."""
        wanted = {require(JOB_ID, j, "job id") for j in job_ids}
        if not wanted:
            return {}
        answer = await self._call("GET", self._path("jobs"), user=None, action="list jobs")
        infos = (job_info(rec) for rec in _jobs(answer))
        return {i.job_id: i for i in infos if i.job_id in wanted and not i.is_finished}

    async def cancel(self, job_id: str, *, user: str | None = None) -> None:
        """Cancel a job with `user`'s token (a job Slurm no longer knows counts as cancelled)."""
        require(JOB_ID, job_id, "job id")
        try:
            await self._call("DELETE", self._path("job", job_id), user=user, action=f"cancel job {job_id}")
        except SlurmRejected as err:
            if not INVALID_JOB.search(str(err)):
                raise

    async def pending_order(self, partition: str) -> list[str]:
        """Ids of the jobs pending in a partition, in the order Slurm will consider them (priority)."""
        require(SLURM_NAME, partition, "partition")
        answer = await self._call("GET", self._path("jobs"), user=None, action="list jobs")
        return pending_order_from_jobs(_jobs(answer), partition)

    async def start_estimates(self, job_ids: Sequence[str]) -> dict[str, str]:
        """Slurm's estimated start of pending jobs (jobs without one are left out), as ``squeue --start``."""
        out = {}
        for job_id in job_ids:
            info = await self.ended_job(job_id)
            if info.is_pending and info.start_time:
                out[job_id] = info.start_time
        return out

    # -- cluster --------------------------------------------------------------------------------
    async def ping(self) -> dict[str, str]:
        """Each controller's answer ("UP", "DOWN") by host name; SlurmUnavailable when none is up."""
        answer = await self._call("GET", self._path("ping"), user=None, action="ping")
        pings = {str(p.get("hostname")): str(p.get("ping")) for p in answer.get("pings") or () if isinstance(p, dict)}
        if "UP" not in pings.values():
            raise SlurmUnavailable(f"no slurmctld is up: {pings or 'slurmrestd listed none'}")
        return pings

    async def node_address(self, node: str) -> str:
        """The address Slurm reaches a node at (its NodeAddr); the name when Slurm lists no such node."""
        if not matches(SLURM_NAME, node):
            raise ValueError(f"not a Slurm node name: {node!r}")
        try:
            answer = await self._call("GET", self._path("node", node), user=None, action=f"show node {node}")
        except SlurmRejected as err:
            if "Invalid node name" in str(err):
                return node
            raise
        for rec in answer.get("nodes") or ():
            if isinstance(rec, dict) and rec.get("name") == node:
                return str(rec.get("address") or node)
        return node

    async def partitions(self) -> list[PartitionInfo]:
        """Partitions with their limits, nodes and idle GPUs (net of those in use)."""
        parts, nodes = await asyncio.gather(
            self._call("GET", self._path("partitions"), user=None, action="list partitions"),
            self._call("GET", self._path("nodes"), user=None, action="list nodes"),
        )
        return partitions_from_records([p for p in parts.get("partitions") or () if isinstance(p, dict)],
                                       [n for n in nodes.get("nodes") or () if isinstance(n, dict)])

    # -- accounting -----------------------------------------------------------------------------
    async def _accounts_of(self, user: str) -> list[str]:
        """The user's Slurm associations (accounts), sorted, asked with the user's own token."""
        who = require(UNIX_USER, user, "Slurm user")
        answer = await self._call("GET", self._path("associations", db=True) + f"?user={quote(who)}", user=who,
                                  action=f"list the associations of {who}")
        return sorted({a["account"] for a in answer.get("associations") or ()
                       if isinstance(a, dict) and a.get("user") == who and matches(SLURM_NAME, a.get("account"))})

    async def _default_account_of(self, user: str) -> str:
        """The account Slurm bills when a job names none; "" when accounting lists none."""
        who = require(UNIX_USER, user, "Slurm user")
        answer = await self._call("GET", self._path("user", who, db=True), user=who, action=f"show user {who}")
        for rec in answer.get("users") or ():
            if isinstance(rec, dict) and rec.get("name") == who:
                account = (rec.get("default") or {}).get("account")
                return account if matches(SLURM_NAME, account) else ""
        return ""

    async def user_associations(self, user: str) -> UserAssociations:
        """The user's accounts and default account, asked with the user's own token. No budgets: Slurm
        22.05's slurmrestd gives no association usage (``usage: null``), so the form shows them as unknown
        and Slurm decides at submit."""
        accounts, default = await asyncio.gather(self._accounts_of(user), self._default_account_of(user))
        return UserAssociations(tuple(accounts), default if default in accounts else "", {})
