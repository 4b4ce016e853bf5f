"""Grades back to the LMS, without a hub: the AGS claim as typed values (a malformed one is a reason, not a crash),
the score and line-item messages, line-item matching (resourceId or tag, never label), the publish queue, the
service's settings and key, and the whole publish path (aifw.hub_config.lti_grades_service.Publisher with the real
AGS client) against the real test platform, which verifies the tool's client assertion against the tool's JWKS."""
from __future__ import annotations

import json
import stat
from datetime import datetime, timezone

import pytest
from aifw_testing import run_coroutine
import yaml

from aifw.hub_config import lti_grades as g
from aifw.hub_config.lti_grades_service import Publisher, jwks, load_or_make_key
from aifw.hub_config.lti_grades_store import GradesStore
from aifw.hub_config.settings import build_settings
from aifw.site import example_site_path, site_from_dict
from lti_platform import AGS_CLAIM, LaunchSpec, Platform, serve_jwks

LINEITEMS = "https://lms.example.org/api/lti/courses/2/line_items"
T0 = datetime(2026, 12, 2, 7, 0, tzinfo=timezone.utc)


def claim(**change) -> dict:
    value = {"scope": [g.SCOPE_LINEITEM, g.SCOPE_SCORE], "lineitems": LINEITEMS, **change}
    return {AGS_CLAIM: {k: v for k, v in value.items() if v is not None}}


def test_a_well_formed_claim_becomes_an_endpoint():
    ags, why = g.ags_of(claim(lineitem=LINEITEMS + "/7"))
    assert why is None and ags.lineitems == LINEITEMS and ags.lineitem == LINEITEMS + "/7"
    assert ags.token_scopes() == (g.SCOPE_LINEITEM, g.SCOPE_SCORE)
    readonly, _ = g.ags_of(claim(scope=[g.SCOPE_LINEITEM_READ, g.SCOPE_SCORE]))
    assert readonly.token_scopes() == (g.SCOPE_LINEITEM_READ, g.SCOPE_SCORE)


@pytest.mark.parametrize("token, words", [
    ({}, "has no Assignment and Grade Services claim"),
    ({AGS_CLAIM: "lineitems"}, "is not an object"),
    (claim(lineitems="javascript:alert(1)"), "malformed (lineitems"),
    (claim(lineitems="http://lms.example.org/lineitems"), "plain http on lms.example.org"),
    (claim(lineitems="https://user:pw@lms.example.org/x"), "malformed (lineitems"),
    (claim(scope="score"), "malformed (scopes"),
    (claim(scope=[g.SCOPE_LINEITEM]), "does not let the tool post scores"),
    (claim(lineitems=None), "no line items URL"),
    (claim(scope=[g.SCOPE_SCORE]), "does not let the tool read line items"),
])
def test_a_claim_that_cannot_take_grades_is_a_reason_in_words(token, words):
    ags, why = g.ags_of(token)
    assert ags is None and words in why


def test_a_loopback_http_platform_is_accepted_as_in_the_tests():
    ags, why = g.ags_of(claim(lineitems="http://127.0.0.1:18090/ags/c/lineitems"))
    assert why is None and ags.lineitems.startswith("http://127.0.0.1")


def launch_token(**change) -> dict:
    token = {"iss": "https://lms.example.org", "aud": "tool-1", "sub": "u-42",
             g.LTI_CLAIM + "deployment_id": "d1", g.LTI_CLAIM + "context": {"id": "ctx"},
             g.LTI_CLAIM + "resource_link": {"id": "link-1"}, **claim()}
    token.update(change)
    return token


def test_a_launch_record_keeps_the_platform_user_and_the_context_endpoint():
    record = g.launch_record("lms-ada", "aif-foundations", launch_token())
    assert (record.user, record.subject, record.client_id, record.context_id, record.resource_link_id) == (
        "lms-ada", "u-42", "tool-1", "ctx", "link-1")
    assert record.ags.lineitems == LINEITEMS and record.no_passback is None
    assert g.LaunchRecord.model_validate_json(record.model_dump_json()) == record
    broken = g.launch_record("lms-bob", "aif-foundations", launch_token(**claim(lineitems="ftp://x")))
    assert broken.ags is None and "malformed" in broken.no_passback
    assert g.launch_record("x", "c", launch_token(aud=["a", "tool-2"], azp="tool-2")).client_id == "tool-2"
    with pytest.raises(ValueError, match="cannot be recorded"):
        g.launch_record("x", "c", launch_token(sub=""))


def test_the_score_and_the_client_assertion_say_what_ags_and_rfc_7523_want():
    assert g.iso_timestamp(T0) == "2026-12-02T07:00:00.000+00:00"
    assert g.score_body("u-42", 5.0, 6.0, "ts") == {
        "userId": "u-42", "scoreGiven": 5.0, "scoreMaximum": 6.0, "activityProgress": "Completed",
        "gradingProgress": "FullyGraded", "timestamp": "ts"}
    with pytest.raises(ValueError, match="maximum must be positive"):
        g.score_body("u", 1, 0, "ts")
    claims = g.client_assertion_claims("tool-1", "https://lms/token", 1000, "j1")
    assert claims == {"iss": "tool-1", "sub": "tool-1", "aud": "https://lms/token", "iat": 1000, "exp": 1300,
                      "jti": "j1"}
    form = g.token_request("A", (g.SCOPE_LINEITEM, g.SCOPE_SCORE))
    assert form["grant_type"] == "client_credentials" and form["client_assertion_type"] == g.ASSERTION_TYPE
    assert form["scope"] == f"{g.SCOPE_LINEITEM} {g.SCOPE_SCORE}"


def test_line_items_are_matched_by_resource_id_or_tag_never_by_label():
    items = [{"id": "L1", "label": "m1", "resourceId": "other"},
             {"id": "L2", "label": "anything", "tag": "aifw:m1"},
             {"id": "L3", "label": "x", "resourceId": "m1", "tag": "aifw:m1"},
             {"id": "L4", "label": "x", "resourceId": "m1"}]
    assert g.find_line_item(items, "m1") == "L3"  # both match first
    assert g.find_line_item(items[:2], "m1") == "L2"  # the tag alone
    assert g.find_line_item(items[:1], "m1") is None  # a label that equals the assignment is no match
    assert g.find_line_item({"id": "L3"}, "m1") is None and g.find_line_item([None, {"resourceId": "m1"}], "m1") is None
    assert g.new_line_item("m1", 6.0) == {"scoreMaximum": 6.0, "label": "m1", "resourceId": "m1", "tag": "aifw:m1"}


def test_urls_keep_the_platforms_own_query():
    moodle = "https://moodle/mod/lti/services.php/2/lineitems/5/lineitem?type_id=1"
    assert g.scores_url(moodle) == "https://moodle/mod/lti/services.php/2/lineitems/5/lineitem/scores?type_id=1"
    assert g.with_query("https://moodle/x.php?type_id=1", resource_id="m 1") == \
        "https://moodle/x.php?type_id=1&resource_id=m+1"


def test_the_queue_sends_a_score_once_and_a_changed_one_again():
    first = g.queue_score(None, "c", "a", "u", 5, 6, T0)
    assert first.state == "pending" and first.timestamp == g.iso_timestamp(T0)
    later = datetime(2026, 12, 3, tzinfo=timezone.utc)
    assert g.queue_score(first, "c", "a", "u", 5, 6, later) is first  # still pending: its first timestamp
    sent = first.model_copy(update={"state": "sent"})
    assert g.queue_score(sent, "c", "a", "u", 5, 6, later) is sent  # the same score: nothing to send
    changed = g.queue_score(sent, "c", "a", "u", 6, 6, later)
    assert changed.state == "pending" and changed.timestamp == g.iso_timestamp(later)


@pytest.mark.parametrize("scores", [{"u": (-1, 6)}, {"u": (1, 0)}, {"": (1, 6)}, {"u": (float("nan"), 6)}])
def test_a_publish_request_with_an_impossible_score_is_refused(scores):
    with pytest.raises(ValueError):
        g.PublishRequest(course="c", assignment="a", scores=scores)
    with pytest.raises(ValueError):
        g.PublishRequest(course="c; rm", assignment="a", scores={})


def lti_data(**lti) -> dict:
    """The sandbox's site with an lti section (hub.authenticator: lti)."""
    data = yaml.safe_load(example_site_path("sandbox").read_text())
    data["hub"]["authenticator"] = "lti"
    data["lti"] = {"issuer": "https://lms.example.org", "client_ids": ["tool-1"],
                   "authorize_url": "https://lms.example.org/auth", "jwks_url": "https://lms.example.org/jwks",
                   "courses": [{"context_id": "42", "course": "aif-foundations"}], **lti}
    return data


def lti_site(**lti):
    return site_from_dict(lti_data(**lti))


def test_the_hub_runs_the_grades_service_with_its_settings_and_lets_the_admin_service_publish():
    site = lti_site(token_url="https://lms.example.org/token", grades_retry_minutes=5)
    jh = build_settings(site, home="/srv/aifw", admin_token="t")["JupyterHub"]
    service = next(s for s in jh["services"] if s["name"] == g.SERVICE_NAME)
    config = g.ServiceConfig.model_validate_json(service["environment"][g.CONFIG_ENV])
    assert (str(config.state_dir), config.token_url, config.audience, config.retry_s) == (
        "/srv/aifw/state/hub/lti-grades", "https://lms.example.org/token", "https://lms.example.org/token", 300)
    assert service["command"][-2:] == ["-m", "aifw.hub_config.lti_grades_service"] and "user" not in service
    assert service["url"] == f"http://127.0.0.1:{site.hub.services_port_base + len(site.courses)}"
    role = next(r for r in jh["load_roles"] if r["name"] == f"{g.SERVICE_NAME}-publishers")
    assert role["services"] == ["aifw-admin"] and role["scopes"] == [f"access:services!service={g.SERVICE_NAME}"]
    pam = build_settings(site_from_dict(yaml.safe_load(example_site_path("sandbox").read_text())), home="/srv")
    assert all(s["name"] != g.SERVICE_NAME for s in pam["JupyterHub"].get("services", []))
    audience = lti_site(token_url="https://lms.example.org/token", token_audience="https://lms.example.org")
    assert audience.lti.assertion_audience == "https://lms.example.org"


@pytest.mark.parametrize("lti, words", [
    ({"token_audience": "x"}, "token_audience is used only with token_url"),
    ({"grades_retry_minutes": 3}, "grades_retry_minutes is used only with token_url"),
    ({"token_url": "http://lms.example.org/token"}, "must come over https"),
])
def test_grade_settings_that_would_do_nothing_or_are_unsafe_are_refused(lti, words):
    with pytest.raises(ValueError, match=words):
        lti_site(**lti)


def test_the_tool_key_is_made_once_private_and_only_its_public_half_is_published(tmp_path):
    state = tmp_path / "lti-grades"
    key = load_or_make_key(state)
    assert stat.S_IMODE((state / "tool-key.pem").stat().st_mode) == 0o600
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert load_or_make_key(state).pem == key.pem and "BEGIN" not in repr(key)
    (jwk,) = jwks(key)["keys"]
    assert jwk["kid"] == key.kid and jwk["alg"] == "RS256" and "d" not in jwk and "p" not in jwk
    (state / "tool-key.pem").chmod(0o644)
    with pytest.raises(SystemExit, match="chmod 600"):
        load_or_make_key(state)


# --------------------------------------------------------------------------- the publish path, for real
@pytest.fixture
def world(tmp_path):
    """The test platform, the tool's JWKS served where the platform fetches it, and a Publisher on a fresh
    store: what the grades service runs, without the hub."""
    key = load_or_make_key(tmp_path / "state")
    jwks_url, stop_jwks = serve_jwks(jwks(key))
    platform = Platform(port=0, redirect_uris=[], tool_login_url="http://127.0.0.1:9/", tool_url="http://127.0.0.1:9/",
                        tool_jwks_url=jwks_url).start()
    store = GradesStore(tmp_path / "state" / "grades.sqlite")
    config = g.ServiceConfig(state_dir=tmp_path / "state", token_url=platform.token_url,
                             audience=platform.token_url, retry_s=600)
    yield platform, store, Publisher(config, store, key)
    platform.stop()
    stop_jwks()


def record(platform: Platform, user: str, **spec) -> g.LaunchRecord:
    """A launch as the hub records it, from the platform's own id_token claims."""
    platform.id_token(LaunchSpec(user=user.upper(), context_id="ctx-1", **spec), nonce="n")
    return g.launch_record(user, "aif-foundations", platform.issued[-1])


def outcomes(reply: g.PublishReply) -> dict[str, str]:
    return {r.user: r.outcome for r in reply.results}


def test_a_publish_sends_each_score_once_and_reports_who_cannot_get_one(world):
    platform, store, publisher = world
    store.record_launch(record(platform, "ada"))
    store.record_launch(record(platform, "bob", ags="malformed"))
    request = g.PublishRequest(course="aif-foundations", assignment="tiny",
                               scores={"ada": (5.0, 6.0), "bob": (6.0, 6.0), "carl": (1.0, 6.0)})
    reply = publisher.publish(request)
    assert outcomes(reply) == {"ada": "sent", "bob": "no-passback", "carl": "not-launched"}
    assert "never opened the course from the LMS" in next(r.detail for r in reply.results if r.user == "carl")
    (item,) = platform.line_items.values()
    assert (item["resourceId"], item["tag"], item["scoreMaximum"]) == ("tiny", "aifw:tiny", 6.0)
    (score,) = platform.scores
    assert (score["userId"], score["scoreGiven"], score["gradingProgress"], score["_line_item"]) == (
        "ADA", 5.0, "FullyGraded", item["id"])
    # Twice: nothing new on the platform.
    assert outcomes(publisher.publish(request))["ada"] == "unchanged"
    assert len(platform.scores) == 1 and len(platform.line_items) == 1
    assert g.summary_line(reply.results) == "1 sent, 1 not launched, 1 no passback"


def test_a_score_the_platform_does_not_take_is_queued_and_sent_later_once(world):
    platform, store, publisher = world
    store.record_launch(record(platform, "ada"))
    request = g.PublishRequest(course="aif-foundations", assignment="tiny", scores={"ada": (4.0, 6.0)})
    other = g.PublishRequest(course="aif-foundations", assignment="second", scores={"ada": (1.0, 2.0)})
    platform.fail_scores = 503
    (failed,) = publisher.publish(request).results
    assert failed.outcome == "queued" and "HTTP 503" in failed.detail and "queued" in failed.detail
    reply = publisher.publish(other)
    assert outcomes(reply) == {"ada": "queued"} and reply.queued_elsewhere == 1
    assert platform.scores == [] and store.count_pending() == 2
    platform.fail_scores = None
    publisher.retry()  # the service's periodic retry: both assignments
    assert sorted(s["scoreGiven"] for s in platform.scores) == [1.0, 4.0] and store.count_pending() == 0
    assert outcomes(publisher.publish(request)) == {"ada": "unchanged"} and len(platform.scores) == 2


def test_a_refused_client_assertion_is_reported_and_queued(world, tmp_path):
    platform, store, publisher = world
    store.record_launch(record(platform, "ada"))
    publisher.client.key = load_or_make_key(tmp_path / "another")  # a key the tool's JWKS does not have
    (result,) = publisher.publish(g.PublishRequest(course="aif-foundations", assignment="tiny",
                                                   scores={"ada": (4.0, 6.0)})).results
    assert result.outcome == "queued" and "access token was refused" in result.detail and "HTTP 401" in result.detail
    assert platform.token_refusals and platform.scores == []


# --------------------------------------------------------------------------- the service's HTTP boundary
class _FakeHubAuth:
    """HubAuth's two calls the service makes: a token that is `good` has access to the service."""

    access_scopes = {f"access:services!service={g.SERVICE_NAME}"}

    async def user_for_token(self, token, sync=True):
        return {"kind": "service", "name": "aifw-admin", "scopes": ["access:services!service=aifw-lti-grades"]} \
            if token == "good" else ({"kind": "user", "name": "ada", "scopes": []} if token == "learner" else None)

    def check_scopes(self, required, model):
        return required <= set(model["scopes"])


def test_the_service_records_launches_from_the_hub_only_and_publishes_for_allowed_tokens(tmp_path):

    from tornado.httpclient import AsyncHTTPClient

    from aifw.hub_config.lti_grades_service import make_app

    config = g.ServiceConfig(state_dir=tmp_path / "state", token_url=None, audience=None, retry_s=600)
    prefix = "/services/aifw-lti-grades/"
    record = g.launch_record("lms-ada", "aif-foundations", launch_token())

    async def scenario():
        app, publisher = make_app(config, prefix, "hub-secret", _FakeHubAuth())
        server = app.listen(0, address="127.0.0.1")
        port = next(iter(server._sockets.values())).getsockname()[1]
        base = f"http://127.0.0.1:{port}{prefix}"
        client = AsyncHTTPClient()

        async def call(path, token=None, body=None):
            headers = {"Authorization": f"token {token}"} if token else {}
            r = await client.fetch(base + path, method="GET" if body is None else "POST", body=body, headers=headers,
                                   raise_error=False, request_timeout=10)
            return r.code, r.body.decode()

        try:
            results = {
                "info": await call(""),
                "jwks": await call("jwks.json"),
                "launch-no-token": await call("api/launches", body=record.model_dump_json()),
                "launch-wrong-token": await call("api/launches", "good", record.model_dump_json()),
                "launch-bad-body": await call("api/launches", "hub-secret", '{"user": "x"}'),
                "launch": await call("api/launches", "hub-secret", record.model_dump_json()),
                "publish-learner": await call("api/publish", "learner", '{}'),
                "publish": await call("api/publish", "good", g.PublishRequest(
                    course="aif-foundations", assignment="tiny", scores={"lms-ada": (1, 2)}).model_dump_json()),
            }
        finally:
            server.stop()
        return results, publisher.store

    results, store = run_coroutine(scenario())  # asyncio.run fails once the browser tier left a loop running
    assert results["info"][0] == 200 and json.loads(results["info"][1])["jwks"] == prefix + "jwks.json"
    assert results["jwks"][0] == 200 and json.loads(results["jwks"][1])["keys"][0]["kty"] == "RSA"
    assert results["launch-no-token"][0] == 403 and results["launch-wrong-token"][0] == 403
    assert "launches are recorded by the hub only" in results["launch-wrong-token"][1]
    assert results["launch-bad-body"][0] == 400 and "course" in results["launch-bad-body"][1]
    assert results["launch"][0] == 204 and store.launch("lms-ada", "aif-foundations") == record
    assert results["publish-learner"][0] == 403 and "needs a token with access" in results["publish-learner"][1]
    status, body = results["publish"]
    (result,) = g.PublishReply.model_validate_json(body).results
    assert status == 200 and result.outcome == "queued" and "no token_url" in result.detail


# --------------------------------------------------------------------------- the command line
@pytest.mark.parametrize("lti, env, words", [
    (None, {"AIFW_ADMIN_TOKEN": "t"}, "hub.authenticator is not lti"),
    ({}, {"AIFW_ADMIN_TOKEN": "t"}, "has no token_url"),
    ({"token_url": "https://lms.example.org/token"}, {}, "set AIFW_ADMIN_TOKEN"),
    ({"token_url": "https://lms.example.org/token"}, {"AIFW_ADMIN_TOKEN": "t"}, "is this an nbgrader course directory"),
])
def test_aifw_lti_publish_says_what_to_fix_before_it_publishes(tmp_path, monkeypatch, lti, env, words):
    from io import StringIO

    from rich.console import Console

    from aifw.commands.lti import run_publish

    data = yaml.safe_load(example_site_path("sandbox").read_text()) if lti is None else lti_data(**lti)
    site = tmp_path / "site.yaml"
    site.write_text(yaml.safe_dump(data))
    for name in ("AIFW_ADMIN_TOKEN", "JUPYTERHUB_API_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    out, err = StringIO(), StringIO()
    rc = run_publish("aif-foundations", "tiny", str(site), tmp_path, Console(file=out), Console(file=err, width=300))
    assert rc == 2 and words in err.getvalue() and out.getvalue() == ""
