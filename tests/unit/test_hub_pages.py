"""The hub's pages: a card per session from what the spawner knows (aifw.spawners.cards), and our templates,
rendered through JupyterHub's own template loader over its default templates (what the hub does)."""
from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace

import pytest

from aifw.hub_config.settings import TEMPLATES, build_settings
from aifw.site import example_site_path, load_site
from aifw.slurm import JobInfo
from aifw.spawners.cards import session_card
from aifw.spawners.request import SessionRequest

REQ = SessionRequest(partition="gpu", cpus=2, memory_gb=4, gpus=1, runtime_minutes=60, account="proj-llm")


def card(**kw):
    base = dict(active=True, ready=False, pending=None, request=REQ, last_request=REQ, info=None, job_id="42",
                node="node2 (198.18.0.12)", ready_at=0.0, last_end="")
    base.update(kw)
    return session_card("", **base)


def test_a_running_session_shows_where_it_runs_and_when_its_walltime_ends():
    start = datetime(2026, 12, 2, 8, 0, 0)
    c = card(ready=True, info=JobInfo(job_id="42", state="RUNNING", node="node2", start_time=start.isoformat()))
    assert (c.state, c.partition, c.node, c.gpus, c.job_id) == ("running", "gpu", "node2 (198.18.0.12)", 1, "42")
    assert c.ends_at == start.timestamp() + 3600
    # Without Slurm's start time, from when the server became ready.
    assert card(ready=True, ready_at=1000.0).ends_at == 1000.0 + 3600


def test_a_waiting_session_says_why_in_words_and_a_stopped_one_offers_its_last_settings():
    c = card(pending="spawn", info=JobInfo(job_id="42", state="PENDING", reason="AssocGrpGRESMinutes"))
    assert c.state == "waiting" and "project proj-llm has not enough GPU-hours left" in c.detail
    assert card(pending="spawn").state == "starting"
    assert card(pending="stop").state == "stopping"
    stopped = card(active=False, last_end="Your last session ended: TIMEOUT")
    assert stopped.state == "stopped" and stopped.detail.endswith("TIMEOUT")
    assert stopped.restart_options == REQ.as_user_options()
    assert card(active=False, last_request=None).restart_options is None


def test_the_hub_uses_our_templates_and_names_the_site():
    site = load_site(example_site_path("sandbox"))
    jh = build_settings(site, home="/x")["JupyterHub"]
    assert jh["template_paths"] == [str(TEMPLATES)] and (TEMPLATES / "home.html").is_file()
    assert jh["template_vars"]["aifw_site_name"] == site.name and callable(jh["template_vars"]["aifw_courses"])


def _render(name: str, **ns) -> str:
    from jinja2 import ChoiceLoader, Environment, FileSystemLoader, PrefixLoader
    from jupyterhub._data import DATA_FILES_PATH

    base = f"{DATA_FILES_PATH}/templates"
    env = Environment(loader=ChoiceLoader([PrefixLoader({"templates": FileSystemLoader([base])}, "/"),
                                           FileSystemLoader([str(TEMPLATES), base])]), autoescape=True)
    common = dict(base_url="/hub/", prefix="/", login_url="/hub/login", logout_url="/hub/logout",
                  static_url=lambda p, **kw: f"/hub/static/{p}", version_hash="", services=[], parsed_scopes={},
                  expanded_scopes=set(), xsrf="x<s>rf", aifw_site_name="AIF <Test> Site", login_service="",
                  announcement=None)
    return env.get_template(name).render(**common, **ns)


class _Spawner(SimpleNamespace):
    def session_card(self):
        return self.card


def _user(*cards):
    """A user whose default server has the first card, with named servers for the others, and one named server
    the hub has not loaded (JupyterHub then yields its bare database row, which has no card)."""
    spawners = [_Spawner(card=c, options_form="") for c in (cards or (card(active=False),))]
    named = spawners[1:] + [SimpleNamespace(name="never-loaded")]
    return SimpleNamespace(name="ann", escaped_name="ann", json_escaped_name="ann", spawner=spawners[0],
                           all_spawners=lambda include_default=True: iter(spawners[:1] + named if include_default else named),
                           server_url=lambda name="": f"/user/ann/{name + '/' if name else ''}", admin=False)


def test_the_home_page_shows_a_card_per_session_with_open_and_stop():
    ends = time.time() + 1800
    running = card(ready=True, ready_at=ends - 3600)
    html = _render("home.html", user=_user(running), default_server=SimpleNamespace(active=True), url="/user/ann/")
    assert "Your sessions on AIF &lt;Test&gt; Site" in html  # escaped: a site name is text
    assert 'data-state="running"' in html and "node2 (198.18.0.12)" in html and ">gpu<" in html
    assert 'href="/user/ann/">Open</a>' in html and "aifw-stop" in html and "data-ends-at=" in html
    assert 'id="aifw-restart"' not in html  # a running session: nothing to start again


def test_the_home_page_offers_a_new_session_and_the_last_settings_and_says_how_the_last_one_ended():
    stopped = card(active=False, last_end="Your last session (Slurm job 41) ended: TIMEOUT <b>")
    html = _render("home.html", user=_user(stopped), default_server=SimpleNamespace(active=False), url="/hub/spawn/ann")
    assert "No session is running." in html and "New session" in html
    assert "ended: TIMEOUT &lt;b&gt;" in html
    assert 'id="aifw-restart"' in html and "(gpu, 1 GPU, 60 min)" in html
    assert '"partition": "gpu"' in html  # the options the button starts again with (JSON in a quoted attribute)


def test_the_spawn_page_is_titled_for_the_site():
    html = _render("spawn.html", user=_user(), for_user=None, url="/hub/spawn/ann", spawner_options_form="<p>form</p>",
                   error_message=None, error_html_message=None)
    assert "Start a session on AIF &lt;Test&gt; Site" in html and "<p>form</p>" in html
    assert "Server Options" not in html


def test_named_sessions_follow_the_sites_count_and_each_is_its_own_job():
    from aifw.site import site_from_dict
    from aifw.spawners.batch_script import ScriptContext, job_name
    from aifw.slurm import UnsafeValue
    import yaml

    data = yaml.safe_load(example_site_path("sandbox").read_text())
    data["hub"]["sessions_per_user"] = 3
    jh = build_settings(site_from_dict(data), home="/x")["JupyterHub"]
    assert jh["allow_named_servers"] is True and jh["named_server_limit_per_user"] == 2
    data["hub"]["sessions_per_user"] = 1
    assert build_settings(site_from_dict(data), home="/x")["JupyterHub"]["allow_named_servers"] is False
    assert job_name(ScriptContext("ann", "/home/ann", ["x"])) == "aifw-ann"
    assert job_name(ScriptContext("ann", "/home/ann", ["x"], server_name="gpu")) == "aifw-ann-gpu"
    for bad in ("GPU", "a b", "x" * 25, "-x", "x\n#SBATCH --uid=0"):
        with pytest.raises(UnsafeValue):
            job_name(ScriptContext("ann", "/home/ann", ["x"], server_name=bad))


def test_the_home_page_offers_another_named_session_when_the_site_allows_it():
    stopped = card(active=False)
    html = _render("home.html", user=_user(stopped), default_server=SimpleNamespace(active=True), url="/user/ann/",
                   allow_named_servers=True, named_server_limit_per_user=1)
    assert 'id="aifw-named"' in html and "up to 2 sessions at once" in html
    html = _render("home.html", user=_user(stopped), default_server=SimpleNamespace(active=True), url="/user/ann/",
                   allow_named_servers=False, named_server_limit_per_user=0)
    assert 'id="aifw-named"' not in html


def test_the_home_page_lists_the_persons_courses_from_the_published_catalogue_entry(tmp_path):
    import json

    from aifw.courses.catalogue import find_course
    from aifw.courses.publish import CATALOGUE, catalogue_entry
    from aifw.hub_config.course_cards import courses_for

    site = load_site(example_site_path("sandbox"))
    course = find_course("aif-foundations", Path(__file__).resolve().parents[2] / "courses")
    entry = catalogue_entry(course)
    assert "solution" not in json.dumps(entry).lower()  # titles, goals and presets only
    (tmp_path / course.id).mkdir()
    (tmp_path / course.id / CATALOGUE).write_text(json.dumps(entry))
    cards = courses_for(site, tmp_path)
    learner = SimpleNamespace(name="learner1", groups=[])
    [mine] = cards(learner)
    assert mine.title == course.title and [m.id for m in mine.modules] == [m.id for m in course.modules]
    first = course.modules[0]
    assert mine.modules[0].launch_link == (f"hub/spawn?partition={first.partition}&gpus={first.gpus}"
                                           f"&runtime={first.session_minutes or first.minutes}")
    # Someone in no course sees none; a member of the course's hub group (an LTI launch) sees it.
    assert cards(SimpleNamespace(name="researcher1", groups=[])) == []
    assert len(cards(SimpleNamespace(name="lms-ann", groups=[SimpleNamespace(name=f"course-{course.id}-learners")]))) == 1
    assert cards(None) == []
    html = _render("home.html", user=_user(), default_server=SimpleNamespace(active=False), url="/hub/spawn/ann",
                   aifw_courses=[mine])
    assert "Your courses" in html and f'href="/{mine.modules[0].launch_link.replace("&", "&amp;")}"' in html


def test_a_catalogue_entry_that_is_wrong_leaves_the_course_off_and_never_breaks_the_page(tmp_path, caplog):
    import json

    from aifw.hub_config.course_cards import CATALOGUE, courses_for

    site = load_site(example_site_path("sandbox"))
    learner = SimpleNamespace(name="learner1", groups=[])
    assert courses_for(site, tmp_path)(learner) == []  # not published yet
    (tmp_path / "aif-foundations").mkdir()
    bad = {"id": "aif-foundations", "title": "T", "modules": [
        {"id": "m1", "title": "x", "minutes": 5, "partition": "gpu; rm -rf /", "gpus": 0}]}
    (tmp_path / "aif-foundations" / CATALOGUE).write_text(json.dumps(bad))
    assert courses_for(site, tmp_path)(learner) == []
    assert "is not a Slurm name" in caplog.text
    (tmp_path / "aif-foundations" / CATALOGUE).write_text("{not json")
    assert courses_for(site, tmp_path)(learner) == []


def test_the_catalogue_entry_stays_in_the_share_and_is_not_copied_into_homes(tmp_path):
    from aifw.courses.publish import CATALOGUE, STAMP, sync

    course = tmp_path / "share" / "c1"
    (course / "m1").mkdir(parents=True)
    (course / "m1" / "01.ipynb").write_text("{}")
    (course / CATALOGUE).write_text("{}")
    (course / STAMP).write_text("x")
    added = sync(tmp_path / "share", tmp_path / "home")
    assert [p.relative_to(tmp_path / "home") for p in added] == [Path("courses/c1/m1/01.ipynb")]


def test_a_named_session_has_its_card_beside_the_stopped_default_one():
    named = session_card("gpu", active=True, ready=True, pending=None, request=REQ, last_request=REQ, info=None,
                         job_id="43", node="node1", ready_at=time.time(), last_end="")
    html = _render("home.html", user=_user(card(active=False), named), default_server=SimpleNamespace(active=False),
                   url="/hub/spawn/ann", allow_named_servers=True, named_server_limit_per_user=1)
    assert html.count('data-state="running"') == 1 and 'data-server-name="gpu"' in html
    assert 'href="/user/ann/gpu/">Open</a>' in html and "never-loaded" not in html
