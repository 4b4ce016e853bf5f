"""Learners' progress (pure parts, the store, the service's HTTP boundary with a fake hub, the kernel's reporter)."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from aifw_testing import run_coroutine
from pydantic import ValidationError

from aifw.hub_config import progress as p
from aifw.hub_config.progress_store import ProgressStore
from aifw.hub_config.lti_grades import service_port as grades_port
from aifw.hub_config.settings import formgrader_services
from aifw.site import example_site_path, load_site


# --------------------------------------------------------------------------- the formula
@pytest.mark.parametrize("passed, total, score, maximum, expected", [
    (0, 0, None, None, 0.0),        # nothing known yet
    (1, 4, None, None, 0.25),       # checks only
    (0, 0, 3, 4, 0.75),             # a graded module without instant checks
    (2, 4, 9, 10, 0.9),             # the larger of the two, not a mix
    (4, 4, 1, 10, 1.0),             # a low grade does not lower what the checks showed
    (7, 4, None, None, 1.0),        # never above 1
    (1, 3, 0, 5, 0.3333),
])
def test_a_modules_progress_is_the_larger_of_its_checks_and_its_grade(passed, total, score, maximum, expected):
    assert p.module_progress(passed, total, score, maximum) == expected


def test_only_the_checks_a_module_defines_count():
    modules = [p.ModuleChecks(module="m1", checks=frozenset({("a.ipynb", "Ex 1"), ("a.ipynb", "Ex 2")})),
               p.ModuleChecks(module="m2", checks=frozenset())]
    passed = {("m1", "a.ipynb", "Ex 1"), ("m1", "b.ipynb", "Ex 1"), ("m2", "a.ipynb", "Ex 1")}
    m1, m2 = p.progress_of(modules, passed, {"m2": p.Score(score=1, maximum=2)})
    assert (m1.checks_passed, m1.checks_total, m1.progress, m1.score) == (1, 2, 0.5, None)
    assert (m2.checks_passed, m2.checks_total, m2.progress, m2.score, m2.maximum) == (0, 0, 0.5, 1, 2)


# --------------------------------------------------------------------------- validation at the boundary
@pytest.mark.parametrize("body, where", [
    ({"course": "c; rm -rf /", "module": "m1", "notebook": "a.ipynb", "check": "x"}, "course"),
    ({"course": "c", "module": "../m1", "notebook": "a.ipynb", "check": "x"}, "module"),
    ({"course": "c", "module": "m1", "notebook": "../../a.ipynb", "check": "x"}, "notebook"),
    ({"course": "c", "module": "m1", "notebook": "a.ipynb", "check": "x" * 201}, "check"),
    ({"course": "c", "module": "m1", "notebook": "a.ipynb", "check": "two\nlines"}, "check"),
    ({"course": "c", "module": "m1", "notebook": "a.ipynb", "check": "x", "user": "someone"}, "user"),
])
def test_a_wrong_check_message_is_refused_naming_the_field(body, where):
    with pytest.raises(ValidationError) as err:
        p.CheckPassed.model_validate(body)
    assert p.first_error(err.value).startswith(where)


@pytest.mark.parametrize("scores, words", [
    ({"ada": {"score": 3, "maximum": 2}}, "above the maximum"),
    ({"ada": {"score": -1, "maximum": 2}}, "greater than or equal to 0"),
    ({"ada": {"score": 1, "maximum": 0}}, "greater than 0"),
    ({"Not A User": {"score": 1, "maximum": 2}}, "should match pattern"),
])
def test_impossible_scores_are_refused(scores, words):
    with pytest.raises(ValidationError) as err:
        p.ScoresPosted.model_validate({"course": "c", "assignment": "m1", "scores": scores})
    assert words in p.first_error(err.value)


# --------------------------------------------------------------------------- which checks a module has
def _notebook(*sources: str) -> dict:
    return {"cells": [{"cell_type": "code", "source": s} for s in sources] + [
        {"cell_type": "markdown", "source": '@check("not code")\ndef _(): pass'}]}


def test_the_checks_of_a_notebook_are_named_as_the_kernel_names_them():
    nb = _notebook('@check("Exercise 1a: adding", hint="+")\ndef _():\n    assert 1\n',
                   ["from aifw.extensions.kernel import checks\n", "@checks.check\ndef my_own_test():\n    pass\n"],
                   "%matplotlib inline\n@check('hidden by a magic')\ndef _(): pass",
                   "@check()\ndef _():\n    pass\n",
                   "@other\ndef f(): pass")
    assert p.notebook_checks(nb) == ["Exercise 1a: adding", "my own test", "check"]


def test_the_published_course_defines_its_modules_checks():
    """Against the course's source notebooks: every module of the course has instant checks to count."""
    source = Path(__file__).resolve().parents[2] / "courses" / "aif-foundations" / "source"
    modules = p.course_modules(source.parent, "source")
    assert [m.module for m in modules][:2] == ["m1-first-steps", "m2-training-loop"]
    m1 = modules[0]
    assert ("01-jupyter-on-a-supercomputer.ipynb", "Exercise 1a: inside a Slurm job") in m1.checks
    assert all(len(m.checks) > 0 for m in modules)


# --------------------------------------------------------------------------- the store
def test_the_store_keeps_checks_once_and_the_latest_grade(tmp_path):
    store = ProgressStore(tmp_path / "progress.sqlite")
    assert oct((tmp_path / "progress.sqlite").stat().st_mode & 0o777) == "0o600"
    check = p.CheckPassed(course="c", module="m1", notebook="a.ipynb", check="Ex 1")
    store.add_check("ada", check)
    store.add_check("ada", check)
    store.add_check("bob", check.model_copy(update={"check": "Ex 2"}))
    store.put_scores(p.ScoresPosted(course="c", assignment="m1", scores={"ada": p.Score(score=1, maximum=4)}))
    store.put_scores(p.ScoresPosted(course="c", assignment="m1", scores={"ada": p.Score(score=3, maximum=4)}))
    again = ProgressStore(tmp_path / "progress.sqlite")  # a new process opens the same file
    assert again.passed("c", "ada") == {"ada": {("m1", "a.ipynb", "Ex 1")}}
    assert set(again.passed("c")) == {"ada", "bob"}
    assert again.scores("c") == {"ada": {"m1": p.Score(score=3, maximum=4)}}
    assert again.passed("other") == {} and again.scores("c", "bob") == {}


def test_the_course_csv_has_a_row_per_learner_and_module():
    rows = {"bob": [p.ModuleProgress(module="m1", checks_passed=1, checks_total=2, score=None, maximum=None,
                                     progress=0.5)],
            "ada": [p.ModuleProgress(module="m1", checks_passed=0, checks_total=2, score=3, maximum=4, progress=0.75)]}
    table = list(csv.DictReader(io.StringIO(p.course_csv("c", rows))))
    assert [(r["learner"], r["progress"], r["score"]) for r in table] == [("ada", "0.7500", "3"), ("bob", "0.5000", "")]
    page = p.course_page("c", ["m1"], {"<b>": rows["ada"]}, "x.csv")
    assert "&lt;b&gt;" in page and "<b>" not in page.split("<body>")[1] and 'width:75%' in page


# --------------------------------------------------------------------------- the hub's settings
def test_the_hub_runs_the_progress_service_after_the_grades_port_with_its_roles():
    site = load_site(example_site_path("sandbox"))
    (service,), roles = p.progress_service(site, home="/srv/aifw", admin_service="aifw-admin")
    port = site.hub.services_port_base + len(site.courses) + 1
    assert service["url"] == f"http://{site.hub.hub_connect_ip or site.hub.hub_ip}:{port}"
    formgraders, _ = formgrader_services(site)
    assert port not in [int(s["url"].rsplit(":", 1)[1]) for s in formgraders] + [grades_port(site)]
    config = p.ServiceConfig.model_validate_json(service["environment"][p.CONFIG_ENV])
    assert config.state_dir == Path("/srv/aifw/state/hub/progress")
    assert config.shared_courses == Path("/srv/aifw/share/courses") and config.grader_services == ("aifw-admin",)
    assert config.public_url == site.hub.bind_url  # completion records name the service by it
    roles = {r["name"]: r for r in roles}
    assert roles["aifw-progress-service"]["scopes"] == ["read:groups"]
    assert roles["aifw-progress-trainers"]["groups"] == [f"course-{c}-trainers" for c in site.course_ids]
    # learners open their completion record through the hub's OAuth
    assert roles["aifw-progress-learners"]["groups"] == [f"course-{c}-learners" for c in site.course_ids]
    assert roles["aifw-progress-learners"]["scopes"] == ["access:services!service=aifw-progress"]
    assert roles["aifw-progress-graders"]["services"] == ["aifw-admin"]


# --------------------------------------------------------------------------- the service's HTTP boundary
class _FakeHubAuth:
    """HubOAuth's one call the service makes: a token names a user (or the admin service)."""

    api_url = "http://127.0.0.1:1/hub/api"
    api_token = "service-token"
    users = {"ada-token": {"kind": "user", "name": "ada", "admin": False},
             "bob-token": {"kind": "user", "name": "bob", "admin": False},
             "tina-token": {"kind": "user", "name": "tina", "admin": False},
             "admin-svc": {"kind": "service", "name": "aifw-admin"}}

    async def get_user(self, handler, sync=True):
        token = handler.request.headers.get("Authorization", "").partition(" ")[2]
        model = self.users.get(token)
        if model:
            handler._token_authenticated = True
        return model


PREFIX = "/services/aifw-progress/"
GROUPS = {"course-c-learners": {"ada", "bob"}, "course-c-trainers": {"tina"}}


def _serve(tmp_path, steps, catalogue: dict | None = None) -> dict:
    """Run the service (fake hub: _FakeHubAuth, GROUPS) on a course c with one module m1 (checks Ex 1, Ex 2) and
    answer `steps(call)`; call(path, token=None, body=None, form=None) -> (status, text, headers)."""
    from tornado.httpclient import AsyncHTTPClient

    from aifw.hub_config.progress_service import Directory, make_app

    share = tmp_path / "share"
    (share / "c" / "m1").mkdir(parents=True)
    (share / "c" / "m1" / "a.ipynb").write_text(json.dumps(_notebook('@check("Ex 1")\ndef _(): pass',
                                                                      '@check("Ex 2")\ndef _(): pass')))
    if catalogue is not None:
        (share / "c" / ".catalogue.json").write_text(json.dumps(catalogue))
    config = p.ServiceConfig(state_dir=tmp_path / "state", shared_courses=share, courses=("c",),
                             grader_services=("aifw-admin",), public_url="http://hub.example.org:8000")

    async def members(self, group):
        return frozenset(GROUPS.get(group, ()))

    async def scenario():
        Directory.members = members
        app = make_app(config, PREFIX, _FakeHubAuth())
        server = app.listen(0, address="127.0.0.1")
        port = next(iter(server._sockets.values())).getsockname()[1]
        client = AsyncHTTPClient()

        async def call(path, token=None, body=None, form=None):
            headers = {"Authorization": f"token {token}"} if token else {}
            data = json.dumps(body) if body is not None else form
            if data is not None:
                headers["Content-Type"] = "application/json" if form is None else "application/x-www-form-urlencoded"
            r = await client.fetch(f"http://127.0.0.1:{port}{PREFIX}{path}", method="GET" if data is None else "POST",
                                   body=data, headers=headers, raise_error=False, request_timeout=10,
                                   follow_redirects=False)
            return r.code, r.body.decode("utf-8", "replace"), r.headers

        try:
            return await steps(call)
        finally:
            server.stop()

    original = Directory.members
    try:
        return run_coroutine(scenario())  # asyncio.run fails once the browser tier left a loop running
    finally:
        Directory.members = original


def test_the_service_keeps_each_learners_progress_to_themselves_and_their_trainers(tmp_path):
    check = {"course": "c", "module": "m1", "notebook": "a.ipynb", "check": "Ex 1"}

    async def steps(call):
        return {
            "anonymous": await call("api/checks", body=check),
            "made-up": await call("api/checks", "ada-token", {**check, "check": "Ex 99"}),
            "bad": await call("api/checks", "ada-token", {**check, "module": "../x"}),
            "outsider": await call("api/checks", "admin-svc", check),
            "pass": await call("api/checks", "ada-token", check),
            "ada": await call("api/progress", "ada-token"),
            "bob": await call("api/progress", "bob-token"),
            "bob-course": await call("api/courses/c/progress", "bob-token"),
            "learner-scores": await call("api/scores", "ada-token", {"course": "c", "assignment": "m1",
                                                                     "scores": {"ada": {"score": 4, "maximum": 4}}}),
            "scores": await call("api/scores", "admin-svc", {"course": "c", "assignment": "m1",
                                                             "scores": {"bob": {"score": 3, "maximum": 4}}}),
            "csv": await call("api/courses/c/progress?format=csv", "tina-token"),
            "page": await call("course/c", "tina-token"),
            "unknown": await call("api/courses/nope/progress", "tina-token"),
        }

    r = _serve(tmp_path, steps)
    assert r["anonymous"][0] == 403
    assert r["made-up"][0] == 400 and "has no instant check titled 'Ex 99'" in r["made-up"][1]
    assert r["bad"][0] == 400 and "module" in r["bad"][1]
    assert r["outsider"][0] == 403
    assert r["pass"][0] == 204
    (ada_m1,) = json.loads(r["ada"][1])["courses"]["c"]
    assert (ada_m1["checks_passed"], ada_m1["checks_total"], ada_m1["progress"]) == (1, 2, 0.5)
    assert json.loads(r["bob"][1])["courses"]["c"][0]["checks_passed"] == 0  # ada's check is not bob's
    assert r["bob-course"][0] == 403 and "only trainers of c" in r["bob-course"][1]
    assert r["learner-scores"][0] == 403
    assert r["scores"][0] == 204
    rows = {row["learner"]: row for row in csv.DictReader(io.StringIO(r["csv"][1]))}
    assert rows["ada"]["progress"] == "0.5000" and rows["bob"]["progress"] == "0.7500"
    assert r["page"][0] == 200 and "Download CSV" in r["page"][1] and "width:75%" in r["page"][1]
    assert r["unknown"][0] == 404


# --------------------------------------------------------------------------- completion records
CATALOGUE = {"id": "c", "title": "Course C", "summary": "About C.", "modules": [{"id": "m1", "title": "One", "minutes": 30}],
             "completion": {"graded_percent": 80, "issuer": {"name": "Example AI Factory"},
                            "learning_outcomes": ["Do things"], "assessment": "Autograded notebooks",
                            "participation": "online", "quality_assurance": "Proven exercises"}}


def test_the_service_issues_a_learner_one_record_once_the_rule_holds_and_anyone_can_verify_it(tmp_path):
    import base64
    import re

    def tampered(token: str) -> str:
        head, body, sig = token.split(".")
        claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        claims["credentialSubject"]["identifier"][0]["identityHash"] = "mallory"
        return ".".join([head, base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode(), sig])

    async def steps(call):
        r = {"api-before": await call("api/completion", "ada-token"),
             "page-before": await call("completion/c", "ada-token"),
             "trainer": await call("completion/c", "tina-token"),
             "bad-format": await call("completion/c?format=docx", "ada-token"),
             "scores": await call("api/scores", "admin-svc", {"course": "c", "assignment": "m1", "scores": {
                 "ada": {"score": 9, "maximum": 10}, "bob": {"score": 7, "maximum": 10}}}),
             "progress": await call("api/progress", "ada-token"),
             "bob": await call("completion/c", "bob-token"),
             "html": await call("completion/c", "ada-token"),
             "jwt": await call("completion/c?format=jwt", "ada-token"),
             "pdf": await call("completion/c?format=pdf", "ada-token"),
             "html-again": await call("completion/c", "ada-token"),
             "api-after": await call("api/completion", "ada-token"),
             "jwks": await call(".well-known/jwks.json"),
             "form": await call("verify"),
             "big": await call("verify", form="record=" + "x" * 200_000)}
        token = r["jwt"][1]
        vid = json.loads(r["api-after"][1])["courses"]["c"]["record"]["verification_id"]
        kid = json.loads(r["jwks"][1])["keys"][0]["kid"].rsplit("/", 1)[-1]
        r.update({"by-id": await call(f"verify?format=json&record={vid.lower()}"),
                  "by-token": await call("verify", form="record=" + token),
                  "by-token-json": await call("verify?format=json", body={"record": token}),
                  "tampered": await call("verify?format=json", body={"record": tampered(token)}),
                  "unknown": await call("verify?format=json&record=AAAA-BBBB-CCCC-DDDD"),
                  "key": await call(f"keys/{kid}"), "no-key": await call("keys/nope")})
        return r, token, vid

    r, token, vid = _serve(tmp_path, steps, CATALOGUE)
    before = json.loads(r["api-before"][1])["courses"]["c"]
    assert before["offered"] and not before["holds"] and before["href"] is None
    assert before["missing"] == ["One (m1): not graded yet; 80% of its points are needed"]
    assert r["page-before"][0] == 403 and "One (m1): not graded yet" in r["page-before"][1]
    assert r["trainer"][0] == 403 and "are for the learners of c" in r["trainer"][1]
    assert r["bad-format"][0] == 400
    assert r["scores"][0] == 204
    assert json.loads(r["progress"][1])["completion"] == {"c": {"offered": True, "holds": True, "issued": False}}
    assert r["bob"][0] == 403 and "graded 70%; 80% are needed" in r["bob"][1]  # bob's 7/10 is not enough
    assert r["html"][0] == 200 and "Certificate of completion" in r["html"][1] and vid in r["html"][1]
    assert r["html-again"][1] == r["html"][1]  # the same record each time
    assert r["jwt"][2]["Content-Type"] == "application/jwt" and token.count(".") == 2
    assert r["pdf"][0] == 200 and r["pdf"][2]["Content-Type"] == "application/pdf"
    after = json.loads(r["api-after"][1])["courses"]["c"]
    assert after["holds"] and after["href"] == PREFIX + "completion/c" and after["record"]["verification_id"] == vid
    assert r["form"][0] == 200 and "<textarea" in r["form"][1]
    assert "default-src 'none'" in r["form"][2]["Content-Security-Policy"]
    assert r["big"][0] == 413
    by_id = json.loads(r["by-id"][1])
    assert by_id["valid"] and by_id["learner"] == "ada" and by_id["course"] == "c" and by_id["verification_id"] == vid
    assert r["by-token"][0] == 200 and 'data-valid="true"' in r["by-token"][1] and "issued to ada" in r["by-token"][1]
    assert json.loads(r["by-token-json"][1])["valid"] is True
    refused = json.loads(r["tampered"][1])
    assert refused == {"valid": False, "message": refused["message"]} and "signature does not match" in refused["message"]
    assert not json.loads(r["unknown"][1])["valid"]
    key = json.loads(r["key"][1])
    assert key["kty"] == "RSA" and "d" not in key and r["no-key"][0] == 404
    assert re.search(r'"kid": "http://hub.example.org:8000/services/aifw-progress/keys/[A-Za-z0-9_-]{43}"', r["jwks"][1])


def test_a_course_without_a_completion_section_says_so_where_a_learner_asks(tmp_path):
    catalogue = {k: v for k, v in CATALOGUE.items() if k != "completion"}

    async def steps(call):
        await call("api/scores", "admin-svc", {"course": "c", "assignment": "m1",
                                               "scores": {"ada": {"score": 10, "maximum": 10}}})
        return await call("api/completion", "ada-token"), await call("completion/c", "ada-token")

    api, page = _serve(tmp_path, steps, catalogue)
    answer = json.loads(api[1])["courses"]["c"]
    assert answer["offered"] is False and answer["href"] is None
    assert answer["missing"] == ["this course issues no completion record (its course.yaml has no completion section)"]
    assert page[0] == 404 and "This course issues no completion record" in page[1]


# --------------------------------------------------------------------------- the kernel's reporter
def test_the_kernel_reports_only_from_a_learners_course_copy(tmp_path):
    from aifw.extensions.kernel.progress_report import service_base, where

    home = tmp_path / "home"
    (home / "courses" / "c" / "m1").mkdir(parents=True)
    assert where(home / "courses" / "c" / "m1", home, "courses/c/m1/a.ipynb") == ("c", "m1", "a.ipynb")
    assert where(home, home, "a.ipynb") is None
    assert where(home / "courses" / "c", home, "a.ipynb") is None
    assert where(home / "courses" / "c" / "m1", home, "notes.txt") is None
    assert service_base({}) is None  # outside a hub session: nothing to reach
    assert service_base({"AIFW_PROGRESS_URL": "http://h:1/services/aifw-progress"}) == "http://h:1/services/aifw-progress/"


def test_the_kernel_finds_the_service_where_the_hub_runs_it():
    from aifw.extensions.kernel.progress_report import service_base

    site_file = example_site_path("sandbox")
    (service,), _ = p.progress_service(load_site(site_file), home="/srv/aifw", admin_service=None)
    port = service["url"].rsplit(":", 1)[1]
    base = service_base({"JUPYTERHUB_API_URL": "http://198.18.0.129:8081/hub/api", "AIFW_SITE": str(site_file)})
    assert base == f"http://198.18.0.129:{port}/services/aifw-progress/"


def test_a_passed_check_outside_a_hub_session_posts_nothing_and_never_raises(monkeypatch, tmp_path):
    from aifw.extensions.kernel import progress_report

    monkeypatch.delenv("JUPYTERHUB_API_TOKEN", raising=False)
    assert progress_report.report_passed("Ex 1") is None
    home = tmp_path / "home"
    (home / "courses" / "c" / "m1").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(home / "courses" / "c" / "m1")
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "t")
    monkeypatch.setenv("JPY_SESSION_NAME", "courses/c/m1/a.ipynb")
    monkeypatch.setenv("AIFW_PROGRESS_URL", "http://127.0.0.1:9/services/aifw-progress")  # nothing listens
    thread = progress_report.report_passed("Ex 1")
    assert thread is not None
    thread.join(5)
    assert not thread.is_alive()  # bounded by its 1 s timeout; the refusal stayed in the thread
    assert progress_report.report_passed("Ex 1") is None  # once per check and kernel


# --------------------------------------------------------------------------- aifw grade's scores
def test_aifw_grade_posts_the_gradebooks_scores_and_says_what_it_left_out(monkeypatch, tmp_path):
    import aifw.gradebook
    import aifw.hubapi
    from aifw.hub_config.progress_client import post_scores

    monkeypatch.setattr(aifw.gradebook, "submission_scores", lambda where, assignment: {
        "ada": (3.0, 4.0), "Not-A-User": (1.0, 4.0), "bob": (0.0, 0.0)})
    sent = []
    monkeypatch.setattr(aifw.hubapi.HubApi, "call", lambda self, method, path, body=None: sent.append(
        (self.url, self.token, method, path, body)))
    assert "set AIFW_ADMIN_TOKEN" in post_scores("c", "m1", tmp_path, "http://hub:1", env={})
    assert sent == []
    line = post_scores("c", "m1", tmp_path, "http://hub:1/", env={"AIFW_ADMIN_TOKEN": "tok"})
    assert "1 score(s) of m1 sent" in line and "Not-A-User, bob" in line
    (url, token, method, path, body), = sent
    assert (url, token, method, path) == ("http://hub:1/services/aifw-progress", "tok", "POST", "/api/scores")
    assert p.ScoresPosted.model_validate(body) == p.ScoresPosted(course="c", assignment="m1",
                                                                 scores={"ada": p.Score(score=3, maximum=4)})

    def refuse(self, method, path, body=None):
        raise aifw.hubapi.HubApiError(0, "the hub at http://hub:1 did not answer")
    monkeypatch.setattr(aifw.hubapi.HubApi, "call", refuse)
    assert "did not answer" in post_scores("c", "m1", tmp_path, "http://hub:1", env={"AIFW_ADMIN_TOKEN": "tok"})


# --------------------------------------------------------------------------- the navigator's server side
def test_the_navigator_shows_the_published_modules_with_the_learners_progress(tmp_path):
    from aifw.extensions.server.courses import navigator_view, published_course

    share, home = tmp_path / "share", tmp_path / "home"
    (share / "c" / "m1-a").mkdir(parents=True)
    (share / "c" / "m1-a" / "01-x.ipynb").write_text("{}")
    (share / "c" / "m2-b").mkdir()
    (home / "courses" / "c" / "m1-a").mkdir(parents=True)
    (home / "courses" / "c" / "m1-a" / "01-x.ipynb").write_text("{}")
    # no catalogue.json: the folders give the modules and their notebooks
    assert [m.id for m in published_course(share, "c").modules] == ["m1-a", "m2-b"]
    assert published_course(share, "../etc") is None and published_course(share, "nope") is None
    progress = {"c": [{"module": "m1-a", "checks_passed": 1, "checks_total": 2, "progress": 0.5}]}
    view = navigator_view(share, home, ["c", "not-published"], progress, None)
    (course,) = view["courses"]
    m1, m2 = course["modules"]
    assert m1["notebooks"] == [{"name": "01-x.ipynb", "path": "courses/c/m1-a/01-x.ipynb", "exists": True}]
    assert m1["progress"]["progress"] == 0.5 and m2["progress"] is None and m2["notebooks"] == []
    assert course["completion_link"] is None
    # the completion record's link, once the rule holds (made from the course id, whatever the service says)
    for standing, link in (({"holds": True}, "/services/aifw-progress/completion/c"),
                           ({"holds": False, "issued": True}, "/services/aifw-progress/completion/c"),
                           ({"holds": "yes"}, None), ({"holds": False}, None)):
        (course,) = navigator_view(share, home, ["c"], progress, None, {"c": standing})["courses"]
        assert course["completion_link"] == link, standing
    # with the publisher's .catalogue.json: titles, goals, minutes, partition, GPUs and launch link
    (share / "c" / ".catalogue.json").write_text(json.dumps({"id": "c", "title": "The course", "modules": [
        {"id": "m1-a", "title": "First", "goals": ["learn"], "minutes": 45, "partition": "gpu", "gpus": 1,
         "launch_link": "/hub/spawn?partition=gpu&gpus=1&runtime=45", "notebooks": ["01-x.ipynb"], "points": 3}]}))
    (course,) = navigator_view(share, home, ["c"], None, "the progress service did not answer")["courses"]
    (m1,) = course["modules"]
    assert course["title"] == "The course" and (m1["title"], m1["minutes"], m1["gpus"]) == ("First", 45, 1)
    assert m1["launch_link"].startswith("/hub/spawn?") and m1["progress"] is None
    # a catalogue that is not what we expect is not trusted: back to the folders
    for wrong in ({"id": "../../x"}, {"id": "m1-a", "launch_link": "//elsewhere.example/hub/spawn?x=1"},
                  {"id": "m1-a", "launch_link": "/hub/spawn?a=<script>"}):
        (share / "c" / ".catalogue.json").write_text(json.dumps({"id": "c", "modules": [wrong]}))
        assert [m.id for m in published_course(share, "c").modules] == ["m1-a", "m2-b"], wrong
