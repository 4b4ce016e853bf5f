"""The hardened hub-side callback through which a starting single-user server reports its port.

batchspawner's stock handler (`/hub/api/batchspawner`) sets ANY attribute the user's server token posts
on the spawner object. This module replaces it, at the same URL so the stock `batchspawner-singleuser`
wrapper keeps working: it accepts only `{"port": <int 1024-65535>}`, only from the token of a server that
is starting and has no port yet, and only when the report comes from the node the job runs on (the
spawner compares the connection's address with the node's address in Slurm). Every refusal is a 400 (or
403 for a token of no starting server) that says why.
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
        error = await spawner.accept_port_report(data, peer_address(self.request))
        if error:
            raise web.HTTPError(400, error)
        self.set_status(201)
        self.finish(json.dumps({"message": "port accepted"}))


def peer_address(request) -> str:
    """The address at the other end of the connection: the host that sent the report ("" when the hub
    cannot tell). X-Forwarded-For and X-Real-Ip, which JupyterHub's server lets set `remote_ip`, are not
    read: a session reaches the hub's API directly (hub_connect_ip), and a header says whatever its sender
    writes."""
    context = getattr(request.connection, "context", None)
    address = getattr(context, "address", None)
    if isinstance(address, tuple) and address and isinstance(address[0], str):
        return address[0]
    return ""


def install() -> None:
    """Replace batchspawner's handler (added on `import batchspawner`) with ours. Idempotent."""
    import batchspawner.api  # noqa: F401  - make sure the stock one is registered before we remove it

    handlers = apihandlers.default_handlers
    handlers[:] = [h for h in handlers if h[0] != CALLBACK_URL]
    handlers.append((CALLBACK_URL, PortCallbackHandler))
