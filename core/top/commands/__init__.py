"""The `aifw` command line: one entry point, each room registers its own sub-commands."""
from __future__ import annotations

import argparse
import importlib
import sys

# Each module named here exposes `register(subparsers)`, which adds its sub-command(s) with
# `set_defaults(func=...)`; `func(args)` returns the process exit code.
COMMAND_MODULES = (
    "aifw.sandbox.cli",
    "aifw.commands.reference",
    "aifw.commands.lti",
    "aifw.courses.cli",
    "aifw.grading.cli",
    "aifw.usage.cli",
    "aifw.classroom.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aifw", description="AIF Workbench command line")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name != name:
                raise
            continue
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
