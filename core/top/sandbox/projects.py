"""The site file's projects, QOS and GPU-hour budgets applied to the sandbox's accounting with sacctmgr
(through `aifw.slurm`; the mapping is `aifw.slurm.sacctmgr`). Idempotent: the database is read first and
only the differences are sent, so `up` on a running sandbox applies a changed site file at once
(slurmctld learns new associations and limits live).

Every user the site lets in (admins, course members, demo users, graders) who is in no project gets an
association with the account `general` (no budget): with AccountingStorageEnforce=associations a user
without one cannot run anything, and the sandbox's learners must be able to start a session.
"""
from __future__ import annotations

from typing import Callable

from aifw.site import Site
from aifw.slurm import SlurmClient, SlurmError
from aifw.slurm.sacctmgr import (
    ASSOC_ARGS,
    QOS_ARGS,
    USER_ARGS,
    WantedAccount,
    WantedMember,
    WantedQos,
    parse_accounting_state,
    plan_commands,
)

from .processes import SandboxError

#: The account of the site's users who are in no project (no budget).
GENERAL_ACCOUNT = "general"


def wanted(site: Site) -> tuple[list[WantedQos], list[WantedAccount]]:
    """The site's QOS and projects (plus `general` for users in none) as sacctmgr should hold them."""
    qos = [WantedQos(q.name, q.max_gpus_per_user, q.max_walltime_minutes, q.description) for q in site.qos]
    first_project: dict[str, str] = {}
    for p in site.projects:
        for u in p.users:
            first_project.setdefault(u, p.name)
    accounts = [
        WantedAccount(p.name, p.description, p.gpu_minutes,
                      tuple(WantedMember(u, tuple(p.qos), default_account=first_project[u] == p.name) for u in p.users))
        for p in site.projects
    ]
    everyone = set(site.users) | {c.grader_account for c in site.courses}
    unlisted = sorted(everyone - set(first_project))
    if unlisted:
        accounts.append(WantedAccount(GENERAL_ACCOUNT, "site users in no project", None,
                                      tuple(WantedMember(u, (), default_account=True) for u in unlisted)))
    return qos, accounts


def apply_projects(site: Site, slurm: SlurmClient, *, say: Callable[[str], None]) -> int:
    """Bring the accounting database in line with the site file; returns how many changes were sent."""
    try:
        state = parse_accounting_state(
            slurm.run_sync("sacctmgr", list(QOS_ARGS)).stdout,
            slurm.run_sync("sacctmgr", list(ASSOC_ARGS)).stdout,
            slurm.run_sync("sacctmgr", list(USER_ARGS)).stdout,
        )
        cmds = plan_commands(state, *wanted(site))
        for cmd in cmds:
            slurm.run_sync("sacctmgr", ["-i", *cmd])
    except SlurmError as err:
        raise SandboxError(f"could not apply the site's projects with sacctmgr: {err}. "
                           "See state/slurm/log/slurmdbd.log.") from None
    if cmds:
        say(f"accounting: {len(cmds)} change(s) applied ({len(site.projects)} project(s), {len(site.qos)} QOS)")
    return len(cmds)
