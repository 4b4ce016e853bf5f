"""The exchange's permission design (pure parts) and the Jupyter config the provisioning writes."""
from __future__ import annotations

import stat

import pytest

from aifw.courses import exchange
from aifw.sandbox import jupyter_config as jc


def _layout():
    return exchange.course_layout("c1", "grader-c1", "grader-c1", "aifw-c1",
                                  {"alice": "alice", "bob": "bob", "carol": None})


def test_nothing_in_the_layout_is_world_writable_or_world_readable():
    for entry in _layout():
        assert entry.mode & stat.S_IWOTH == 0, entry
        assert entry.mode & (stat.S_IROTH | stat.S_IXOTH) == 0, entry  # other courses see nothing


def test_course_members_may_read_releases_but_not_list_submissions_or_feedback():
    by_path = {e.path: e for e in _layout()}
    assert (by_path["c1"].group, by_path["c1"].mode) == ("aifw-c1", 0o2750)
    assert (by_path["c1/outbound"].group, by_path["c1/outbound"].mode) == ("aifw-c1", 0o2750)
    for folder in ("c1/inbound", "c1/feedback"):
        e = by_path[folder]
        assert e.owner == "grader-c1" and e.group == "aifw-c1"
        assert e.mode & 0o070 == 0o010  # the group may pass, not list or write


def test_each_learner_writes_only_their_own_inbound_folder_read_by_the_grader_group():
    by_path = {e.path: e for e in _layout()}
    for learner in ("alice", "bob", "carol"):
        e = by_path[f"c1/inbound/{learner}"]
        assert e.owner == learner
        assert e.group == "grader-c1"  # the grader's private group: no learner is in it
        assert e.mode == 0o2750  # setgid: what the learner creates gets the grader's group
    writable_by = {e.owner for e in _layout() if e.mode & stat.S_IWUSR and e.owner != "grader-c1"}
    assert writable_by == {"alice", "bob", "carol"}
    assert not any(e.mode & stat.S_IWGRP for e in _layout())  # no folder is group-writable


def test_feedback_folder_is_readable_only_through_the_learners_private_group():
    by_path = {e.path: e for e in _layout()}
    assert (by_path["c1/feedback/alice"].owner, by_path["c1/feedback/alice"].group) == ("grader-c1", "alice")
    assert by_path["c1/feedback/alice"].mode == 0o2750
    assert "c1/feedback/carol" not in by_path  # no private group: no feedback folder


def test_parents_come_first_and_names_are_checked():
    paths = [e.path for e in _layout()]
    for i, p in enumerate(paths):
        parent = p.rsplit("/", 1)[0]
        if "/" in p:
            assert parent in paths[:i]
    with pytest.raises(ValueError):
        exchange.course_layout("c1", "g", "g", "aifw-c1", {"../etc": "x"})


def test_nbgrader_config_plugs_every_exchange_step():
    text = exchange.nbgrader_config_text("/opt/aifw/exchange")
    assert "c.Exchange.root = '/opt/aifw/exchange'" in text
    for step, cls in exchange.STEPS.items():
        assert f"c.ExchangeFactory.{step} = 'aifw.courses.exchange.{cls}'" in text
        assert hasattr(exchange, cls)
    ns = {"get_config": lambda: _Cfg()}
    exec(compile(text, "nbgrader_config.py", "exec"), ns)  # valid Python


class _Cfg:
    def __getattr__(self, name):
        value = _Cfg()
        object.__setattr__(self, name, value)
        return value


def test_session_config_turns_trainer_plugins_off_and_keeps_others():
    page = jc.session_page_config({"disabledExtensions": ["@x/y:z"], "other": 1})
    assert page["other"] == 1 and page["disabledExtensions"]["@x/y:z"] is True
    for plugin in jc.TRAINER_LAB_PLUGINS:
        assert page["disabledExtensions"][plugin] is True
    assert "@jupyter/nbgrader:assignment-list" not in page["disabledExtensions"]
    assert "@jupyter/nbgrader:validate-assignment" not in page["disabledExtensions"]
    server = jc.session_server_config()["ServerApp"]["jpserver_extensions"]
    assert server == {"nbgrader.server_extensions.formgrader": False, "nbgrader.server_extensions.course_list": False}
    kept = jc.session_server_settings({"KernelManager": {"shutdown_wait_time": 3}, "Other": {"x": 1}})
    assert kept == {"KernelManager": {"shutdown_wait_time": 3, "cache_ports": False}, "Other": {"x": 1},
                    "LanguageServerManager": {"autodetect": False}}


def test_formgrader_service_enables_what_sessions_disable():
    from aifw.hub_config.settings import FORMGRADER_SERVER_EXTENSIONS

    assert set(FORMGRADER_SERVER_EXTENSIONS) == set(jc.TRAINER_SERVER_EXTENSIONS)
    assert jc.formgrader_page_config()["disabledExtensions"] == {p: False for p in jc.TRAINER_LAB_PLUGINS}


def test_write_jupyter_config_is_idempotent(tmp_path):
    from aifw.site import example_site_path, load_site

    site = load_site(example_site_path("sandbox"))
    venv = tmp_path / "venv"
    assert jc.write_jupyter_config(site, venv) is True
    assert jc.write_jupyter_config(site, venv) is False
    etc = venv / "etc" / "jupyter"
    assert (etc / "nbgrader_config.py").read_text().count("ExchangeFactory") == len(exchange.STEPS)
    assert stat.S_IMODE((etc / "nbgrader_config.py").stat().st_mode) == 0o644
    assert (venv / "etc" / "aifw-formgrader" / "labconfig" / "page_config.json").is_file()


def test_a_damaged_page_config_is_an_error_and_is_left_as_it_is(tmp_path):
    from aifw.sandbox.processes import SandboxError
    from aifw.site import example_site_path, load_site

    site = load_site(example_site_path("sandbox"))
    page = tmp_path / "venv" / "etc" / "jupyter" / "labconfig" / "page_config.json"
    page.parent.mkdir(parents=True)
    page.write_text('{"disabledExtensions": {"@x/y:z": true}')  # cut short
    with pytest.raises(SandboxError, match=r"page_config.json is damaged .*Repair it"):
        jc.write_jupyter_config(site, tmp_path / "venv")
    assert page.read_text() == '{"disabledExtensions": {"@x/y:z": true}'
