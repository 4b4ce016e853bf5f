"""Publish learner copies of the courses, and put them in a learner's home at session start.

- `publish(courses, share)`: for every module, nbgrader generates the release version (no solutions,
  no hidden tests) in a private temporary course directory; the release is scanned for leaks and copied to
  `share/<course>/<module>/`, world-readable. Runs at `aifw sandbox up` (skipped when the sources did
  not change).
- `sync(share, home)`: copies what the learner does not have yet to `~/courses/<course>/<module>/`, with a
  README of the course; never overwrites a learner's file. Runs in every session's batch script, as the
  learner, before JupyterLab starts.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Iterable

from .catalogue import Course

STAMP = ".published"


def source_digest(course: Course) -> str:
    h = hashlib.sha256()
    for path in sorted(p for p in course.root.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        h.update(str(path.relative_to(course.root)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:20]


def _generate_releases(course: Course, workdir: Path) -> Path:
    """nbgrader releases of every module, from one private course directory (one gradebook)."""
    from nbgrader.apps import NbGraderAPI
    from traitlets.config import Config

    from .proof import scan_release

    bindir = str(Path(sys.executable).parent)
    os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")
    for module in course.modules:
        shutil.copytree(course.source_dir(module.id), workdir / "source" / module.id,
                        ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    cfg = Config()
    cfg.CourseDirectory.root = str(workdir)
    cfg.CourseDirectory.db_url = f"sqlite:///{workdir / 'gradebook.db'}"
    cfg.NbGraderAPI.log_level = "WARN"
    api = NbGraderAPI(config=cfg)
    for module in course.modules:
        result = api.generate_assignment(module.id, force=True)
        if not result.get("success"):
            raise RuntimeError(f"nbgrader could not release {course.id}/{module.id}: {result.get('error') or result.get('log')}")
        release = workdir / "release" / module.id
        sources = [json.loads(course.notebook_path(module.id, n).read_text()) for n in module.notebooks]
        leaks = scan_release(release, sources)
        if leaks:
            raise RuntimeError(f"refusing to publish {course.id}/{module.id}: the release leaks:\n" + "\n".join(leaks[:10]))
    return workdir / "release"


def course_readme(course: Course) -> str:
    lines = [f"# {course.title}", "", course.summary.strip(), "",
             "Work through the modules in order. Each notebook has exercises with a **Check** for instant",
             "feedback; your files here are yours and are never overwritten.", ""]
    for i, m in enumerate(course.modules, 1):
        lines += [f"## {i}. {m.title}  ({m.minutes} min)", ""]
        lines += [f"- {g}" for g in m.goals]
        gpu = f", {m.gpus} GPU(s)" if m.gpus else ""
        lines += ["", f"Folder `{m.id}/`: " + ", ".join(m.notebooks) + f". Best on partition `{m.partition}`{gpu}:",
                  f"[start a session for it]({m.launch_link()})", ""]
    return "\n".join(lines)


def publish(courses: Iterable[Course], share: Path, *, force: bool = False, say=print) -> list[str]:
    """Publish each course's release into `share/<course>/`; returns the ids that were (re)published."""
    done = []
    share.mkdir(parents=True, exist_ok=True)
    share.chmod(0o755)
    for course in courses:
        dest = share / course.id
        digest = source_digest(course)
        if not force and (dest / STAMP).is_file() and (dest / STAMP).read_text().strip() == digest:
            continue
        with tempfile.TemporaryDirectory(prefix=f"aifw-publish-{course.id}-") as tmp:
            staging = Path(tmp) / "out"
            (Path(tmp) / "course").mkdir()
            shutil.copytree(_generate_releases(course, Path(tmp) / "course"), staging)
            (staging / "README.md").write_text(course_readme(course))
            (staging / STAMP).write_text(digest + "\n")
            for p in [staging, *staging.rglob("*")]:
                p.chmod(0o755 if p.is_dir() else 0o644)
            if dest.exists():
                shutil.rmtree(dest)
            shutil.copytree(staging, dest)
        say(f"published {course.id} ({len(course.modules)} modules) to {dest}")
        done.append(course.id)
    return done


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
            if src.is_dir() or src.name == STAMP:
                continue
            dest = home / "courses" / course_dir.name / src.relative_to(course_dir)
            if dest.exists() or dest.is_symlink():
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dest)
            added.append(dest)
    return added


def register_publish_commands(sub) -> None:
    """`aifw courses publish` (admins) and `aifw courses sync` (run in each session, as the learner)."""
    import argparse

    p = sub.add_parser("publish", help="publish learner copies (nbgrader releases) of courses to a shared folder")
    p.add_argument("share", type=Path, help="shared folder, e.g. $AIFW_HOME/share/courses")
    p.add_argument("courses", nargs="*", help="course ids (default: every course)")
    p.add_argument("--force", action="store_true", help="publish even when the sources did not change")

    def cmd_publish(args: argparse.Namespace) -> int:
        from .catalogue import load_catalogue

        courses = [c for c in load_catalogue() if not args.courses or c.id in args.courses]
        unknown = set(args.courses) - {c.id for c in courses}
        if unknown:
            print(f"unknown course(s): {', '.join(sorted(unknown))}", file=sys.stderr)
            return 2
        publish(courses, args.share, force=args.force)
        return 0

    p.set_defaults(func=cmd_publish)

    s = sub.add_parser("sync", help="copy published course files you do not have yet into ~/courses")
    s.add_argument("courses", nargs="*", help="course ids (default: every published course)")
    s.add_argument("--share", type=Path, required=True, help="the shared folder the courses were published to")
    s.add_argument("--home", type=Path, default=Path.home(), help="whose home (default: yours)")

    def cmd_sync(args: argparse.Namespace) -> int:
        added = sync(args.share, args.home, args.courses or None)
        print(f"AIF Workbench: {len(added)} course file(s) added to {args.home / 'courses'}")
        return 0

    s.set_defaults(func=cmd_sync)
