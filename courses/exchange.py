"""nbgrader's exchange without anything world-writable: one folder per course, gated by unix groups.

nbgrader 0.9.6's default exchange makes its root 0777, `inbound` 0733 and each submission 0777 ("hidden by
the timestamp"). These subclasses keep nbgrader's behaviour (file names, random suffix, feedback hashes,
caches, the JupyterLab assignment list) and change only where things live and who may open them. They are
plugged in with ``c.ExchangeFactory.<step> = "aifw.courses.exchange.<Class>"`` (the system-wide
nbgrader config the sandbox writes, see :func:`nbgrader_config_text`).

Who is who, per course C (names come from the site file: ``CourseEntry.grader_account`` /
``unix_group``):

- the grader account ``A`` (default ``grader-C``): owns the course directory and runs the formgrader;
  its private group ``a`` has no other member;
- the course group ``G`` (default ``aifw-C``): the course's learners, trainers and ``A``;
- each learner ``L`` with a private primary group ``l`` (Debian's default user-private groups).

The layout under the exchange root (``site.paths.exchange_root``; ``owner:group mode``)::

    <root>/                          root:root  0755   course names are visible, nothing else
    <root>/C/                        A:G        2750   only members of C enter at all
    <root>/C/outbound/               A:G        2750   releases: G reads, only A writes
    <root>/C/outbound/<assignment>/  A:G        2750   files 0640
    <root>/C/inbound/                A:G        0710   G may pass, nobody but A lists it
    <root>/C/inbound/L/              L:a        2750   L writes; setgid: all inside is group a
    <root>/C/inbound/L/L+<asg>+<ts>+<random>/  L:a 0750, files 0640
    <root>/C/feedback/               A:G        0710
    <root>/C/feedback/L/             A:l        2750   A writes; only L (group l) reads
    <root>/C/feedback/L/<hash>.html  A:l        0640   nbgrader's per-submission secret hash

Why this holds with plain unix permissions (no ACLs):

- *A learner writes only their own submission*: the only directory a learner can write in the exchange
  is ``inbound/L`` (they own it; ``inbound`` itself is 0710, so they cannot create, rename or remove
  entries beside it).
- *The grader reads every submission, other learners none*: ``inbound/L`` is setgid with the grader's
  private group ``a``, so everything L creates inside gets group ``a`` although L is not a member of it
  (setgid inheritance needs no membership). Submissions are 0750/0640: readable by L and by ``a`` = A;
  another learner is "other" there and gets nothing, even knowing the name.
- *Learners read only what was released to them*: ``outbound`` is group ``G``; the instructor's
  source, the gradebook and collected/autograded copies live in the course directory
  (``site.paths.course_dir``, ``A:a 0750``), which no learner can enter.
- *Each learner reads only their own feedback*: ``feedback/L`` is group ``l`` (L's private group),
  written by A through setgid inheritance; ``feedback`` itself is not listable.
- *Other courses see nothing*: ``<root>/C`` has no permission bits for others.
- *Nothing is o+w*: no mode above has it, and these classes never chmod anything to it.

The per-learner folders are made by root when the course is provisioned (``aifw.sandbox.provisioning``);
a learner without one is told to ask the course's admin. Collecting trusts no learner-made name:
only real directories owned by the learner whose folder they are in are collected, and symlinks, FIFOs
and devices inside a submission are skipped (a submission cannot point the grader at the source).
"""
from __future__ import annotations

import glob
import hashlib
import os
import re
import shutil
import stat
import sys
from dataclasses import dataclass

from nbgrader.exchange.default import (
    Exchange,
    ExchangeCollect,
    ExchangeFetchAssignment,
    ExchangeFetchFeedback,
    ExchangeList,
    ExchangeReleaseAssignment,
    ExchangeReleaseFeedback,
    ExchangeSubmit,
)
from nbgrader.utils import check_mode, get_username, ignore_patterns, notebook_hash

from aifw.names import UNIX_USER, require

# Modes of the layout (see the module docstring).
COURSE_MODE = 0o2750
OUTBOUND_MODE = 0o2750
INBOUND_MODE = 0o0710
LEARNER_INBOUND_MODE = 0o2750
FEEDBACK_MODE = 0o0710
LEARNER_FEEDBACK_MODE = 0o2750
RELEASE_DIR_MODE = 0o2750
RELEASE_FILE_MODE = 0o0640
SUBMISSION_DIR_MODE = 0o0750
SUBMISSION_FILE_MODE = 0o0640
FEEDBACK_FILE_MODE = 0o0640

# ---------------------------------------------------------------------------------------------
# The layout, as data (provisioning applies it; tests check it)
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Entry:
    """One directory of a course's exchange: path relative to the exchange root, owner, group, mode."""

    path: str
    owner: str
    group: str
    mode: int


def course_layout(course_id: str, grader: str, grader_group: str, course_group: str,
                  learners: dict[str, str | None]) -> list[Entry]:
    """The directories of one course's exchange, parents first. `learners` maps each learner to their
    private primary group (see :func:`private_group`); None: no feedback folder (no private group)."""
    c = course_id
    out = [
        Entry(c, grader, course_group, COURSE_MODE),
        Entry(f"{c}/outbound", grader, course_group, OUTBOUND_MODE),
        Entry(f"{c}/inbound", grader, course_group, INBOUND_MODE),
        Entry(f"{c}/feedback", grader, course_group, FEEDBACK_MODE),
    ]
    for learner in sorted(learners):
        require(UNIX_USER, learner, "the learner name")
        out.append(Entry(f"{c}/inbound/{learner}", learner, grader_group, LEARNER_INBOUND_MODE))
        if learners[learner]:
            out.append(Entry(f"{c}/feedback/{learner}", grader, learners[learner], LEARNER_FEEDBACK_MODE))
    return out


def private_group(user: str) -> str | None:
    """The user's primary group if it is private to them (no other member, no other user's primary
    group), else None. Debian's `useradd` makes such a group for every user by default."""
    import grp
    import pwd

    try:
        pw = pwd.getpwnam(user)
        gr = grp.getgrgid(pw.pw_gid)
    except KeyError:
        return None
    if any(m != user for m in gr.gr_mem):
        return None
    if any(p.pw_gid == pw.pw_gid and p.pw_name != user for p in pwd.getpwall()):
        return None
    return gr.gr_name


# ---------------------------------------------------------------------------------------------
# The system-wide nbgrader config
# ---------------------------------------------------------------------------------------------
STEPS = {
    "exchange": "AifwExchange",
    "fetch_assignment": "AifwFetchAssignment",
    "fetch_feedback": "AifwFetchFeedback",
    "release_assignment": "AifwReleaseAssignment",
    "release_feedback": "AifwReleaseFeedback",
    "list": "AifwList",
    "submit": "AifwSubmit",
    "collect": "AifwCollect",
}


def nbgrader_config_text(exchange_root: str | os.PathLike) -> str:
    """`$venv/etc/jupyter/nbgrader_config.py`: read by every nbgrader command and the JupyterLab
    extension, for learners and graders alike (a course directory's own nbgrader_config.py adds its
    course id and root)."""
    lines = [
        "# Written by AIF Workbench (aifw sandbox up); edit the site file instead.",
        "# The exchange: one folder per course, gated by unix groups (see aifw.courses.exchange).",
        "import os",
        "c = get_config()  # noqa: F821",
        f"c.Exchange.root = {str(exchange_root)!r}",
        "# Several courses: a learner's copies live in ~/courses/<course>/<assignment> (where each session",
        "# puts them), so the assignment list shows them as fetched and submits the learner's own work.",
        "c.Exchange.path_includes_course = True",
        "c.Exchange.assignment_dir = os.path.join(os.path.expanduser('~'), 'courses')",
    ]
    lines += [f"c.ExchangeFactory.{step} = 'aifw.courses.exchange.{cls}'" for step, cls in STEPS.items()]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# The exchange classes
# ---------------------------------------------------------------------------------------------
def _chmod_tree(top: str, file_mode: int, dir_mode: int) -> None:
    """chmod a tree this process just wrote; never follows a symlink."""
    dirs = []
    for dirpath, dirnames, filenames in os.walk(top):
        for name in filenames:
            path = os.path.join(dirpath, name)
            if not os.path.islink(path):
                os.chmod(path, file_mode)
        dirs.append(dirpath)
    for d in reversed(dirs):
        os.chmod(d, dir_mode)


class AifwExchange(Exchange):
    """Base: the root is provisioned by an admin; the exchange only checks it, never chmods it."""

    def ensure_root(self):
        if not os.path.isdir(self.root) or not check_mode(self.root, read=True, execute=True):
            self.fail(f"The exchange {self.root} does not exist or cannot be read; ask your admin "
                      "(the course provisioning of `aifw sandbox up` creates it).")

    def _course_path(self) -> str:
        if self.coursedir.course_id == "":
            self.fail("No course id specified. Re-run with --course flag.")
        return os.path.join(self.root, self.coursedir.course_id)

    def require_dir(self, path: str, what: str, **mode) -> None:
        if not os.path.isdir(path):
            self.fail(f"{what} {path} does not exist: are you a member of course "
                      f"{self.coursedir.course_id!r}? Ask its admin to add you (aifw sandbox up provisions it).")
        if mode and not check_mode(path, **mode):
            self.fail(f"You may not use {what} {path}: are you a member of course "
                      f"{self.coursedir.course_id!r} (unix group), and did you log in again since you were added?")

    def learner_inbound(self, student: str) -> str:
        return os.path.join(self.root, self.coursedir.course_id, "inbound", student)

    def learner_feedback(self, student: str) -> str:
        return os.path.join(self.root, self.coursedir.course_id, "feedback", student)

    @staticmethod
    def own_student_id(requested: str) -> str:
        me = get_username()
        if requested not in ("", "*") and requested != me:
            raise _Refused(f"you can only submit or fetch feedback as yourself ({me}), not as {requested!r}")
        return me


class _Refused(Exception):
    pass


class AifwReleaseAssignment(AifwExchange, ExchangeReleaseAssignment):
    """Release into ``<root>/C/outbound/<assignment>`` (A:G 2750, files 0640)."""

    def ensure_root(self):  # stock: chmod 0777
        AifwExchange.ensure_root(self)

    def init_dest(self):
        self.course_path = self._course_path()
        self.outbound_path = os.path.join(self.course_path, "outbound")
        self.inbound_path = os.path.join(self.course_path, "inbound")
        self.dest_path = os.path.join(self.outbound_path, self.coursedir.assignment_id)
        self.require_dir(self.outbound_path, "The release folder", write=True, execute=True)

    def copy_files(self):
        if os.path.isdir(self.dest_path):
            if self.force:
                self.log.info("Overwriting files: %s %s", self.coursedir.course_id, self.coursedir.assignment_id)
                shutil.rmtree(self.dest_path)
            else:
                self.fail("Destination already exists, add --force to overwrite: {} {}".format(
                    self.coursedir.course_id, self.coursedir.assignment_id))
        self.log.info("Source: %s", self.src_path)
        self.log.info("Destination: %s", self.dest_path)
        tmp = os.path.join(self.outbound_path, f".{self.coursedir.assignment_id}.releasing")
        if os.path.lexists(tmp):
            shutil.rmtree(tmp)
        self.do_copy(self.src_path, tmp)
        _chmod_tree(tmp, RELEASE_FILE_MODE, RELEASE_DIR_MODE)
        os.rename(tmp, self.dest_path)  # learners never see a half-copied release
        self.log.info("Released as: %s %s", self.coursedir.course_id, self.coursedir.assignment_id)


class AifwFetchAssignment(AifwExchange, ExchangeFetchAssignment):
    """Fetch from ``outbound`` (group read) into the learner's ``~/courses/C/<assignment>``."""


class AifwSubmit(AifwExchange, ExchangeSubmit):
    """Submit into the learner's own ``inbound/L`` (setgid, group = the grader's private group)."""

    def init_dest(self):
        try:
            student_id = self.own_student_id(self.coursedir.student_id)
        except _Refused as err:
            self.fail(str(err))
        course_path = self._course_path()
        if not self.authenticator.has_access(student_id, self.coursedir.course_id):
            self.fail("You do not have access to this course.")
        self.inbound_path = self.learner_inbound(student_id)
        self.require_dir(course_path, "The course's exchange", execute=True)
        self.require_dir(self.inbound_path, "Your submission folder", write=True, execute=True)
        self.cache_path = os.path.join(self.cache, self.coursedir.course_id)
        random_str = _random_suffix() if self.add_random_string else None
        parts = [student_id, self.coursedir.assignment_id, self.timestamp] + ([random_str] if random_str else [])
        self.assignment_filename = "+".join(parts)

    def copy_files(self):
        self.init_release()
        import secrets

        submission_secret = secrets.token_hex(64)
        dest_path = os.path.join(self.inbound_path, self.assignment_filename)
        if self.add_random_string:
            cache_path = os.path.join(self.cache_path, self.assignment_filename.rsplit("+", 1)[0])
        else:
            cache_path = os.path.join(self.cache_path, self.assignment_filename)
        self.log.info("Source: %s", self.src_path)
        self.log.info("Destination: %s", dest_path)
        self.check_filename_diff()
        # Everything must be created while the setgid bit of its folder holds (group = the grader's
        # private group): copytree's final copystat clears it on the top folder, and the learner, not a
        # member of that group, cannot set it again. So the folder and nbgrader's two files come first.
        os.mkdir(dest_path, 0o700)
        extra = {"timestamp.txt": self.timestamp, "submission_secret.txt": submission_secret}
        for name in extra:
            open(os.path.join(dest_path, name), "w").close()
        if self.get_size(self.src_path) > 1000 * self.coursedir.max_dir_size:
            self.fail(f"Directory size is too big: {self.src_path}")
        shutil.copytree(self.src_path, dest_path, dirs_exist_ok=True,
                        ignore=ignore_patterns(exclude=self.coursedir.ignore, include=self.coursedir.include,
                                               max_file_size=self.coursedir.max_file_size, log=self.log))
        for name, text in extra.items():
            with open(os.path.join(dest_path, name), "w") as fh:  # same inode: its group stays
                fh.write(text)
        _chmod_tree(dest_path, SUBMISSION_FILE_MODE, SUBMISSION_DIR_MODE)
        self._check_grader_can_read(dest_path)

        if not os.path.isdir(self.cache_path):
            os.makedirs(self.cache_path)
        self.do_copy(self.src_path, cache_path)
        with open(os.path.join(cache_path, "timestamp.txt"), "w") as fh:
            fh.write(self.timestamp)
        with open(os.path.join(cache_path, "submission_secret.txt"), "w") as fh:
            fh.write(submission_secret)
        self.log.info("Submitted as: %s %s %s", self.coursedir.course_id, self.coursedir.assignment_id, self.timestamp)


    def _check_grader_can_read(self, dest_path: str) -> None:
        gid = os.stat(self.inbound_path).st_gid
        wrong = [os.path.join(d, n) for d, dirs, files in os.walk(dest_path) for n in [".", *files]
                 if os.lstat(os.path.join(d, n)).st_gid != gid]
        if wrong:
            shutil.rmtree(dest_path, ignore_errors=True)
            self.fail("Your submission folder {} lost its group (setgid); the grader could not read {}. "
                      "Ask the course admin to run the provisioning again.".format(self.inbound_path, wrong[0]))


def _random_suffix() -> str:
    import base64

    return base64.urlsafe_b64encode(os.urandom(9)).decode("ascii")


def _owner_uid(user: str) -> int | None:
    import pwd

    try:
        return pwd.getpwnam(user).pw_uid
    except KeyError:
        return None


class AifwCollect(AifwExchange, ExchangeCollect):
    """Collect from ``inbound/*/``: only real directories owned by the learner whose folder they are in,
    named after that learner; only regular files and directories are copied."""

    def _path_to_record(self, path):
        folder = os.path.basename(os.path.dirname(path))
        filename = os.path.basename(path)
        parts = filename.rsplit("+", 3)
        if len(parts) < 3:
            self.fail(f"Invalid filename: {filename}")
        from nbgrader.utils import parse_utc

        return {"username": parts[0], "filename": f"{folder}/{filename}", "timestamp": parse_utc(parts[2]),
                "folder": folder}

    def _trusted(self, path: str) -> bool:
        folder = os.path.basename(os.path.dirname(path))
        name = os.path.basename(path)
        student = name.split("+", 1)[0]
        try:
            st = os.lstat(path)
            parent = os.lstat(os.path.dirname(path))
        except OSError:
            return False
        uid = _owner_uid(folder)
        reasons = []
        if student != folder:
            reasons.append(f"it is named after {student!r} but lies in {folder!r}'s folder")
        if not stat.S_ISDIR(st.st_mode):
            reasons.append("it is not a directory")
        if uid is None or st.st_uid != uid or parent.st_uid != uid:
            reasons.append(f"it is not owned by {folder!r}")
        if reasons:
            self.log.warning("Skipping %s: %s", path, "; ".join(reasons))
            return False
        return True

    def init_src(self):
        from nbgrader.api import Gradebook, MissingEntry
        from nbgrader.exchange.default.collect import groupby

        self.course_path = self._course_path()
        self.inbound_path = os.path.join(self.course_path, "inbound")
        self.require_dir(self.inbound_path, "The inbound folder", read=True, execute=True)
        student_id = self.coursedir.student_id if self.coursedir.student_id else "*"
        pattern = os.path.join(self.inbound_path, student_id, f"{student_id}+{self.coursedir.assignment_id}+*")
        records = [self._path_to_record(f) for f in sorted(glob.glob(pattern)) if self._trusted(f)]
        usergroups = groupby(records, lambda item: item["username"])
        with Gradebook(self.coursedir.db_url, self.coursedir.course_id) as gb:
            try:
                self.duedate = gb.find_assignment(self.coursedir.assignment_id).duedate
            except MissingEntry:
                self.duedate = None
        if self.duedate is None or not self.before_duedate:
            self.src_records = [self._sort_by_timestamp(v)[0] for v in usergroups.values()]
        else:
            self.src_records = []
            for v in usergroups.values():
                recs = self._sort_by_timestamp(v)
                before = [r for r in recs if r["timestamp"] <= self.duedate]
                self.src_records.append(before[0] if before else recs[0])

    def do_copy(self, src, dest, log=None):
        if self.get_size(src) > 1000 * self.coursedir.max_dir_size:
            raise RuntimeError(f"Directory size is too big: {src}")
        base = ignore_patterns(exclude=self.coursedir.ignore, include=self.coursedir.include,
                               max_file_size=self.coursedir.max_file_size, log=self.log)

        def ignore(directory, names):
            skipped = set(base(directory, names))
            for name in names:
                st = os.lstat(os.path.join(directory, name))
                if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
                    self.log.warning("Not collecting %s: not a regular file or directory",
                                     os.path.join(directory, name))
                    skipped.add(name)
            return skipped

        shutil.copytree(src, dest, ignore=ignore)
        _chmod_tree(dest, 0o640, 0o750)


class AifwReleaseFeedback(AifwExchange, ExchangeReleaseFeedback):
    """Feedback into ``feedback/L/<hash>.html`` (A:l, 0640): only learner L reads it."""

    def init_dest(self):
        self.course_path = self._course_path()
        self.outbound_feedback_path = os.path.join(self.course_path, "feedback")
        self.dest_path = self.outbound_feedback_path
        self.require_dir(self.outbound_feedback_path, "The feedback folder", execute=True)

    def copy_files(self):
        exclude = set(self.coursedir.student_id_exclude.split(",")) if self.coursedir.student_id_exclude else set()
        regexp = re.escape(os.path.sep).join([
            self.coursedir.format_path(self.coursedir.feedback_directory, "(?P<student_id>.*)",
                                       self.coursedir.assignment_id, escape=True),
            "(?P<notebook_id>.*).html",
        ])
        missing = []
        for html_file in sorted(glob.glob(os.path.join(self.src_path, "*.html"))):
            m = re.match(regexp, html_file)
            if m is None:
                self.log.error("Could not match '%s' with regexp '%s'", html_file, regexp)
                continue
            student_id, notebook_id = m.group("student_id"), m.group("notebook_id")
            if student_id in exclude:
                continue
            dest_dir = self.learner_feedback(student_id)
            if not os.path.isdir(dest_dir) or not check_mode(dest_dir, write=True, execute=True):
                missing.append(student_id)
                continue
            feedback_dir = os.path.dirname(html_file)
            with open(os.path.join(feedback_dir, "timestamp.txt")) as fh:
                timestamp = fh.read()
            with open(os.path.join(feedback_dir, "submission_secret.txt")) as fh:
                secret = fh.read()
            checksum = notebook_hash(secret=secret, notebook_id=notebook_id)
            tmp = os.path.join(dest_dir, f".{checksum}-tmp.html")
            self.log.info("Releasing feedback for student '%s' on assignment '%s/%s/%s' (%s)", student_id,
                          self.coursedir.course_id, self.coursedir.assignment_id, notebook_id, timestamp)
            shutil.copyfile(html_file, tmp)
            os.chmod(tmp, FEEDBACK_FILE_MODE)
            os.replace(tmp, os.path.join(dest_dir, f"{checksum}.html"))
        if missing:
            self.fail("No feedback folder for: {} (not provisioned as learners of {}); ask the admin to add "
                      "them to the course and run the provisioning again.".format(
                          ", ".join(sorted(set(missing))), self.coursedir.course_id))


def _feedback_file(root: str, course_id: str, student: str, secret: str, notebook_id: str) -> str:
    return os.path.join(root, course_id, "feedback", student,
                        "{}.html".format(notebook_hash(secret=secret, notebook_id=notebook_id)))


class AifwFetchFeedback(AifwExchange, ExchangeFetchFeedback):
    """Fetch one's own feedback from ``feedback/L/`` (found through each cached submission's secret)."""

    def init_src(self):
        course_path = self._course_path()
        try:
            student_id = self.own_student_id(self.coursedir.student_id)
        except _Refused as err:
            self.fail(str(err))
        self.course_path = course_path
        self.outbound_path = self.learner_feedback(student_id)
        self.src_path = self.outbound_path
        self.cache_path = os.path.join(self.cache, self.coursedir.course_id)
        self.require_dir(self.outbound_path, "Your feedback folder", execute=True)
        assignment_id = self.coursedir.assignment_id if self.coursedir.assignment_id else "*"
        self.feedback_files = []
        for submission in sorted(os.path.basename(x) for x in glob.glob(
                os.path.join(self.cache_path, f"*+{assignment_id}+*"))):
            _, asg, timestamp = submission.split("+")[:3]
            secret_path = os.path.join(self.cache_path, submission, "submission_secret.txt")
            if not os.path.isfile(secret_path):
                continue
            with open(secret_path) as fh:
                secret = fh.read()
            for notebook in sorted(glob.glob(os.path.join(self.cache_path, submission, "*.ipynb"))):
                notebook_id = os.path.splitext(os.path.basename(notebook))[0]
                path = _feedback_file(self.root, self.coursedir.course_id, student_id, secret, notebook_id)
                if os.path.exists(path):
                    self.feedback_files.append((notebook_id, timestamp, path))
                    self.log.info("Found feedback for '%s/%s/%s' submitted at %s",
                                  self.coursedir.course_id, asg, notebook_id, timestamp)
                else:
                    self.log.warning("Could not find feedback for '%s/%s/%s' submitted at %s",
                                     self.coursedir.course_id, asg, notebook_id, timestamp)


def _checksum(path: str) -> str:
    with open(path, "rb") as fh:
        return hashlib.md5(fh.read()).hexdigest()


class AifwList(AifwExchange, ExchangeList):
    """List releases (as stock), submissions in ``inbound/*/`` (grader) and one's own feedback."""

    def init_dest(self):
        course_id = self.coursedir.course_id if self.coursedir.course_id else "*"
        assignment_id = self.coursedir.assignment_id if self.coursedir.assignment_id else "*"
        student_id = self.coursedir.student_id if self.coursedir.student_id else "*"
        if self.inbound:
            pattern = os.path.join(self.root, course_id, "inbound", student_id, f"{student_id}+{assignment_id}+*")
        elif self.cached:
            pattern = os.path.join(self.cache, course_id, f"{student_id}+{assignment_id}+*")
        else:
            pattern = os.path.join(self.root, course_id, "outbound", assignment_id)
        self.assignments = sorted(p for p in glob.glob(pattern) if not os.path.basename(p).startswith("."))

    def parse_assignment(self, assignment):
        if self.inbound:
            regexp = (r".*/(?P<course_id>[^/]*)/inbound/[^/]*/(?P<student_id>[^+/]*)\+(?P<assignment_id>[^+]*)"
                      r"\+(?P<timestamp>[^+]*)(?P<random_string>\+.*)?")
            m = re.match(regexp, assignment)
            if m is None:
                raise RuntimeError(f"Could not match {assignment!r} with {regexp!r}")
            return m.groupdict()
        return super().parse_assignment(assignment)

    def parse_assignments(self):
        assignments = super().parse_assignments()
        if not (self.inbound or self.cached):
            return assignments
        for group in assignments:
            for info in group["submissions"]:
                self._fix_feedback(info)
            first = group["submissions"][0] if group["submissions"] else None
            if first is not None:
                group["status"] = first["status"]
        return assignments

    def _fix_feedback(self, info: dict) -> None:
        """nbgrader looks for feedback in ``<root>/C/feedback/<hash>.html``; ours is in ``feedback/L/``."""
        if info.get("status") != "submitted":
            return
        secret_path = os.path.join(info["path"], "submission_secret.txt")
        secret = None
        if os.path.isfile(secret_path):
            with open(secret_path) as fh:
                secret = fh.read()
        for nb in info.get("notebooks", []):
            path = (_feedback_file(self.root, info["course_id"], info["student_id"], secret, nb["notebook_id"])
                    if secret else None)
            has = bool(path) and os.path.isfile(path)
            nb["has_exchange_feedback"] = has
            nb["feedback_updated"] = bool(has and nb.get("has_local_feedback") and nb.get("local_feedback_path")
                                          and _checksum(path) != _checksum(nb["local_feedback_path"]))
        nbs = info.get("notebooks", [])
        info["has_exchange_feedback"] = bool(nbs) and all(nb["has_exchange_feedback"] for nb in nbs)
        info["feedback_updated"] = any(nb["feedback_updated"] for nb in nbs)


__all__ = [
    "AifwExchange", "AifwReleaseAssignment", "AifwFetchAssignment", "AifwSubmit", "AifwCollect",
    "AifwReleaseFeedback", "AifwFetchFeedback", "AifwList", "Entry", "course_layout", "private_group",
    "nbgrader_config_text", "STEPS",
]

if sys.platform == "win32":  # pragma: no cover
    raise ImportError("the AIF Workbench exchange needs unix permissions")
