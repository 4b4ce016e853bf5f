"""The course exchange with real unix users: release, fetch, submit, collect and feedback work, and every
forbidden read or write fails for a learner (aifw.courses.exchange explains the permission design).
Also: the course's formgrader service lets its trainer in and not its learners, and a learner's session
has the assignment list but no formgrader."""
from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import stat
import uuid
from pathlib import Path

import pytest

from aifw_testing import assert_denied, run_as

COURSE = "aif-foundations"
MODULE = "m1-first-steps"
LEARNERS = ("test-learner1", "test-learner2")
OUTSIDER = "test-researcher1"  # a hub user who does not take the course


class Course:
    def __init__(self, info):
        site = info.stack.site
        entry = site.course(COURSE)
        self.venv = site.paths.venv
        self.grader = entry.grader_account
        self.group = entry.unix_group
        self.dir = site.paths.course_dir(COURSE)
        self.root = site.paths.exchange_root
        self.exchange = self.root / COURSE

    def nbgrader(self, user: str, *args: str, cwd: str | None = None, check: bool = True):
        p = run_as(user, ["nbgrader", *args], venv=self.venv, cwd=cwd or str(self.dir), timeout=300)
        if check:
            assert p.returncode == 0, f"nbgrader {' '.join(args)} as {user} failed:\n{p.stdout}\n{p.stderr}"
        return p

    def submission(self, learner: str) -> Path:
        """The learner's newest submission folder (found as root)."""
        subs = sorted((self.exchange / "inbound" / learner).glob(f"{learner}+{MODULE}+*"), key=lambda p: p.name)
        assert subs, f"no submission of {learner}"
        return subs[-1]


@pytest.fixture(scope="module")
def course(stack):
    c = Course(stack)
    assert c.grader == "test-grader-aif-foundations" and c.group == "test-aifw-aif-foundations"
    return c


@pytest.fixture(scope="module")
def workdirs(course):
    """A fresh folder in each learner's home where nbgrader fetches (not their ~/courses)."""
    dirs = {}
    for learner in LEARNERS:
        home = Path(pwd.getpwnam(learner).pw_dir)
        d = home / f".aifw-exchange-test-{uuid.uuid4().hex[:8]}"
        p = run_as(learner, ["mkdir", "-p", str(d / "courses")])
        assert p.returncode == 0, p.stderr
        dirs[learner] = d
    yield dirs
    for d in dirs.values():
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def submitted(course, workdirs):
    """The trainer's workflow up to collect: release, both learners fetch and submit, collect."""
    course.nbgrader(course.grader, "release_assignment", MODULE, "--force")
    for learner in LEARNERS:
        args = ["--course", COURSE, f"--Exchange.assignment_dir={workdirs[learner] / 'courses'}"]
        course.nbgrader(learner, "fetch_assignment", MODULE, *args, cwd=str(workdirs[learner]))
        fetched = workdirs[learner] / "courses" / COURSE / MODULE
        assert sorted(p.name for p in fetched.glob("*.ipynb")), f"{learner} fetched nothing"
        (fetched / "notes.txt").write_text(f"work of {learner}\n")
        os.chown(fetched / "notes.txt", pwd.getpwnam(learner).pw_uid, -1)
        course.nbgrader(learner, "submit", MODULE, *args, cwd=str(workdirs[learner]))
    course.nbgrader(course.grader, "collect", MODULE, "--update")
    return {learner: course.submission(learner) for learner in LEARNERS}


def test_the_grader_collects_each_learners_own_submission(course, submitted):
    for learner, sub in submitted.items():
        got = course.dir / "submitted" / learner / MODULE
        assert (got / "notes.txt").read_text() == f"work of {learner}\n"
        assert (got / "timestamp.txt").read_text() == (sub / "timestamp.txt").read_text()
        assert re.fullmatch(rf"{learner}\+{MODULE}\+[^+]+\+[A-Za-z0-9_-]{{12}}", sub.name)  # nbgrader's random suffix
        st = sub.stat()
        assert st.st_uid == pwd.getpwnam(learner).pw_uid
        assert stat.S_IMODE(st.st_mode) == 0o750


def test_a_learner_cannot_read_another_learners_submission(course, submitted):
    other = submitted["test-learner2"]
    assert_denied("test-learner1", ["ls", str(other)])
    assert_denied("test-learner1", ["cat", str(other / "notes.txt")])
    assert_denied("test-learner1", ["cat", str(other / "submission_secret.txt")])
    assert_denied("test-learner1", ["ls", str(course.exchange / "inbound" / "test-learner2")])
    assert_denied("test-learner1", ["touch", str(course.exchange / "inbound" / "test-learner2" / "x")])
    # The learner reads their own.
    own = submitted["test-learner1"]
    assert run_as("test-learner1", ["cat", str(own / "notes.txt")]).stdout == "work of test-learner1\n"


def test_a_learner_cannot_list_inbound_or_write_releases(course, submitted):
    assert_denied("test-learner1", ["ls", str(course.exchange / "inbound")])
    assert_denied("test-learner1", ["ls", str(course.exchange / "feedback")])
    assert_denied("test-learner1", ["touch", str(course.exchange / "inbound" / "test-learner1+m1+x")])
    release = course.exchange / "outbound" / MODULE
    nb = sorted(release.glob("*.ipynb"))[0]
    assert run_as("test-learner1", ["cat", str(nb)]).returncode == 0  # released: readable
    assert_denied("test-learner1", ["touch", str(release / "planted.txt")])
    assert_denied("test-learner1", ["sh", "-c", f"echo x >> '{nb}'"])
    assert_denied("test-learner1", ["mkdir", str(course.exchange / "outbound" / "m9-fake")])
    assert_denied("test-learner1", ["rm", "-rf", str(release)])


def test_a_learner_cannot_read_the_course_directory_source_or_gradebook(course, submitted):
    source_nb = sorted((course.dir / "source" / MODULE).glob("*.ipynb"))[0]
    for path in (course.dir, course.dir / "source", course.dir / "submitted"):
        assert_denied("test-learner1", ["ls", str(path)])
    assert_denied("test-learner1", ["cat", str(course.dir / "gradebook.db")])
    assert_denied("test-learner1", ["cat", str(source_nb)])
    assert_denied("test-learner1", ["cat", str(course.dir / "submitted" / "test-learner2" / MODULE / "notes.txt")])
    # also not through nbgrader: the learner's own nbgrader cannot collect
    p = course.nbgrader("test-learner1", "collect", MODULE, "--course", COURSE, check=False, cwd="/tmp")
    assert p.returncode != 0


def test_a_learner_submits_only_as_themselves(course, workdirs, submitted):
    args = ["--course", COURSE, f"--Exchange.assignment_dir={workdirs['test-learner1'] / 'courses'}"]
    p = course.nbgrader("test-learner1", "submit", MODULE, "--student", "test-learner2", *args,
                        cwd=str(workdirs["test-learner1"]), check=False)
    assert p.returncode != 0 and "only submit" in (p.stdout + p.stderr)
    assert course.submission("test-learner2") == submitted["test-learner2"]


def test_someone_outside_the_course_sees_nothing(course, submitted):
    assert_denied(OUTSIDER, ["ls", str(course.exchange)])
    assert_denied(OUTSIDER, ["cat", str(sorted((course.exchange / "outbound" / MODULE).glob("*.ipynb"))[0])])
    p = course.nbgrader(OUTSIDER, "list", "--course", COURSE, check=False, cwd="/tmp")
    assert MODULE not in p.stdout + p.stderr


def test_feedback_reaches_only_its_learner(course, workdirs, submitted):
    # What `nbgrader generate_feedback` leaves in the course directory (done as the grader).
    for learner in LEARNERS:
        fb = course.dir / "feedback" / learner / MODULE
        sub = course.dir / "submitted" / learner / MODULE
        script = (f"mkdir -p '{fb}' && cp '{sub}/timestamp.txt' '{sub}/submission_secret.txt' '{fb}/' && "
                  f"for nb in '{sub}'/*.ipynb; do b=$(basename \"$nb\" .ipynb); "
                  f"echo \"<html>feedback of {learner} on $b</html>\" > '{fb}'/\"$b\".html; done")
        assert run_as(course.grader, ["sh", "-c", script]).returncode == 0
    course.nbgrader(course.grader, "release_feedback", MODULE)
    mine = course.exchange / "feedback" / "test-learner1"
    theirs = sorted((course.exchange / "feedback" / "test-learner2").glob("*.html"))
    assert theirs and sorted(mine.glob("*.html"))
    for path in theirs:
        assert_denied("test-learner1", ["cat", str(path)])
    assert_denied("test-learner1", ["ls", str(course.exchange / "feedback" / "test-learner2")])
    args = ["--course", COURSE, f"--Exchange.assignment_dir={workdirs['test-learner1'] / 'courses'}"]
    listed = course.nbgrader("test-learner1", "list", "--cached", *args, cwd=str(workdirs["test-learner1"]))
    assert "feedback ready to be fetched" in listed.stdout + listed.stderr
    course.nbgrader("test-learner1", "fetch_feedback", MODULE, *args, cwd=str(workdirs["test-learner1"]))
    timestamp = (submitted["test-learner1"] / "timestamp.txt").read_text()
    got = sorted((workdirs["test-learner1"] / "courses" / COURSE / MODULE / "feedback" / timestamp).glob("*.html"))
    assert got and all("feedback of test-learner1" in p.read_text() for p in got)


def test_nothing_under_the_exchange_is_world_writable(course, submitted):
    seen = 0
    for dirpath, dirnames, filenames in os.walk(course.root):
        for name in [".", *dirnames, *filenames]:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                continue
            seen += 1
            assert not st.st_mode & stat.S_IWOTH, f"{path} is world-writable ({oct(st.st_mode)})"
    assert seen > 10
    assert stat.S_IMODE(course.exchange.stat().st_mode) & 0o007 == 0


def test_provisioning_again_changes_nothing(course, submitted, stack):
    from aifw.sandbox.provisioning import provision_courses

    messages = []
    assert provision_courses(stack.stack.site, course.venv, say=messages.append) is False, messages
    gradebook = course.dir / "gradebook.db"
    assert gradebook.stat().st_uid == pwd.getpwnam(course.grader).pw_uid


def _page_config(html: str) -> dict:
    m = re.search(r'<script id="jupyter-config-data" type="application/json">(.*?)</script>', html, re.S)
    assert m, html[:300]
    return json.loads(m.group(1))


def test_the_trainer_reaches_the_formgrader_and_a_learner_gets_403(stack, hub, submitted):
    service = f"{stack.hub_url}/services/formgrader-{COURSE}"
    trainer = hub.login("test-trainer1")
    r = trainer.get(f"{service}/", timeout=120)
    assert r.status_code == 200 and "formgrade" in r.text, (r.status_code, r.url)
    r = trainer.get(f"{service}/formgrader", timeout=60)  # the formgrader page itself
    assert r.status_code == 200 and r.url.startswith(f"{service}/formgrader"), (r.status_code, r.url)
    r = trainer.get(f"{service}/formgrader/api/assignments", timeout=60)
    assert r.status_code == 200
    assert MODULE in [a["name"] for a in r.json()]
    # Its JupyterLab has nbgrader's trainer plugins (learners' sessions do not).
    r = trainer.get(f"{service}/lab", timeout=60)
    assert r.status_code == 200
    disabled = _page_config(r.text)["disabledExtensions"]
    assert "@jupyter/nbgrader:formgrader" not in disabled and "@jupyter/nbgrader:create-assignment" not in disabled
    # The role goes to the course's trainers group (test-trainer1 is also a hub admin).
    group = hub.api("GET", f"/groups/course-{COURSE}-trainers").json()
    assert f"formgrader-{COURSE}-trainers" in group["roles"]
    # A logged-in learner follows the service's OAuth redirects to the hub, as a browser does, and the
    # hub refuses them there: exactly 403 at the end, for the pages and for the API alike.
    learner = hub.login("test-learner1")
    for page in (f"{service}/", f"{service}/formgrader", f"{service}/formgrader/api/assignments"):
        r = learner.get(page, timeout=60)
        hops = [(h.status_code, h.url) for h in r.history]
        assert r.status_code == 403, (page, r.status_code, r.url, hops)
        assert MODULE not in r.text, (page, r.url)


def test_a_learner_session_lists_and_submits_assignments_and_has_no_formgrader(stack, hub, course, submitted):
    name = "test-learner1"
    token = hub.user_token(hub.login(name), name)
    assert hub.start(name, {"partition": "cpu"}, token=token).status_code in (201, 202)
    hub.wait_ready(name)
    import requests

    base = f"{stack.hub_url}/user/{name}"
    headers = {"Authorization": f"token {token}"}
    r = requests.get(f"{base}/lab", headers=headers, timeout=60)
    assert r.status_code == 200
    disabled = _page_config(r.text)["disabledExtensions"]
    for plugin in ("@jupyter/nbgrader:formgrader", "@jupyter/nbgrader:create-assignment", "@jupyter/nbgrader:course-list"):
        assert plugin in disabled
    assert "@jupyter/nbgrader:assignment-list" not in disabled
    assert "@jupyter/nbgrader:validate-assignment" not in disabled
    assert requests.get(f"{base}/formgrader", headers=headers, timeout=60).status_code == 404
    # The assignment list sees the release, and the learner's ~/courses copy as the fetched one.
    r = requests.get(f"{base}/assignments", params={"course_id": COURSE}, headers=headers, timeout=120)
    listing = r.json()
    assert listing["success"], listing
    released = [a for a in listing["value"] if a.get("assignment_id") == MODULE and "submissions" not in a]
    assert released and released[0]["status"] == "fetched", listing
    before = course.submission(name)
    r = requests.post(f"{base}/assignments/submit", data={"course_id": COURSE, "assignment_id": MODULE},
                      headers=headers, timeout=120)
    assert r.status_code == 200 and r.json()["success"], r.text[:500]
    after = course.submission(name)
    assert after != before
    home_copy = Path(pwd.getpwnam(name).pw_dir) / "courses" / COURSE / MODULE
    assert sorted(p.name for p in after.glob("*.ipynb")) == sorted(p.name for p in home_copy.glob("*.ipynb"))


def test_sandbox_up_applies_a_new_learner_without_restarting_sessions_and_takes_them_out_again(stack, hub, course, tmp_path):
    """A learner added to the site file: `up` on the running stack puts them in the course's unix group
    with their exchange folders and (hub restarted) in the hub group; removed, they lose the access."""
    import grp

    import yaml

    from aifw.sandbox import stack as st

    data = yaml.safe_load((stack.home / "test-site.yaml").read_text())
    data["courses"][0]["learners"].append(OUTSIDER)
    changed_site = tmp_path / "site.yaml"
    changed_site.write_text(yaml.safe_dump(data, sort_keys=False))
    slurm_before = {k: v for k, v in st.status(stack.stack).items() if k.startswith("slurm")}
    try:
        assert st.up(st.make_stack(stack.home, changed_site)) is True
        assert OUTSIDER in grp.getgrnam(course.group).gr_mem
        assert (course.exchange / "inbound" / OUTSIDER).stat().st_uid == pwd.getpwnam(OUTSIDER).pw_uid
        assert run_as(OUTSIDER, ["ls", str(course.exchange / "outbound")]).returncode == 0
        assert OUTSIDER in hub.api("GET", f"/groups/course-{COURSE}-learners").json()["users"]
        assert {k: v for k, v in st.status(stack.stack).items() if k.startswith("slurm")} == slurm_before
    finally:
        st.up(st.make_stack(stack.home, stack.home / "test-site.yaml"))
    assert OUTSIDER not in grp.getgrnam(course.group).gr_mem
    assert_denied(OUTSIDER, ["ls", str(course.exchange / "outbound")])
    assert OUTSIDER not in hub.api("GET", f"/groups/course-{COURSE}-learners").json()["users"]
