"""Put the learner's courses in their home at session start: ``python -m aifw.courses.sync --share DIR [COURSE ...]``.

Every session's batch script runs this as the learner, beside the server's start-up. It imports nothing but
the standard library (no site file, no CLI): a session start pays the interpreter's start and the copy, not
the 0.7 CPU-seconds of imports that ``aifw courses sync`` (the same function, for people) loads first. On a
class burst that is CPU-bound, those seconds are everyone's.

`sync` copies the published files the learner does not have yet to ``~/courses/<course>/<module>/``; it
never overwrites a learner's file.
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path
from typing import Iterable, Sequence

STAMP = ".published"  # aifw.courses.publish: the digest of the sources a course was published from
CATALOGUE = ".catalogue.json"  # aifw.courses.publish: the course's public catalogue entry, for the hub's pages


def sync(share: Path, home: Path, course_ids: Iterable[str] | None = None) -> list[Path]:
    """Copy published files the learner does not have yet into home/courses/. Returns what was added."""
    added: list[Path] = []
    if not share.is_dir():
        return added
    wanted = set(course_ids) if course_ids else None
    for course_dir in sorted(p for p in share.iterdir() if p.is_dir()):
        if wanted is not None and course_dir.name not in wanted:
            continue
        for src in sorted(course_dir.rglob("*")):
            if src.is_dir() or src.name in (STAMP, CATALOGUE):
                continue
            dest = home / "courses" / course_dir.name / src.relative_to(course_dir)
            if dest.exists() or dest.is_symlink():
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dest)
            added.append(dest)
    return added


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("courses", nargs="*", help="course ids (default: every published course)")
    p.add_argument("--share", type=Path, required=True, help="the shared folder the courses were published to")
    p.add_argument("--home", type=Path, default=Path.home(), help="whose home (default: yours)")


def run(args: argparse.Namespace) -> int:
    added = sync(args.share, args.home, args.courses or None)
    print(f"AIF Workbench: {len(added)} course file(s) added to {args.home / 'courses'}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m aifw.courses.sync",
                                description="copy published course files you do not have yet into ~/courses")
    add_arguments(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
