"""Progress in a real session: an instant check that passes in a learner's kernel (on a compute node) reaches the
hub's progress service, the learner reads it back, another learner cannot read theirs, a trainer reads the
course's CSV and page. (The formula, validation and the store: tests/unit/test_progress.py.)"""
from __future__ import annotations

import csv
import io

import requests

from aifw_testing import wait_until

COURSE, MODULE = "aif-foundations", "m1-first-steps"
NOTEBOOK = "01-jupyter-on-a-supercomputer.ipynb"
CHECK = "Exercise 1a: inside a Slurm job"  # one of the notebook's instant checks

# In the kernel: as in the learner's notebook ~/courses/<course>/<module>/<notebook> (its directory and session
# name), a check of that notebook passes; then the URL the kernel posts to, for the failure message.
KERNEL_CODE = f"""
import os
os.chdir(os.path.expanduser('~/courses/{COURSE}/{MODULE}'))
os.environ['JPY_SESSION_NAME'] = 'courses/{COURSE}/{MODULE}/{NOTEBOOK}'
from aifw.extensions.kernel.checks import check
from aifw.extensions.kernel.progress_report import service_base
@check({CHECK!r})
def _():
    assert True
print('posting to', service_base(dict(os.environ)))
"""


def _get(hub, path: str, token: str) -> requests.Response:
    return requests.get(f"{hub.info.hub_url}/services/aifw-progress/{path}", headers={"Authorization": f"token {token}"},
                        timeout=30)


def test_a_passed_check_reaches_the_service_and_only_its_learner_and_trainers_read_it(stack, hub):
    learner, other = stack.learners()[:2]
    token = hub.user_token(hub.login(learner), learner)
    other_token = hub.user_token(hub.login(other), other)
    trainer = "test-trainer1"
    trainer_login = hub.login(trainer)
    trainer_token = hub.user_token(trainer_login, trainer)
    def m1(t: str) -> dict:
        r = _get(hub, "api/progress", t)
        assert r.status_code == 200, r.text
        return next(m for m in r.json()["courses"][COURSE] if m["module"] == MODULE)

    # Earlier tests of the suite may have passed checks of these learners already: count from here.
    before, other_before = m1(token)["checks_passed"], m1(other_token)["checks_passed"]
    assert hub.start(learner, {"partition": "cpu"}, token=token).status_code in (201, 202)
    hub.wait_ready(learner)
    out = hub.run_code(learner, token, KERNEL_CODE)
    assert "posting to http" in out, out

    assert wait_until(lambda: m1(token)["checks_passed"] >= max(1, before), timeout=15), f"{m1(token)}; kernel said: {out}"
    mine = m1(token)
    assert mine["checks_total"] > 1 and 0 < mine["progress"] <= 1
    assert m1(other_token)["checks_passed"] == other_before  # the other learner's progress is their own

    refused = _get(hub, f"api/courses/{COURSE}/progress?format=csv", other_token)
    assert refused.status_code == 403 and "only trainers" in refused.json()["message"]

    table = _get(hub, f"api/courses/{COURSE}/progress?format=csv", trainer_token)
    assert table.status_code == 200 and table.headers["Content-Type"].startswith("text/csv")
    rows = {(r["learner"], r["module"]): r for r in csv.DictReader(io.StringIO(table.text))}
    assert rows[(learner, MODULE)]["checks_passed"] == str(mine["checks_passed"])

    # the trainers' page, through the hub's OAuth login in the trainer's browser session
    page = trainer_login.get(f"{hub.info.hub_url}/services/aifw-progress/course/{COURSE}", timeout=30)
    assert page.status_code == 200 and learner in page.text and "Download CSV" in page.text, page.text[:500]
