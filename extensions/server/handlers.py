"""The server extension's HTTP handlers, under the server's base URL, for the logged-in user only:

- ``GET aifw/session``: the session's job as typed JSON (`aifw.extensions.server.job.SessionJob.view`);
- ``GET aifw/session/log``: the job's log (Slurm's StdOut of the job), as plain text, its last 1 MiB.
"""
from __future__ import annotations

import os

from jupyter_server.base.handlers import APIHandler, JupyterHandler
from jupyter_server.utils import url_path_join
from tornado import web

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


def handlers(base_url: str, reader: JobReader) -> list[tuple[str, type, dict]]:
    return [
        (url_path_join(base_url, "aifw", "session"), SessionHandler, {"reader": reader}),
        (url_path_join(base_url, "aifw", "session", "log"), SessionLogHandler, {"reader": reader}),
    ]
