"""Progress in a real session: an instant check that passes in a learner's kernel (on a compute node) reaches the
hub's progress service, the learner reads it back, another learner cannot read theirs, a trainer reads the
course's CSV and page; graded scores make a learner's completion record, which the public page verifies. (The
formula, validation and the store: tests/unit/test_progress.py; completion records: tests/unit/test_completion.py.)"""
from __future__ import annotations

import base64
import csv
import io
import json

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


def test_a_learner_who_completes_the_course_gets_a_record_that_the_public_page_verifies(stack, hub):
    """Graded scores of every module (as `aifw grade` posts them) make the course's completion rule hold: the
    learner opens the record through the hub's OAuth, downloads the PDF and the credential, and anyone, without a
    login, verifies it; a tampered one is refused. (The rule, the record, the credential: tests/unit/test_completion.py.)"""
    import base64
    import json

    learner = stack.learners()[1]
    login = hub.login(learner)
    token = hub.user_token(login, learner)
    standing = _get(hub, "api/completion", token)
    assert standing.status_code == 200, standing.text
    course = standing.json()["courses"][COURSE]
    assert course["offered"] and course["graded_percent"] == 80
    for module in [m["module"] for m in course["modules"]]:  # what aifw grade sends after a run
        posted = requests.post(f"{hub.info.hub_url}/services/aifw-progress/api/scores", timeout=30,
                               headers={"Authorization": f"token {hub.info.api_token}"},
                               json={"course": COURSE, "assignment": module, "scores": {learner: {"score": 9, "maximum": 10}}})
        assert posted.status_code == 204, posted.text
    course = _get(hub, "api/completion", token).json()["courses"][COURSE]
    assert course["holds"] and course["missing"] == [], course

    # the certificate, in the learner's browser session (the hub's OAuth: role aifw-progress-learners)
    page = login.get(f"{hub.info.hub_url}/services/aifw-progress/completion/{COURSE}", timeout=30)
    assert page.status_code == 200 and "Certificate of completion" in page.text and learner in page.text, page.text[:500]
    pdf = _get(hub, f"completion/{COURSE}?format=pdf", token)
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF-")
    credential = _get(hub, f"completion/{COURSE}?format=jwt", token).text
    record = _get(hub, "api/completion", token).json()["courses"][COURSE]["record"]
    assert record["verification_id"] in page.text  # one record: the page, the PDF and the credential are it
    assert _get(hub, f"completion/{COURSE}?format=jwt", token).text == credential

    # anyone verifies it, without a login; a changed learner name is refused
    def verify(text: str) -> dict:
        r = requests.post(f"{hub.info.hub_url}/services/aifw-progress/verify?format=json", json={"record": text},
                          timeout=30)
        assert r.status_code == 200, r.text
        return r.json()

    assert verify(credential)["valid"] and verify(credential)["learner"] == learner
    assert verify(record["verification_id"])["course"] == COURSE
    head, body, signature = credential.split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    claims["credentialSubject"]["identifier"][0]["identityHash"] = stack.learners()[0]
    forged = ".".join([head, base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode(), signature])
    refused = verify(forged)
    assert not refused["valid"] and "signature does not match" in refused["message"]
    jwks = requests.get(f"{hub.info.hub_url}/services/aifw-progress/.well-known/jwks.json", timeout=30).json()
    assert jwks["keys"][0]["kty"] == "RSA" and "d" not in jwks["keys"][0]
    public_page = requests.get(f"{hub.info.hub_url}/services/aifw-progress/verify",
                               params={"record": record["verification_id"]}, timeout=30)
    assert public_page.status_code == 200 and 'data-valid="true"' in public_page.text
