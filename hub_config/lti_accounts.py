"""The unix account of a launched learner (I/O, as the hub's user): made on the first launch (accounts:
create), or named by the site's hook (accounts: hook). Called only for a launch that passed every check, so
a refused launch creates nothing. System accounts (uid below 1000) are never launched into."""
from __future__ import annotations

import grp
import json
import pwd
import subprocess
from pathlib import Path

from aifw.names import MEANING, UNIX_USER, matches
from aifw.site import LtiSettings

from .lti import Launch, LaunchRefused

#: Accounts below this uid are the system's (root, daemons, the sandbox's service users): never a learner's.
MIN_UID = 1000
HOOK_TIMEOUT_S = 10
_USERADD_EXISTS = 9


def _account(name: str) -> pwd.struct_passwd | None:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        return None


def _in_group(account: pwd.struct_passwd, group: str) -> bool:
    try:
        g = grp.getgrnam(group)
    except KeyError:
        return False
    return account.pw_name in g.gr_mem or account.pw_gid == g.gr_gid


def _not_a_system_account(account: pwd.struct_passwd) -> None:
    if account.pw_uid < MIN_UID:
        raise LaunchRefused(f"the account {account.pw_name!r} is a system account of this machine and cannot be "
                            "launched into; ask the admin to set lti.username_prefix")


def created_account(name: str, group: str) -> str:
    """accounts: create. `name` itself: made now (home 0750, member of `group`) unless it exists; an existing
    account must be a member of `group` (made by an earlier launch), or the launch is refused."""
    account = _account(name)
    if account is None:
        if _account_group_missing(group):
            subprocess.run(["groupadd", "--system", group], check=True, capture_output=True, text=True)
        done = subprocess.run(["useradd", "--create-home", "--shell", "/bin/bash", "--groups", group,
                               "--comment", "AIF Workbench learner from an LTI launch", name],
                              capture_output=True, text=True)
        if done.returncode not in (0, _USERADD_EXISTS):  # 9: a launch at the same moment made it
            raise RuntimeError(f"useradd {name} failed (exit {done.returncode}): {done.stderr.strip()}")
        account = _account(name)
        if account is None:
            raise RuntimeError(f"useradd {name} reported success but the account does not exist")
        if done.returncode == 0:
            Path(account.pw_dir).chmod(0o750)
    _not_a_system_account(account)
    if not _in_group(account, group):
        raise LaunchRefused(f"the account {name!r} exists on this machine and was not made by a launch (it is not "
                            f"in the group {group}), so a launch cannot take it; ask the admin")
    return name


def _account_group_missing(group: str) -> bool:
    try:
        grp.getgrnam(group)
        return False
    except KeyError:
        return True


def hooked_account(launch: Launch, hook: list[str]) -> str:
    """accounts: hook. Run the site's hook with the launch as JSON on stdin; its first line of stdout names an
    existing account (checked here). A failing hook refuses the launch with its first line of stderr."""
    try:
        done = subprocess.run(hook, input=json.dumps(launch.hook_input()), capture_output=True, text=True,
                              timeout=HOOK_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"the account hook {hook[0]} did not answer within {HOOK_TIMEOUT_S} s") from None
    except OSError as err:
        raise RuntimeError(f"the account hook {hook[0]} cannot run: {err.strerror}") from None
    if done.returncode != 0:
        said = (done.stderr.strip().splitlines() or ["no reason given"])[0][:300]
        raise LaunchRefused(f"this hub has no account for you: {said}")
    name = (done.stdout.strip().splitlines() or [""])[0].strip()
    if not matches(UNIX_USER, name):
        raise RuntimeError(f"the account hook {hook[0]} printed {name[:80]!r}, which is not {MEANING[UNIX_USER]}")
    account = _account(name)
    if account is None:
        raise RuntimeError(f"the account hook {hook[0]} named {name!r}, which does not exist on this machine")
    _not_a_system_account(account)
    return name


def account_for(launch: Launch, lti: LtiSettings) -> str:
    """The unix account (and hub user name) of an accepted launch."""
    if lti.accounts == "create":
        assert launch.username is not None
        return created_account(launch.username, lti.account_group)
    assert lti.account_hook is not None
    return hooked_account(launch, lti.account_hook)
