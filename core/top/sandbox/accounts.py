"""Unix accounts and groups (as root): the sandbox's demo users with their passwords, the courses' grader
accounts, groups and group members. Users and groups are looked up by name; nothing is ever deleted."""
from __future__ import annotations

import grp
import pwd
import secrets
import subprocess
from pathlib import Path
from typing import Callable

from aifw.site import Site


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


def primary_group(user: str) -> str:
    return grp.getgrgid(pwd.getpwnam(user).pw_gid).gr_name


def ensure_demo_users(site: Site, passwords: dict[str, str]) -> dict[str, str]:
    """Create the sandbox's demo unix users (home dirs 0750) and set their passwords: the one already in
    `passwords` (from sandbox.json), else a new random one. Returns name -> password."""
    assert site.sandbox is not None
    out = {}
    for user in site.sandbox.demo_users:
        exists = user_exists(user.name)
        if not exists:
            subprocess.run(["useradd", "--create-home", "--shell", "/bin/bash", user.name], check=True)
            home = Path(f"/home/{user.name}")
            if home.exists():
                home.chmod(0o750)
        password = passwords.get(user.name) or secrets.token_urlsafe(12)
        if passwords.get(user.name) != password or not exists:
            subprocess.run(["chpasswd"], input=f"{user.name}:{password}\n", text=True, check=True)
        out[user.name] = password
    return out


def ensure_group(name: str) -> bool:
    """A system group of that name; True when it was created."""
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
