"""Projects, QOS and budgets as sacctmgr sees them (pure): what the accounting database holds now (parsed
from `sacctmgr -nP show ...`), what a site wants (typed), and the sacctmgr commands that take the first
to the second. Only what the site names is touched: accounts and QOS it does not list are left alone.

The mapping, for docs/admin.md:
- a QOS            -> ``add qos NAME MaxTRESPerUser=gres/gpu=N MaxWall=HH:MM:SS``
- a project        -> ``add account NAME Description=... Organization=aifw``
- its budget       -> ``modify account where name=NAME set GrpTRESMins=gres/gpu=<GPU-minutes>`` (-1: none)
- each member      -> ``add user USER Account=NAME`` (an association); the user's first project is
                      their DefaultAccount
- the project's QOS -> ``modify user where name=USER account=NAME set QOS=normal,<qos> DefaultQOS=<first>``
- a member the site no longer lists -> ``delete user where name=USER account=NAME``
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from aifw.names import SLURM_NAME, UNIX_USER, require

from .parse import format_slurm_minutes, parse_slurm_minutes

#: Flags of every read: no header, parsable ('|'-separated, no trailing '|').
SHOW = ("-nP", "show")
QOS_ARGS = (*SHOW, "qos", "format=name,maxtrespu,maxwall")
ASSOC_ARGS = (*SHOW, "assoc", "format=account,user,grptresmins,qos,defaultqos")
USER_ARGS = (*SHOW, "user", "format=user,defaultaccount")
ORGANIZATION = "aifw"


@dataclass(frozen=True)
class WantedQos:
    name: str
    max_gpus_per_user: int | None = None
    max_wall_minutes: int | None = None
    description: str = ""


@dataclass(frozen=True)
class WantedMember:
    user: str
    qos: tuple[str, ...] = ()  # besides 'normal'; the first is the default QOS
    default_account: bool = False


@dataclass(frozen=True)
class WantedAccount:
    name: str
    description: str = ""
    gpu_minutes: int | None = None
    members: tuple[WantedMember, ...] = ()


@dataclass
class AccountingState:
    """What sacctmgr lists now."""

    qos: dict[str, tuple[int | None, int | None]] = field(default_factory=dict)  # name -> (gpus/user, wall min)
    accounts: dict[str, int | None] = field(default_factory=dict)  # account -> GPU-minutes limit
    associations: dict[tuple[str, str], tuple[frozenset[str], str]] = field(default_factory=dict)  # (acct, user) -> (qos, default)
    default_accounts: dict[str, str] = field(default_factory=dict)  # user -> default account


def _gpu_value(tres: str) -> int | None:
    for item in tres.split(","):
        key, _, value = item.partition("=")
        if key.strip() == "gres/gpu" and value.strip().lstrip("-").isdigit():
            number = int(value)
            return None if number < 0 else number
    return None


def parse_accounting_state(qos_text: str, assoc_text: str, user_text: str) -> AccountingState:
    """The three `sacctmgr -nP show` outputs (QOS_ARGS, ASSOC_ARGS, USER_ARGS) as one state."""
    state = AccountingState()
    for line in qos_text.splitlines():
        parts = line.strip().split("|")
        if len(parts) >= 3 and parts[0]:
            state.qos[parts[0]] = (_gpu_value(parts[1]), parse_slurm_minutes(parts[2]) if parts[2] else None)
    for line in assoc_text.splitlines():
        parts = line.strip().split("|")
        if len(parts) < 5 or not parts[0]:
            continue
        account, user, tres, qos, default_qos = parts[:5]
        if user:
            state.associations[(account, user)] = (frozenset(q for q in qos.split(",") if q), default_qos)
        else:
            state.accounts[account] = _gpu_value(tres)
    for line in user_text.splitlines():
        parts = line.strip().split("|")
        if len(parts) >= 2 and parts[0]:
            state.default_accounts[parts[0]] = parts[1]
    return state


def _description(text: str, fallback: str) -> str:
    """A description sacctmgr takes as one value: letters, digits, spaces and simple punctuation."""
    kept = "".join(ch if ch.isalnum() or ch in " .,:;()/+-_" else " " for ch in text)
    kept = " ".join(kept.split())[:100]
    return kept or fallback


def _gpu_setting(value: int | None) -> str:
    return f"gres/gpu={-1 if value is None else value}"


def _wall_setting(minutes: int | None) -> str:
    return "-1" if minutes is None else format_slurm_minutes(minutes)


def plan_commands(state: AccountingState, qos: Sequence[WantedQos], accounts: Sequence[WantedAccount]) -> list[list[str]]:
    """sacctmgr argv tails (run each as ``sacctmgr -i <tail>``) that make the state what is wanted."""
    cmds: list[list[str]] = []
    for q in qos:
        require(SLURM_NAME, q.name, "QOS name")
        want = (q.max_gpus_per_user, q.max_wall_minutes)
        if q.name not in state.qos:
            cmd = ["add", "qos", q.name, f"Description={_description(q.description, q.name)}"]
            if q.max_gpus_per_user is not None:
                cmd.append(f"MaxTRESPerUser={_gpu_setting(q.max_gpus_per_user)}")
            if q.max_wall_minutes is not None:
                cmd.append(f"MaxWall={_wall_setting(q.max_wall_minutes)}")
            cmds.append(cmd)
        elif state.qos[q.name] != want:
            cmds.append(["modify", "qos", "where", f"name={q.name}", "set",
                         f"MaxTRESPerUser={_gpu_setting(q.max_gpus_per_user)}", f"MaxWall={_wall_setting(q.max_wall_minutes)}"])
    for a in accounts:
        require(SLURM_NAME, a.name, "account name")
        if a.name not in state.accounts:
            cmds.append(["add", "account", a.name, f"Description={_description(a.description, a.name)}",
                         f"Organization={ORGANIZATION}"])
        if state.accounts.get(a.name) != a.gpu_minutes:
            cmds.append(["modify", "account", "where", f"name={a.name}", "set", f"GrpTRESMins={_gpu_setting(a.gpu_minutes)}"])
        for m in a.members:
            require(UNIX_USER, m.user, "user name")
            for q in m.qos:
                require(SLURM_NAME, q, "QOS name")
            have = state.associations.get((a.name, m.user))
            if have is None:
                cmd = ["add", "user", m.user, f"Account={a.name}"]
                if m.default_account and m.user not in state.default_accounts:
                    cmd.append(f"DefaultAccount={a.name}")
                cmds.append(cmd)
            want_qos = frozenset({"normal", *m.qos})
            want_default = m.qos[0] if m.qos else ""
            if have is None or have[0] != want_qos or have[1] != want_default:
                if have is not None or m.qos:
                    cmds.append(["modify", "user", "where", f"name={m.user}", f"account={a.name}", "set",
                                 f"QOS={','.join(sorted(want_qos))}", f"DefaultQOS={want_default or '-1'}"])
            if m.default_account and state.default_accounts.get(m.user, a.name) != a.name:
                cmds.append(["modify", "user", "where", f"name={m.user}", "set", f"DefaultAccount={a.name}"])
    for a in accounts:
        listed = {m.user for m in a.members}
        for (account, user) in sorted(state.associations):
            if account == a.name and user not in listed:
                cmds.append(["delete", "user", "where", f"name={user}", f"account={account}"])
    return cmds
