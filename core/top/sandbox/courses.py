"""Provision the site's courses on this machine (as root): accounts, groups, course directories, exchange.

For each course of the site (``site.courses``):

- the unix group ``unix_group`` and the grader account ``grader_account`` (a system account with its
  own private group and no password); the group's members are set to the course's learners, trainers and
  the grader (users that do not exist yet are left out and added on a later run);
- the nbgrader course directory ``site.paths.course_dir(id)`` (grader:grader 0750) with each module's
  nbgrader source and a gradebook in which every module is generated; what exists is never overwritten
  (a trainer's edits and the gradebook stay; only missing modules are added);
- the exchange folders (``aifw.courses.exchange.course_layout``: who may read and write what);

and once, in the runtime's venv, the system-wide nbgrader config (exchange classes and root) and the
JupyterLab/server config that keeps the formgrader out of learners' sessions.

Idempotent and cheap when nothing changed: it runs at every ``aifw sandbox up``, also when the stack is
already up, so a new course or learner needs no restart. Everything inside a directory that the grader
account owns is done *as the grader* (``runuser``), never as root, and root's own changes in the exchange
go through directory file descriptors opened with ``O_NOFOLLOW``: a grader account (which trainers drive
through the formgrader) cannot turn a symlink into a root write elsewhere.
"""
from __future__ import annotations

import grp
import json
import os
import pwd
import shutil
import sqlite3
import stat
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Callable

from aifw.site import CourseEntry, Site

from .processes import SandboxError

# Plugins of nbgrader's JupyterLab extension and its server extensions that are for trainers only: they
# are off in every learner session and on in the formgrader services.
TRAINER_LAB_PLUGINS = ("@jupyter/nbgrader:formgrader", "@jupyter/nbgrader:create-assignment", "@jupyter/nbgrader:course-list")
TRAINER_SERVER_EXTENSIONS = ("nbgrader.server_extensions.formgrader", "nbgrader.server_extensions.course_list")
SERVER_CONFIG_NAME = "zz-aifw-nbgrader.json"  # sorts after nbgrader's own nbgrader.json, so it wins


def _say_default(msg: str) -> None:
    print(f"[aifw sandbox] {msg}", flush=True)


# ---------------------------------------------------------------------------------------------
# Accounts and groups
# ---------------------------------------------------------------------------------------------
def user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def group_exists(name: str) -> bool:
    try:
        grp.getgrnam(name)
        return True
    except KeyError:
        return False


def ensure_group(name: str) -> bool:
    if group_exists(name):
        return False
    subprocess.run(["groupadd", "--system", name], check=True)
    return True


def ensure_grader(name: str, course_id: str) -> bool:
    """A system account with a private group, a home (formgrader runtime files) and no password."""
    if user_exists(name):
        return False
    subprocess.run(
        ["useradd", "--system", "--create-home", "--user-group", "--shell", "/usr/sbin/nologin",
         "--comment", f"AIF Workbench grader of {course_id}", name],
        check=True,
    )
    home = Path(pwd.getpwnam(name).pw_dir)
    if home.is_dir():
        home.chmod(0o750)
    return True


def wanted_members(entry: CourseEntry) -> list[str]:
    return sorted(set(entry.learners) | set(entry.trainers) | {entry.grader_account})


def sync_members(group: str, members: list[str], say: Callable[[str], None]) -> bool:
    """Set the group's member list to the existing users among `members` (others are removed)."""
    present = [m for m in members if user_exists(m)]
    missing = sorted(set(members) - set(present))
    if missing:
        say(f"group {group}: user(s) {', '.join(missing)} do not exist yet; added once they do")
    current = sorted(grp.getgrnam(group).gr_mem)
    if current == sorted(present):
        return False
    subprocess.run(["gpasswd", "-M", ",".join(present), group], check=True, stdout=subprocess.DEVNULL)
    return True


def primary_group(user: str) -> str:
    return grp.getgrgid(pwd.getpwnam(user).pw_gid).gr_name


# ---------------------------------------------------------------------------------------------
# Directories owned by root, changed without following symlinks
# ---------------------------------------------------------------------------------------------
def _open_dir(path: str, dir_fd: int | None = None) -> int:
    try:
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dir_fd)
    except OSError as err:
        raise SandboxError(f"refusing to use {path}: not a plain directory ({err.strerror})") from None


def ensure_tree(root: Path, entries, *, root_owner: str = "root", root_group: str = "root", root_mode: int = 0o755) -> bool:
    """Create/fix `root` and each entry (path relative to root, parents first) with its owner, group and
    mode. Every component is opened with O_NOFOLLOW and changed through its descriptor."""
    changed = False
    root.parent.mkdir(parents=True, exist_ok=True)
    if not root.is_symlink() and not root.exists():
        root.mkdir()
        changed = True
    fd = _open_dir(str(root))
    try:
        changed |= _fix(fd, str(root), root_owner, root_group, root_mode)
        for entry in entries:
            parts = entry.path.split("/")
            fds = [os.dup(fd)]
            try:
                for i, part in enumerate(parts):
                    if part in ("", ".", ".."):
                        raise SandboxError(f"bad path {entry.path!r}")
                    try:
                        os.mkdir(part, 0o700, dir_fd=fds[-1])
                        changed = True
                    except FileExistsError:
                        pass
                    fds.append(_open_dir(part, dir_fd=fds[-1]))
                changed |= _fix(fds[-1], str(root / entry.path), entry.owner, entry.group, entry.mode)
            finally:
                for f in fds:
                    os.close(f)
    finally:
        os.close(fd)
    return changed


def _fix(fd: int, shown: str, owner: str, group: str, mode: int) -> bool:
    uid, gid = pwd.getpwnam(owner).pw_uid, grp.getgrnam(group).gr_gid
    st = os.fstat(fd)
    changed = False
    if (st.st_uid, st.st_gid) != (uid, gid):
        os.fchown(fd, uid, gid)
        changed = True
    if stat.S_IMODE(os.fstat(fd).st_mode) != mode:
        os.fchmod(fd, mode)
        changed = True
    return changed


# ---------------------------------------------------------------------------------------------
# The course directory (done as the grader)
# ---------------------------------------------------------------------------------------------
def as_user(user: str, argv: list[str], venv: Path, *, input: bytes | None = None, cwd: str = "/") -> subprocess.CompletedProcess:
    env = {"PATH": f"{venv / 'bin'}:/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}
    runuser = shutil.which("runuser") or "/usr/sbin/runuser"
    proc = subprocess.run([runuser, "-u", user, "--", *argv], input=input, capture_output=True, env=env, cwd=cwd, timeout=600)
    if proc.returncode != 0:
        raise SandboxError(f"as {user}: {' '.join(argv[:3])} ... failed ({proc.returncode}):\n"
                           + (proc.stderr or proc.stdout).decode(errors="replace")[-2000:])
    return proc


def _tar_of(folder: Path, arcname: str) -> bytes:
    import io

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


def gradebook_assignments(course_dir: Path) -> set[str] | None:
    """Assignment names in the gradebook, read-only; None if there is no gradebook yet."""
    db = course_dir / "gradebook.db"
    try:
        st = os.lstat(db)
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(st.st_mode):
        raise SandboxError(f"{db} is not a regular file")
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            return {row[0] for row in con.execute("SELECT name FROM assignment")}
        finally:
            con.close()
    except sqlite3.Error:
        return set()


def ensure_course_dir(site: Site, entry: CourseEntry, course, venv: Path, say: Callable[[str], None]) -> bool:
    """The nbgrader course directory: sources of missing modules, config, gradebook with every module."""
    grader = entry.grader_account
    course_dir = site.paths.course_dir(entry.id)
    changed = ensure_tree(course_dir.parent, [], root_mode=0o755)
    fd = _open_dir(str(course_dir.parent))
    try:
        try:
            os.mkdir(course_dir.name, 0o700, dir_fd=fd)
            changed = True
        except FileExistsError:
            pass
        cfd = _open_dir(course_dir.name, dir_fd=fd)
        try:
            changed |= _fix(cfd, str(course_dir), grader, primary_group(grader), 0o750)
            have_source = set()
            try:
                sfd = _open_dir("source", dir_fd=cfd)
                try:
                    have_source = set(os.listdir(sfd))
                finally:
                    os.close(sfd)
            except SandboxError:
                pass
            has_config = _exists_at(cfd, "nbgrader_config.py")
        finally:
            os.close(cfd)
    finally:
        os.close(fd)

    if not has_config:
        as_user(grader, ["sh", "-c", 'umask 027 && cat > "$1"', "sh", str(course_dir / "nbgrader_config.py")], venv,
                input=course_config_text(entry.id, course_dir).encode())
        changed = True
    missing_src = [m.id for m in course.modules if m.id not in have_source]
    if missing_src:
        as_user(grader, ["mkdir", "-p", "-m", "0750", str(course_dir / "source")], venv)
        for module_id in missing_src:
            # Root reads the sources (root-only in the runtime); the grader unpacks them in its directory.
            as_user(grader, ["tar", "-x", "--no-same-owner", "--no-same-permissions", "-C", str(course_dir / "source")],
                    venv, input=_tar_of(course.source_dir(module_id), module_id))
        say(f"course {entry.id}: nbgrader source of {', '.join(missing_src)} put in {course_dir}/source")
        changed = True
    in_gradebook = gradebook_assignments(course_dir) or set()
    missing_gb = [m.id for m in course.modules if m.id not in in_gradebook]
    if missing_gb:
        as_user(grader, [str(venv / "bin" / "python"), "-m", "aifw.sandbox.courses", "generate",
                         str(course_dir), entry.id, str(site.paths.exchange_root), *missing_gb], venv, cwd=str(course_dir))
        say(f"course {entry.id}: generated {', '.join(missing_gb)} into the gradebook")
        changed = True
    return changed


def _exists_at(dir_fd: int, name: str) -> bool:
    try:
        os.lstat(name, dir_fd=dir_fd)
        return True
    except FileNotFoundError:
        return False


def generate_missing(course_dir: str, course_id: str, exchange_root: str, module_ids: list[str]) -> None:
    """Run as the grader: `nbgrader generate_assignment` of the modules the gradebook lacks."""
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


# ---------------------------------------------------------------------------------------------
# Jupyter config in the runtime venv
# ---------------------------------------------------------------------------------------------
def _write_if_changed(path: Path, text: str) -> bool:
    if path.exists() and path.read_text() == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.chmod(0o644)
    os.replace(tmp, path)
    return True


def session_page_config(existing: dict) -> dict:
    """JupyterLab's page_config.json with the trainer-only nbgrader plugins disabled (others kept)."""
    out = dict(existing)
    disabled = out.get("disabledExtensions", {})
    if isinstance(disabled, list):
        disabled = {name: True for name in disabled}
    disabled = dict(disabled)
    for plugin in TRAINER_LAB_PLUGINS:
        disabled[plugin] = True
    out["disabledExtensions"] = disabled
    return out


def session_server_config() -> dict:
    return {"ServerApp": {"jpserver_extensions": {name: False for name in TRAINER_SERVER_EXTENSIONS}}}


def write_jupyter_config(site: Site, venv: Path) -> bool:
    from aifw.courses.exchange import nbgrader_config_text

    etc = venv / "etc" / "jupyter"
    changed = _write_if_changed(etc / "nbgrader_config.py", nbgrader_config_text(site.paths.exchange_root))
    page = etc / "labconfig" / "page_config.json"
    try:
        existing = json.loads(page.read_text()) if page.exists() else {}
    except ValueError:
        existing = {}
    changed |= _write_if_changed(page, json.dumps(session_page_config(existing), indent=2, sort_keys=True) + "\n")
    changed |= _write_if_changed(etc / "jupyter_server_config.d" / SERVER_CONFIG_NAME,
                                 json.dumps(session_server_config(), indent=2, sort_keys=True) + "\n")
    from aifw.hub_config.settings import FORMGRADER_CONFIG_DIR

    fg = venv.joinpath(*FORMGRADER_CONFIG_DIR)
    changed |= _write_if_changed(fg / "labconfig" / "page_config.json",
                                 json.dumps(formgrader_page_config(), indent=2, sort_keys=True) + "\n")
    for d in (etc, etc / "labconfig", etc / "jupyter_server_config.d", fg, fg / "labconfig"):
        d.chmod(0o755)
    return changed


def formgrader_page_config() -> dict:
    """The formgrader services' labconfig: nbgrader's trainer plugins on again."""
    return {"disabledExtensions": {plugin: False for plugin in TRAINER_LAB_PLUGINS}}


# ---------------------------------------------------------------------------------------------
# All courses
# ---------------------------------------------------------------------------------------------
def provision_courses(site: Site, venv: Path, say: Callable[[str], None] = _say_default) -> bool:
    """Apply every course of the site on this machine; returns True when anything changed."""
    from aifw.courses.catalogue import load_catalogue
    from aifw.courses.exchange import course_layout, private_group

    if os.geteuid() != 0:
        raise SandboxError("provisioning courses creates accounts and groups: run it as root")
    changed = write_jupyter_config(site, venv)
    if not site.courses:
        return changed
    catalogue = {c.id: c for c in load_catalogue()}
    missing = [c.id for c in site.courses if c.id not in catalogue]
    if missing:
        raise SandboxError(f"the site file names course(s) that are not installed: {', '.join(missing)}")
    entries = []
    for entry in site.courses:
        grader = entry.grader_account
        if ensure_group(entry.unix_group):
            say(f"course {entry.id}: created group {entry.unix_group}")
            changed = True
        if ensure_grader(grader, entry.id):
            say(f"course {entry.id}: created grader account {grader}")
            changed = True
        changed |= sync_members(entry.unix_group, wanted_members(entry), say)
        changed |= ensure_course_dir(site, entry, catalogue[entry.id], venv, say)
        learners = {}
        for learner in entry.learners:
            if not user_exists(learner):
                continue
            learners[learner] = private_group(learner)
            if learners[learner] is None:
                say(f"course {entry.id}: {learner} has no private primary group; no feedback folder for them")
        entries += course_layout(entry.id, grader, primary_group(grader), entry.unix_group, learners)
    changed |= ensure_tree(site.paths.exchange_root, entries)
    return changed


USAGE = """usage:
  python -m aifw.sandbox.courses provision [SITE_FILE]   (root) apply the site's courses on this machine
  python -m aifw.sandbox.courses generate COURSE_DIR COURSE_ID EXCHANGE_ROOT MODULE...   (as the grader)"""


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) >= 4 and argv[0] == "generate":
        generate_missing(argv[1], argv[2], argv[3], argv[4:])
        return 0
    if argv and argv[0] == "provision" and len(argv) <= 2:
        from aifw.site import SiteError, load_site

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
