"""Completion records in the progress service (`aifw-progress`): its signing key and the handlers below, which
`progress_service.make_app` serves beside progress. What a record is and the rule: `completion`; the certificate
as HTML and PDF: `completion_render`; records are kept in the service's database (`progress_store`).

    GET  <prefix>api/completion            the token's user: per course they are in, does the rule hold, what is
                                           missing, and their record's verification id once issued
    GET  <prefix>completion/<course>       the learner's record (hub login): the certificate as HTML, ?format=pdf,
                                           or ?format=jwt (the Open Badges 3.0 credential); issued the first time
                                           the rule holds, the same record ever after; otherwise a page that says
                                           what is missing, or that the course issues no record
    GET  <prefix>verify[?record=...]       PUBLIC (no login): paste a verification id or a credential; valid (to
    POST <prefix>verify                    whom, which course, when, by whom) or refused, and why; ?format=json
    GET  <prefix>.well-known/jwks.json     PUBLIC: the public keys that sign the credentials
    GET  <prefix>keys/<thumbprint>         PUBLIC: one of them as a JWK (a credential's kid)

The key: `completion-key.pem` in the service's state dir (the hub's state dir, progress/, 0700), RSA 2048, made on
the first start, mode 0600, never logged or served; only its public half leaves the process. The public pages
read at most MAX_RECORD_CHARS of a record, do one signature check and one database lookup each, and show only
what the record itself states.
"""
from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import quote, urlsplit

from jupyterhub.services.auth import HubOAuthenticated
from tornado import web

from aifw.names import course_group

from .completion import (MAX_RECORD_CHARS, PublishedCourse, StoredRecord, Verdict, build_record, check, key_url,
                         new_verification_id, public_jwk, sign, standing, thumbprint, verifying_keys)
from .completion_render import certificate_html, certificate_pdf, status_html, verify_html
from .progress import SERVICE_NAME
from .progress_service import _Base
from .service_keys import load_or_make_rsa_key

log = logging.getLogger(SERVICE_NAME)
KEY_FILE = "completion-key.pem"
COURSE = r"([A-Za-z0-9][A-Za-z0-9_.\-]{0,63})"
FORMATS = ("html", "pdf", "jwt")


# --------------------------------------------------------------------------- the key
def load_or_make_key(state_dir: Path) -> bytes:
    """The private key that signs the credentials (PEM): state_dir/completion-key.pem, made there (0600) the first
    time; one others may read is refused (the service does not start)."""
    return load_or_make_rsa_key(state_dir / KEY_FILE, "the key that signs completion records", log)


def completion_settings(state_dir: Path, public_url: str, prefix: str) -> dict:
    """What the handlers below need in the tornado application's settings."""
    pem = load_or_make_key(state_dir)
    jwk = public_jwk(pem)
    base_url = "{0.scheme}://{0.netloc}".format(urlsplit(public_url)) + prefix
    # the kid as the credentials' JOSE header names it (the key's URL), so a JWKS client finds it by kid too
    kid = key_url(base_url, thumbprint(jwk))
    return {"completion_key": pem, "completion_jwks": {"keys": [{**jwk, "kid": kid, "alg": "RS256", "use": "sig"}]},
            "completion_keys": verifying_keys([jwk]), "completion_base_url": base_url}


def completion_routes(prefix: str) -> list[tuple[str, type]]:
    return [
        (prefix + "api/completion", CompletionApiHandler),
        (prefix + rf"completion/{COURSE}", RecordHandler),
        (prefix + "verify", VerifyHandler),
        (prefix + r"\.well-known/jwks\.json", JwksHandler),
        (prefix + r"keys/([A-Za-z0-9_\-]{1,100})", KeyHandler),
    ]


# --------------------------------------------------------------------------- for the learner
class _Learner(_Base):
    async def is_learner(self, user: dict, course: str) -> bool:
        """Whether the user is in the course's learner group (records are for learners; trainers and admins
        earn none)."""
        return user.get("kind") == "user" and user.get("name") in await self.directory.members(
            course_group(course, "learner"))

    def published(self, course: str) -> PublishedCourse | None:
        return self.directory.published(course)

    def standing_of(self, user: str, course: str):
        scores = self.store.scores(course, user).get(user, {})
        return standing(course, self.published(course), scores)

    def record_href(self, course: str) -> str:
        return f"{self.settings['prefix']}completion/{quote(course)}"


class CompletionApiHandler(_Learner):
    async def get(self):
        user = await self.caller()
        if user.get("kind") != "user":
            raise web.HTTPError(403, "this is a learner's own standing: send a user's token")
        courses = {}
        for course in self.settings["config"].courses:
            stored = self.store.record_of(user["name"], course)
            if stored is None and not await self.is_learner(user, course):
                continue
            answer = self.standing_of(user["name"], course).summary()
            answer["record"] = None if stored is None else {"verification_id": stored.record.verification_id,
                                                            "issued": stored.record.issued_text}
            answer["href"] = self.record_href(course) if stored is not None or answer["holds"] else None
            courses[course] = answer
        self.json({"user": user["name"], "courses": courses})


class RecordHandler(HubOAuthenticated, _Learner):
    """The learner's record; HubOAuthenticated for the browser's login redirect, who may have it is ours to say."""

    @property
    def hub_auth(self):
        return self.settings["hub_auth"]

    def check_hub_user(self, model):
        return model

    def page(self, status: int, title: str, headline: str, held=None, hint: str = "") -> None:
        self.set_status(status)
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.finish(status_html(title, held, headline, hint))

    async def get(self, course: str):
        self.known_course(course)
        form = self.get_argument("format", "html")
        if form not in FORMATS:
            raise web.HTTPError(400, f"format must be one of {', '.join(FORMATS)}; got {form!r:.40}")
        user = await self.hub_auth.get_user(self, sync=False)
        if user is None:
            self.redirect(self.get_login_url())
            return
        name = user.get("name", "")
        stored = self.store.record_of(name, course) if user.get("kind") == "user" else None
        if stored is None:
            published = self.published(course)
            title = published.title if published else course
            if published is None or published.completion is None:
                self.page(404, title, "This course issues no completion record: its course file has no completion "
                                      "section. Your progress is still shown in the course navigator.")
                return
            if not await self.is_learner(user, course):
                self.page(403, title, f"Completion records are for the learners of {course}; {name or 'you'} "
                                      f"{'is' if name else 'are'} not in its group {course_group(course, 'learner')}.")
                return
            held = self.standing_of(name, course)
            if not held.holds:
                self.page(403, title, f"No completion record yet: every module's graded part must reach "
                                      f"{held.graded_percent:g}%. Still missing:", held,
                          "Grades come from your trainers' grading runs after you submit a module.")
                return
            record = build_record(published, name, held, verification_id=new_verification_id(),
                                  issued=datetime.now(timezone.utc), base_url=self.settings["completion_base_url"])
            stored = self.store.add_record(StoredRecord(record=record, token=sign(record, self.settings["completion_key"])))
            log.info("completion record %s issued to %s for %s", stored.record.verification_id, name, course)
        record = stored.record
        filename = f"completion-{record.course}-{record.verification_id}"
        if form == "pdf":
            self.set_header("Content-Type", "application/pdf")
            self.set_header("Content-Disposition", f'attachment; filename="{filename}.pdf"')
            self.finish(certificate_pdf(record))
        elif form == "jwt":
            self.set_header("Content-Type", "application/jwt")
            self.set_header("Content-Disposition", f'attachment; filename="{filename}.jwt"')
            self.finish(stored.token)
        else:
            self.set_header("Content-Type", "text/html; charset=utf-8")
            self.finish(certificate_html(record))


# --------------------------------------------------------------------------- for anyone
class _Public(web.RequestHandler):
    """No login, nothing about anyone but what the record shown states."""

    def set_default_headers(self):
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Referrer-Policy", "no-referrer")
        # no script, no frames, forms only back here: what someone pastes can do nothing on the page
        self.set_header("Content-Security-Policy",
                        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'")


class VerifyHandler(_Public):
    def verdict(self, text: str) -> Verdict:
        return check(text, self.settings["completion_keys"], self.settings["store"].record)

    def answer(self, text: str | None) -> None:
        verdict = None if text is None else self.verdict(text)
        if self.get_argument("format", "html") == "json":
            if verdict is None:
                raise web.HTTPError(400, "give the record to check: ?record=<verification id or credential>")
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps(verdict.summary()))
            return
        prefix = self.settings["prefix"]
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.finish(verify_html(verdict, (text or "")[:MAX_RECORD_CHARS], prefix + "verify",
                                prefix + ".well-known/jwks.json"))

    def get(self):
        text = self.get_argument("record", None)
        self.answer(None if text is None else text[:MAX_RECORD_CHARS + 1])

    def post(self):
        if len(self.request.body) > 4 * MAX_RECORD_CHARS:  # form-encoded: up to 3 characters per character
            raise web.HTTPError(413, f"a record has at most {MAX_RECORD_CHARS} characters")
        body = self.request.body.decode("utf-8", "replace")
        if self.request.headers.get("Content-Type", "").startswith("application/json"):
            try:
                text = json.loads(body).get("record")
            except (ValueError, AttributeError):
                text = None
            if not isinstance(text, str):
                raise web.HTTPError(400, 'send {"record": "<verification id or credential>"}')
        else:
            text = self.get_body_argument("record", "")
        self.answer(text[:MAX_RECORD_CHARS + 1])

    def write_error(self, status_code, **kwargs):
        exc = kwargs.get("exc_info", (None, None))[1]
        message = exc.log_message if isinstance(exc, web.HTTPError) and exc.log_message else self._reason
        self.finish({"status": status_code, "message": message})


class JwksHandler(_Public):
    def get(self):
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "max-age=300")
        self.finish(json.dumps(self.settings["completion_jwks"]))


class KeyHandler(_Public):
    def get(self, thumb: str):
        key = next((k for k in self.settings["completion_jwks"]["keys"] if k["kid"].rsplit("/", 1)[-1] == thumb), None)
        if key is None:
            raise web.HTTPError(404, "no such key here")
        self.set_header("Content-Type", "application/jwk+json")
        self.set_header("Cache-Control", "max-age=300")
        self.finish(json.dumps(key))
