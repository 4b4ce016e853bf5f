"""The test platform (tests/lti_platform.py) is a real LTI 1.3 platform: its login answers only a well-formed
OIDC authentication request, its id_tokens verify against its own JWKS with PyJWT, and each fault breaks
exactly the check it is named after."""
from __future__ import annotations

import jwt
import pytest
import requests

from lti_platform import CLAIM, LaunchSpec, Platform, form_fields, serve_jwks

CALLBACK = "http://127.0.0.1:9/hub/lti13/oauth_callback"


@pytest.fixture(scope="module")
def platform():
    p = Platform(port=0, redirect_uris=[CALLBACK], tool_login_url="http://127.0.0.1:9/hub/lti13/oauth_login",
                 tool_url="http://127.0.0.1:9/").start()
    yield p
    p.stop()


def auth_request(platform: Platform, hint: str, **change) -> requests.Response:
    args = dict(response_type="id_token", scope="openid", response_mode="form_post", prompt="none",
                client_id=platform.client_id, redirect_uri=CALLBACK, login_hint=hint, lti_message_hint=hint,
                nonce="nonce-1", state="state-1")
    args.update(change)
    return requests.get(platform.authorize_url, params=args, timeout=10)


def verify(platform: Platform, token: str) -> dict:
    key = jwt.PyJWKClient(platform.jwks_url).get_signing_key_from_jwt(token).key
    return jwt.decode(token, key, algorithms=["RS256"], audience=platform.client_id, issuer=platform.issuer)


def test_a_launch_goes_through_the_tool_login_and_posts_a_verifiable_id_token(platform):
    hint = platform.prepare(LaunchSpec(user="ada", context_id="ctx", custom={"module": "m1"}))
    start = requests.get(platform.launch_url(hint), allow_redirects=False, timeout=10)
    assert start.status_code == 302 and start.headers["Location"].startswith("http://127.0.0.1:9/hub/lti13/oauth_login?iss=")
    action, fields = form_fields(auth_request(platform, hint).text)
    assert action == CALLBACK and fields["state"] == "state-1"
    claims = verify(platform, fields["id_token"])
    assert (claims["sub"], claims["nonce"], claims[CLAIM + "context"]["id"], claims[CLAIM + "custom"]) == (
        "ada", "nonce-1", "ctx", {"module": "m1"})


@pytest.mark.parametrize("change", [dict(redirect_uri="http://127.0.0.1:9/elsewhere"), dict(client_id="other"),
                                    dict(response_type="code"), dict(login_hint="unknown"), dict(nonce="")])
def test_a_malformed_authentication_request_is_refused(platform, change):
    hint = platform.prepare(LaunchSpec(user="ada", context_id="ctx"))
    assert auth_request(platform, hint, **change).status_code == 400


@pytest.mark.parametrize("fault, error", [
    ("expired", jwt.ExpiredSignatureError), ("wrong-signature", jwt.InvalidSignatureError),
    ("wrong-audience", jwt.InvalidAudienceError), ("wrong-issuer", jwt.InvalidIssuerError),
])
def test_each_fault_fails_its_own_check(platform, fault, error):
    hint = platform.prepare(LaunchSpec(user="eve", context_id="ctx", fault=fault))
    _, fields = form_fields(auth_request(platform, hint).text)
    with pytest.raises(error):
        verify(platform, fields["id_token"])


def test_the_token_endpoint_takes_only_a_fresh_assertion_signed_by_the_tools_published_key():
    """The grant the grades service uses (tests/unit/test_lti_grades.py drives it end to end); here what the
    platform refuses: another key, another audience, a jti used before, scopes beyond AGS."""
    import json
    import time

    from cryptography.hazmat.primitives.asymmetric import rsa
    from jwt.algorithms import RSAAlgorithm

    tool, rogue = (rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(2))
    jwk = {**json.loads(RSAAlgorithm.to_jwk(tool.public_key())), "kid": "tool-1", "alg": "RS256"}
    jwks_url, stop_jwks = serve_jwks({"keys": [jwk]})
    p = Platform(port=0, redirect_uris=[], tool_login_url="http://127.0.0.1:9/", tool_url="http://127.0.0.1:9/",
                 tool_jwks_url=jwks_url).start()
    try:
        def grant(key=tool, aud=None, jti="j1", scope="https://purl.imsglobal.org/spec/lti-ags/scope/score"):
            now = int(time.time())
            assertion = jwt.encode({"iss": p.client_id, "sub": p.client_id, "aud": aud or p.token_url, "iat": now,
                                    "exp": now + 60, "jti": jti}, key, algorithm="RS256", headers={"kid": "tool-1"})
            return requests.post(p.token_url, data={
                "grant_type": "client_credentials", "scope": scope, "client_assertion": assertion,
                "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, timeout=10)

        ok = grant()
        assert ok.status_code == 200 and ok.json()["access_token"] in p.tokens
        assert grant(jti="j1").status_code == 401  # replayed
        assert grant(key=rogue, jti="j2").status_code == 401
        assert grant(aud="http://elsewhere/token", jti="j3").status_code == 401
        assert grant(jti="j4", scope="openid").status_code == 400
        assert len(p.token_refusals) == 4
    finally:
        p.stop()
        stop_jwks()
