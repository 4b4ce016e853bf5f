"""LTI 1.3 launches, pure: the claims of a verified id_token as typed values, what a launch means on this hub
(course, role, groups, module, username), where it lands, and a refused launch in words.

jupyterhub-ltiauthenticator verifies the launch (signature against the platform's JWKS, issuer, audience,
expiry and age, state and nonce) and checks the claims LTI requires; this module takes its verified id_token
and adds what the library lacks: every claim used here is validated into a typed value first
(`LaunchClaims.from_id_token`), then `plan_launch` maps it with the site's `lti` section. Accounts are made in
`lti_accounts`; JupyterHub's glue is `lti_auth`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Literal
from urllib.parse import parse_qs, quote, urlencode, urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from aifw.names import MEANING, SLUG, UNIX_USER, course_group, matches
from aifw.site import LtiSettings

CLAIM = "https://purl.imsglobal.org/spec/lti/claim/"
#: The custom parameter (tool link setting) or target_link_uri query parameter that names a module.
MODULE_PARAMETER = "module"

Role = Literal["learner", "trainer"]


class LaunchRefused(Exception):
    """A launch this hub does not accept; the message is shown to the learner as it is."""


class _Claims(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class _Context(_Claims):
    id: str = Field(min_length=1, max_length=255)
    title: str = Field("", max_length=1000)


class LaunchClaims(_Claims):
    """The claims of a verified id_token that this hub uses."""

    issuer: str = Field(min_length=1, max_length=1000)
    subject: str = Field(min_length=1, max_length=255)
    deployment_id: str = Field(min_length=1, max_length=255)
    message_type: str = Field(min_length=1, max_length=100)
    roles: list[str] = Field(max_length=100)
    context: _Context | None = None
    target_link_uri: str = Field(max_length=2000)
    custom: dict[str, str] = Field({}, max_length=200)
    email: str | None = Field(None, max_length=320)
    name: str | None = Field(None, max_length=1000)
    username_claim: str
    username_value: str = Field(min_length=1, max_length=255, pattern=r"^[^\x00-\x1f\x7f]+$")

    @classmethod
    def from_id_token(cls, token: Any, username_claim: str) -> "LaunchClaims":
        """Typed claims from the library's verified id_token; LaunchRefused names a claim that is missing or
        has the wrong type."""
        if not isinstance(token, dict):
            raise LaunchRefused("the launch carried no id_token claims")
        custom = token.get(CLAIM + "custom") or {}
        if username_claim.startswith("custom_"):
            value = custom.get(username_claim[len("custom_"):]) if isinstance(custom, dict) else None
        else:
            value = token.get(username_claim)
        if value is None or value == "":
            raise LaunchRefused(f"the platform sent no {username_claim!r} claim, which names you on this hub; "
                                "ask the course's admin to have the platform send it (docs/lti.md)")
        data = {
            "issuer": token.get("iss"), "subject": token.get("sub"),
            "deployment_id": token.get(CLAIM + "deployment_id"), "message_type": token.get(CLAIM + "message_type"),
            "roles": token.get(CLAIM + "roles"), "context": token.get(CLAIM + "context"),
            "target_link_uri": token.get(CLAIM + "target_link_uri"), "custom": custom,
            "email": token.get("email"), "name": token.get("name"),
            "username_claim": username_claim, "username_value": value,
        }
        try:
            return cls.model_validate(data)
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise LaunchRefused(f"the launch's claim {where!r} is not usable: {first['msg']}") from None

    def module_asked(self) -> str | None:
        """The module the link names: the custom parameter `module`, else `module=` in target_link_uri."""
        if MODULE_PARAMETER in self.custom:
            return self.custom[MODULE_PARAMETER]
        values = parse_qs(urlsplit(self.target_link_uri).query).get(MODULE_PARAMETER)
        return values[0] if values else None


@dataclass(frozen=True)
class ModuleTarget:
    """A module of a course, as a deep link needs it (from aifw.courses.catalogue's Module)."""

    id: str
    first_notebook: str
    launch_link: Callable[[str], str]  # base_url -> the hub's spawn URL with the module's partition preset


@dataclass(frozen=True)
class Launch:
    """What an accepted launch means on this hub."""

    claims: LaunchClaims
    course: str
    role: Role
    module: ModuleTarget | None
    #: accounts: create: the unix name the launch gets (prefix + claim value); accounts: hook: None (the hook says)
    username: str | None

    @property
    def group(self) -> str:
        """The JupyterHub group of the course the launch puts the user in (aifw.hub_config.settings)."""
        return course_group(self.course, self.role)

    def hook_input(self) -> dict[str, Any]:
        """What the account hook gets on stdin (docs/lti.md)."""
        c = self.claims
        return {"issuer": c.issuer, "subject": c.subject, "username_claim": c.username_claim,
                "username_value": c.username_value, "email": c.email, "name": c.name, "course": self.course,
                "role": self.role, "context_id": c.context.id if c.context else None}


def role_of(roles: list[str], lti: LtiSettings) -> Role | None:
    """trainer when a trainer role is among `roles`, else learner when a learner role is, else None."""
    if any(r in lti.trainer_roles for r in roles):
        return "trainer"
    if any(r in lti.learner_roles for r in roles):
        return "learner"
    return None


def plan_launch(claims: LaunchClaims, lti: LtiSettings,
                modules: Callable[[str], dict[str, ModuleTarget]]) -> Launch:
    """Map verified claims to a Launch with the site's `lti` section; `modules(course)` gives the course's
    modules by id (read only when the link names one). Raises LaunchRefused saying what is wrong."""
    if claims.message_type != "LtiResourceLinkRequest":
        raise LaunchRefused(f"this hub takes resource link launches; the platform sent a {claims.message_type} "
                            "(content selection is not offered: add the link by hand, with the custom parameter "
                            f"{MODULE_PARAMETER}=<module id> to open a module)")
    if lti.deployment_ids and claims.deployment_id not in lti.deployment_ids:
        raise LaunchRefused(f"the launch comes from deployment {claims.deployment_id!r} of the tool, which this hub "
                            "does not accept; ask the admin to add it to lti.deployment_ids")
    if claims.context is None:
        raise LaunchRefused("the launch names no course (no context claim): open the tool from inside a course")
    course = lti.course_of_context(claims.context.id)
    if course is None:
        raise LaunchRefused(f"the course {claims.context.title or claims.context.id!r} (context id "
                            f"{claims.context.id!r}) is not linked to a course of this hub; ask the admin to add "
                            "it under lti.courses")
    role = role_of(claims.roles, lti)
    if role is None:
        raise LaunchRefused("your role in this course is neither a learner's nor a trainer's role this hub knows "
                            f"(roles sent: {', '.join(claims.roles) or 'none'})")
    module = None
    asked = claims.module_asked()
    if asked is not None:
        if not matches(SLUG, asked):
            raise LaunchRefused(f"the link names module {asked!r}, which is not a module id ({MEANING[SLUG]})")
        known = modules(course)
        if asked not in known:
            raise LaunchRefused(f"the link names module {asked!r}, which course {course!r} does not have; its "
                                f"modules are: {', '.join(sorted(known)) or 'none'}")
        module = known[asked]
    username = None
    if lti.accounts == "create":
        username = lti.username_prefix + claims.username_value.lower()
        if not matches(UNIX_USER, username):
            raise LaunchRefused(f"your {claims.username_claim} {claims.username_value!r} does not make a unix name "
                                f"here ({username!r} is not {MEANING[UNIX_USER]}); ask the admin to pick another "
                                "lti.username_claim or to map accounts with accounts: hook")
    return Launch(claims=claims, course=course, role=role, module=module, username=username)


def landing_url(launch: Launch, base_url: str = "/") -> str | None:
    """Where a launch that names a module lands: the spawn form with the module's partition preset, then the
    module's first notebook in the learner's lab (their copy under ~/courses/<course>/<module>/). None when
    the launch names no module."""
    if launch.module is None:
        return None
    notebook = f"courses/{launch.course}/{launch.module.id}/{launch.module.first_notebook}"
    lab = f"{base_url.rstrip('/')}/hub/user-redirect/lab/tree/{quote(notebook)}"
    return f"{launch.module.launch_link(base_url)}&{urlencode({'next': lab})}"


# What the library's refusals mean, in words a learner can act on (first match of a fragment wins).
_AGAIN = "Go back to your course in the LMS and open the link again."
REFUSALS: list[tuple[tuple[str, ...], str]] = [
    (("signature has expired", "issued too long ago", "not yet valid"),
     "the launch has expired (its token is too old, or dated in the future). " + _AGAIN),
    (("oauth state", "nonce"),
     "this launch was already used, or it did not start on this hub (a replayed or out-of-order launch). " + _AGAIN),
    (("invalid issuer",),
     "the launch comes from a platform this hub does not trust (its issuer is not the one in the site's lti "
     "section)."),
    (("audience", "azp", '"aud"'),
     "the launch is meant for another tool: its audience is not this hub's client id."),
    (("fail to fetch",),
     "the hub could not read the platform's public keys (lti.jwks_url) to check the launch; try again later, or "
     "tell the admin."),
    (("signature verification failed", "signing key", "invalid crypto padding", "segments", "invalid header",
      "invalid payload", "alg value", "algorithm"),
     "the launch's signature does not match the platform's published keys, so it cannot be trusted."),
]


def refusal_words(detail: str) -> str:
    """The learner-facing reason for a launch the library refused (`detail`: its error message)."""
    lowered = detail.lower()
    for fragments, words in REFUSALS:
        if any(f in lowered for f in fragments):
            return words
    return f"the launch is not a valid LTI 1.3 launch ({detail}). " + _AGAIN


def refusal_page_text(reason: str) -> str:
    return f"This launch was refused: {reason} Nothing was created on this hub."
