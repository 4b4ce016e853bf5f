"""The hub service `aifw-lti-grades` (JupyterHub-managed, `python -m aifw.hub_config.lti_grades_service`): it
holds the tool's private key, serves the tool's public JWKS, keeps its own database (launch records, the
publish queue) and sends scores to the platform (through `lti_ags`).

Its own process, not the hub's: the key never enters the hub, the service runs as the hub's user without
needing root, and a slow platform never slows logins. Under the hub's state dir (lti-grades/, mode 0700):
tool-key.pem (RSA 2048, made on first start, mode 0600, never logged) and grades.sqlite (`lti_grades_store`).

    GET  <prefix>               what is where (the hub checks that it answers)
    GET  <prefix>jwks.json      the tool's public keys, for the platform (no login)
    POST <prefix>api/launches   a launch record, from the hub only (the service's own token, which only the hub
                                and this service know)
    POST <prefix>api/publish    an assignment's scores (lti_grades.PublishRequest) -> lti_grades.PublishReply;
                                for tokens with access to this service (hub admins, the scripts' admin service)

Every `retry_s` (the site's lti.grades_retry_minutes) the scores still pending are sent again, at most
MAX_ROWS at a time and within FLUSH_BUDGET_S.
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import os
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import serialization
from jwt.algorithms import RSAAlgorithm
from pydantic import ValidationError
from tornado import ioloop, web

from .lti_ags import AgsClient, PlatformError, ToolKey
from .lti_grades import (CONFIG_ENV, LaunchRecord, LearnerResult, PublishReply, PublishRequest, QueuedScore,
                         ServiceConfig, first_error, queue_score, score_body)
from .lti_grades_store import GradesStore
from .service_keys import load_or_make_rsa_key

log = logging.getLogger("aifw-lti-grades")
KEY_FILE = "tool-key.pem"
DB_FILE = "grades.sqlite"
MAX_ROWS = 1000
FLUSH_BUDGET_S = 120
MAX_BODY = 16 << 20


# --------------------------------------------------------------------------- the key
def load_or_make_key(state_dir: Path) -> ToolKey:
    """The tool's key: read from state_dir/tool-key.pem, made there (0600) on first start."""
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(state_dir, 0o700)
    pem = load_or_make_rsa_key(state_dir / KEY_FILE, "the tool's private key", log)
    public = serialization.load_pem_private_key(pem, password=None).public_key()
    der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return ToolKey(pem=pem, kid=hashlib.sha256(der).hexdigest()[:16])


def jwks(key: ToolKey) -> dict:
    public = serialization.load_pem_private_key(key.pem, password=None).public_key()
    jwk = json.loads(RSAAlgorithm.to_jwk(public))
    jwk.update(kid=key.kid, alg="RS256", use="sig")
    return {"keys": [jwk]}


# --------------------------------------------------------------------------- publishing
class Publisher:
    """Publishes and retries, one run at a time (a lock), in a worker thread (its HTTP is blocking)."""

    def __init__(self, config: ServiceConfig, store: GradesStore, key: ToolKey):
        self.config = config
        self.store = store
        self.client = (AgsClient(token_url=config.token_url, audience=config.audience, key=key)
                       if config.token_url else None)
        self.lock = threading.Lock()

    def publish(self, request: PublishRequest) -> PublishReply:
        with self.lock:
            now = datetime.now(timezone.utc)
            results: dict[str, LearnerResult] = {}
            for user, (score, maximum) in sorted(request.scores.items()):
                record = self.store.launch(user, request.course)
                if record is None:
                    results[user] = LearnerResult(
                        user=user, outcome="not-launched", score=score, maximum=maximum,
                        detail="never opened the course from the LMS: the hub has no platform user id for them")
                    continue
                if record.ags is None:
                    results[user] = LearnerResult(user=user, outcome="no-passback", score=score, maximum=maximum,
                                                  detail=f"their last launch cannot take grades: {record.no_passback}")
                    continue
                previous = self.store.score(request.course, request.assignment, user)
                queued = queue_score(previous, request.course, request.assignment, user, score, maximum, now)
                if queued.state == "sent":
                    results[user] = LearnerResult(user=user, outcome="unchanged", score=score, maximum=maximum,
                                                  detail=f"the platform has this score since {queued.timestamp}")
                    continue
                if queued is not previous:
                    self.store.put(queued)
            pending = self.store.pending(MAX_ROWS, request.course, request.assignment)
            errors = self._send(pending, request.label)
            for row in pending:
                error = errors.get(_key(row))
                results[row.user] = LearnerResult(
                    user=row.user, outcome="sent" if error is None else "queued", score=row.score,
                    maximum=row.maximum, detail="" if error is None else
                    f"{error}; queued: sent on the next publish or the service's retry (every "
                    f"{self.config.retry_s // 60} min)")
            return PublishReply(results=[results[u] for u in sorted(results)],
                                queued_elsewhere=self.store.count_pending() - sum(
                                    r.outcome == "queued" for r in results.values()))

    def retry(self) -> None:
        """The periodic retry: every pending score (bounded), once."""
        if not self.lock.acquire(blocking=False):
            return  # a publish is running; it sends this assignment's, the next retry the rest
        try:
            pending = self.store.pending(MAX_ROWS)
            if pending:
                errors = self._send(pending, None)
                log.info("retry: %d sent, %d still queued", len(pending) - len(errors), len(errors))
        except Exception:  # in a worker thread: said in the log, tried again at the next interval
            log.exception("retry failed")
        finally:
            self.lock.release()

    def _send(self, rows: list[QueuedScore], label: str | None) -> dict[tuple[str, str, str], str]:
        """Send `rows`; returns (course, assignment, user) -> why not, for the rows still pending (their error
        and attempts kept)."""
        errors: dict[tuple[str, str, str], str] = {}

        def fail(row: QueuedScore, why: str) -> None:
            errors[_key(row)] = why
            self.store.put(row.model_copy(update={"attempts": row.attempts + 1, "last_error": why}))

        if self.client is None:
            for row in rows:
                fail(row, "the site's lti section has no token_url, so grades cannot go to the platform")
            return errors
        groups: dict[tuple, list[tuple[QueuedScore, LaunchRecord]]] = {}
        for row in rows:
            record = self.store.launch(row.user, row.course)
            if record is None or record.ags is None:
                fail(row, "the learner's last launch cannot take grades")
                continue
            key = (record.client_id, record.ags.lineitems, record.ags.token_scopes(), row.course, row.assignment)
            groups.setdefault(key, []).append((row, record))
        deadline = time.monotonic() + FLUSH_BUDGET_S
        for (client_id, lineitems, scopes, _, assignment), items in groups.items():
            down: str | None = None
            try:
                if time.monotonic() > deadline:
                    raise PlatformError("not tried: this run took too long")
                line = self.client.line_item(client_id, scopes, lineitems, assignment,
                                             max(row.maximum for row, _ in items), label)
            except PlatformError as err:
                for row, _ in items:
                    fail(row, str(err))
                continue
            for row, record in items:
                if down is None and time.monotonic() > deadline:
                    down = "not tried: this run took too long"
                if down is not None:
                    fail(row, down)
                    continue
                try:
                    self.client.post_score(client_id, scopes, line,
                                           score_body(record.subject, row.score, row.maximum, row.timestamp))
                except PlatformError as err:
                    fail(row, str(err))
                    if err.down:
                        down = str(err)
                    continue
                self.store.put(row.model_copy(update={"state": "sent", "attempts": row.attempts + 1,
                                                      "last_error": None}))
        return errors


def _key(row: QueuedScore) -> tuple[str, str, str]:
    return row.course, row.assignment, row.user


# --------------------------------------------------------------------------- HTTP
def _bearer(handler: web.RequestHandler) -> str:
    value = handler.request.headers.get("Authorization", "")
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() in ("token", "bearer") else ""


class _Json(web.RequestHandler):
    def write_error(self, status_code, **kwargs):
        exc = kwargs.get("exc_info", (None, None))[1]
        message = exc.log_message if isinstance(exc, web.HTTPError) and exc.log_message else self._reason
        self.finish({"status": status_code, "message": message})  # JupyterHub's own shape of an error

    def body_as(self, model):
        if len(self.request.body) > MAX_BODY:
            raise web.HTTPError(413, "the request is too large")
        try:
            return model.model_validate_json(self.request.body)
        except ValidationError as err:
            raise web.HTTPError(400, first_error(err)) from None


class InfoHandler(web.RequestHandler):
    """The service's root (the hub checks it answers at start): what is where."""

    def get(self):
        self.finish({"service": "aifw-lti-grades", "jwks": self.settings["prefix"] + "jwks.json",
                     "token_url": self.settings["publisher"].config.token_url})


class JwksHandler(web.RequestHandler):
    def get(self):
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "max-age=300")
        self.finish(json.dumps(self.settings["jwks"]))


class LaunchHandler(_Json):
    def post(self):
        if not hmac.compare_digest(_bearer(self).encode(), self.settings["hub_token"].encode()):
            raise web.HTTPError(403, "launches are recorded by the hub only")
        record = self.body_as(LaunchRecord)
        self.settings["store"].record_launch(record)
        log.info("launch recorded: %s in %s (%s)", record.user, record.course,
                 "grades can go back" if record.ags else f"no grade passback: {record.no_passback}")
        self.set_status(204)


class PublishHandler(_Json):
    async def post(self):
        auth = self.settings["hub_auth"]
        token = _bearer(self)
        model = await auth.user_for_token(token, sync=False) if token else None
        if model is None or not auth.check_scopes(auth.access_scopes, model):
            raise web.HTTPError(403, f"publishing grades needs a token with access to the {auth.access_scopes} "
                                "service (a hub admin's, or the scripts' admin token)")
        request = self.body_as(PublishRequest)
        who = model.get("name") or model.get("kind")
        log.info("publish %s/%s (%d scores) for %s", request.course, request.assignment, len(request.scores), who)
        reply = await asyncio.get_running_loop().run_in_executor(None, self.settings["publisher"].publish, request)
        self.set_header("Content-Type", "application/json")
        self.finish(reply.model_dump_json())


def make_app(config: ServiceConfig, prefix: str, hub_token: str, hub_auth) -> tuple[web.Application, Publisher]:
    key = load_or_make_key(config.state_dir)
    store = GradesStore(config.state_dir / DB_FILE)
    publisher = Publisher(config, store, key)
    app = web.Application([
        (prefix, InfoHandler),
        (prefix + "jwks.json", JwksHandler),
        (prefix + "api/launches", LaunchHandler),
        (prefix + "api/publish", PublishHandler),
    ], jwks=jwks(key), store=store, publisher=publisher, hub_token=hub_token, hub_auth=hub_auth, prefix=prefix)
    return app, publisher


def main() -> None:
    from jupyterhub.services.auth import HubAuth

    logging.basicConfig(level=logging.INFO, format="[%(levelname).1s %(asctime)s aifw-lti-grades] %(message)s")
    config = ServiceConfig.model_validate_json(os.environ[CONFIG_ENV])
    prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/services/aifw-lti-grades/")
    url = urlsplit(os.environ["JUPYTERHUB_SERVICE_URL"])
    app, publisher = make_app(config, prefix, os.environ["JUPYTERHUB_API_TOKEN"], HubAuth(cache_max_age=60))
    app.listen(url.port, address=url.hostname)
    loop = ioloop.IOLoop.current()

    def retry():
        loop.run_in_executor(None, publisher.retry)

    ioloop.PeriodicCallback(retry, config.retry_s * 1000).start()
    log.info("listening on %s:%s%s; JWKS at %sjwks.json; token URL %s", url.hostname, url.port, prefix, prefix,
             config.token_url or "not set (no grade passback)")
    loop.start()


if __name__ == "__main__":
    main()
