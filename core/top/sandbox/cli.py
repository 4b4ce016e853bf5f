"""`aifw sandbox up|down|status`: the one-machine stack behind `make sandbox`."""
from __future__ import annotations

import argparse
import json
import os
import sys

from aifw.site import SiteError

from .processes import SandboxError


def register(subparsers) -> None:
    p = subparsers.add_parser("sandbox", help="start, stop or inspect the one-machine sandbox (root only)")
    p.add_argument("action", choices=["up", "down", "status"])
    p.add_argument("--home", default=os.environ.get("AIFW_HOME", "/opt/aifw"), help="runtime prefix (AIFW_HOME)")
    p.add_argument("--site", default=None, help="site file (default: $AIFW_SITE or the packaged sandbox.yaml)")
    p.add_argument("--json", action="store_true", help="status as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # Imported here, not at the top: every `aifw` command registers this module, and the stack's rooms
    # (Slurm, the hub's config, the courses) are needed only by `aifw sandbox` itself.
    from . import stack as st
    from .sandbox_json import load_sandbox_json

    if os.geteuid() != 0:
        print("aifw sandbox must run as root: it starts Slurm and creates accounts.", file=sys.stderr)
        return 2
    try:
        stack = st.make_stack(args.home, args.site)
        if args.action == "up":
            changed = st.up(stack)
            info = load_sandbox_json(stack)
            if not changed:
                print("The sandbox is already up; nothing changed.")
            print(f"\nAIF Workbench sandbox: {info['hub_url']}")
            print("Demo accounts (also in {}):".format(stack.sandbox_json))
            admins = set(info.get("admin_users", []))
            for name, password in info["users"].items():
                print(f"  {name:<12} {password}{'   (hub admin)' if name in admins else ''}")
            print(f"Logs: {stack.logs}   Stop: make sandbox-down")
            return 0
        if args.action == "down":
            st.down(stack)
            print("The sandbox is stopped; data is kept under", stack.home)
            return 0
        status = st.status(stack)
        if args.json:
            print(json.dumps(status, indent=2))
        else:
            for k, v in status.items():
                if k == "mode":
                    nodes = ", ".join(f"{n} {a}" for n, a in stack.site.sandbox.nodes)
                    shown = f"{v} ({nodes})"
                else:
                    shown = "not running" if v in (None, False) else ("running" if v is True else f"running (pid {v})")
                print(f"  {k:<16} {shown}")
        return 0 if st.is_up(stack) else 3
    except (SandboxError, SiteError) as err:
        print(f"aifw sandbox {args.action}: {err}", file=sys.stderr)
        return 1
