"""A verified launch mapped to this hub: claims into typed values, context -> course, roles -> learner or
trainer group, the username, the deep link to a module, the account hook, and refusals in words."""
from __future__ import annotations

import json
import stat
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from aifw.hub_config.lti import CLAIM, LaunchClaims, LaunchRefused, ModuleTarget, landing_url, plan_launch, \
    refusal_words
from aifw.hub_config.lti_accounts import created_account, hooked_account
from aifw.site import LIS_MEMBERSHIP, LtiSettings

LEARNER = LIS_MEMBERSHIP + "Learner"
INSTRUCTOR = LIS_MEMBERSHIP + "Instructor"


def settings(**change) -> LtiSettings:
    return LtiSettings(**{"issuer": "https://lms.example.org", "client_ids": ["tool"],
                          "authorize_url": "https://lms.example.org/auth", "jwks_url": "https://lms.example.org/jwks",
                          "courses": [{"context_id": "ctx-1", "course": "aif-foundations"}], **change})


def id_token(**change) -> dict:
    token = {
        "iss": "https://lms.example.org", "sub": "Ada", "aud": "tool", "exp": 2, "iat": 1, "nonce": "n",
        "email": "ada@example.org", "name": "Ada L.",
        CLAIM + "version": "1.3.0", CLAIM + "deployment_id": "dep-1",
        CLAIM + "message_type": "LtiResourceLinkRequest", CLAIM + "roles": [LEARNER],
        CLAIM + "resource_link": {"id": "link-1"}, CLAIM + "target_link_uri": "https://hub.example.org/",
        CLAIM + "context": {"id": "ctx-1", "label": "AIF", "title": "AI Factory Foundations"},
    }
    token.update(change)
    return {k: v for k, v in token.items() if v is not None}


M1 = ModuleTarget(id="m1-first-steps", first_notebook="01-intro.ipynb",
                  launch_link=lambda base: f"{base.rstrip('/')}/hub/spawn?partition=gpu&gpus=1&runtime=45")


def modules(course: str) -> dict[str, ModuleTarget]:
    assert course == "aif-foundations"
    return {M1.id: M1}


def plan(token: dict | None = None, lti: LtiSettings | None = None):
    lti = lti or settings()
    return plan_launch(LaunchClaims.from_id_token(token or id_token(), lti.username_claim), lti, modules)


def test_a_learner_launch_maps_to_the_course_learners_group_and_a_unix_name():
    launch = plan()
    assert (launch.course, launch.role, launch.group, launch.username) == (
        "aif-foundations", "learner", "course-aif-foundations-learners", "ada")
    assert launch.module is None and landing_url(launch) is None
    assert launch.hook_input() == {"issuer": "https://lms.example.org", "subject": "Ada", "username_claim": "sub",
                                   "username_value": "Ada", "email": "ada@example.org", "name": "Ada L.",
                                   "course": "aif-foundations", "role": "learner", "context_id": "ctx-1"}


@pytest.mark.parametrize("roles, role", [
    ([INSTRUCTOR], "trainer"), ([LEARNER, INSTRUCTOR], "trainer"), ([LEARNER], "learner"),
    (["http://purl.imsglobal.org/vocab/lis/v2/membership/Instructor#TeachingAssistant"], "trainer"),
])
def test_roles_become_learner_or_trainer_and_a_trainer_role_wins(roles, role):
    assert plan(id_token(**{CLAIM + "roles": roles})).role == role


def test_the_site_may_name_its_own_roles():
    lti = settings(learner_roles=["Learner"], trainer_roles=["Mentor"])
    assert plan(id_token(**{CLAIM + "roles": ["Mentor"]}), lti).role == "trainer"
    assert plan(id_token(**{CLAIM + "roles": ["Learner"]}), lti).role == "learner"


def test_the_username_comes_from_the_chosen_claim_with_the_prefix():
    token = id_token(**{CLAIM + "custom": {"username": "Grace_H"}})
    assert plan(token, settings(username_claim="custom_username", username_prefix="lms-")).username == "lms-grace_h"
    assert plan(id_token(preferred_username="bob"), settings(username_claim="preferred_username")).username == "bob"


@pytest.mark.parametrize("token, lti, words", [
    (id_token(**{CLAIM + "roles": [LIS_MEMBERSHIP + "Mentor"]}), None, "neither a learner's nor a trainer's role"),
    (id_token(**{CLAIM + "context": {"id": "other", "title": "Cooking"}}), None,
     "'Cooking' (context id 'other') is not linked to a course of this hub"),
    (id_token(**{CLAIM + "context": None}), None, "names no course"),
    (id_token(**{CLAIM + "deployment_id": "dep-2"}), settings(deployment_ids=["dep-1"]), "deployment 'dep-2'"),
    (id_token(**{CLAIM + "message_type": "LtiDeepLinkingRequest"}), None, "takes resource link launches"),
    (id_token(sub="ada@example.org"), None, "does not make a unix name here"),
    (id_token(sub="x" * 40), None, "does not make a unix name here"),
    (id_token(email=None), settings(username_claim="email"), "sent no 'email' claim"),
    (id_token(**{CLAIM + "roles": "Learner"}), None, "claim 'roles' is not usable"),
    (id_token(sub="ada\nroot"), None, "claim 'username_value' is not usable"),
    (id_token(**{CLAIM + "custom": {"module": "m9-none"}}), None,
     "names module 'm9-none', which course 'aif-foundations' does not have; its modules are: m1-first-steps"),
    (id_token(**{CLAIM + "custom": {"module": "../etc"}}), None, "is not a module id"),
])
def test_a_launch_this_hub_cannot_map_is_refused_in_words(token, lti, words):
    with pytest.raises(LaunchRefused) as err:
        plan(token, lti)
    assert words in str(err.value)


def test_a_module_link_lands_on_the_module_preset_then_its_notebook():
    for token in (id_token(**{CLAIM + "custom": {"module": "m1-first-steps"}}),
                  id_token(**{CLAIM + "target_link_uri": "https://hub.example.org/?module=m1-first-steps"})):
        launch = plan(token)
        assert launch.module == M1
        url = urlsplit(landing_url(launch, "/"))
        query = parse_qs(url.query)
        assert url.path == "/hub/spawn" and query["partition"] == ["gpu"] and query["gpus"] == ["1"]
        assert query["next"] == ["/hub/user-redirect/lab/tree/courses/aif-foundations/m1-first-steps/01-intro.ipynb"]


@pytest.mark.parametrize("detail, words", [
    ("Signature has expired", "has expired"),
    ("id_token issued too long ago.", "has expired"),
    ("OAuth state missing from cookies", "already used"),
    ("OAuth nonce mismatch", "already used"),
    ("Invalid issuer", "does not trust"),
    ("Audience doesn't match", "meant for another tool"),
    ("Signature verification failed", "signature does not match"),
    ('Unable to find a signing key that matches: "other-key"', "signature does not match"),
    ("Fail to fetch data from the url, err: refused", "could not read the platform's public keys"),
    ("Incorrect value 1.1 for version claim", "not a valid LTI 1.3 launch (Incorrect value 1.1 for version claim)"),
])
def test_each_library_refusal_reads_in_words(detail, words):
    assert words in refusal_words(detail)


def hook_script(tmp_path: Path, body: str) -> list[str]:
    path = tmp_path / "hook"
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return [str(path)]


def test_the_hook_gets_the_launch_and_names_an_existing_account(tmp_path):
    launch = plan(lti=settings(accounts="hook", account_hook=["/bin/true"]))
    assert launch.username is None  # the hook decides
    seen = tmp_path / "seen.json"
    # nobody (uid 65534) exists on every Debian machine and is above the system range
    assert hooked_account(launch, hook_script(tmp_path, f"cat > {seen}\necho nobody\n")) == "nobody"
    assert json.loads(seen.read_text())["username_value"] == "Ada"


def test_a_refusing_hook_refuses_the_launch_with_its_reason(tmp_path):
    launch = plan(lti=settings(accounts="hook", account_hook=["/bin/true"]))
    with pytest.raises(LaunchRefused, match="this hub has no account for you: not enrolled at this centre"):
        hooked_account(launch, hook_script(tmp_path, "echo 'not enrolled at this centre' >&2\nexit 1\n"))


@pytest.mark.parametrize("printed, error", [
    ("root", "system account"), ("Not A Name", "is not a unix name"), ("no-such-user-xyz", "does not exist"),
])
def test_a_hook_that_names_no_usable_account_is_an_error_for_the_admin(tmp_path, printed, error):
    launch = plan(lti=settings(accounts="hook", account_hook=["/bin/true"]))
    with pytest.raises((RuntimeError, LaunchRefused), match=error):
        hooked_account(launch, hook_script(tmp_path, f"echo '{printed}'\n"))


def test_a_launch_never_takes_a_system_account():
    with pytest.raises(LaunchRefused, match="'root' is a system account"):
        created_account("root", "aifw-lti")
