"""The one config JupyterHub loads: `jupyterhub -f <this file>`.

It reads ONE site file ($AIFW_SITE, validated; see docs/config-reference.md), once, and sets `c` from it
(the spawner gets the site itself as `c.AIFSlurmSpawner.site`). Then it refuses spawner settings that
AIFSlurmSpawner would not use (batchspawner's `req_*`, `batch_script`, ...), set here or on the command
line, naming what replaces each. Environment: AIFW_SITE (site file), AIFW_HOME (runtime prefix with state/),
AIFW_ADMIN_TOKEN (optional API token for scripts and tests, given an admin role).
"""
import os
import sys

from traitlets.config import Config

from aifw.site import SiteError, load_site

try:
    site = load_site(os.environ.get("AIFW_SITE") or None)
except SiteError as err:
    print(f"AIF Workbench: cannot start the hub.\n{err}", file=sys.stderr)
    sys.exit(2)

from jupyterhub.app import JupyterHub  # noqa: E402

from aifw.hub_config.settings import apply_settings, build_settings  # noqa: E402
from aifw.spawners import callback  # noqa: E402
from aifw.spawners.replaced import ReplacedSettings, refuse_replaced  # noqa: E402
from aifw.spawners.spawner import AIFSlurmSpawner  # noqa: E402

callback.install()  # replace batchspawner's permissive /hub/api/batchspawner handler

c = get_config()  # noqa: F821 - provided by JupyterHub when it loads this file
apply_settings(
    c,
    build_settings(
        site,
        home=os.environ.get("AIFW_HOME", site.paths.runtime_prefix),
        admin_token=os.environ.get("AIFW_ADMIN_TOKEN") or None,
    ),
)

# JupyterHub has parsed its command line before it loads this file: check that together with `c`.
effective = Config()
if JupyterHub.initialized():
    effective.merge(JupyterHub.instance().config)
effective.merge(c)
try:
    refuse_replaced(effective, AIFSlurmSpawner.section_names())
except ReplacedSettings as err:
    print(f"AIF Workbench: cannot start the hub.\n{err}", file=sys.stderr)
    sys.exit(2)
