"""Directories that root makes and fixes without following symlinks: every component is opened with
O_NOFOLLOW and changed through its descriptor, so an account that owns a directory below (a grader, a
learner) cannot turn a symlink into a root write elsewhere."""
from __future__ import annotations

import grp
import os
import pwd
import stat
from pathlib import Path

from .processes import SandboxError


def what_is_at(path: Path | str, dir_fd: int | None = None) -> str:
    """'a symbolic link', 'a file', ... : what stands at `path` (for messages), without following it."""
    try:
        mode = os.lstat(path, dir_fd=dir_fd).st_mode
    except OSError:
        return "nothing that can be read"
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISREG(mode):
        return "a file"
    return "a special file"


def open_dir(path: str, dir_fd: int | None = None) -> int:
    """A descriptor of the plain directory at `path` (relative to dir_fd); a symlink is refused."""
    try:
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dir_fd)
    except OSError as err:
        raise SandboxError(f"refusing to use {path}: not a plain directory ({err.strerror})") from None


def open_dir_if_there(path: str, shown: str, dir_fd: int | None = None) -> int | None:
    """Like open_dir, but None when nothing is at `path`. Anything else than a plain directory there (a
    symlink, a file) is an error that names `shown` and what stands there: it is never read as missing."""
    try:
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    except OSError as err:
        found = what_is_at(path, dir_fd)
        raise SandboxError(f"{shown} is {found}, where a plain folder must be ({err.strerror}). Replace it "
                           "with a real folder (move the link or file away; copy in what it pointed to if "
                           "that is wanted), then run again.") from None


def fix_owner_and_mode(fd: int, owner: str, group: str, mode: int) -> bool:
    """Give the directory behind `fd` this owner, group and mode; True when something changed."""
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


def ensure_tree(root: Path, entries, *, root_owner: str = "root", root_group: str = "root", root_mode: int = 0o755) -> bool:
    """Create/fix `root` and each entry (path relative to root, parents first) with its owner, group and
    mode. Every component is opened with O_NOFOLLOW and changed through its descriptor."""
    changed = False
    root.parent.mkdir(parents=True, exist_ok=True)
    if not root.is_symlink() and not root.exists():
        root.mkdir()
        changed = True
    fd = open_dir(str(root))
    try:
        changed |= fix_owner_and_mode(fd, root_owner, root_group, root_mode)
        for entry in entries:
            parts = entry.path.split("/")
            fds = [os.dup(fd)]
            try:
                for part in parts:
                    if part in ("", ".", ".."):
                        raise SandboxError(f"bad path {entry.path!r}")
                    try:
                        os.mkdir(part, 0o700, dir_fd=fds[-1])
                        changed = True
                    except FileExistsError:
                        pass
                    fds.append(open_dir(part, dir_fd=fds[-1]))
                changed |= fix_owner_and_mode(fds[-1], entry.owner, entry.group, entry.mode)
            finally:
                for f in fds:
                    os.close(f)
    finally:
        os.close(fd)
    return changed
