"""The trainer's "Start the class" button (pure parts): the untrusted body of POST /hub/api/aifw/class/<course>
as typed values, the sessions' options from a module's preset, the answers' counts and words, the handler's
registration, and the form on the trainer's home page (the real hub and Slurm: tests/integration/
test_class_page.py; the browser: tests/e2e/test_class_page_in_browser.py)."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from aifw.hub_config.class_request import (
    CLASS_HANDLER,
    CLASS_PATH,
    ClassError,
    ClassStart,
    LearnerSession,
    learner_session,
    parse_start,
    start_options,
    status_json,
    status_summary,
)
from aifw.hub_config.course_cards import CourseCard, ModuleCard
from aifw.hub_config.settings import TEMPLATES, build_settings
from aifw.site import example_site_path, load_site
from aifw.spawners.cards import SessionCard
from aifw.spawners.request import validate_options

SITE = load_site(example_site_path("sandbox"))
M1 = ModuleCard("m1-python", "Python", 45, "cpu", 0, "hub/spawn?partition=cpu&gpus=0&runtime=60", 60)
M2 = ModuleCard("m2-gpu", "GPUs", 30, "gpu", 1, "hub/spawn?partition=gpu&gpus=1&runtime=30", 0)
COURSE = CourseCard("aif-foundations", "Foundations", (M1, M2))
RESERVATIONS = ["workshop"]


def parse(body):
    return parse_start(body, COURSE, RESERVATIONS)


@pytest.mark.parametrize("body", [None, {}, {"module": None, "stop_unused": None, "reservation": None},
                                  {"stop_unused": "never"}, {"stop_unused": "0"}, {"module": "", "stop_unused": ""}])
def test_an_empty_start_asks_for_the_sites_default_session_kept_until_its_walltime(body):
    assert parse(body) == ClassStart(None, 0, None)


def test_a_start_reads_the_module_the_duration_and_the_reservation():
    assert parse({"module": "m2-gpu", "stop_unused": "45m", "reservation": "workshop"}) == \
        ClassStart("m2-gpu", 2700, "workshop")
    assert parse({"stop_unused": " 2h "}).stop_unused_s == 7200


@pytest.mark.parametrize("body,words", [
    ([1, 2], "must be a JSON object with module, stop_unused, reservation"),
    ("m1", "must be a JSON object"),
    ({"modul": "m1-python"}, "unknown key 'modul'; the keys are module, stop_unused, reservation"),
    ({"partition": "gpu", "gpus": 4}, "unknown keys 'gpus', 'partition'"),
    ({"module": 3}, "module must be text or null; got int 3"),
    ({"stop_unused": 45}, "stop_unused must be text or null; got int 45"),
    ({"reservation": ["workshop"]}, "reservation must be text or null; got list"),
    ({"module": "m9-nope"}, "course aif-foundations has no module 'm9-nope'; its modules are m1-python, m2-gpu"),
    ({"stop_unused": "soon"}, "stop_unused 'soon' is not a duration; write a number with s, m or h (90s, 30m, 2h"),
    ({"stop_unused": "1.5h"}, "is not a duration"),
    ({"reservation": "party"}, "reservation 'party' is not one the site offers; it offers workshop"),
])
def test_a_wrong_body_is_refused_with_what_to_fix(body, words):
    with pytest.raises(ClassError) as err:
        parse(body)
    assert words in str(err.value)


def test_every_problem_of_a_body_is_named_at_once():
    with pytest.raises(ClassError) as err:
        parse({"module": "m9", "stop_unused": "soon", "reservation": "party", "extra": 1})
    problems = str(err.value).split("; ")
    assert any("unknown key 'extra'" in p for p in problems)
    assert any("no module 'm9'" in p for p in problems)
    assert any("'soon' is not a duration" in p for p in problems)
    assert any("reservation 'party'" in p for p in problems)


def test_a_site_without_reservations_says_so():
    with pytest.raises(ClassError, match=r"it offers none \(slurm.reservations is empty\)"):
        parse_start({"reservation": "workshop"}, COURSE, [])


def test_the_sessions_get_the_modules_preset_its_session_length_and_the_trainers_choices():
    options = start_options(SITE, COURSE, ClassStart("m1-python", 1800, "workshop"))
    assert (options["partition"], options["gpus"], options["runtime_minutes"]) == ("cpu", 0, 60)  # session length
    assert options["reservation"] == "workshop" and options["stop_if_unused_s"] == 1800
    options = start_options(SITE, COURSE, ClassStart("m2-gpu"))
    assert (options["partition"], options["gpus"], options["runtime_minutes"]) == ("gpu", 1, 30)  # its minutes
    assert "stop_if_unused_s" not in options and not options.get("reservation")
    assert start_options(SITE, COURSE, ClassStart()) == validate_options({}, SITE).as_user_options()  # the site's


def test_options_the_spawner_would_refuse_are_refused_before_anything_starts():
    with pytest.raises(ClassError, match="between 10 s and 7 days"):
        start_options(SITE, COURSE, ClassStart(None, 5, None))
    odd = CourseCard("aif-foundations", "x", (ModuleCard("m3", "x", 30, "nope", 0, "", 30),))
    with pytest.raises(ClassError, match="would be refused: partition 'nope' is not offered"):
        start_options(SITE, odd, ClassStart("m3"))


def _card(state, **kw):
    return SessionCard("", state, **kw)


def test_each_learner_says_where_their_session_runs_or_why_it_is_not_ready():
    assert learner_session("a", _card("running", node="node1 (198.18.0.11)", job_id="7")) == \
        LearnerSession("a", "ready", "on node1 (198.18.0.11)", "7")
    waiting = learner_session("b", _card("waiting", detail="waiting for free resources", job_id="8"))
    assert (waiting.state, waiting.detail) == ("waiting", "waiting for free resources")
    assert learner_session("c", _card("starting", job_id="9")).state == "starting"
    assert learner_session("d", _card("stopping")).state == "stopping"
    # Not started: the hub's refusal of the class's start, else how the last session ended.
    assert learner_session("e", _card("stopped", detail="ended: TIMEOUT"), "GPU budget spent").detail == "GPU budget spent"
    assert learner_session("e", _card("stopped", detail="ended: TIMEOUT")).detail == "ended: TIMEOUT"
    # A refusal no longer matters once the session runs.
    assert learner_session("f", _card("running"), "GPU budget spent").detail == ""


def test_the_status_counts_the_sessions_ready_and_sums_them_up_in_words():
    sessions = [LearnerSession("a", "ready"), LearnerSession("b", "waiting", "waiting for free resources"),
                LearnerSession("c", "not started", "refused")]
    status = status_json("aif-foundations", sessions)
    assert (status["total"], status["ready"]) == (3, 1)
    assert status["counts"] == {"ready": 1, "starting": 0, "waiting": 1, "stopping": 0, "not started": 1}
    assert status["summary"] == "3 learners: 1 ready, 1 waiting in the queue, 1 not started"
    assert status["learners"][1] == {"name": "b", "state": "waiting", "detail": "waiting for free resources", "job_id": ""}
    assert status_summary([LearnerSession("a", "ready")]) == "1 learner: 1 ready"
    assert status_summary([]) == "0 learners: 0 ready"


def test_the_hub_serves_the_class_page_under_its_api_before_the_404():
    jh = build_settings(SITE, home="/x")["JupyterHub"]
    [(path, handler, kwargs)] = jh["extra_handlers"]
    assert (path, handler) == (CLASS_PATH, CLASS_HANDLER) and path.startswith("/api/aifw/class/")
    assert kwargs["site"] is SITE and kwargs["share"] == "/opt/aifw/share/courses"
    assert jh["template_vars"]["aifw_reservations"] == ["workshop"]
    from tornado.util import import_object
    from jupyterhub.apihandlers.base import APIHandler

    assert issubclass(import_object(handler), APIHandler)  # tornado imports it from this path at hub start


def _render_home(courses) -> str:
    from jinja2 import ChoiceLoader, Environment, FileSystemLoader, PrefixLoader
    from jupyterhub._data import DATA_FILES_PATH

    base = f"{DATA_FILES_PATH}/templates"
    env = Environment(loader=ChoiceLoader([PrefixLoader({"templates": FileSystemLoader([base])}, "/"),
                                           FileSystemLoader([str(TEMPLATES), base])]), autoescape=True)
    spawner = SimpleNamespace(session_card=lambda: _card("stopped"), options_form="")
    user = SimpleNamespace(name="t", escaped_name="t", json_escaped_name="t", spawner=spawner, admin=False,
                           all_spawners=lambda include_default=True: iter([]), server_url=lambda name="": "/user/t/")
    return env.get_template("home.html").render(
        base_url="/hub/", prefix="/", login_url="/hub/login", logout_url="/hub/logout",
        static_url=lambda p, **kw: f"/hub/static/{p}", version_hash="", services=[], parsed_scopes={},
        expanded_scopes=set(), xsrf="x", aifw_site_name="Site", login_service="", announcement=None, user=user,
        default_server=SimpleNamespace(active=False), url="/hub/spawn/t", aifw_courses=courses,
        aifw_reservations=["workshop"])


def test_the_start_the_class_form_is_on_the_courses_the_person_teaches_only():
    from dataclasses import replace

    html = _render_home([COURSE])
    assert 'data-api="/hub/api/aifw/class/' not in html and "Start the class</button>" not in html
    html = _render_home([replace(COURSE, teaching=True)])
    assert 'data-api="/hub/api/aifw/class/aif-foundations"' in html and ">Start the class</button>" in html
    assert '<option value="m1-python">Python (cpu, 60 min)</option>' in html  # each module's preset
    assert '<option value="m2-gpu">GPUs (gpu, 1 GPU, 30 min)</option>' in html
    assert '<option value="workshop">workshop</option>' in html
    for value in ("never", "15m", "30m", "45m", "1h", "2h"):
        assert f'<option value="{value}">' in html
