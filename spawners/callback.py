"""The hardened hub-side callback through which a starting single-user server reports its port.

batchspawner's stock handler (`/hub/api/batchspawner`) sets ANY attribute the user's server token posts
on the spawner object. This module replaces it, at the same URL so the stock `batchspawner-singleuser`
wrapper keeps working: it accepts only `{"port": <int 1024-65535>}` (and `host`, only when it names the
job's own node), only from the token of a server that is starting and has no port yet.
"""
from __future__ import annotations

import hmac
import json

from jupyterhub import apihandlers
from jupyterhub.apihandlers import APIHandler
from tornado import web

CALLBACK_URL = r"/api/batchspawner"


class PortCallbackHandler(APIHandler):
    @web.authenticated
    async def post(self):
        token = self.get_auth_token() or ""
        user = self.current_user
        spawner = None
        for s in getattr(user, "spawners", {}).values():
            if s.api_token and hmac.compare_digest(str(s.api_token), token):
                spawner = s
                break
        if spawner is None or not hasattr(spawner, "accept_port_report"):
            raise web.HTTPError(403, "this token does not belong to a starting server")
        try:
            data = json.loads(self.request.body or b"{}")
        except ValueError:
            raise web.HTTPError(400, "the body must be JSON") from None
        error = spawner.accept_port_report(data)
        if error:
            raise web.HTTPError(400, error)
        self.set_status(201)
        self.finish(json.dumps({"message": "port accepted"}))


def install() -> None:
    """Replace batchspawner's handler (added on `import batchspawner`) with ours. Idempotent."""
    import batchspawner.api  # noqa: F401  - make sure the stock one is registered before we remove it

    handlers = apihandlers.default_handlers
    handlers[:] = [h for h in handlers if h[0] != CALLBACK_URL]
    handlers.append((CALLBACK_URL, PortCallbackHandler))
