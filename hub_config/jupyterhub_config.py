"""The one config JupyterHub loads: `jupyterhub -f <this file>`.

It reads ONE site file ($AIFW_SITE, validated; see docs/config-reference.md) and sets `c` from it.
Environment: AIFW_SITE (site file), AIFW_HOME (runtime prefix with state/), AIFW_ADMIN_TOKEN (optional
API token for scripts and tests, given an admin role).
"""
import os
import sys

from aifw.site import SiteError, load_site

try:
    site = load_site(os.environ.get("AIFW_SITE") or None)
except SiteError as err:
    print(f"AIF Workbench: cannot start the hub.\n{err}", file=sys.stderr)
    sys.exit(2)

from aifw.hub_config.settings import apply_settings, build_settings  # noqa: E402
from aifw.spawners import callback  # noqa: E402

callback.install()  # replace batchspawner's permissive /hub/api/batchspawner handler

c = get_config()  # noqa: F821 - provided by JupyterHub when it loads this file
apply_settings(
    c,
    build_settings(
        site,
        home=os.environ.get("AIFW_HOME", site.paths.runtime_prefix),
        admin_token=os.environ.get("AIFW_ADMIN_TOKEN") or None,
        site_file=os.environ.get("AIFW_SITE", ""),
    ),
)
