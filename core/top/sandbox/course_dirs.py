"""The nbgrader course directory of a course: read as root without changing anything (`read_course_dir`),
then completed as the course's grader account (`ensure_course_dir`): config, the sources of missing
modules, and a gradebook in which every module is generated. What exists is never overwritten (a
trainer's edits and the gradebook stay; only missing modules are added).

Something that must not be there (a symlink where a folder belongs, a gradebook that cannot be read) is
an error before anything of the course is touched: never "missing", which would regenerate modules."""
from __future__ import annotations

import io
import os
import shutil
import stat
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from aifw import gradebook
from aifw.site import CourseEntry, Site

from .accounts import primary_group
from .directories import ensure_tree, fix_owner_and_mode, open_dir, open_dir_if_there
from .processes import SandboxError

GRADEBOOK = "gradebook.db"
CONFIG = "nbgrader_config.py"
#: Run as the grader to generate assignments: ``python -m GENERATE_MODULE generate ...`` (see `main`).
GENERATE_MODULE = "aifw.sandbox.course_dirs"


@dataclass(frozen=True)
class CourseDirContents:
    """What a course directory holds now, read as root."""

    exists: bool
    sources: frozenset[str] = frozenset()  # names under source/
    has_config: bool = False
    in_gradebook: frozenset[str] | None = None  # assignment names; None: no gradebook yet


def gradebook_assignments(db: Path, dir_fd: int | None = None) -> frozenset[str] | None:
    """Assignment names in the gradebook, read-only; None if there is no gradebook yet. A gradebook that
    cannot be read is an error that says what to do (never 'no assignments', which regenerates all)."""
    try:
        st = os.lstat(db.name if dir_fd is not None else db, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(st.st_mode):
        raise SandboxError(f"{db} is not a regular file; nothing of this course was changed. Move it away "
                           "and put the gradebook file there.")
    if st.st_size == 0:
        return frozenset()  # an empty file is an empty SQLite database: nbgrader makes its tables
    try:
        return frozenset(gradebook.assignments(db))
    except gradebook.GradebookError as err:
        raise SandboxError(
            f"{err}; nothing of this course was changed. Restore it from a backup, or, if its grades may be "
            "lost, move it away to have every module generated into a new one."
        ) from None


def read_course_dir(course_dir: Path) -> CourseDirContents:
    """What the course directory holds, without following symlinks and without changing anything."""
    parent = open_dir_if_there(str(course_dir.parent), str(course_dir.parent))
    if parent is None:
        return CourseDirContents(exists=False)
    try:
        cfd = open_dir_if_there(course_dir.name, str(course_dir), dir_fd=parent)
    finally:
        os.close(parent)
    if cfd is None:
        return CourseDirContents(exists=False)
    try:
        sfd = open_dir_if_there("source", str(course_dir / "source"), dir_fd=cfd)
        sources: frozenset[str] = frozenset()
        if sfd is not None:
            try:
                sources = frozenset(os.listdir(sfd))
            finally:
                os.close(sfd)
        try:
            os.lstat(CONFIG, dir_fd=cfd)
            has_config = True
        except FileNotFoundError:
            has_config = False
        in_gradebook = gradebook_assignments(course_dir / GRADEBOOK, dir_fd=cfd)
    finally:
        os.close(cfd)
    return CourseDirContents(exists=True, sources=sources, has_config=has_config, in_gradebook=in_gradebook)


def as_user(user: str, argv: list[str], venv: Path, *, input: bytes | None = None, cwd: str = "/") -> subprocess.CompletedProcess:
    """Run `argv` as `user` (runuser) with the venv first on PATH; a failure is a SandboxError with its output."""
    env = {"PATH": f"{venv / 'bin'}:/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}
    runuser = shutil.which("runuser") or "/usr/sbin/runuser"
    proc = subprocess.run([runuser, "-u", user, "--", *argv], input=input, capture_output=True, env=env, cwd=cwd, timeout=600)
    if proc.returncode != 0:
        raise SandboxError(f"as {user}: {' '.join(argv[:3])} ... failed ({proc.returncode}):\n"
                           + (proc.stderr or proc.stdout).decode(errors="replace")[-2000:])
    return proc


def tar_of(folder: Path, arcname: str) -> bytes:
    """`folder` as an uncompressed tar (without caches and checkpoints, owned by nobody in particular)."""
    buf = io.BytesIO()

    def clean(info: tarfile.TarInfo):
        if "__pycache__" in info.name or ".ipynb_checkpoints" in info.name:
            return None
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        return info

    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(str(folder), arcname=arcname, filter=clean)
    return buf.getvalue()


def course_config_text(course_id: str, course_dir: Path) -> str:
    return (
        "# nbgrader config of this course directory (written once by AIF Workbench; yours to edit).\n"
        "c = get_config()  # noqa: F821\n"
        f"c.CourseDirectory.root = {str(course_dir)!r}\n"
        f"c.CourseDirectory.course_id = {course_id!r}\n"
    )


def ensure_course_dir(site: Site, entry: CourseEntry, course, found: CourseDirContents, venv: Path,
                      say: Callable[[str], None]) -> bool:
    """Complete the course directory that `read_course_dir` found: owner and mode, config, sources of
    missing modules, gradebook with every module. Returns True when anything changed."""
    grader = entry.grader_account
    course_dir = site.paths.course_dir(entry.id)
    changed = ensure_tree(course_dir.parent, [], root_mode=0o755)
    fd = open_dir(str(course_dir.parent))
    try:
        try:
            os.mkdir(course_dir.name, 0o700, dir_fd=fd)
            changed = True
        except FileExistsError:
            pass
        cfd = open_dir(course_dir.name, dir_fd=fd)
        try:
            changed |= fix_owner_and_mode(cfd, grader, primary_group(grader), 0o750)
        finally:
            os.close(cfd)
    finally:
        os.close(fd)

    if not found.has_config:
        as_user(grader, ["sh", "-c", 'umask 027 && cat > "$1"', "sh", str(course_dir / CONFIG)], venv,
                input=course_config_text(entry.id, course_dir).encode())
        changed = True
    missing_src = [m.id for m in course.modules if m.id not in found.sources]
    if missing_src:
        as_user(grader, ["mkdir", "-p", "-m", "0750", str(course_dir / "source")], venv)
        for module_id in missing_src:
            # Root reads the sources (root-only in the runtime); the grader unpacks them in its directory.
            as_user(grader, ["tar", "-x", "--no-same-owner", "--no-same-permissions", "-C", str(course_dir / "source")],
                    venv, input=tar_of(course.source_dir(module_id), module_id))
        say(f"course {entry.id}: nbgrader source of {', '.join(missing_src)} put in {course_dir}/source")
        changed = True
    in_gradebook = found.in_gradebook or frozenset()
    missing_gb = [m.id for m in course.modules if m.id not in in_gradebook]
    if missing_gb:
        as_user(grader, [str(venv / "bin" / "python"), "-m", GENERATE_MODULE, "generate",
                         str(course_dir), entry.id, str(site.paths.exchange_root), *missing_gb], venv, cwd=str(course_dir))
        say(f"course {entry.id}: generated {', '.join(missing_gb)} into the gradebook")
        changed = True
    return changed


def generate_missing(course_dir: str, course_id: str, exchange_root: str, module_ids: list[str]) -> None:
    """Run as the grader: `nbgrader generate_assignment` of the modules the gradebook lacks."""
    # Imported here: only the grader's own process runs nbgrader; root's `aifw sandbox up` never loads it.
    from nbgrader.apps import NbGraderAPI
    from traitlets.config import Config

    cfg = Config()
    cfg.CourseDirectory.root = course_dir
    cfg.CourseDirectory.course_id = course_id
    cfg.Exchange.root = exchange_root
    cfg.NbGraderAPI.log_level = "WARN"
    api = NbGraderAPI(config=cfg)
    have = set(api.get_source_assignments())
    for module_id in module_ids:
        if module_id not in have:
            raise SystemExit(f"no nbgrader source for {module_id} in {course_dir}/source")
        result = api.generate_assignment(module_id, force=True)
        if not result.get("success"):
            raise SystemExit(f"nbgrader could not generate {module_id}: {result.get('error') or result.get('log')}")


USAGE = "usage (as the grader): python -m aifw.sandbox.course_dirs generate COURSE_DIR COURSE_ID EXCHANGE_ROOT MODULE..."


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) >= 5 and argv[0] == "generate":
        generate_missing(argv[1], argv[2], argv[3], argv[4:])
        return 0
    print(USAGE, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
