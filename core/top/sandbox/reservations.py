"""The sandbox's reservations for training events (`sandbox.reservations` of the site file), made in Slurm
once: a reservation that exists is left as it is (running jobs may be in it); to change one, delete it with
`scontrol delete reservation NAME` and run `aifw sandbox up` again."""
from __future__ import annotations

from typing import Callable

from aifw.site import Site
from aifw.slurm import SlurmClient, SlurmError

from .processes import SandboxError


def apply_reservations(site: Site, slurm: SlurmClient, *, say: Callable[[str], None]) -> int:
    """Make the site's reservations that Slurm does not hold yet; returns how many were made."""
    sandbox = site.sandbox
    if sandbox is None or not sandbox.reservations:
        return 0
    made = 0
    try:
        have = set(slurm.reservation_names_sync())
        for r in sandbox.reservations:
            if r.name in have:
                continue
            nodes = sandbox.reservation_nodes(r)
            slurm.create_reservation_sync(r.name, accounts=r.accounts, nodes=nodes, cores=r.cores, days=r.days)
            cores = f"{r.cores} cores of " if r.cores else ""
            say(f"reservation {r.name}: {cores}{', '.join(nodes)} for {', '.join(r.accounts)}, {r.days} days")
            made += 1
    except SlurmError as err:
        raise SandboxError(f"could not make the site's reservations: {err}. Check that their accounts are projects "
                           "of the site file and their nodes exist; see state/slurm/log/slurmctld.log.") from None
    return made
