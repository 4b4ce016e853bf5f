"""The site file's `lti` section: LTI 1.3 launches from one platform (an LMS) and how they map to courses and
accounts. Part of the site model (`aifw.site` re-exports it); validated at load time like every section."""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from .names import PLAIN_PATH, matches
from .site_fields import SlurmName, UnixUser, _Model, plain_url
from .yamlfile import refuse_repeats


LIS_MEMBERSHIP = "http://purl.imsglobal.org/vocab/lis/v2/membership#"
DEFAULT_LEARNER_ROLES = [LIS_MEMBERSHIP + "Learner"]
DEFAULT_TRAINER_ROLES = [LIS_MEMBERSHIP + "Instructor", LIS_MEMBERSHIP + "ContentDeveloper",
                         "http://purl.imsglobal.org/vocab/lis/v2/membership/Instructor#TeachingAssistant"]
#: The id_token claims that may become the username: standard OIDC ones, or `custom_<key>` (a custom parameter
#: of the platform's tool registration, e.g. custom_username=$User.username).
USERNAME_CLAIM = r"^(sub|preferred_username|email|custom_[A-Za-z0-9_]{1,64})$"
#: What a platform's client id and deployment id may look like (opaque ids of letters, digits, '.', '_', ':', '-').
LTI_ID = r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,254}$"
def platform_url(value: str, *, query: bool) -> str:
    """An LTI platform URL: https (http only on this host, for a test platform), a host, no user, no fragment,
    a query only where `query`. Returned as written: the issuer must equal the id_tokens' `iss` exactly."""
    return plain_url(value, example="https://lms.example.org/path", query=query, plain_http_refused=lambda u: (
        f"LTI launches must come over https: use https://{u.netloc}{u.path} (plain http only for a platform on "
        "this host, 127.0.0.1)"))


class LtiCourse(_Model):
    """One course of the platform (an LTI context) linked to a course of this hub."""

    context_id: str = Field(min_length=1, max_length=255, pattern=r"^[^\s]+$",
                            description="The platform's context id of the course (the `id` of the launch's "
                            "https://purl.imsglobal.org/spec/lti/claim/context claim; Moodle: the course id).")
    course: SlurmName = Field(description="Id of the hub's course (one of the site's `courses`) it becomes: its "
                              "learners join course-<id>-learners, its trainers course-<id>-trainers.")


class LtiSettings(_Model):
    """LTI 1.3 launches from one platform (an LMS: Moodle, Open edX, Canvas). Used when hub.authenticator is
    lti. The platform's registration of the tool gives the issuer, the client id and its three endpoints;
    docs/lti.md says where each one is found."""

    issuer: str = Field(description="The platform's issuer (`iss` of its id_tokens), e.g. https://moodle.example.org. "
                        "A launch from another issuer is refused.")
    client_ids: list[Annotated[str, Field(pattern=LTI_ID)]] = Field(
        min_length=1, description="The client id(s) the platform gave the tool; a launch for another audience is refused.")
    deployment_ids: list[Annotated[str, Field(pattern=LTI_ID)]] = Field(
        [], description="Deployment ids of the tool on the platform that may launch ([]: any deployment of the "
        "client ids); a launch from another deployment is refused.")
    authorize_url: str = Field(description="The platform's OIDC authorization endpoint (the browser is sent there "
                               "during the third-party login), e.g. https://moodle.example.org/mod/lti/auth.php.")
    jwks_url: str = Field(description="The platform's public keys (JWKS) that sign its id_tokens, e.g. "
                          "https://moodle.example.org/mod/lti/certs.php.")
    username_claim: str = Field(
        "sub", pattern=USERNAME_CLAIM,
        description="The id_token claim that names the learner: sub (the platform's opaque user id), "
        "preferred_username, email, or custom_<key> (a custom parameter of the tool registration, e.g. "
        "custom_username with the value $User.username). With accounts: create, username_prefix + its value "
        "(lower-cased) must be a unix name, or the launch is refused.")
    username_prefix: str = Field(
        "", pattern=r"^([a-z_][a-z0-9_\-]{0,15})?$",
        description="Put before every launched username (e.g. 'lms-'), so that LMS users never take a name of this "
        "machine's own accounts.")
    courses: list[LtiCourse] = Field(
        min_length=1, description="The platform's courses (contexts) and the hub's course each one is; a launch "
        "from a context not listed is refused.")
    learner_roles: list[Annotated[str, Field(min_length=1, max_length=255)]] = Field(
        DEFAULT_LEARNER_ROLES, min_length=1,
        description="LTI role URIs (the launch's roles claim) that make a learner of the course.")
    trainer_roles: list[Annotated[str, Field(min_length=1, max_length=255)]] = Field(
        DEFAULT_TRAINER_ROLES, min_length=1,
        description="LTI role URIs that make a trainer of the course (a trainer role wins over a learner role); a "
        "launch with neither is refused.")
    accounts: Literal["create", "hook"] = Field(
        "create",
        description="How a launched learner gets a unix account. create: on the first launch the hub (as root) "
        "creates a local account of that name with a home, in the unix group account_group (the sandbox's way); a "
        "later launch reuses it; an existing account outside that group is never taken. hook: the hub runs "
        "account_hook, which maps the learner to an existing account (and may create one); see docs/lti.md.")
    account_group: UnixUser = Field(
        "aifw-lti", description="accounts: create. The unix group of the accounts made by launches; only its "
        "members can be launched into.")
    account_hook: list[str] | None = Field(
        None, min_length=1,
        description="accounts: hook. The command (argv; the first item an absolute path) the hub runs, as the hub's "
        "user, for every valid launch before the login: it gets the launch as JSON on stdin (issuer, subject, "
        "username claim and value, email, name, course, role) and prints the unix account's name; a non-zero exit "
        "refuses the launch, its first line of stderr shown to the learner. It must answer within 10 s.")
    token_url: str | None = Field(
        None, description="The platform's OAuth 2 access token URL (Moodle: .../mod/lti/token.php; Canvas: "
        "https://sso.canvaslms.com/login/oauth2/token; Open edX: the component's Access token URL). Grades go back "
        "to the platform (Assignment and Grade Services, `aifw lti publish`) only when it is set; docs/lti.md.")
    token_audience: str | None = Field(
        None, min_length=1, max_length=1000,
        description="The audience (`aud`) of the tool's signed client assertion, when the platform wants another "
        "one than token_url (its registration says so; e.g. some platforms want their issuer). Default: token_url.")
    grades_retry_minutes: int = Field(
        10, ge=1, le=1440,
        description="How often the grades service (aifw-lti-grades) retries the scores the platform did not take "
        "(it was down, answered 5xx or refused the token); each retry is bounded in requests and time.")
    password_logins: bool = Field(
        False, description="Keep PAM password logins (the hub's login form) for local accounts beside LTI launches: "
        "admins, trainers and the sandbox's demo users. Launches always work.")

    @field_validator("issuer")
    @classmethod
    def _issuer_url(cls, value: str) -> str:
        return platform_url(value, query=False)

    @field_validator("authorize_url", "jwks_url")
    @classmethod
    def _endpoint_url(cls, value: str) -> str:
        return platform_url(value, query=True)

    @field_validator("token_url")
    @classmethod
    def _token_url(cls, value: str | None) -> str | None:
        return None if value is None else platform_url(value, query=True)

    @field_validator("account_hook")
    @classmethod
    def _hook_absolute(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and not matches(PLAIN_PATH, value[0]):
            raise ValueError(f"the hook's first item must be an absolute path of plain characters; got {value[0]!r}")
        return value

    @field_validator("courses")
    @classmethod
    def _contexts_unique(cls, value: list[LtiCourse]) -> list[LtiCourse]:
        refuse_repeats((c.context_id for c in value), "context ids (each links one course)")
        return value

    @model_validator(mode="after")
    def _account_settings(self) -> "LtiSettings":
        if self.accounts == "hook" and self.account_hook is None:
            raise ValueError("accounts: hook needs account_hook (the command that maps a learner to an account)")
        if self.accounts == "create" and self.account_hook is not None:
            raise ValueError("account_hook is used only with accounts: hook (accounts is create); remove it or "
                             "set accounts: hook")
        for key in ("token_audience", "grades_retry_minutes"):
            if key in self.model_fields_set and self.token_url is None:
                raise ValueError(f"{key} is used only with token_url (grades back to the platform); set "
                                 f"token_url or remove {key}")
        if self.accounts == "hook" and "account_group" in self.model_fields_set:
            raise ValueError("account_group is used only with accounts: create (accounts is hook); remove it")
        return self

    @property
    def assertion_audience(self) -> str | None:
        """The `aud` of the client assertion: token_audience, else token_url (None: no grade passback)."""
        return self.token_audience or self.token_url

    def course_of_context(self, context_id: str) -> str | None:
        return next((c.course for c in self.courses if c.context_id == context_id), None)
