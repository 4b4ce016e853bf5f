"""JupyterHub's side of LTI 1.3 launches: jupyterhub-ltiauthenticator's authenticator and callback handler,
with this hub's mapping added (`hub.authenticator: lti`; settings from the site in aifw.hub_config.settings).

The library verifies the launch; `AIFLTICallbackHandler` turns any refusal into a page that says why in
words (and creates nothing), then `AIFLTIAuthenticator.authenticate` maps the verified claims
(aifw.hub_config.lti), gets the unix account (aifw.hub_config.lti_accounts), and the handler puts the user
in the course's group and sends them where the link points. With lti.password_logins the hub's login form
keeps PAM logins for local accounts.
"""
from __future__ import annotations

import asyncio
from functools import lru_cache

from jupyterhub import orm
from jupyterhub.auth import PAMAuthenticator
from jupyterhub.utils import url_path_join
from tornado.httpclient import AsyncHTTPClient, HTTPClientError
from ltiauthenticator.lti13.auth import LTI13Authenticator
from ltiauthenticator.lti13.error import ValidationError
from ltiauthenticator.lti13.handlers import LTI13CallbackHandler
from tornado.web import HTTPError
from traitlets import Instance, default

from aifw.site import Site
from aifw.yamlfile import FileProblems

from .lti import Launch, LaunchClaims, LaunchRefused, ModuleTarget, landing_url, plan_launch, refusal_page_text, \
    refusal_words
from .lti_accounts import account_for
from .lti_grades import SERVICE_NAME as GRADES_SERVICE, LaunchRecord, launch_record

LOGIN_INIT_PATH = "lti13/oauth_login"


def refused(status: int, reason: str) -> HTTPError:
    """An HTTP error whose page (JupyterHub's error.html) says in words why the launch was refused."""
    err = HTTPError(status, reason="Launch refused")
    err.jupyterhub_message = refusal_page_text(reason)  # shown by JupyterHub's error page
    return err


class AIFLTICallbackHandler(LTI13CallbackHandler):
    """The platform posts the id_token here (the OIDC redirect_uri)."""

    aifw_launch: Launch | None = None
    aifw_grades_record: LaunchRecord | None = None

    async def post(self):
        try:
            id_token = self.decode_and_validate_launch_request()
        except (ValidationError, HTTPError) as err:
            detail = getattr(err, "log_message", None) or str(err)
            self.log.warning("LTI launch refused: %s", detail)
            raise refused(401 if "audience" in detail.lower() else 400, refusal_words(detail)) from None
        try:
            user = await self.login_user(id_token)
        except LaunchRefused as err:
            self.log.warning("LTI launch refused: %s", err)
            raise refused(403, f"{err}.") from None
        except RuntimeError as err:  # the account could not be made: the admin's to fix
            self.log.error("LTI launch: no account: %s", err)
            raise refused(500, "the hub could not set up your account; the admin finds why in the hub's log.") \
                from None
        if user is None:
            raise refused(403, "this hub does not let that user log in (blocked, or not allowed).")
        launch = self.aifw_launch
        if self.aifw_grades_record is not None:
            await self._record_for_grades(self.aifw_grades_record)
        if launch is not None:
            self._join_group(user, launch.group)
            target = landing_url(launch, self.base_url)
            if target:
                self.log.info("LTI launch: %s opens %s/%s", user.name, launch.course, launch.module.id)
                self.redirect(target)
                return
        await self.redirect_to_next_url(user)

    async def _record_for_grades(self, record: LaunchRecord) -> None:
        """Tell the grades service (aifw.hub_config.lti_grades_service) who this learner is on the platform and
        where the course's grades go. A failure is logged, never the learner's: the login goes on."""
        if record.ags is None:
            self.log.warning("LTI launch: %s: no grade passback for %s: %s", record.user, record.course,
                             record.no_passback)
        service = self.services.get(GRADES_SERVICE)
        if service is None or not service.url or not service.api_token:
            self.log.error("LTI launch: %s: not recorded for grades: the %s service is not running", record.user,
                           GRADES_SERVICE)
            return
        try:
            await AsyncHTTPClient().fetch(
                url_path_join(service.url, service.prefix, "api/launches"), method="POST",
                body=record.model_dump_json(), request_timeout=5, connect_timeout=2,
                headers={"Authorization": f"token {service.api_token}", "Content-Type": "application/json"})
        except (HTTPClientError, OSError) as err:
            detail = getattr(getattr(err, "response", None), "body", b"") or b""
            self.log.error("LTI launch: %s: not recorded for grades (%s %s): their scores cannot go back until "
                           "they launch again", record.user, err, detail[:200].decode(errors="replace"))

    def _join_group(self, user, name: str) -> None:
        """Add the user to the course's group (made at start from the site; added to, never emptied here)."""
        group = orm.Group.find(self.db, name)
        if group is None:
            group = orm.Group(name=name)
            self.db.add(group)
        if group not in user.orm_user.groups:
            user.orm_user.groups.append(group)
            self.db.commit()
            self.log.info("LTI launch: %s joins group %s", user.name, name)


class AIFLTIAuthenticator(LTI13Authenticator):
    """LTI 1.3 launches mapped to this hub's courses, roles and accounts (and PAM logins if the site says)."""

    callback_handler = AIFLTICallbackHandler

    site = Instance(Site, help="The validated site; set by aifw.hub_config.settings from hub.authenticator: lti.").tag(
        config=True)

    @property
    def login_service(self) -> str:  # the library makes it a plain class attribute: "Sign in with <this>"
        return "" if self.site.lti.password_logins else "your course in the LMS"

    @default("custom_html")
    def _custom_html(self):
        if self.site.lti.password_logins:
            return ""
        return ("<div class='text-center'><p>Learners open this hub from their course in the LMS "
                "(the link there signs you in).</p></div>")

    def login_url(self, base_url):
        if self.site.lti.password_logins:
            return url_path_join(base_url, "login")
        return super().login_url(base_url)

    def get_handlers(self, app):
        return [(LOGIN_INIT_PATH, self.login_handler),  # the library uses login_url(""), which is /login here
                (self.callback_url(""), self.callback_handler),
                (self.config_json_url(""), self.config_handler)]

    @property
    def _pam(self) -> PAMAuthenticator:
        if getattr(self, "_pam_instance", None) is None:
            self._pam_instance = PAMAuthenticator(parent=self, open_sessions=False)
        return self._pam_instance

    async def authenticate(self, handler, data=None):
        if not isinstance(handler, AIFLTICallbackHandler):
            # The login form: PAM when the site keeps password logins, else nobody.
            if self.site.lti.password_logins:
                return await self._pam.authenticate(handler, data)
            return None
        lti = self.site.lti
        claims = LaunchClaims.from_id_token(data, lti.username_claim)
        launch = plan_launch(claims, lti, _modules)
        if launch.username is not None and not self.check_blocked_users(launch.username):
            raise LaunchRefused(f"the user {launch.username!r} is blocked on this hub")
        name = await asyncio.to_thread(account_for, launch, lti)
        handler.aifw_launch = launch
        try:
            handler.aifw_grades_record = launch_record(name, launch.course, data)
        except ValueError as err:
            self.log.warning("LTI launch: %s: no grade passback: %s", name, err)
        self.log.info("LTI launch: %s (%s %s) as %s of %s", name, claims.username_claim, claims.username_value,
                      launch.role, launch.course)
        return {"name": name, "aifw_lti": True}

    def check_allowed(self, username, authentication=None):
        """A launch that passed every check may log in; PAM logins need the site's allowed users."""
        if authentication and authentication.get("aifw_lti") is True:
            return True
        return super().check_allowed(username, authentication)


@lru_cache(maxsize=None)
def _modules(course_id: str) -> dict[str, ModuleTarget]:
    """The modules of an installed course by id (aifw.courses.catalogue, read once per hub process)."""
    from aifw.courses.catalogue import find_course

    try:
        course = find_course(course_id)
    except (KeyError, OSError, FileProblems) as err:
        raise LaunchRefused(f"course {course_id!r} is not installed on this hub ({err})") from None
    return {m.id: ModuleTarget(id=m.id, first_notebook=m.notebooks[0], launch_link=m.launch_link)
            for m in course.modules}
