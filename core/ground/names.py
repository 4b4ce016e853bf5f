"""Name patterns: the one place that says what a name may look like before it reaches Slurm, a batch
script, a path, a unix command or the gradebook.

Ground floor: imports nothing of `aifw`. Each pattern is anchored (``^...$``), so it serves pydantic's
``pattern=`` (a search) and ``re.fullmatch`` alike; `MEANING` says each one in words for error messages.
"""
from __future__ import annotations

import re

#: A Slurm partition, account, reservation, QOS, GRES type, environment or job name.
SLURM_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"
#: A unix user or group name (what useradd accepts by default, at most 32 characters).
UNIX_USER = r"^[a-z_][a-z0-9_\-]{0,31}$"
#: A course or module id (a module id is also its nbgrader assignment name).
SLUG = r"^[a-z0-9][a-z0-9\-]{0,63}$"
#: An nbgrader id (course, assignment, student) as `aifw grade` accepts it.
NBGRADER_ID = r"^[A-Za-z0-9][A-Za-z0-9_.@\-]{0,99}$"
#: A notebook file name.
NOTEBOOK_FILE = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*\.ipynb$"
#: An absolute path made of plain characters only (safe in a batch script without quoting).
PLAIN_PATH = r"^/[A-Za-z0-9_.\-/]*$"
#: A Slurm job id as sbatch prints it (no array index, no cluster).
JOB_ID = r"^[0-9]{1,20}$"

MEANING = {
    SLURM_NAME: "a Slurm name (letters, digits, '_', '.', '-'; at most 64, starting with a letter or digit)",
    UNIX_USER: "a unix name (lower-case letters, digits, '_', '-'; at most 32, not starting with a digit)",
    SLUG: "lower-case letters, digits and '-' (a module id is also its nbgrader assignment name)",
    NBGRADER_ID: "an id of letters, digits, '_', '.', '@', '-' (at most 100)",
    NOTEBOOK_FILE: "a notebook file name ending in .ipynb (letters, digits, '_', '.', '-')",
    PLAIN_PATH: "an absolute path of letters, digits, '_', '.', '-' and '/'",
    JOB_ID: "a Slurm job id (digits)",
}

_COMPILED = {p: re.compile(p) for p in MEANING}


def matches(pattern: str, value: object) -> bool:
    """Whether `value` is a text that matches one of the patterns above, as a whole."""
    return isinstance(value, str) and _COMPILED.get(pattern, re.compile(pattern)).fullmatch(value) is not None


def is_slurm_name(value: object) -> bool:
    return matches(SLURM_NAME, value)


def is_unix_user(value: object) -> bool:
    return matches(UNIX_USER, value)


def is_job_id(value: object) -> bool:
    return matches(JOB_ID, value)


class UnsafeName(ValueError):
    """A value that must not reach a command, script or path: the message names what and why."""


def require(pattern: str, value: object, what: str) -> str:
    """`value` if it matches `pattern`, else UnsafeName saying what `what` must look like."""
    if not matches(pattern, value):
        raise UnsafeName(f"{what} {value!r} is not {MEANING.get(pattern, 'allowed here')}")
    return value  # type: ignore[return-value]


#: The roles a course member has; each is one JupyterHub group per course (`course_group`).
COURSE_ROLES = ("learner", "trainer")


def course_group(course_id: str, role: str) -> str:
    """The JupyterHub group of a course's learners or trainers: ``course-<id>-learners`` / ``-trainers``.
    The hub's settings create them from the site file; LTI launches and the REST API add members."""
    if role not in COURSE_ROLES:
        raise ValueError(f"a course role is one of {', '.join(COURSE_ROLES)}, not {role!r}")
    return f"course-{course_id}-{role}s"
