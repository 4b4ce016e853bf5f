"""Grades back to the LMS (LTI Assignment and Grade Services 2.0), pure: what a launch must remember for it, the
messages the tool sends the platform, which line item is the assignment's, and what the publish queue does
with a score. No I/O here: the platform's HTTP is `lti_ags`, the database `lti_grades_store`, the hub service
that holds the tool's key and runs both `lti_grades_service`.

The grades live in a hub service of ours (`aifw-lti-grades`), not in the hub: it holds the tool's private key
(the hub never needs it), has its own database, and runs as the hub's user without needing root; the hub
records launches through its API (`lti_auth`), `aifw lti publish` asks it to publish (aifw.commands.lti).
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from aifw.site import Site
from aifw.site_fields import plain_url

AGS_CLAIM = "https://purl.imsglobal.org/spec/lti-ags/claim/endpoint"
LTI_CLAIM = "https://purl.imsglobal.org/spec/lti/claim/"
_SCOPE = "https://purl.imsglobal.org/spec/lti-ags/scope/"
SCOPE_LINEITEM = _SCOPE + "lineitem"
SCOPE_LINEITEM_READ = _SCOPE + "lineitem.readonly"
SCOPE_SCORE = _SCOPE + "score"
LINE_ITEM_TYPE = "application/vnd.ims.lis.v2.lineitem+json"
LINE_ITEM_CONTAINER_TYPE = "application/vnd.ims.lis.v2.lineitemcontainer+json"
SCORE_TYPE = "application/vnd.ims.lis.v1.score+json"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

SERVICE_NAME = "aifw-lti-grades"
#: The line item of an assignment carries tag TAG_PREFIX + assignment beside resourceId = the assignment.
TAG_PREFIX = "aifw:"
CONFIG_ENV = "AIFW_LTI_GRADES"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def ags_url(value: str) -> str:
    """A platform's AGS URL (line items, a line item): the site's URL rules (https, plain http only on this host)."""
    return plain_url(value, example="https://lms.example.org/lineitems?course=2", query=True,
                     plain_http_refused=lambda u: f"it is plain http on {u.hostname} (https only; http only on this host)")


class AgsEndpoint(_Frozen):
    """The launch's Assignment and Grade Services claim: where the context's line items are, and what the
    platform lets the tool do there."""

    scopes: frozenset[Annotated[str, Field(min_length=1, max_length=255)]] = Field(max_length=20)
    lineitems: str | None = Field(None, max_length=2000)
    lineitem: str | None = Field(None, max_length=2000)

    @field_validator("lineitems", "lineitem")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else ags_url(value)

    def problem(self) -> str | None:
        """Why grades cannot go back through this claim, or None when they can."""
        if SCOPE_SCORE not in self.scopes:
            return "the platform does not let the tool post scores (no score scope in the claim)"
        if self.lineitems is None:
            return "the platform gave no line items URL (lineitems) for the course"
        if not {SCOPE_LINEITEM, SCOPE_LINEITEM_READ} & self.scopes:
            return "the platform does not let the tool read line items (no lineitem scope in the claim)"
        return None

    def token_scopes(self) -> tuple[str, ...]:
        """What the tool asks the token endpoint for: posting scores, and managing line items (or only reading
        them, when that is all the claim allows)."""
        return (SCOPE_LINEITEM if SCOPE_LINEITEM in self.scopes else SCOPE_LINEITEM_READ, SCOPE_SCORE)


def first_error(err: ValidationError) -> str:
    """The first problem of a validation error in words: `where: what`."""
    first = err.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "the value"
    return f"{where}: {first['msg'].removeprefix('Value error, ')}"


def ags_of(token: dict[str, Any]) -> tuple[AgsEndpoint | None, str | None]:
    """(the endpoint, None) when grades can go back through this launch, else (None, why not in words).
    A malformed claim is a reason, never an exception: the launch still logs in."""
    claim = token.get(AGS_CLAIM)
    if claim is None:
        return None, "the launch has no Assignment and Grade Services claim (the link does not take grades)"
    if not isinstance(claim, dict):
        return None, "the Assignment and Grade Services claim is not an object"
    data = {"scopes": claim.get("scope", []), "lineitems": claim.get("lineitems"), "lineitem": claim.get("lineitem")}
    try:
        endpoint = AgsEndpoint.model_validate(data)
    except ValidationError as err:
        return None, f"the Assignment and Grade Services claim is malformed ({first_error(err)})"
    problem = endpoint.problem()
    return (None, problem) if problem else (endpoint, None)


def client_id_of(token: dict[str, Any]) -> str | None:
    """The tool's client id the launch was for: `aud`, or `azp` when aud lists several."""
    aud = token.get("aud")
    if isinstance(aud, str):
        return aud
    if isinstance(aud, list) and len(aud) == 1 and isinstance(aud[0], str):
        return aud[0]
    azp = token.get("azp")
    return azp if isinstance(azp, str) else None


class LaunchRecord(_Frozen):
    """What the grades service keeps of a learner's latest launch into a course: who they are on the platform
    and where the course's grades go (validated again when the service receives it: its API is a boundary)."""

    user: str = Field(min_length=1, max_length=255)  # the hub's user (= the nbgrader student id)
    course: str = Field(min_length=1, max_length=255)
    issuer: str = Field(min_length=1, max_length=1000)
    client_id: str = Field(min_length=1, max_length=255)
    deployment_id: str = Field(min_length=1, max_length=255)
    subject: str = Field(min_length=1, max_length=255)  # the platform's user id (`sub`): the score's userId
    context_id: str = Field(min_length=1, max_length=255)
    resource_link_id: str | None = Field(None, max_length=255)
    ags: AgsEndpoint | None = None
    no_passback: str | None = Field(None, max_length=1000)  # why grades cannot go back, when ags is None


def launch_record(user: str, course: str, token: dict[str, Any]) -> LaunchRecord:
    """The record of a verified launch (the library verified the token; `lti.LaunchClaims` checked the claims
    the login uses). Raises ValueError when even the platform's user id is unusable."""
    ags, why = ags_of(token)
    link = token.get(LTI_CLAIM + "resource_link")
    context = token.get(LTI_CLAIM + "context") or {}
    try:
        return LaunchRecord(
            user=user, course=course, issuer=token.get("iss"), client_id=client_id_of(token),
            deployment_id=token.get(LTI_CLAIM + "deployment_id"), subject=token.get("sub"),
            context_id=context.get("id") if isinstance(context, dict) else None,
            resource_link_id=link.get("id") if isinstance(link, dict) else None, ags=ags, no_passback=why)
    except ValidationError as err:
        raise ValueError(f"the launch cannot be recorded for grades ({first_error(err)})") from None


# --------------------------------------------------------------------------- the messages to the platform
def client_assertion_claims(client_id: str, audience: str, now: int, jti: str) -> dict[str, Any]:
    """The claims of the tool's client assertion (RFC 7523; IMS Security Framework 4.1)."""
    return {"iss": client_id, "sub": client_id, "aud": audience, "iat": now, "exp": now + 300, "jti": jti}


def token_request(assertion: str, scopes: tuple[str, ...]) -> dict[str, str]:
    """The form of the client-credentials grant with a JWT client assertion."""
    return {"grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion, "scope": " ".join(scopes)}


def iso_timestamp(moment: datetime) -> str:
    """ISO 8601 with milliseconds and the offset, as AGS wants: 2026-12-02T07:00:00.123+00:00."""
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds")


def score_body(user_id: str, score: float, maximum: float, timestamp: str) -> dict[str, Any]:
    """A Score for POST <line item>/scores: a graded, completed submission."""
    if maximum <= 0 or score < 0:
        raise ValueError(f"a score of {score:g} out of {maximum:g} cannot be published (maximum must be positive, "
                         "score at least 0)")
    return {"userId": user_id, "scoreGiven": score, "scoreMaximum": maximum, "activityProgress": "Completed",
            "gradingProgress": "FullyGraded", "timestamp": timestamp}


def assignment_tag(assignment: str) -> str:
    return TAG_PREFIX + assignment


def new_line_item(assignment: str, maximum: float, label: str | None = None) -> dict[str, Any]:
    """The line item the tool creates for an assignment (the label is for people only, never matched)."""
    return {"scoreMaximum": maximum, "label": label or assignment, "resourceId": assignment,
            "tag": assignment_tag(assignment)}


def find_line_item(items: Any, assignment: str) -> str | None:
    """The URL (`id`) of the assignment's line item among the platform's: resourceId equal to the assignment,
    else the tag this tool gives it; never by label. Several: the one with both, then the first listed."""
    if not isinstance(items, list):
        return None
    tag = assignment_tag(assignment)
    candidates = [i for i in items if isinstance(i, dict) and isinstance(i.get("id"), str)
                  and (i.get("resourceId") == assignment or i.get("tag") == tag)]
    candidates.sort(key=lambda i: not (i.get("resourceId") == assignment and i.get("tag") == tag))
    return candidates[0]["id"] if candidates else None


def with_query(url: str, **params: str) -> str:
    """`url` with `params` added to its query (a platform's URLs may carry their own query)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


def scores_url(line_item: str) -> str:
    """The scores endpoint of a line item: /scores after its path, its query kept."""
    parts = urlsplit(line_item)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + "/scores"))


# --------------------------------------------------------------------------- the publish queue
State = Literal["pending", "sent"]


class QueuedScore(_Frozen):
    """One learner's score for one assignment, as the service's database holds it."""

    course: str
    assignment: str
    user: str
    score: float
    maximum: float
    timestamp: str  # when this score was first queued: the Score's timestamp, kept through retries
    state: State
    attempts: int = 0
    last_error: str | None = None


def queue_score(previous: QueuedScore | None, course: str, assignment: str, user: str, score: float,
                maximum: float, now: datetime) -> QueuedScore:
    """What the queue holds after a publish asks for this score: the same score already sent stays sent (and
    is not sent again); the same score still pending stays pending with its first timestamp; a new or changed
    score is pending with a new timestamp."""
    if previous is not None and (previous.score, previous.maximum) == (score, maximum):
        return previous
    return QueuedScore(course=course, assignment=assignment, user=user, score=score, maximum=maximum,
                       timestamp=iso_timestamp(now), state="pending")


Outcome = Literal["sent", "unchanged", "queued", "not-launched", "no-passback"]


class LearnerResult(_Frozen):
    """What a publish did with one learner's score, in words."""

    user: str
    outcome: Outcome
    score: float | None = None
    maximum: float | None = None
    detail: str = ""


class PublishRequest(_Frozen):
    """What `aifw lti publish` sends the service: an assignment's scores by hub user (from the gradebook)."""

    course: str = Field(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9][A-Za-z0-9._\-]*$")
    assignment: str = Field(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9][A-Za-z0-9._\-]*$")
    label: str | None = Field(None, max_length=255)
    scores: dict[str, tuple[float, float]] = Field(max_length=100_000)

    @field_validator("scores")
    @classmethod
    def _sane(cls, value: dict[str, tuple[float, float]]) -> dict[str, tuple[float, float]]:
        for user, (score, maximum) in value.items():
            if not user or len(user) > 255:
                raise ValueError(f"{user!r} is not a user name")
            if maximum <= 0 or score < 0 or score != score or maximum != maximum:
                raise ValueError(f"{user}: {score:g} out of {maximum:g} is not a score")
        return value


class PublishReply(_Frozen):
    results: list[LearnerResult]
    queued_elsewhere: int = 0  # scores of other assignments still waiting for the platform


def summary_line(results: list[LearnerResult]) -> str:
    """One line: how many of each outcome."""
    order = ("sent", "unchanged", "queued", "not-launched", "no-passback")
    counts = {o: sum(r.outcome == o for r in results) for o in order}
    return ", ".join(f"{n} {o.replace('-', ' ')}" for o, n in counts.items() if n) or "no scores"


# --------------------------------------------------------------------------- the service's settings
class ServiceConfig(_Frozen):
    """What the service gets from the hub's settings (environment AIFW_LTI_GRADES, JSON)."""

    state_dir: Path
    token_url: str | None
    audience: str | None
    retry_s: int = Field(ge=10)

    def to_env(self) -> str:
        return json.dumps({k: (str(v) if isinstance(v, Path) else v) for k, v in self.model_dump().items()})


def service_port(site: Site) -> int:
    """The service's loopback port (`Site.service_port`: after the formgraders)."""
    return site.service_port("aifw-lti-grades")


def grades_service(site: Site, *, home: str, admin_service: str | None) -> tuple[list[dict], list[dict]]:
    """The JupyterHub-managed service `aifw-lti-grades` and its role (pure), for hub.authenticator: lti.
    Its state (the tool's key, its database) is under the hub's state dir; it runs as the hub's user. Hub
    admins, and the scripts' admin service when there is one, may publish through it."""
    if site.hub.authenticator != "lti" or site.lti is None:
        return [], []
    lti = site.lti
    config = ServiceConfig(state_dir=Path(home) / "state" / "hub" / "lti-grades", token_url=lti.token_url,
                           audience=lti.assertion_audience, retry_s=lti.grades_retry_minutes * 60)
    venv_bin = site.paths.venv / "bin"
    service = {
        "name": SERVICE_NAME,
        "display": False,
        "info": {"what": "LTI grades back to the LMS; the tool's JWKS at jwks.json"},
        "url": f"http://127.0.0.1:{service_port(site)}",
        "command": [str(venv_bin / "python"), "-m", "aifw.hub_config.lti_grades_service"],
        "environment": {"PATH": f"{venv_bin}:/usr/local/bin:/usr/bin:/bin", CONFIG_ENV: config.to_env()},
    }
    role = {"name": f"{SERVICE_NAME}-publishers", "description": "Publish grades to the LMS",
            "scopes": [f"access:services!service={SERVICE_NAME}"], "services": [admin_service] if admin_service else []}
    return [service], ([role] if admin_service else [])
