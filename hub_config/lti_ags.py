"""The one layer that talks to the platform's Assignment and Grade Services: an access token by the
client-credentials grant with a JWT client assertion (RFC 7523, signed with the tool's key by PyJWT), the
assignment's line item (found by resourceId or tag, created when missing), and scores. Every request is
bounded in time; a failure is `PlatformError` in words. Runs inside the grades service
(aifw.hub_config.lti_grades_service), which holds the key."""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

import jwt
import requests

from .lti_grades import (LINE_ITEM_CONTAINER_TYPE, LINE_ITEM_TYPE, SCOPE_LINEITEM, SCORE_TYPE, ags_url,
                         assignment_tag, client_assertion_claims, find_line_item, new_line_item, scores_url,
                         token_request, with_query)

TIMEOUT_S = 10
#: At most this many pages of line items are read (each page a request): a bound on a platform that loops.
MAX_PAGES = 10


class PlatformError(Exception):
    """The platform did not do what was asked; the message says what happened, for the trainer's table.
    `down`: it did not answer or answered 5xx (the next requests to it would fail the same way)."""

    def __init__(self, message: str, down: bool = False):
        super().__init__(message)
        self.down = down


def _checked(url: str, what: str) -> str:
    """A URL the platform answered with, before the tool sends its token there."""
    try:
        return ags_url(url)
    except ValueError as err:
        raise PlatformError(f"{what} is not a URL the tool sends grades to ({err})") from None


@dataclass
class ToolKey:
    """The tool's private key (PEM) and its key id, as the JWKS publishes it."""

    pem: bytes = field(repr=False)
    kid: str

    def __repr__(self) -> str:  # never in a log
        return f"ToolKey(kid={self.kid!r})"


def _what(response: requests.Response) -> str:
    text = " ".join(response.text.split())[:200]
    return f"HTTP {response.status_code}" + (f": {text}" if text else "")


@dataclass
class AgsClient:
    token_url: str
    audience: str
    key: ToolKey
    session: requests.Session = field(default_factory=requests.Session)
    _tokens: dict[str, tuple[str, float]] = field(default_factory=dict)

    def _request(self, method: str, url: str, what: str, **kw) -> requests.Response:
        try:
            response = self.session.request(method, url, timeout=TIMEOUT_S, allow_redirects=False, **kw)
        except requests.RequestException as err:
            raise PlatformError(f"{what}: the platform did not answer ({type(err).__name__})", down=True) from None
        if response.status_code >= 300:
            raise PlatformError(f"{what}: the platform answered {_what(response)}", down=response.status_code >= 500)
        return response

    def token(self, client_id: str, scopes: tuple[str, ...]) -> str:
        """An access token for `scopes` (kept until shortly before it expires)."""
        cache_key = client_id + " " + " ".join(scopes)
        cached = self._tokens.get(cache_key)
        if cached and cached[1] > time.monotonic():
            return cached[0]
        now = int(time.time())
        assertion = jwt.encode(client_assertion_claims(client_id, self.audience, now, uuid.uuid4().hex),
                               self.key.pem, algorithm="RS256", headers={"kid": self.key.kid})
        response = self._request("POST", self.token_url, "the access token was refused",
                                 data=token_request(assertion, scopes))
        try:
            body = response.json()
            token = body["access_token"]
            lifetime = float(body.get("expires_in", 3600))
        except (ValueError, KeyError, TypeError):
            raise PlatformError("the token endpoint's answer has no access_token") from None
        if not isinstance(token, str) or not token:
            raise PlatformError("the token endpoint's answer has no access_token")
        self._tokens[cache_key] = (token, time.monotonic() + max(0.0, lifetime - 30))
        return token

    def _auth(self, token: str, accept: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}", "Accept": accept}

    def line_item(self, client_id: str, scopes: tuple[str, ...], lineitems: str, assignment: str, maximum: float,
                  label: str | None) -> str:
        """The assignment's line item URL in the context's container: found by resourceId (or our tag), else
        created (when `scopes` let the tool)."""
        token = self.token(client_id, scopes)
        url: str | None = with_query(lineitems, resource_id=assignment)
        for _ in range(MAX_PAGES):
            response = self._request("GET", url, "the line items could not be read",
                                     headers=self._auth(token, LINE_ITEM_CONTAINER_TYPE))
            try:
                items = response.json()
            except ValueError:
                raise PlatformError("the platform's line items are not JSON") from None
            found = find_line_item(items, assignment)
            if found:
                return _checked(found, "the line item's id")
            url = response.links.get("next", {}).get("url")
            if not url:
                break
            url = _checked(url, "the next page of line items")
        if SCOPE_LINEITEM not in scopes:
            raise PlatformError(f"the platform has no line item with resourceId {assignment!r} or tag "
                                f"{assignment_tag(assignment)!r} and does not let the tool create one")
        response = self._request("POST", lineitems, "the line item could not be created",
                                 json=new_line_item(assignment, maximum, label),
                                 headers={**self._auth(token, LINE_ITEM_TYPE), "Content-Type": LINE_ITEM_TYPE})
        try:
            made = response.json()["id"]
        except (ValueError, KeyError, TypeError):
            raise PlatformError("the platform created a line item but did not say its id") from None
        if not isinstance(made, str):
            raise PlatformError("the platform created a line item but did not say its id")
        return _checked(made, "the new line item's id")

    def post_score(self, client_id: str, scopes: tuple[str, ...], line_item: str, body: dict) -> None:
        token = self.token(client_id, scopes)
        self._request("POST", scores_url(line_item), "the score was not taken", json=body,
                      headers={"Authorization": f"Bearer {token}", "Content-Type": SCORE_TYPE})
