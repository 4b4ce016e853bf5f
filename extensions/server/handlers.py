"""The server extension's HTTP handlers, under the server's base URL, for the logged-in user only:

- ``GET aifw/session``: the session's job as typed JSON (`aifw.extensions.server.job.SessionJob.view`) and
  when an idle cull would come (`aifw.extensions.server.activity.cull_view`);
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

from .activity import Activity
from .courses import courses_handlers
from .reader import JobReader

#: At most this much of the end of the log is sent.
LOG_TAIL_BYTES = 1024 * 1024


class SessionHandler(APIHandler):
    """The session's job, and when an idle cull would come, as JSON. JupyterLab's polls of it are not
    activity (jupyter_server's ``_track_activity``): an open panel alone must not keep a session alive."""

    _track_activity = False

    def initialize(self, reader: JobReader, activity: Activity | None = None) -> None:
        self.reader = reader
        self.activity = activity

    @web.authenticated
    async def get(self) -> None:
        log_url = url_path_join(self.base_url, "aifw", "session", "log")
        view = await self.reader.view(log_url=log_url)
        if self.activity is not None and view.get("in_slurm_job"):
            view.update(self.activity.view())
            view["notes"] = [*view["notes"], *self.activity.notes]
        self.finish(view)


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


#: Seconds each request to the hub may take.
HUB_TIMEOUT_S = 10.0


def _hub_env(env) -> tuple[str, str, str, str] | None:
    api, token, user = (env.get(k, "") for k in ("JUPYTERHUB_API_URL", "JUPYTERHUB_API_TOKEN", "JUPYTERHUB_USER"))
    if not (api.startswith(("http://", "https://")) and token and user):
        return None
    return api, token, user, env.get("JUPYTERHUB_SERVER_NAME", "")


def hub_stop_request(env) -> HTTPRequest | None:
    """The hub API request that stops this server (DELETE .../users/NAME/server[s/SERVER]) with the
    server's own token, from JupyterHub's environment; None when this server was not started by a hub."""
    hub = _hub_env(env)
    if hub is None:
        return None
    api, token, user, server = hub
    path = ["users", quote(user, safe=""), *(["servers", quote(server, safe="")] if server else ["server"])]
    return HTTPRequest(url_path_join(api, *path), method="DELETE", headers={"Authorization": f"token {token}"},
                       request_timeout=HUB_TIMEOUT_S)


def may_stop_itself(scopes, user: str, server: str = "") -> bool:
    """Whether a token with these (expanded) scopes may stop the server `user`/`server`."""
    allowed = {"delete:servers", f"delete:servers!user={user}", f"delete:servers!server={user}/{server}"}
    return any(scope in allowed for scope in scopes if isinstance(scope, str))


class SessionStopHandler(APIHandler):
    """Stops this session through the hub. The hub takes the server's route away and ends the job, and with
    it this server, while it answers: so the token's right to stop its server is checked first (GET
    /hub/api/user lists its scopes), the browser gets 202, and only then is the hub asked to stop it."""

    @web.authenticated
    async def post(self) -> None:
        hub = _hub_env(os.environ)
        if hub is None:
            raise web.HTTPError(409, "This server was not started by JupyterHub: stop it with File > Shut Down.")
        api, token, user, server = hub
        try:
            answer = await AsyncHTTPClient().fetch(HTTPRequest(
                url_path_join(api, "user"), headers={"Authorization": f"token {token}"}, request_timeout=HUB_TIMEOUT_S))
            scopes = json.loads(answer.body).get("scopes") or []
        except (HTTPClientError, OSError, ValueError) as err:
            raise web.HTTPError(502, f"The hub did not answer ({err}). Stop the session from the hub's home "
                                     "page.") from None
        if not may_stop_itself(scopes, user, server):
            raise web.HTTPError(502, "The hub does not let a session stop itself here (its token lacks "
                                     "delete:servers!server). Stop it from the hub's home page.")
        self.set_status(202)
        await self.finish(json.dumps({"stopping": True}))
        try:
            await AsyncHTTPClient().fetch(hub_stop_request(os.environ))
        except (HTTPClientError, OSError) as err:  # the server may be gone before the answer: that is success
            self.log.info("aifw session panel: the hub's answer to the stop did not arrive (%s)", err)


def handlers(base_url: str, reader: JobReader, activity: Activity | None = None) -> list[tuple[str, type, dict]]:
    return [
        (url_path_join(base_url, "aifw", "session"), SessionHandler, {"reader": reader, "activity": activity}),
        (url_path_join(base_url, "aifw", "session", "log"), SessionLogHandler, {"reader": reader}),
        (url_path_join(base_url, "aifw", "session", "stop"), SessionStopHandler, {}),
        *courses_handlers(base_url),  # the course navigator: aifw.extensions.server.courses
    ]
