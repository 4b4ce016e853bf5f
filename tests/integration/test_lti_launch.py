"""LTI 1.3 launches against a real hub: the test platform (tests/lti_platform.py) launches into a second hub of
the test stack that runs with hub.authenticator: lti (and password logins kept). A launch makes the learner's
unix account on first use and puts them in the course's group; a module link lands on the module's preset;
each bad launch is refused with a page in words and creates nothing."""
from __future__ import annotations

import dataclasses
import grp
import html
import pwd
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from aifw_testing import HubClient
from lti_platform import (FAULTS, INSTRUCTOR, LaunchSpec, form_fields, launch, platform_for_lti_hub,
                          remove_launched_accounts, start_lti_hub, stop_lti_hub)

PREFIX = "tlti-"
GROUP = "test-aifw-lti"
CONTEXT = "aif-ctx-1"
COURSE = "aif-foundations"


@pytest.fixture(scope="module")
def lti(stack):
    platform = platform_for_lti_hub(18090)
    section = platform.site_section([{"context_id": CONTEXT, "course": COURSE}], username_prefix=PREFIX,
                                    account_group=GROUP, password_logins=True)
    s = stack.stack
    hub = start_lti_hub(s.site_file, stack.home / "lti-hub", s.venv_bin, stack.slurm_conf, section)
    try:
        yield platform, hub
    finally:
        stop_lti_hub(hub)
        platform.stop()
        remove_launched_accounts(PREFIX, GROUP)


def hub_user(hub, name: str) -> dict | None:
    r = requests.get(f"{hub.url}/hub/api/users/{name}", headers={"Authorization": f"token {hub.api_token}"}, timeout=30)
    if r.status_code == 404:
        return None
    r.raise_for_status()
    return r.json()


def account(name: str):
    try:
        return pwd.getpwnam(name)
    except KeyError:
        return None


def assert_nothing_created(hub, name: str) -> None:
    assert hub_user(hub, name) is None, f"the hub has a user {name} after a refused launch"
    assert account(name) is None, f"a unix account {name} exists after a refused launch"


def test_a_first_launch_makes_the_account_joins_the_course_and_lands_on_the_module(lti):
    platform, hub = lti
    spec = LaunchSpec(user="ada", context_id=CONTEXT, custom={"module": "m1-first-steps"})
    r, session, _ = launch(platform, spec)
    assert r.status_code == 302, f"{r.status_code}: {r.text[:500]}\n{hub.log_tail()}"
    target = urlsplit(r.headers["Location"])
    query = parse_qs(target.query)
    assert target.path == "/hub/spawn" and (query["partition"], query["gpus"]) == (["gpu"], ["1"])
    assert query["next"] == [f"/hub/user-redirect/lab/tree/courses/{COURSE}/m1-first-steps/"
                             "01-jupyter-on-a-supercomputer.ipynb"]
    name = PREFIX + "ada"
    assert f"course-{COURSE}-learners" in hub_user(hub, name)["groups"]
    made = account(name)
    assert made is not None and made.pw_uid >= 1000 and name in grp.getgrnam(GROUP).gr_mem
    # The launched learner is logged in: the spawn form with the module's partition picked.
    form = session.get(f"{hub.url}{r.headers['Location']}", timeout=30)
    assert form.status_code == 200 and 'value="gpu" checked' in form.text

    # A later launch reuses the account; a trainer role puts its user in the trainers' group.
    again, _, _ = launch(platform, dataclasses.replace(spec, custom={}))
    assert again.status_code == 302 and account(name).pw_uid == made.pw_uid
    trainer, _, _ = launch(platform, LaunchSpec(user="grace", context_id=CONTEXT, roles=[INSTRUCTOR]))
    assert trainer.status_code == 302
    assert hub_user(hub, PREFIX + "grace")["groups"] == [f"course-{COURSE}-trainers"]


@pytest.mark.parametrize("fault, status, words", [
    ("expired", 400, "the launch has expired"),
    ("wrong-signature", 400, "signature does not match the platform's published keys"),
    ("wrong-audience", 401, "meant for another tool"),
    ("wrong-issuer", 400, "a platform this hub does not trust"),
])
def test_a_bad_launch_is_refused_with_a_page_in_words_and_creates_nothing(lti, fault, status, words):
    assert fault in FAULTS
    platform, hub = lti
    user = f"bad-{fault.replace('wrong-', '')}"
    r, _, _ = launch(platform, LaunchSpec(user=user, context_id=CONTEXT, fault=fault))
    assert r.status_code == status, r.text[:500]
    page = html.unescape(r.text)  # the hub's error page, as a person reads it
    assert words in page and "Launch refused" in page and "Nothing was created on this hub" in page
    assert_nothing_created(hub, PREFIX + user)


def test_a_replayed_launch_is_refused_and_creates_nothing(lti):
    platform, hub = lti
    # Captured on its way to the tool: the id_token posted from another browser, which started its own login.
    _, _, (action, stolen) = launch(platform, LaunchSpec(user="victim", context_id=CONTEXT), session=_Unsent())
    other = requests.Session()
    r = other.get(platform.launch_url(platform.prepare(LaunchSpec(user="mallory", context_id=CONTEXT))), timeout=30)
    _, own = form_fields(r.text)
    replay = other.post(action, data={"id_token": stolen["id_token"], "state": own["state"]}, timeout=30,
                        allow_redirects=False)
    assert replay.status_code == 400 and "already used, or it did not start on this hub" in html.unescape(replay.text)
    assert_nothing_created(hub, PREFIX + "victim")
    assert_nothing_created(hub, PREFIX + "mallory")
    # The same form posted twice from the same browser: the second is refused.
    first, session, (action, fields) = launch(platform, LaunchSpec(user="bob", context_id=CONTEXT))
    assert first.status_code == 302
    twice = session.post(action, data=fields, timeout=30, allow_redirects=False)
    assert twice.status_code == 400 and "already used" in html.unescape(twice.text)


def test_a_launch_from_an_unlinked_course_is_refused_and_password_logins_still_work(lti, stack):
    platform, hub = lti
    r, _, _ = launch(platform, LaunchSpec(user="carol", context_id="other-course"))
    assert r.status_code == 403 and "is not linked to a course of this hub" in html.unescape(r.text)
    assert_nothing_created(hub, PREFIX + "carol")
    # PAM logins of the stack's demo accounts keep working in the same hub (lti.password_logins).
    client = HubClient(dataclasses.replace(stack, hub_url=hub.url, api_url=f"{hub.url}/hub/api",
                                           api_token=hub.api_token))
    client.login("test-learner1")
    assert client.user_model("test-learner1")["name"] == "test-learner1"


class _Unsent(requests.Session):
    """A browser whose last post never reaches the tool (an attacker took the id_token on the way)."""

    def post(self, url, data=None, **kw):
        response = requests.Response()
        response.status_code = 0
        return response
