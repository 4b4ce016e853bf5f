"""The site file's `lti` section and `hub.authenticator: lti`: what is accepted, what is refused in words, and
what reaches JupyterHub (jupyterhub-ltiauthenticator's own traits plus the site for the mapping)."""
from __future__ import annotations

import pytest
import yaml
from traitlets.config import Config

from aifw.hub_config.settings import apply_settings, build_settings
from aifw.site import DEFAULT_LEARNER_ROLES, SiteError, example_site_path, site_from_dict

ISSUER = "https://moodle.example.org"


def lti_site_data(**lti) -> dict:
    data = yaml.safe_load(example_site_path("sandbox").read_text())
    data["hub"]["authenticator"] = "lti"
    data["lti"] = {
        "issuer": ISSUER,
        "client_ids": ["aifw-tool"],
        "authorize_url": f"{ISSUER}/mod/lti/auth.php",
        "jwks_url": f"{ISSUER}/mod/lti/certs.php",
        "courses": [{"context_id": "42", "course": "aif-foundations"}],
        **lti,
    }
    return data


def test_a_minimal_lti_section_gets_the_documented_defaults():
    site = site_from_dict(lti_site_data())
    lti = site.lti
    assert (lti.username_claim, lti.username_prefix, lti.accounts, lti.account_group) == ("sub", "", "create", "aifw-lti")
    assert lti.learner_roles == DEFAULT_LEARNER_ROLES and not lti.password_logins
    assert lti.course_of_context("42") == "aif-foundations" and lti.course_of_context("43") is None


def refused(data: dict) -> str:
    with pytest.raises(SiteError) as err:
        site_from_dict(data)
    return str(err.value)


@pytest.mark.parametrize("change, words", [
    (dict(issuer="http://moodle.example.org"), "LTI launches must come over https"),
    (dict(issuer="https://moodle.example.org/?x=1"), "no query"),
    (dict(jwks_url="ftp://moodle.example.org/keys"), "expected a URL like https://"),
    (dict(client_ids=[]), "lti.client_ids"),
    (dict(client_ids=["has space"]), "lti.client_ids[0]"),
    (dict(username_claim="role"), "lti.username_claim"),
    (dict(username_prefix="9x-"), "lti.username_prefix"),
    (dict(courses=[]), "lti.courses"),
    (dict(courses=[{"context_id": "42", "course": "no-such-course"}]), "names course(s) no-such-course"),
    (dict(courses=[{"context_id": "1", "course": "aif-foundations"}, {"context_id": "1", "course": "aif-foundations"}]),
     "repeated: 1"),
    (dict(accounts="hook"), "accounts: hook needs account_hook"),
    (dict(account_hook=["/usr/local/bin/map"]), "account_hook is used only with accounts: hook"),
    (dict(accounts="hook", account_hook=["map-user"]), "must be an absolute path"),
    (dict(accounts="hook", account_hook=["/bin/true"], account_group="x"), "account_group is used only with accounts: create"),
    (dict(accounts="guess"), "lti.accounts"),
])
def test_a_wrong_lti_section_names_the_key_and_what_to_write(change, words):
    assert words in refused(lti_site_data(**change))


def test_the_authenticator_and_the_lti_section_go_together():
    no_section = lti_site_data()
    del no_section["lti"]
    assert "hub.authenticator: lti needs an `lti` section" in refused(no_section)
    pam_with_section = lti_site_data()
    pam_with_section["hub"]["authenticator"] = "pam"
    assert "used only with hub.authenticator: lti" in refused(pam_with_section)


def test_a_hook_site_and_a_test_platform_on_this_host_are_accepted():
    site = site_from_dict(lti_site_data(issuer="http://127.0.0.1:18090", authorize_url="http://127.0.0.1:18090/auth",
                                        jwks_url="http://127.0.0.1:18090/jwks.json", accounts="hook",
                                        account_hook=["/usr/local/sbin/lms-account", "--site", "x"]))
    assert site.lti.issuer == "http://127.0.0.1:18090" and site.lti.account_hook[0] == "/usr/local/sbin/lms-account"


def test_lti_reaches_jupyterhub_as_the_library_traits_and_the_site():
    site = site_from_dict(lti_site_data(client_ids=["a", "b"]))
    c = Config()
    apply_settings(c, build_settings(site, home="/x"))
    assert c.JupyterHub.authenticator_class == "aifw-lti"
    auth = c.AIFLTIAuthenticator
    assert (auth.issuer, auth.client_id, auth.jwks_endpoint) == (ISSUER, {"a", "b"}, f"{ISSUER}/mod/lti/certs.php")
    assert auth.authorize_url == f"{ISSUER}/mod/lti/auth.php" and auth.site is site
    assert "PAMAuthenticator" not in c


def test_the_authenticator_class_takes_the_site_settings():
    from aifw.hub_config.lti_auth import AIFLTIAuthenticator

    site = site_from_dict(lti_site_data(password_logins=True))
    c = Config()
    apply_settings(c, build_settings(site, home="/x"))
    auth = AIFLTIAuthenticator(config=c)
    assert auth.issuer == ISSUER and auth.client_id == {"aifw-tool"} and auth.site.lti.password_logins
    # Password logins keep the hub's login form (no "Sign in with" button); LTI's handlers stay registered.
    assert auth.login_service == "" and auth.login_url("/hub/") == "/hub/login"
    assert [path for path, _ in auth.get_handlers(None)] == ["lti13/oauth_login", "lti13/oauth_callback", "lti13/config"]
    lti_only = AIFLTIAuthenticator(site=site_from_dict(lti_site_data()))
    assert lti_only.login_service and "from their course in the LMS" in lti_only.custom_html
