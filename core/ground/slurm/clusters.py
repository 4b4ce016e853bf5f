"""One Slurm client per cluster, chosen by the cluster's name: a hub in front of several clusters (the
hosting AI Factory through slurmrestd, an antenna's own cluster through the command line).

Each cluster is reached on its own, with the client its settings describe (`SlurmClient.for_site`): a
command-line cluster through its own slurm.conf (every command gets that file's SLURM_CONF, so it talks to
that cluster's slurmctld), a REST cluster through its own slurmrestd. Slurm's own multi-cluster mode
(``sbatch -M NAME``, ``squeue --clusters``) is not used: the commands find the other clusters' controllers
in one shared slurmdbd, which a remote AI Factory and an antenna's cluster do not share (and a REST cluster
is no slurmctld the hub host can reach). With one slurm.conf per cluster nothing is shared: several
slurmctld on one host, each with its own ports and SLURM_CONF, answered side by side
(../shared/notes/slurm-accounting-and-rest.md: a third cluster beside two others).

Clients of different clusters have different `identity` (their slurm.conf or slurmrestd differ), so each
cluster gets its own shared job watcher in the spawner: the clusters are asked apart, and one that does not
answer holds up no other.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Union

from .client import SlurmClient
from .rest import SlurmRestClient

#: A cluster's client: the command line or slurmrestd (the same calls, the same typed answers and errors).
Client = Union[SlurmClient, SlurmRestClient]


class UnknownCluster(ValueError):
    """A name that is none of the site's clusters (a programming or state error: requests are validated
    against the site before they reach a client)."""


@dataclass(frozen=True)
class ClusterClients:
    """The clients of a site's clusters by name, in the site's order (the first is the default)."""

    clients: tuple[tuple[str, Client], ...]

    def __post_init__(self) -> None:
        names = [name for name, _ in self.clients]
        if not names:
            raise ValueError("ClusterClients needs at least one cluster")
        if len(set(names)) != len(names):
            raise ValueError(f"cluster names must be unique: {', '.join(names)}")

    @classmethod
    def for_site(cls, clusters: Iterable[Any], *, timeout_s: float | None = None) -> "ClusterClients":
        """One client per cluster (anything with `name` and `slurm` settings: the site's `all_clusters`)."""
        return cls(tuple((c.name, SlurmClient.for_site(c.slurm, timeout_s=timeout_s)) for c in clusters))

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.clients]

    @property
    def default(self) -> str:
        """The default cluster's name (the first)."""
        return self.clients[0][0]

    def client(self, name: str = "") -> Client:
        """The client of cluster `name` ("": the default one). UnknownCluster for a name the site lacks."""
        if not name:
            return self.clients[0][1]
        for known, client in self.clients:
            if known == name:
                return client
        raise UnknownCluster(f"no cluster {name!r} here; the clusters are: {', '.join(self.names)}")

    def with_client(self, name: str, client: Any) -> "ClusterClients":
        """The same clusters with cluster `name` ("": the default) reached through `client` instead."""
        name = name or self.default
        self.client(name)  # UnknownCluster
        return ClusterClients(tuple((n, client if n == name else c) for n, c in self.clients))
