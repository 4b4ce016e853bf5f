"""Provision the site's courses on this machine (as root): accounts, groups, course directories, exchange.

For each course of the site (``site.courses``):

- the unix group ``unix_group`` and the grader account ``grader_account`` (a system account with its
  own private group and no password); the group's members are set to the course's learners, trainers and
  the grader (users that do not exist yet are left out and added on a later run) — see `accounts`;
- the nbgrader course directory ``site.paths.course_dir(id)`` (grader:grader 0750) — see `course_dirs`;
- the exchange folders (``aifw.courses.exchange.course_layout``: who may read and write what), made
  without following symlinks — see `directories`;

and once, in the runtime's venv, the Jupyter config of sessions and formgrader services (`jupyter_config`).

Idempotent and cheap when nothing changed: it runs at every ``aifw sandbox up``, also when the stack is
already up, so a new course or learner needs no restart. Everything inside a directory that the grader
account owns is done *as the grader* (``runuser``), never as root. A course whose directory holds what
must not be there is left untouched and reported; the other courses are still provisioned.

Also a command, for a real site (as root): ``python -m aifw.sandbox.provisioning provision [SITE_FILE]``.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Callable

from aifw.courses.catalogue import load_catalogue
from aifw.site import CourseEntry, Site, SiteError, load_site

from .accounts import ensure_grader, ensure_group, primary_group, sync_members, user_exists
from .course_dirs import ensure_course_dir, read_course_dir
from .directories import ensure_tree
from .jupyter_config import write_jupyter_config
from .processes import SandboxError, say as say_default


def wanted_members(entry: CourseEntry) -> list[str]:
    return sorted(set(entry.learners) | set(entry.trainers) | {entry.grader_account})


def provision_course(site: Site, entry: CourseEntry, course, venv: Path, say: Callable[[str], None]) -> tuple[bool, list]:
    """One course: its course directory is read first, and refused untouched (SandboxError) when it holds
    what must not be there; then its group, grader, members and course directory. Returns (changed,
    the course's exchange entries)."""
    # Imported here: aifw.courses.exchange loads nbgrader (seconds), which `aifw sandbox status` and
    # `down` do not need.
    from aifw.courses.exchange import course_layout, private_group

    found = read_course_dir(site.paths.course_dir(entry.id))
    grader = entry.grader_account
    changed = False
    if ensure_group(entry.unix_group):
        say(f"course {entry.id}: created group {entry.unix_group}")
        changed = True
    if ensure_grader(grader, entry.id):
        say(f"course {entry.id}: created grader account {grader}")
        changed = True
    changed |= sync_members(entry.unix_group, wanted_members(entry), say)
    changed |= ensure_course_dir(site, entry, course, found, venv, say)
    learners = {}
    for learner in entry.learners:
        if not user_exists(learner):
            continue
        learners[learner] = private_group(learner)
        if learners[learner] is None:
            say(f"course {entry.id}: {learner} has no private primary group; no feedback folder for them")
    return changed, course_layout(entry.id, grader, primary_group(grader), entry.unix_group, learners)


def provision_courses(site: Site, venv: Path, say: Callable[[str], None] = say_default) -> bool:
    """Apply every course of the site on this machine; returns True when anything changed. A course that
    cannot be provisioned does not stop the others; the problems are raised together at the end."""
    if os.geteuid() != 0:
        raise SandboxError("provisioning courses creates accounts and groups: run it as root")
    changed = write_jupyter_config(site, venv)
    if not site.courses:
        return changed
    catalogue = {c.id: c for c in load_catalogue()}
    missing = [c.id for c in site.courses if c.id not in catalogue]
    if missing:
        raise SandboxError(f"the site file names course(s) that are not installed: {', '.join(missing)}")
    entries, problems = [], []
    for entry in site.courses:
        try:
            course_changed, course_entries = provision_course(site, entry, catalogue[entry.id], venv, say)
        except SandboxError as err:
            problems.append(f"course {entry.id}: {err}")
            continue
        changed |= course_changed
        entries += course_entries
    changed |= ensure_tree(site.paths.exchange_root, entries)
    if problems:
        raise SandboxError("\n".join(problems))
    return changed


USAGE = "usage (as root): python -m aifw.sandbox.provisioning provision [SITE_FILE]   apply the site's courses on this machine"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "provision" and len(argv) <= 2:
        try:
            site = load_site(argv[1] if len(argv) == 2 else None)
            changed = provision_courses(site, site.paths.venv)
        except (SiteError, SandboxError) as err:
            print(f"provisioning courses: {err}", file=sys.stderr)
            return 1
        print("courses provisioned" if changed else "courses already provisioned; nothing changed")
        return 0
    print(USAGE, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
