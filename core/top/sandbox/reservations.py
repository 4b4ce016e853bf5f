"""The sandbox's reservations for training events (`sandbox.reservations` of the site file), kept as the site
file says: one Slurm lacks is made; one whose nodes, cores or accounts differ is made again (deleted, then
made; Slurm refuses to delete one that running jobs use, and that is said)."""
from __future__ import annotations

from typing import Callable, Mapping

from aifw.site import SandboxReservation, Site
from aifw.slurm import SlurmClient, SlurmError

from .processes import SandboxError


def _same(have: Mapping[str, str], want: SandboxReservation, nodes: list[str]) -> bool:
    """Whether Slurm's reservation (scontrol's fields) is the one the site wants."""
    have_nodes = have.get("Nodes", "")
    # scontrol writes a node list compactly (node[1-2]); compare the expanded names when it does.
    if "[" in have_nodes:
        prefix, _, rng = have_nodes.partition("[")
        names = []
        for part in rng.rstrip("]").split(","):
            lo, _, hi = part.partition("-")
            names += [f"{prefix}{i}" for i in range(int(lo), int(hi or lo) + 1)]
    else:
        names = [n for n in have_nodes.split(",") if n]
    cores = have.get("CoreCnt")  # only where scontrol writes it
    return (sorted(names) == sorted(nodes)
            and sorted(a for a in have.get("Accounts", "").split(",") if a) == sorted(want.accounts)
            and (want.cores is None or cores is None or cores == str(want.cores)))


def apply_reservations(site: Site, slurm: SlurmClient, *, say: Callable[[str], None]) -> int:
    """Make the site's reservations that Slurm does not hold as the site file says; returns how many were made."""
    sandbox = site.sandbox
    if sandbox is None or not sandbox.reservations:
        return 0
    made = 0
    try:
        have = slurm.reservations_sync()
        for r in sandbox.reservations:
            nodes = sandbox.reservation_nodes(r)
            if r.name in have:
                if _same(have[r.name], r, nodes):
                    continue
                try:
                    slurm.delete_reservation_sync(r.name)
                except SlurmError as err:
                    raise SandboxError(f"reservation {r.name} differs from the site file, and Slurm would not delete it "
                                       f"to make it again ({err}); stop the jobs that run in it, then run "
                                       "`aifw sandbox up` again") from None
            slurm.create_reservation_sync(r.name, accounts=r.accounts, nodes=nodes, cores=r.cores, days=r.days)
            cores = f"{r.cores} cores of " if r.cores else ""
            say(f"reservation {r.name}: {cores}{', '.join(nodes)} for {', '.join(r.accounts)}, {r.days} days")
            made += 1
    except SlurmError as err:
        raise SandboxError(f"could not make the site's reservations: {err}. Check that their accounts are projects "
                           "of the site file and their nodes exist; see state/slurm/log/slurmctld.log.") from None
    return made
