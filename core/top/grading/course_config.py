"""The nbgrader course of a directory, as nbgrader finds it: ``aifw grade ASSIGNMENT`` run inside a course
directory grades the course its ``nbgrader_config.py`` names (``CourseDirectory.course_id`` and
``CourseDirectory.root``), whether or not the site file lists it.

The file is Python. It is loaded by traitlets' own `PyFileConfigLoader`, as every nbgrader command loads it,
and nbgrader's own translation of outdated keys is applied to what it set (`NbGrader.update_config`:
``Exchange.course_id`` and ``NbGrader.course_id`` become ``CourseDirectory.course_id`` and win over it,
``NbGrader.course_directory`` becomes ``CourseDirectory.root``). As nbgrader does, the file is read in the
directory it lies in, with that directory first on ``sys.path``; then, when ``root`` names another directory
with an ``nbgrader_config.py`` of its own, that one too (its values win).

It is always read in a child process (``python -m aifw.grading.course_config DIR``), never in `aifw grade`
itself. Run as root, the child runs as the owner of the directory (the account that owns a course directory
is its grader: the merge service writes the gradebook as that account too), so a trainer's config file is
never code that root runs; a file that someone other than that owner could have written is refused.

`course_from_values` (pure) checks what the file set; `load_course_config` reads and checks.
"""
from __future__ import annotations

import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

from aifw.names import MEANING, NBGRADER_ID, matches

from .plan import GradeError

CONFIG = "nbgrader_config.py"
#: How long a config file may take to load (it is code; one that hangs is an error, not a wait).
READ_TIMEOUT_S = 60
#: The values `aifw grade` takes from a config (after nbgrader's translation of outdated keys).
KEYS = ("root", "course_id")


class CourseConfigError(GradeError):
    """The directory's nbgrader config cannot name a course to grade; the message says what to fix."""


@dataclass(frozen=True)
class CourseConfig:
    """The course an nbgrader config names: its id and its course directory (absolute, a directory)."""

    course_id: str
    root: Path
    config_file: Path  # the nbgrader_config.py read first (in the directory `aifw grade` was pointed at)


def course_from_values(values: dict[str, object], here: Path, config_file: Path) -> CourseConfig:
    """The course of the values a config set (`read_config`'s answer), checked. `here` is the directory the
    config was read in: a relative root is taken from there, and no root at all means `here` (nbgrader's
    default: the directory it runs in)."""
    where = f"{config_file}"
    course_id = values.get("course_id")
    if course_id is not None and not isinstance(course_id, str):
        raise CourseConfigError(f"{where}: CourseDirectory.course_id must be a text, not {type(course_id).__name__}")
    course_id = (course_id or "").strip()  # nbgrader strips it too (with a warning)
    if not course_id:
        raise CourseConfigError(
            f"{where} names no course id: add c.CourseDirectory.course_id = '<your course id>' to it (the id "
            "the course's run directory and reports go by; nbgrader's exchange uses it too)")
    if not matches(NBGRADER_ID, course_id):
        raise CourseConfigError(f"{where}: course id {course_id!r} is not {MEANING[NBGRADER_ID]}; "
                                "aifw grade needs such an id (it names folders)")
    root = values.get("root")
    if root is None or root == "":
        root_path = here
    elif not isinstance(root, str):
        raise CourseConfigError(f"{where}: CourseDirectory.root must be a text (a path), not {type(root).__name__}")
    else:
        root_path = Path(os.path.abspath(here / root))  # as nbgrader's CourseDirectory makes it absolute
    if not root_path.is_dir():
        what = "does not exist" if not root_path.exists() else "is not a directory"
        raise CourseConfigError(f"{where}: CourseDirectory.root {root_path} {what}; set it to your nbgrader "
                                "course directory (the one holding source/ and gradebook.db), or remove it to "
                                "mean the directory of this file")
    return CourseConfig(course_id=course_id, root=root_path, config_file=config_file)


# --------------------------------------------------------------------------- in the child process
def read_config(directory: Path) -> dict[str, object]:
    """What ``<directory>/nbgrader_config.py`` sets of `KEYS`, loaded with traitlets' loader and translated by
    nbgrader, in this process. Raises CourseConfigError when it is missing or raises."""
    from nbgrader.apps.baseapp import NbGrader
    from traitlets.config.loader import ConfigFileNotFound, PyFileConfigLoader

    path = directory / CONFIG
    try:
        loaded = PyFileConfigLoader(CONFIG, path=str(directory)).load_config()
    except ConfigFileNotFound:
        raise CourseConfigError(f"no {CONFIG} in {directory}") from None
    except Exception as err:  # noqa: BLE001 - the file is a trainer's code: any error is theirs to fix
        raise CourseConfigError(f"{path} raised {_described(err, path)}; fix it (nbgrader fails on it too)") from None
    app = NbGrader()
    try:
        app.update_config(loaded)  # nbgrader's own translation of outdated keys (it logs each as a warning)
    except Exception as err:  # noqa: BLE001 - a value nbgrader's own traits refuse
        raise CourseConfigError(f"{path}: nbgrader refuses a value in it: {_described(err, path)}") from None
    section = app.config.CourseDirectory
    values = {key: section[key] for key in KEYS if key in section}
    for key, value in values.items():
        if not isinstance(value, str):
            raise CourseConfigError(f"{path}: CourseDirectory.{key} must be a text, not {type(value).__name__}")
    return values


def _described(err: Exception, path: Path) -> str:
    """An error of the config file in one line, with the line of the file it came from when known."""
    if isinstance(err, SyntaxError) and err.filename == str(path):
        line = err.lineno
    else:
        line = next((f.lineno for f in reversed(traceback.extract_tb(err.__traceback__)) if f.filename == str(path)), None)
    return f"{type(err).__name__}: {err}" + (f" (line {line})" if line and f"line {line}" not in str(err) else "")


def main(argv: list[str] | None = None) -> int:
    """``python -m aifw.grading.course_config DIR``: one JSON line, {"values": {...}} or {"error": "..."}."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m aifw.grading.course_config DIR", file=sys.stderr)
        return 2
    directory = Path(args[0])
    answer = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # what the config prints goes to stderr; the answer alone to stdout
    sys.stdout = sys.stderr
    sys.path.insert(0, str(directory))  # nbgrader puts the directory it runs in first on sys.path
    try:
        os.chdir(directory)
        out: dict[str, object] = {"values": read_config(directory)}
    except CourseConfigError as err:
        out = {"error": str(err)}
    except OSError as err:
        out = {"error": f"cannot read {directory / CONFIG}: {err}"}
    answer.write(json.dumps(out) + "\n")
    answer.close()
    return 0


# --------------------------------------------------------------------------- in aifw grade
def reader_account(directory: Path, euid: int) -> str | None:
    """The account whose child process reads ``<directory>/nbgrader_config.py``: None for this process's own
    user; as root, the directory's owner (None when that is root). Refuses, as root, a file that someone
    other than that owner (or root) could have written."""
    path = directory / CONFIG
    try:
        dst = os.stat(directory)
        fst = os.lstat(path)
    except FileNotFoundError:
        raise CourseConfigError(f"no {CONFIG} in {directory}: run aifw grade ASSIGNMENT inside an nbgrader course "
                                "directory (or point --course-dir at one), or name a course of the site file: "
                                "aifw grade COURSE ASSIGNMENT") from None
    except OSError as err:
        raise CourseConfigError(f"cannot read {path}: {err}") from None
    if not stat.S_ISREG(fst.st_mode):
        raise CourseConfigError(f"{path} is not a regular file (a symbolic link?); put the config file itself there")
    if euid != 0:
        return None
    if fst.st_uid not in (0, dst.st_uid):
        raise CourseConfigError(
            f"{path} belongs to uid {fst.st_uid}, not to the owner of {directory} (uid {dst.st_uid}): aifw grade "
            "reads it as the directory's owner and does not run another account's code as them; chown it")
    for what, st in ((path, fst), (directory, dst)):
        if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise CourseConfigError(
                f"{what} is writable by its group or others, so someone else could put code in {CONFIG} that "
                f"aifw grade (root) would start; chmod go-w {what}")
    if dst.st_uid == 0:
        return None
    try:
        return pwd.getpwuid(dst.st_uid).pw_name
    except KeyError:
        raise CourseConfigError(f"{directory} is owned by uid {dst.st_uid}, which has no account; chown it to the "
                                "course's grader account") from None


def read_config_as(directory: Path, account: str | None, python: str = sys.executable) -> dict[str, object]:
    """`read_config` in a child process (as `account`, through runuser, when given), bounded in time."""
    argv = [python, "-m", "aifw.grading.course_config", str(directory)]
    env = dict(os.environ)  # one's own config, read with one's own environment (as nbgrader would be)
    if account is not None:  # another account's: its own home, nothing of root's environment
        runuser = shutil.which("runuser", path="/usr/sbin:/sbin:/usr/bin:/bin")
        if runuser is None:
            raise CourseConfigError("runuser (util-linux) is needed to read nbgrader_config.py as the course "
                                    "directory's owner; install util-linux")
        argv = [runuser, "-u", account, "--", *argv]
        env = {"PATH": f"{Path(python).parent}:/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8",
               "HOME": pwd.getpwnam(account).pw_dir}
    try:
        proc = subprocess.run(argv, cwd=str(directory), env=env, stdout=subprocess.PIPE, stderr=None,
                              text=True, timeout=READ_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise CourseConfigError(f"{directory / CONFIG} did not finish loading in {READ_TIMEOUT_S} s; "
                                "does it wait for something?") from None
    try:
        answer = json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        who = f" as {account}" if account else ""
        raise CourseConfigError(f"reading {directory / CONFIG}{who} failed (exit {proc.returncode}); "
                                "see the messages above") from None
    if "error" in answer:
        raise CourseConfigError(answer["error"])
    return answer["values"]


def load_course_config(here: Path, euid: int | None = None) -> CourseConfig:
    """The course ``<here>/nbgrader_config.py`` names, read as nbgrader reads it (see the module's doc)."""
    euid = os.geteuid() if euid is None else euid
    here = Path(os.path.abspath(here))
    values = read_config_as(here, reader_account(here, euid))
    first = course_from_values(values, here, here / CONFIG)
    if first.root != here and (first.root / CONFIG).exists():  # nbgrader reads the root's config too
        values = {**values, **read_config_as(first.root, reader_account(first.root, euid))}
        return course_from_values(values, here, here / CONFIG)
    return first


if __name__ == "__main__":
    sys.exit(main())
