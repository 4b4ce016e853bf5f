"""The server extension's HTTP handlers, under the server's base URL, for the logged-in user only:

- ``GET aifw/session``: the session's job as typed JSON (`aifw.extensions.server.job.SessionJob.view`);
- ``GET aifw/session/log``: the job's log (Slurm's StdOut of the job), as plain text, its last 1 MiB;
- ``POST aifw/session/stop``: stop this session through the hub, as its owner would from the hub's page
  (the server's own token may stop its own server: hub_config's `server_token_scopes`), so that the hub
  cancels the job and knows at once that the server is gone.
"""
from __future__ import annotations

import json
import os
from urllib.parse import quote

from jupyter_server.base.handlers import APIHandler, JupyterHandler
from jupyter_server.utils import url_path_join
from tornado import web
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from .reader import JobReader

#: At most this much of the end of the log is sent.
LOG_TAIL_BYTES = 1024 * 1024


class SessionHandler(APIHandler):
    """The session's job, as JSON."""

    def initialize(self, reader: JobReader) -> None:
        self.reader = reader

    @web.authenticated
    async def get(self) -> None:
        log_url = url_path_join(self.base_url, "aifw", "session", "log")
        self.finish(await self.reader.view(log_url=log_url))


class SessionLogHandler(JupyterHandler):
    """The job's log file, the last `LOG_TAIL_BYTES` of it, as text (an API handler would answer JSON)."""

    def initialize(self, reader: JobReader) -> None:
        self.reader = reader

    @web.authenticated
    async def get(self) -> None:
        job = await self.reader.job()
        if job is None:
            raise web.HTTPError(404, "This server does not run in a Slurm job: there is no job log.")
        if not job.log_path:
            raise web.HTTPError(404, f"Slurm has not said where job {job.job_id} writes its log.")
        try:
            with open(job.log_path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                f.seek(max(0, size - LOG_TAIL_BYTES))
                data = f.read(LOG_TAIL_BYTES)
        except OSError as err:
            raise web.HTTPError(404, f"The job's log {job.log_path} cannot be read: {err.strerror}.") from None
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.set_header("Content-Disposition", "inline")
        self.set_header("X-Content-Type-Options", "nosniff")
        self.finish(data)


#: How long the stop request waits for the hub. The hub cancels the job while it answers, so the server
#: may be ending before the answer comes; then the browser's request simply ends.
HUB_STOP_TIMEOUT_S = 10.0


def hub_stop_request(env) -> HTTPRequest | None:
    """The hub API request that stops this server (DELETE .../users/NAME/server[s/SERVER]) with the
    server's own token, from JupyterHub's environment; None when this server was not started by a hub."""
    api, token, user = (env.get(k, "") for k in ("JUPYTERHUB_API_URL", "JUPYTERHUB_API_TOKEN", "JUPYTERHUB_USER"))
    if not (api.startswith(("http://", "https://")) and token and user):
        return None
    server = env.get("JUPYTERHUB_SERVER_NAME", "")
    path = ["users", quote(user, safe=""), *(["servers", quote(server, safe="")] if server else ["server"])]
    return HTTPRequest(url_path_join(api, *path), method="DELETE", headers={"Authorization": f"token {token}"},
                       request_timeout=HUB_STOP_TIMEOUT_S)


class SessionStopHandler(APIHandler):
    """Stops this session through the hub (202: the hub is stopping it)."""

    @web.authenticated
    async def post(self) -> None:
        request = hub_stop_request(os.environ)
        if request is None:
            raise web.HTTPError(409, "This server was not started by JupyterHub: stop it with File > Shut Down.")
        try:
            await AsyncHTTPClient().fetch(request)
        except HTTPClientError as err:
            if err.code != 599:  # 599: no answer in time; the hub is stopping it meanwhile
                body = err.response.body.decode(errors="replace")[:300] if err.response else ""
                self.log.warning("aifw session panel: the hub refused to stop this server: %s %s", err.code, body)
                raise web.HTTPError(502, f"The hub refused to stop this session ({err.code}): {body}. Stop it "
                                         "from the hub's home page.") from None
        except OSError as err:
            raise web.HTTPError(502, f"The hub did not answer ({err}). Stop the session from the hub's home "
                                     "page.") from None
        self.set_status(202)
        self.finish(json.dumps({"stopping": True}))


def handlers(base_url: str, reader: JobReader) -> list[tuple[str, type, dict]]:
    return [
        (url_path_join(base_url, "aifw", "session"), SessionHandler, {"reader": reader}),
        (url_path_join(base_url, "aifw", "session", "log"), SessionLogHandler, {"reader": reader}),
        (url_path_join(base_url, "aifw", "session", "stop"), SessionStopHandler, {}),
    ]
