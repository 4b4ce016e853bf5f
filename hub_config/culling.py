"""Culling idle sessions: jupyterhub-idle-culler as a hub-managed service, with a limit per kind of session.

The design, and why:

- **One culler, the well-kept one.** jupyterhub-idle-culler runs as a JupyterHub-managed service
  (`culler_service`, pure): it lists the ready servers every `CULL_EVERY_S` seconds through the hub's REST
  API and stops (DELETE) those idle too long; the hub then cancels the Slurm job. Its role has only the
  scopes that needs: list:users, read:users:activity, read:servers, delete:servers.
- **Two limits, one culler.** idle-culler has one ``--timeout``, but it also has a documented hook,
  ``IdleCuller.cull_arbiter_hook(inactive, inactive_limit, server)``, that decides per server. The server
  model it gets carries the session's ``user_options`` (validated by aifw.spawners.request), so
  `IdleLimits.should_cull` takes the session's limit from its GPUs: ``session.idle_cull_minutes_gpu`` with
  ``gpus`` > 0, else ``session.idle_cull_minutes_cpu`` (0: never). Two culler instances could not tell the
  kinds apart (idle-culler has no filter on user options); reporting false activity for CPU sessions would
  lie to the hub. `main` (``python -m aifw.hub_config.culling``) starts idle-culler with that hook, the
  limits from the service's environment (`CPU_LIMIT_ENV`, `GPU_LIMIT_ENV`). ``--timeout`` is given the
  shorter non-zero limit only because idle-culler requires one; the hook decides (a server without a
  ``gpus`` option is a CPU session).
- **What counts as activity** is the hub's ``last_activity`` of the server: traffic through the proxy and
  what the session reports, which our server extension (aifw.extensions.server.activity) feeds with busy
  kernels and busy GPUs.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Mapping

from aifw.site import Site

SERVICE_NAME = "idle-culler"
ROLE_NAME = "idle-culler"
#: The scopes idle-culler needs to stop servers (admin:users only to delete users, which we never do).
CULLER_SCOPES = ["list:users", "read:users:activity", "read:servers", "delete:servers"]
#: How often the culler looks (seconds): a session is stopped between its limit and this much later.
CULL_EVERY_S = 60
#: The service's environment: each kind's limit in seconds (0: never).
CPU_LIMIT_ENV = "AIFW_IDLE_CULL_CPU_SECONDS"
GPU_LIMIT_ENV = "AIFW_IDLE_CULL_GPU_SECONDS"


@dataclass(frozen=True)
class IdleLimits:
    """Each kind's idle limit, in seconds (0: never culled)."""

    cpu_s: int
    gpu_s: int

    @classmethod
    def from_site(cls, site: Site) -> "IdleLimits":
        return cls(site.session.idle_cull_minutes_cpu * 60, site.session.idle_cull_minutes_gpu * 60)

    @classmethod
    def from_environment(cls, env: Mapping[str, str]) -> "IdleLimits":
        """The limits the service was given; a missing or wrong value is an error naming it."""
        values = []
        for key in (CPU_LIMIT_ENV, GPU_LIMIT_ENV):
            raw = env.get(key, "")
            if not raw.isdigit():
                raise ValueError(f"{key} must be the idle limit in whole seconds (0: never); got {raw[:40]!r}")
            values.append(int(raw))
        return cls(*values)

    def limit_s(self, server: Mapping[str, Any]) -> int:
        """The limit of the server (the hub's server model): by the GPUs in its user options."""
        options = server.get("user_options") or {}
        gpus = options.get("gpus", 0) if isinstance(options, dict) else 0
        return self.gpu_s if isinstance(gpus, int) and gpus > 0 else self.cpu_s

    def should_cull(self, *, inactive: timedelta, inactive_limit: int, server: Mapping[str, Any], **_: Any) -> bool:
        """idle-culler's ``cull_arbiter_hook``: idle at least the server's own limit (never with 0).
        `inactive_limit` (idle-culler's single ``--timeout``) is not used: each kind has its own."""
        limit = self.limit_s(server)
        return limit > 0 and inactive.total_seconds() >= limit

    @property
    def shortest_s(self) -> int:
        """The shorter non-zero limit (0 when both are 0: no culler)."""
        return min((s for s in (self.cpu_s, self.gpu_s) if s > 0), default=0)


def culler_command(python: str, limits: IdleLimits, *, cull_every_s: int = CULL_EVERY_S) -> list[str]:
    """The culler's command line (``--config=``: no config file from the working directory)."""
    return [python, "-m", "aifw.hub_config.culling", f"--timeout={limits.shortest_s}",
            f"--cull-every={cull_every_s}", "--cull-users=False", "--remove-named-servers=False", "--config="]


def culler_environment(limits: IdleLimits) -> dict[str, str]:
    return {CPU_LIMIT_ENV: str(limits.cpu_s), GPU_LIMIT_ENV: str(limits.gpu_s)}


def culler_service(site: Site) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The culler's hub-managed service and its role (pure); none when both limits are 0."""
    limits = IdleLimits.from_site(site)
    if not limits.shortest_s:
        return [], []
    service = {
        "name": SERVICE_NAME,
        "command": culler_command(str(site.paths.venv / "bin" / "python"), limits),
        "environment": culler_environment(limits),
        "info": {"what": "jupyterhub-idle-culler", "cpu_limit_s": limits.cpu_s, "gpu_limit_s": limits.gpu_s},
    }
    role = {"name": ROLE_NAME, "description": "Stops idle sessions (jupyterhub-idle-culler)",
            "scopes": list(CULLER_SCOPES), "services": [SERVICE_NAME]}
    return [service], [role]


def main(argv: list[str] | None = None) -> None:
    """Run jupyterhub-idle-culler with `IdleLimits.should_cull` as its arbiter (limits from the environment).
    A config file given with ``--config`` may still set idle-culler's traits, the hook included."""
    from jupyterhub_idle_culler import IdleCuller
    from traitlets.config import Config

    try:
        limits = IdleLimits.from_environment(os.environ)
    except ValueError as err:
        sys.exit(f"aifw idle culler: {err}")
    config = Config()
    config.IdleCuller.cull_arbiter_hook = limits.should_cull
    app = IdleCuller(config=config)
    app.initialize(sys.argv[1:] if argv is None else argv)
    app.log.info("aifw idle culler: CPU sessions after %s s idle, GPU sessions after %s s (0: never)",
                 limits.cpu_s, limits.gpu_s)
    app.start()


if __name__ == "__main__":
    main()
