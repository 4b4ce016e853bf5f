"""Completion records, pure: whether a course's completion rule holds for a learner, the record a learner earns, its
Open Badges 3.0 credential (an OpenBadgeCredential secured as a JWT, signed RS256), and the check of a record
someone shows us. No I/O here: the key file and the database are the service's (`completion_service`,
`progress_store`); the certificate's HTML and PDF are `completion_render`.

- The rule is the course's (course.yaml `completion`, aifw.courses.completion_setting): every counted module's
  graded part at least `graded_percent` percent. Instant checks do not count; only graded scores do.
- The course's settings reach the service in its published catalogue entry (`<share>/<course>/.catalogue.json`),
  read here as untrusted input. A course without a `completion` section issues no record.
- A record, once issued, is the learner's: the service stores it and returns the same one (same verification id,
  same date, same credential) every time, also after a later grade changed.
- The credential follows OB 3.0 §8.2 (JSON Web Token proof format): the JWT payload is the credential with the
  claims iss (issuer.id), jti (id), sub (credentialSubject.id) and nbf (validFrom); the JOSE header holds alg,
  typ and kid, a URL of the service that answers the public key as a JWK. RS256 because OB 3.0 names it as the
  algorithm every verifier supports.
"""
from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any, Callable
from urllib.parse import parse_qs, urlsplit

import jwt
from cryptography.hazmat.primitives import serialization
from jwt.algorithms import RSAAlgorithm
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

from aifw.courses.completion_setting import CompletionSetting
from aifw.courses.sync import CATALOGUE  # the catalogue entry aifw courses publish writes (stdlib-only module)
from aifw.names import NBGRADER_ID, SLURM_NAME, UNIX_USER

from .progress import Score, first_error

ALGORITHM = "RS256"
CONTEXT = ["https://www.w3.org/ns/credentials/v2", "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json"]
#: A verification id: 80 random bits in base32, four groups of four (e.g. K7QD-2M4X-PA6Z-T3NB).
VERIFICATION_ID = r"^[A-Z2-7]{4}(-[A-Z2-7]{4}){3}$"
#: The most characters a record shown to the public verification page may have (a credential is a few KB).
MAX_RECORD_CHARS = 32_000
#: Percentages are compared with this tolerance (80% of 7 points is 5.6 points, not 5.6000000001).
EPSILON = 1e-9

CourseId = Annotated[str, StringConstraints(pattern=SLURM_NAME)]
ModuleId = Annotated[str, StringConstraints(pattern=NBGRADER_ID)]
Title = Annotated[str, StringConstraints(max_length=300)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class _Published(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")  # the publisher writes more than a record needs


# --------------------------------------------------------------------------- the course, as published
class PublishedModule(_Published):
    id: ModuleId
    title: Title = ""
    minutes: int = Field(ge=0, le=1440)


class PublishedCourse(_Published):
    """What the service knows of a course: its published catalogue entry (aifw.courses.publish.catalogue_entry)."""

    id: CourseId
    title: Title
    summary: Annotated[str, StringConstraints(max_length=5000)] = ""
    modules: list[PublishedModule] = Field(min_length=1, max_length=200)
    completion: CompletionSetting | None = None

    @model_validator(mode="after")
    def _counted_modules_exist(self) -> "PublishedCourse":
        if self.completion is not None:
            self.completion.counted([m.id for m in self.modules])
        return self


def read_published(shared_courses: Path, course: str) -> PublishedCourse:
    """The course's published catalogue entry; ValueError says why there is none we can use."""
    path = shared_courses / course / CATALOGUE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValueError(f"{path} does not exist: publish the course (aifw courses publish)") from None
    except OSError as err:
        raise ValueError(f"{path} cannot be read ({err.strerror})") from None
    try:
        published = PublishedCourse.model_validate_json(text)
    except ValidationError as err:
        raise ValueError(f"{path} is not a catalogue entry we can use: {first_error(err)}") from None
    if published.id != course:
        raise ValueError(f"{path} is the entry of course {published.id!r}, not of {course!r}")
    return published


# --------------------------------------------------------------------------- the rule
class ModuleStanding(_Frozen):
    module: str
    title: str
    minutes: int
    percent: float | None  # the graded part in percent; None: not graded yet
    met: bool


class Standing(_Frozen):
    """Where a learner stands with a course's completion rule (`offered`: the course issues records at all)."""

    course: str
    offered: bool
    holds: bool
    graded_percent: float | None
    modules: tuple[ModuleStanding, ...] = ()

    def missing(self) -> list[str]:
        """What is missing, one line per module, in words."""
        if not self.offered:
            return ["this course issues no completion record (its course.yaml has no completion section)"]
        out = []
        for m in self.modules:
            if m.met:
                continue
            name = f"{m.title or m.module} ({m.module})"
            if m.percent is None:
                out.append(f"{name}: not graded yet; {self.graded_percent:g}% of its points are needed")
            else:
                out.append(f"{name}: graded {percent_text(m.percent)}; {self.graded_percent:g}% are needed")
        return out

    def summary(self) -> dict[str, Any]:
        return {"course": self.course, "offered": self.offered, "holds": self.holds,
                "graded_percent": self.graded_percent, "missing": self.missing(),
                "modules": [m.model_dump() for m in self.modules]}


def percent_text(percent: float) -> str:
    """A percentage as people read it: rounded down to a tenth, so that 79.96% never shows as the 80% it misses."""
    return f"{int(percent * 10 + EPSILON) / 10:g}%"


def graded_percent(score: Score | None) -> float | None:
    return None if score is None else round(100 * score.score / score.maximum, 4)


def standing(course_id: str, course: PublishedCourse | None, scores: dict[str, Score]) -> Standing:
    """Whether every counted module's graded part reaches the course's threshold (`scores`: module -> graded
    score of one learner)."""
    if course is None or course.completion is None:
        return Standing(course=course_id, offered=False, holds=False, graded_percent=None)
    rule = course.completion
    counted = set(rule.counted([m.id for m in course.modules]))
    modules = []
    for m in course.modules:
        if m.id not in counted:
            continue
        percent = graded_percent(scores.get(m.id))
        modules.append(ModuleStanding(module=m.id, title=m.title, minutes=m.minutes, percent=percent,
                                      met=percent is not None and percent + EPSILON >= rule.graded_percent))
    return Standing(course=course_id, offered=True, holds=all(m.met for m in modules), graded_percent=rule.graded_percent,
                    modules=tuple(modules))


# --------------------------------------------------------------------------- the record
class RecordModule(_Frozen):
    id: ModuleId
    title: Title
    minutes: int = Field(ge=0)
    percent: float = Field(ge=0, le=100)

    @property
    def percent_text(self) -> str:
        return percent_text(self.percent)


class CompletionRecord(_Frozen):
    """A learner's completion record of a course: what the certificate and the credential state."""

    verification_id: Annotated[str, StringConstraints(pattern=VERIFICATION_ID)]
    learner: Annotated[str, StringConstraints(pattern=UNIX_USER)]
    course: CourseId
    course_title: Title
    course_summary: Annotated[str, StringConstraints(max_length=5000)] = ""
    issued: datetime
    base_url: Annotated[str, StringConstraints(pattern=r"^https?://[^\s/]+/(\S*/)?$", max_length=500)]
    modules: tuple[RecordModule, ...] = Field(min_length=1)
    workload_hours: float = Field(gt=0)
    setting: CompletionSetting  # the rule and the micro-credential fields as they were when it was issued

    @model_validator(mode="after")
    def _utc_seconds(self) -> "CompletionRecord":
        if self.issued.tzinfo is None or self.issued.utcoffset().total_seconds() != 0 or self.issued.microsecond:
            raise ValueError("issued must be a UTC time in whole seconds")
        return self

    @property
    def verify_url(self) -> str:
        return f"{self.base_url}verify?record={self.verification_id}"

    @property
    def issued_text(self) -> str:
        return self.issued.strftime("%Y-%m-%dT%H:%M:%SZ")

    @property
    def issued_day(self) -> str:
        return self.issued.strftime("%-d %B %Y")

    @property
    def issuer_id(self) -> str:
        return f"{self.base_url}issuers/{self.course}"

    @property
    def subject_id(self) -> str:
        """The learner as a URI: the same for every record this service issues them, and no more than their name."""
        return uuid.uuid5(uuid.NAMESPACE_URL, f"{self.base_url}learners/{self.learner}").urn


def new_verification_id() -> str:
    raw = base64.b32encode(secrets.token_bytes(10)).decode()
    return "-".join(raw[i:i + 4] for i in range(0, 16, 4))


def build_record(course: PublishedCourse, learner: str, held: Standing, *, verification_id: str, issued: datetime,
                 base_url: str) -> CompletionRecord:
    """The record of a learner for whom the rule holds (`held`); ValueError if it does not."""
    if course.completion is None or not held.holds:
        raise ValueError(f"the completion rule of {course.id} does not hold for {learner}: " + "; ".join(held.missing()))
    minutes = {m.id: m.minutes for m in course.modules}
    return CompletionRecord(
        verification_id=verification_id, learner=learner, course=course.id, course_title=course.title,
        course_summary=course.summary, issued=issued.astimezone(timezone.utc).replace(microsecond=0),
        base_url=base_url, workload_hours=course.completion.workload(minutes), setting=course.completion,
        modules=tuple(RecordModule(id=m.module, title=m.title, minutes=m.minutes, percent=m.percent or 0.0)
                      for m in held.modules))


# --------------------------------------------------------------------------- the Open Badges 3.0 credential
def _criteria(record: CompletionRecord) -> str:
    s = record.setting
    lines = [f"Every module of the course ({len(record.modules)}) graded at {s.graded_percent:g}% or more.", "",
             "Learning outcomes:", *[f"- {o}" for o in s.learning_outcomes], "",
             f"Notional workload: {record.workload_hours:g} hours.",
             f"Type of assessment: {s.assessment}",
             f"Form of participation: {s.participation.value}.",
             f"Quality assurance: {s.quality_assurance}"]
    if s.supervision:
        lines.append(f"Supervision and identity verification: {s.supervision}")
    if s.ects_credits is not None:
        lines.append(f"ECTS credits: {s.ects_credits:g}.")
    if s.eqf_level is not None:
        lines.append(f"EQF level: {s.eqf_level}.")
    return "\n".join(lines)


def credential(record: CompletionRecord) -> dict[str, Any]:
    """The record as an OB 3.0 OpenBadgeCredential (VC data model 2.0)."""
    s = record.setting
    issuer: dict[str, Any] = {"id": record.issuer_id, "type": ["Profile"], "name": s.issuer.name}
    if s.issuer.url:
        issuer["url"] = s.issuer.url
    if s.issuer.country:
        issuer["address"] = {"type": ["Address"], "addressCountry": s.issuer.country}
    achievement: dict[str, Any] = {
        "id": f"{record.base_url}achievements/{record.course}", "type": ["Achievement"],
        "achievementType": "CertificateOfCompletion", "name": record.course_title,
        "description": record.course_summary or record.course_title, "criteria": {"narrative": _criteria(record)}}
    if s.ects_credits is not None:
        achievement["creditsAvailable"] = s.ects_credits
    if s.eqf_level is not None:
        achievement["alignment"] = [{
            "type": ["Alignment"], "targetName": f"EQF level {s.eqf_level}", "targetFramework": "European Qualifications Framework",
            "targetUrl": "https://europass.europa.eu/en/description-eight-eqf-levels", "targetCode": str(s.eqf_level)}]
    subject: dict[str, Any] = {
        "id": record.subject_id, "type": ["AchievementSubject"],
        "identifier": [{"type": "IdentityObject", "identityType": "name", "hashed": False,
                        "identityHash": record.learner}],
        "achievement": achievement}
    if s.ects_credits is not None:
        subject["creditsEarned"] = s.ects_credits
    return {
        "@context": CONTEXT, "id": record.verify_url, "type": ["VerifiableCredential", "OpenBadgeCredential"],
        "name": f"{record.course_title}: completion record", "issuer": issuer, "validFrom": record.issued_text,
        "credentialSubject": subject,
        "evidence": [{"type": ["Evidence"], "name": m.title or m.id,
                      "description": f"Module {m.id}: {m.minutes} minutes; graded {m.percent_text}"}
                     for m in record.modules],
    }


def public_jwk(private_pem: bytes) -> dict[str, str]:
    """The public half of an RSA key as a JWK (kty, n, e)."""
    public = serialization.load_pem_private_key(private_pem, password=None).public_key()
    return {k: v for k, v in json.loads(RSAAlgorithm.to_jwk(public)).items() if k in ("kty", "n", "e")}


def verifying_keys(jwks: list[dict[str, str]]) -> dict[str, Any]:
    """thumbprint -> public key, for `check`."""
    return {thumbprint(k): RSAAlgorithm.from_jwk(json.dumps(k)) for k in jwks}


def thumbprint(jwk: dict[str, str]) -> str:
    """The key's RFC 7638 thumbprint (SHA-256 of its required members, sorted, without spaces), base64url."""
    canonical = json.dumps({k: jwk[k] for k in ("e", "kty", "n")}, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()


def key_url(base_url: str, kid: str) -> str:
    """Where the service answers the public key of thumbprint `kid` as a JWK (the JOSE header's kid)."""
    return f"{base_url}keys/{kid}"


def sign(record: CompletionRecord, private_pem: bytes) -> str:
    """The credential as a compact JWS (OB 3.0 §8.2)."""
    vc = credential(record)
    payload = {**vc, "iss": vc["issuer"]["id"], "jti": vc["id"], "sub": vc["credentialSubject"]["id"],
               "nbf": int(record.issued.timestamp())}
    kid = key_url(record.base_url, thumbprint(public_jwk(private_pem)))
    return jwt.encode(payload, private_pem, algorithm=ALGORITHM, headers={"kid": kid, "typ": "JWT"})


# --------------------------------------------------------------------------- checking a record someone shows us
class StoredRecord(_Frozen):
    record: CompletionRecord
    token: str


class Verdict(_Frozen):
    valid: bool
    message: str
    record: CompletionRecord | None = None

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"valid": self.valid, "message": self.message}
        if self.record is not None:
            r = self.record
            out.update(verification_id=r.verification_id, learner=r.learner, course=r.course,
                       course_title=r.course_title, issued=r.issued_text, issuer=r.setting.issuer.name)
        return out


def _refused(message: str) -> Verdict:
    return Verdict(valid=False, message=message)


def _valid(stored: StoredRecord, how: str) -> Verdict:
    r = stored.record
    return Verdict(valid=True, record=r, message=(
        f"Valid: issued to {r.learner} for the course {r.course_title} ({r.course}) on {r.issued_day} by "
        f"{r.setting.issuer.name}; verification id {r.verification_id} ({how})."))


def normal_id(text: str) -> str | None:
    """A verification id as a person may type it (spaces or dashes anywhere, lower case), or None when the text is
    none."""
    raw = re.sub(r"[\s\-]+", "", text).upper()
    candidate = "-".join(raw[i:i + 4] for i in range(0, len(raw), 4))
    return candidate if len(raw) == 16 and re.fullmatch(VERIFICATION_ID, candidate) else None


def _id_of(credential_id: object) -> str | None:
    """The verification id in a credential's id (<base>verify?record=ID)."""
    if not isinstance(credential_id, str):
        return None
    values = parse_qs(urlsplit(credential_id).query).get("record", [])
    return normal_id(values[0]) if len(values) == 1 else None


def check(text: str, keys: dict[str, Any], lookup: Callable[[str], StoredRecord | None]) -> Verdict:
    """Whether `text` (a verification id, or a credential's compact JWS) is a record this service issued.
    `keys`: thumbprint -> public key of every key the service signs with; `lookup`: verification id -> the
    stored record. A forged, altered, foreign or unknown record is refused, saying which."""
    text = text.strip()
    if not text:
        return _refused("Paste a record: its verification id (like K7QD-2M4X-PA6Z-T3NB) or the credential (a JWT).")
    if len(text) > MAX_RECORD_CHARS:
        return _refused(f"Not a record of this issuer: it is longer than {MAX_RECORD_CHARS} characters.")
    vid = normal_id(text)
    if vid is not None:
        stored = lookup(vid)
        if stored is None:
            return _refused(f"Unknown: no record with the verification id {vid} was issued here.")
        return _valid(stored, "found by its verification id")
    return _check_token(text, keys, lookup)


def _check_token(token: str, keys: dict[str, Any], lookup: Callable[[str], StoredRecord | None]) -> Verdict:
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        return _refused("Not a record: neither a verification id nor a credential (a JWT of three parts "
                        "separated by dots). Paste the whole of it.")
    kid = header.get("kid")
    key = keys.get(kid.rsplit("/", 1)[-1]) if isinstance(kid, str) else None
    if header.get("alg") != ALGORITHM or key is None:
        return _refused("Refused: this credential was not signed with this issuer's key (forged, or issued "
                        "elsewhere).")
    try:
        claims = jwt.decode(token, key, algorithms=[ALGORITHM], options={"require": ["iss", "jti", "sub", "nbf"]},
                            leeway=60)
    except jwt.InvalidSignatureError:
        return _refused("Refused: the signature does not match the credential: it was altered after it was issued, "
                        "or forged.")
    except jwt.ImmatureSignatureError:
        return _refused("Refused: the credential says it is valid only from a date still to come.")
    except jwt.PyJWTError as err:
        return _refused(f"Refused: not a credential of this issuer ({err}).")
    subject = claims.get("credentialSubject") if isinstance(claims.get("credentialSubject"), dict) else {}
    issuer = claims.get("issuer") if isinstance(claims.get("issuer"), dict) else {}
    try:
        valid_from = datetime.fromisoformat(str(claims.get("validFrom")).replace("Z", "+00:00"))
    except ValueError:
        valid_from = None
    if (claims["iss"] != issuer.get("id") or claims["jti"] != claims.get("id") or claims["sub"] != subject.get("id")
            or valid_from is None or int(valid_from.timestamp()) != claims["nbf"]):
        return _refused("Refused: the credential's claims (iss, jti, sub, nbf) disagree with its content.")
    vid = _id_of(claims["jti"])
    stored = lookup(vid) if vid else None
    if stored is None:
        return _refused("Refused: signed with this issuer's key, but no such record is on file here.")
    if stored.token != token:
        return _refused(f"Refused: this is not the credential issued with the verification id {vid}.")
    return _valid(stored, "its signature checked with the issuer's public key")
