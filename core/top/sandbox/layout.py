"""Where a sandbox keeps everything under its home (AIFW_HOME), and the effective site it runs.

  venv/                 the runtime (built by scripts/install.sh)
  state/site.yaml       the effective site file (the chosen site with this home's paths filled in)
  state/slurm/          slurm.conf, gres.conf, cgroup.conf, slurmdbd.conf, fake GPU devices, controller
                        state, a spool, pid file and log per node
  state/accounting/     the sandbox's own MariaDB (slurmdbd's database) and its password
  state/hub/            hub DB, cookie secret, proxy token, pid files
  logs/                 slurmctld.log, slurmd.log, jupyterhub.log
  share/courses/        the learners' copies of the courses (world-readable)
  sandbox.json          hub_url, admin api_token, users -> passwords (mode 0600, root)

`Stack` names these paths and carries the effective site; `make_stack` builds it from a home and a site
file. Nothing here starts or writes anything.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from aifw.site import Site, load_site, site_from_dict
from aifw.slurm import SlurmClient

from .processes import SandboxError
from .slurm_conf import SlurmPaths

#: Seconds the sandbox waits for one Slurm command (its own one-node cluster answers at once).
SLURM_TIMEOUT_S = 10


@dataclass(frozen=True)
class Stack:
    home: Path
    site: Site  # effective site (paths point into home)

    @property
    def state(self) -> Path:
        return self.home / "state"

    @property
    def logs(self) -> Path:
        return self.home / "logs"

    @property
    def share(self) -> Path:
        return self.home / "share"

    @property
    def slurm_paths(self) -> SlurmPaths:
        return SlurmPaths(self.state / "slurm")

    @property
    def hub_state(self) -> Path:
        return self.state / "hub"

    @property
    def site_file(self) -> Path:
        return self.state / "site.yaml"

    @property
    def sandbox_json(self) -> Path:
        return self.home / "sandbox.json"

    @property
    def hub_pid(self) -> Path:
        return self.hub_state / "jupyterhub.pid"

    @property
    def proxy_pid(self) -> Path:
        return self.hub_state / "proxy.pid"

    @property
    def hub_log(self) -> Path:
        return self.logs / "jupyterhub.log"

    @property
    def munge_marker(self) -> Path:
        return self.state / "munged.started-by-us"

    @property
    def venv(self) -> Path:
        return self.home / "venv"

    @property
    def venv_bin(self) -> Path:
        return self.venv / "bin"

    @property
    def slurm(self) -> SlurmClient:
        """The client of this stack's Slurm (the effective site's slurm settings point at its slurm.conf)."""
        return SlurmClient.for_site(self.site.slurm, timeout_s=SLURM_TIMEOUT_S)

    @property
    def hub_url(self) -> str:
        return self.site.hub.bind_url.rstrip("/")


def effective_site(site: Site, home: Path) -> Site:
    """The chosen site with this home's runtime prefix and Slurm config filled in; in cluster mode the hub
    listens on the login node's address (which the compute nodes reach) and the servers on their node's."""
    if site.sandbox is None:
        raise SandboxError("this site file has no 'sandbox' section; `aifw sandbox` only runs one-machine sandboxes")
    if site.clusters:
        raise SandboxError("the sandbox runs one Slurm cluster: write its slurm and partitions at the top level of "
                           "the site file, not under `clusters`")
    data = site.model_dump(mode="json")
    data["paths"]["runtime_prefix"] = str(home)
    data["slurm"]["conf"] = str(SlurmPaths(home / "state" / "slurm").conf)
    if site.sandbox.is_cluster:
        data["hub"].update(hub_ip=site.sandbox.login_address, hub_connect_ip=site.sandbox.login_address,
                           singleuser_ip="0.0.0.0")
    return site_from_dict(data, source="effective site")


def effective_site_text(stack: Stack) -> str:
    """What `state/site.yaml` holds: the effective site, for the hub (AIFW_SITE) and the sessions."""
    return ("# Effective site file written by `aifw sandbox up`; edit the source site file instead.\n"
            + yaml.safe_dump(stack.site.model_dump(mode="json"), sort_keys=False))


def make_stack(home: str | os.PathLike, site_path: str | os.PathLike | None = None) -> Stack:
    home = Path(home).resolve()
    return Stack(home=home, site=effective_site(load_site(site_path), home))
