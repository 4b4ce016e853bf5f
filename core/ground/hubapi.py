"""JupyterHub's REST API, as a caller outside the hub sees it (the `aifw` commands, the sandbox): one call
with a token, bounded in time, its refusal in the hub's own words.

    >>> hub = HubApi("http://127.0.0.1:8000/hub/api", token)
    >>> hub.call("GET", "/groups/course-aif-foundations-learners")["users"]
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import requests

#: Seconds one call may take. Starting a server answers within the hub's slow_spawn_timeout (10 s).
CALL_TIMEOUT_S = 30.0


class HubApiError(Exception):
    """The hub refused a call (`status` is its HTTP status) or did not answer (`status` 0); the message
    says which call and why, in the hub's words."""

    def __init__(self, status: int, message: str):
        self.status = status
        super().__init__(message)


def path_part(name: str) -> str:
    """A user, group or server name as one URL path segment."""
    return quote(name, safe="")


@dataclass(frozen=True)
class HubApi:
    url: str  # the API's root, e.g. http://127.0.0.1:8000/hub/api
    token: str
    timeout_s: float = CALL_TIMEOUT_S

    def call(self, method: str, path: str, body: Any = None) -> Any:
        """One call; the answer's JSON (None for an empty answer). Raises HubApiError."""
        where = f"{method} {path}"
        try:
            r = requests.request(method, self.url.rstrip("/") + path, timeout=self.timeout_s,
                                 headers={"Authorization": f"token {self.token}"},
                                 data=json.dumps(body) if body is not None else None)
        except requests.RequestException as err:
            raise HubApiError(0, f"the hub at {self.url} did not answer {where}: {err}") from None
        if r.status_code >= 400:
            raise HubApiError(r.status_code, f"the hub refused {where} (HTTP {r.status_code}): {_message(r)}")
        if not r.content:
            return None
        try:
            return r.json()
        except ValueError:
            raise HubApiError(r.status_code, f"the hub answered {where} with something that is not JSON") from None


def _message(r: requests.Response) -> str:
    try:
        data = r.json()
    except ValueError:
        return r.text[:300].strip() or r.reason
    if isinstance(data, dict) and isinstance(data.get("message"), str):
        return data["message"][:500]
    return r.text[:300].strip()
