"""A real LTI 1.3 platform (the LMS side) for the tests, on 127.0.0.1: the OIDC third-party login, id_tokens
signed with its RSA key (PyJWT, cryptography), its JWKS, and each kind of bad launch on request.

    platform = Platform(port=18090, redirect_uris=[hub + "/hub/lti13/oauth_callback"]).start()
    hint = platform.prepare(LaunchSpec(user="ada", context_id="ctx-1", custom={"module": "m1-first-steps"}))
    browser/requests: GET platform.launch_url(hint) -> the tool's login initiation -> GET /auth here ->
    an auto-posting form with id_token and state to the tool's redirect_uri

Grades (Assignment and Grade Services): every launch carries the AGS claim of its context (LaunchSpec.ags:
"ok", "malformed", "none"); POST /token is the client-credentials grant, which verifies the tool's client
assertion against the tool's JWKS (`tool_jwks_url`, fetched with PyJWT) and grants the AGS scopes;
/ags/<context>/lineitems lists (filtered by resource_id, tag) and creates line items; POST
/ags/<context>/lineitems/<n>/scores records a score (`Platform.scores`). `fail_scores = 503` makes the score
endpoint fail until it is set back to None.

The routes are a table (`Platform.routes`, exact paths) with the AGS paths under /ags/ beside it.
"""
from __future__ import annotations

import html
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
import requests
import yaml
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

CLAIM = "https://purl.imsglobal.org/spec/lti/claim/"
LEARNER = "http://purl.imsglobal.org/vocab/lis/v2/membership#Learner"
INSTRUCTOR = "http://purl.imsglobal.org/vocab/lis/v2/membership#Instructor"
KEY_ID = "aifw-test-platform-1"
#: The bad launches the platform can make (LaunchSpec.fault).
FAULTS = ("expired", "wrong-signature", "wrong-audience", "wrong-issuer")
AGS_CLAIM = "https://purl.imsglobal.org/spec/lti-ags/claim/endpoint"
AGS_SCOPE = "https://purl.imsglobal.org/spec/lti-ags/scope/"
AGS_SCOPES = (AGS_SCOPE + "lineitem", AGS_SCOPE + "lineitem.readonly", AGS_SCOPE + "score",
              AGS_SCOPE + "result.readonly")
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@dataclass
class LaunchSpec:
    """One launch the platform will make: who, from which course, with which roles and link."""

    user: str
    context_id: str
    roles: list[str] = field(default_factory=lambda: [LEARNER])
    custom: dict[str, str] = field(default_factory=dict)
    target_link_uri: str | None = None  # default: the tool's base URL
    fault: str | None = None  # one of FAULTS
    ags: str = "ok"  # the AGS claim: ok, malformed (a lineitems URL that is no http(s) URL), none

    def __post_init__(self):
        if self.fault is not None and self.fault not in FAULTS:
            raise ValueError(f"unknown fault {self.fault!r}; the platform makes {', '.join(FAULTS)}")
        if self.ags not in ("ok", "malformed", "none"):
            raise ValueError(f"unknown ags {self.ags!r}: ok, malformed or none")


def _rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class Platform:
    """The platform: its issuer is http://127.0.0.1:<port>, its client id names the tool."""

    def __init__(self, *, port: int, redirect_uris: list[str], tool_login_url: str, tool_url: str,
                 client_id: str = "aifw-test-tool", deployment_id: str = "aifw-test-deployment",
                 tool_jwks_url: str | None = None):
        self.port = port  # 0: any free port, known once started
        self.client_id = client_id
        self.deployment_id = deployment_id
        self.redirect_uris = list(redirect_uris)
        self.tool_login_url = tool_login_url
        self.tool_url = tool_url
        self.key = _rsa_key()
        self.rogue_key = _rsa_key()  # signs the wrong-signature launches, under the real key's id
        self.pending: dict[str, LaunchSpec] = {}
        self.issued: list[dict] = []  # every id_token's claims, in order
        self.refused: list[str] = []  # why /auth refused a request
        self.tool_jwks_url = tool_jwks_url  # where the token endpoint fetches the tool's public keys
        self.tokens: dict[str, set[str]] = {}  # access token -> its scopes
        self.token_refusals: list[str] = []  # why /token refused a request
        self.line_items: dict[str, dict] = {}  # id (URL) -> the line item, with "_context"
        self.scores: list[dict] = []  # every score taken, with "_line_item"
        self.fail_scores: int | None = None  # an HTTP status the score endpoint answers with instead
        self._jtis: set[str] = set()
        self._lock = threading.Lock()
        self.routes: dict[tuple[str, str], Callable[[BaseHTTPRequestHandler, dict[str, str]], None]] = {
            ("GET", "/jwks.json"): self._jwks,
            ("GET", "/auth"): self._auth,
            ("POST", "/auth"): self._auth,
            ("GET", "/launch"): self._launch,
            ("POST", "/token"): self._token,
        }
        self._server: ThreadingHTTPServer | None = None

    # -- the endpoints a tool registration names ----------------------------------------------
    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def authorize_url(self) -> str:
        return f"{self.issuer}/auth"

    @property
    def jwks_url(self) -> str:
        return f"{self.issuer}/jwks.json"

    @property
    def token_url(self) -> str:
        return f"{self.issuer}/token"

    def lineitems_url(self, context_id: str) -> str:
        return f"{self.issuer}/ags/{context_id}/lineitems"

    def site_section(self, courses: list[dict[str, str]], **extra) -> dict:
        """The site file's `lti` section that registers this platform (its token URL: grades go back)."""
        return {"issuer": self.issuer, "client_ids": [self.client_id], "deployment_ids": [self.deployment_id],
                "authorize_url": self.authorize_url, "jwks_url": self.jwks_url, "token_url": self.token_url,
                "courses": courses, **extra}

    # -- launches -----------------------------------------------------------------------------
    def prepare(self, spec: LaunchSpec) -> str:
        """Register a launch; returns its hint (the login_hint the tool sends back)."""
        hint = uuid.uuid4().hex
        self.pending[hint] = spec
        return hint

    def launch_url(self, hint: str) -> str:
        """A link on the platform's course page: it sends the browser to the tool's login initiation."""
        return f"{self.issuer}/launch?{urlencode({'hint': hint})}"

    def initiation_url(self, hint: str) -> str:
        spec = self.pending[hint]
        return f"{self.tool_login_url}?" + urlencode({
            "iss": self.issuer, "login_hint": hint, "lti_message_hint": hint, "client_id": self.client_id,
            "lti_deployment_id": self.deployment_id, "target_link_uri": spec.target_link_uri or self.tool_url})

    def id_token(self, spec: LaunchSpec, nonce: str) -> str:
        now = int(time.time())
        claims = {
            "iss": self.issuer if spec.fault != "wrong-issuer" else "http://127.0.0.1:1/another-platform",
            "aud": self.client_id if spec.fault != "wrong-audience" else "another-tool",
            "sub": spec.user, "iat": now, "exp": now + 300, "nonce": nonce,
            "name": spec.user.title(), "email": f"{spec.user}@platform.test",
            CLAIM + "version": "1.3.0",
            CLAIM + "deployment_id": self.deployment_id,
            CLAIM + "message_type": "LtiResourceLinkRequest",
            CLAIM + "roles": list(spec.roles),
            CLAIM + "resource_link": {"id": f"link-{spec.context_id}"},
            CLAIM + "target_link_uri": spec.target_link_uri or self.tool_url,
            CLAIM + "context": {"id": spec.context_id, "label": spec.context_id, "title": f"Course {spec.context_id}"},
            CLAIM + "custom": dict(spec.custom),
        }
        if spec.ags != "none":
            claims[AGS_CLAIM] = {"scope": list(AGS_SCOPES[:3]), "lineitems": self.lineitems_url(spec.context_id)
                                 if spec.ags == "ok" else "javascript:alert(1)"}
        if spec.fault == "expired":
            claims.update(iat=now - 3600, exp=now - 3000)
        self.issued.append(claims)
        key = self.rogue_key if spec.fault == "wrong-signature" else self.key
        return jwt.encode(claims, key, algorithm="RS256", headers={"kid": KEY_ID})

    # -- HTTP ---------------------------------------------------------------------------------
    def _jwks(self, req: BaseHTTPRequestHandler, args: dict[str, str]) -> None:
        jwk = json.loads(RSAAlgorithm.to_jwk(self.key.public_key()))
        jwk.update(kid=KEY_ID, alg="RS256", use="sig")
        _send(req, 200, json.dumps({"keys": [jwk]}), "application/json")

    def _launch(self, req: BaseHTTPRequestHandler, args: dict[str, str]) -> None:
        hint = args.get("hint", "")
        if hint not in self.pending:
            return _send(req, 404, "no such launch")
        req.send_response(302)
        req.send_header("Location", self.initiation_url(hint))
        req.end_headers()

    def _auth(self, req: BaseHTTPRequestHandler, args: dict[str, str]) -> None:
        """The OIDC authentication request: check it as a platform does, answer with an auto-posting form."""
        expected = {"response_type": "id_token", "scope": "openid", "response_mode": "form_post", "prompt": "none",
                    "client_id": self.client_id}
        wrong = [k for k, v in expected.items() if args.get(k) != v]
        if args.get("redirect_uri") not in self.redirect_uris:
            wrong.append("redirect_uri")
        spec = self.pending.get(args.get("login_hint", ""))
        if spec is None or args.get("lti_message_hint") != args.get("login_hint"):
            wrong.append("login_hint")
        if not args.get("nonce") or not args.get("state"):
            wrong.append("nonce/state")
        if wrong:
            self.refused.append(", ".join(wrong))
            return _send(req, 400, f"invalid authentication request: {', '.join(wrong)}")
        token = self.id_token(spec, args["nonce"])
        _send(req, 200, auto_post_form(args["redirect_uri"], {"id_token": token, "state": args["state"]}))

    # -- Assignment and Grade Services ---------------------------------------------------------
    def _token(self, req: BaseHTTPRequestHandler, args: dict[str, str]) -> None:
        """The client-credentials grant with a JWT client assertion (RFC 7523), as an LTI platform checks it."""
        def refuse(status: int, error: str, why: str) -> None:
            self.token_refusals.append(why)
            _send(req, status, json.dumps({"error": error, "error_description": why}), "application/json")

        if args.get("grant_type") != "client_credentials" or args.get("client_assertion_type") != ASSERTION_TYPE:
            return refuse(400, "unsupported_grant_type", "not a client-credentials grant with a JWT assertion")
        assertion = args.get("client_assertion", "")
        if self.tool_jwks_url is None:
            return refuse(401, "invalid_client", "no JWKS URL registered for the tool")
        try:
            key = jwt.PyJWKClient(self.tool_jwks_url, cache_keys=False, timeout=10).get_signing_key_from_jwt(assertion)
            claims = jwt.decode(assertion, key.key, algorithms=["RS256"], audience=self.token_url,
                                issuer=self.client_id, options={"require": ["exp", "iat", "jti", "sub"]})
        except jwt.PyJWTError as err:
            return refuse(401, "invalid_client", f"the client assertion does not verify: {err}")
        if claims["sub"] != self.client_id:
            return refuse(401, "invalid_client", "the assertion's sub is not the client id")
        with self._lock:
            if claims["jti"] in self._jtis:
                return refuse(401, "invalid_client", "the assertion was used before (jti)")
            self._jtis.add(claims["jti"])
        asked = set(args.get("scope", "").split())
        if not asked or not asked <= set(AGS_SCOPES):
            return refuse(400, "invalid_scope", f"scopes asked: {sorted(asked)}")
        token = secrets.token_urlsafe(24)
        self.tokens[token] = asked
        _send(req, 200, json.dumps({"access_token": token, "token_type": "Bearer", "expires_in": 3600,
                                    "scope": " ".join(sorted(asked))}), "application/json")

    def _authorized(self, req: BaseHTTPRequestHandler, *scopes: str) -> bool:
        scheme, _, token = req.headers.get("Authorization", "").partition(" ")
        granted = self.tokens.get(token.strip()) if scheme == "Bearer" else None
        if granted is None or not granted & {AGS_SCOPE + s for s in scopes}:
            _send(req, 401, json.dumps({"error": "a Bearer token with the scope is needed"}), "application/json")
            return False
        return True

    def _ags(self, req: BaseHTTPRequestHandler, method: str, path: str, args: dict[str, str]) -> None:
        parts = path.strip("/").split("/")  # ags, <context>, lineitems[, n, scores]
        if len(parts) == 3 and parts[2] == "lineitems":
            return self._line_items(req, method, parts[1], args)
        if len(parts) == 5 and parts[2] == "lineitems" and parts[4] == "scores" and method == "POST":
            return self._score(req, f"{self.issuer}/ags/{parts[1]}/lineitems/{parts[3]}")
        _send(req, 404, "not found")

    def _line_items(self, req: BaseHTTPRequestHandler, method: str, context: str, args: dict[str, str]) -> None:
        if method == "GET":
            if not self._authorized(req, "lineitem", "lineitem.readonly"):
                return
            items = [i for i in self.line_items.values() if i["_context"] == context
                     and ("resource_id" not in args or i.get("resourceId") == args["resource_id"])
                     and ("tag" not in args or i.get("tag") == args["tag"])]
            return _send(req, 200, json.dumps([_public(i) for i in items]), "application/vnd.ims.lis.v2.lineitemcontainer+json")
        if not self._authorized(req, "lineitem"):
            return
        try:
            item = json.loads(req.body)
            assert isinstance(item, dict) and float(item["scoreMaximum"]) > 0 and item["label"]
        except (ValueError, KeyError, TypeError, AssertionError):
            return _send(req, 400, "a line item needs scoreMaximum > 0 and a label")
        with self._lock:
            item["id"] = f"{self.lineitems_url(context)}/{len(self.line_items) + 1}"
            item["_context"] = context
            self.line_items[item["id"]] = item
        _send(req, 201, json.dumps(_public(item)), "application/vnd.ims.lis.v2.lineitem+json")

    def _score(self, req: BaseHTTPRequestHandler, line_item: str) -> None:
        if not self._authorized(req, "score"):
            return
        if line_item not in self.line_items:
            return _send(req, 404, "no such line item")
        if self.fail_scores is not None:
            return _send(req, self.fail_scores, "the gradebook is down for maintenance")
        if not req.headers.get("Content-Type", "").startswith("application/vnd.ims.lis.v1.score+json"):
            return _send(req, 415, "scores are application/vnd.ims.lis.v1.score+json")
        try:
            score = json.loads(req.body)
            assert {"userId", "activityProgress", "gradingProgress", "timestamp"} <= set(score)
        except (ValueError, AssertionError):
            return _send(req, 400, "a score needs userId, activityProgress, gradingProgress and timestamp")
        with self._lock:
            self.scores.append({**score, "_line_item": line_item})
        _send(req, 204, "")

    def start(self) -> "Platform":
        platform = self

        class Handler(BaseHTTPRequestHandler):
            def _dispatch(self, method: str) -> None:
                url = urlsplit(self.path)
                body = ""
                if method == "POST":
                    length = min(int(self.headers.get("Content-Length") or 0), 1 << 20)
                    body = self.rfile.read(length).decode()
                self.body = body
                is_form = self.headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded")
                args = {k: v[0] for k, v in parse_qs(url.query or (body if is_form or method == "GET" else "")).items()}
                if url.path.startswith("/ags/"):
                    return platform._ags(self, method, url.path, args)
                route = platform.routes.get((method, url.path))
                if route is None:
                    return _send(self, 404, "not found")
                route(self, args)

            def do_GET(self):
                self._dispatch("GET")

            def do_POST(self):
                self._dispatch("POST")

            def log_message(self, *args):  # quiet
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, name="lti-platform", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def _send(req: BaseHTTPRequestHandler, status: int, body: str, content_type: str = "text/html") -> None:
    data = body.encode()
    req.send_response(status)
    req.send_header("Content-Type", f"{content_type}; charset=utf-8")
    req.send_header("Content-Length", str(len(data)))
    req.end_headers()
    req.wfile.write(data)


def serve_jwks(keys: dict) -> tuple[str, Callable[[], None]]:
    """Serve a JWKS on 127.0.0.1 (the tool's keys, where a test has no hub service); returns (URL, stop)."""
    body = json.dumps(keys).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, name="tool-jwks", daemon=True).start()

    def stop() -> None:
        server.shutdown()
        server.server_close()

    return f"http://127.0.0.1:{server.server_address[1]}/jwks.json", stop


def _public(item: dict) -> dict:
    return {k: v for k, v in item.items() if not k.startswith("_")}


def auto_post_form(action: str, fields: dict[str, str]) -> str:
    """The OIDC form_post response: a browser posts it at once; a test reads its fields (form_fields)."""
    inputs = "".join(f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
                     for k, v in fields.items())
    return (f'<!doctype html><html><body onload="document.forms[0].submit()">'
            f'<form method="post" action="{html.escape(action)}">{inputs}<noscript><button>Continue</button>'
            f"</noscript></form></body></html>")


def form_fields(page: str) -> tuple[str, dict[str, str]]:
    """(action, fields) of an auto_post_form page."""
    action = html.unescape(re.search(r'<form method="post" action="([^"]*)"', page).group(1))
    fields = {html.unescape(k): html.unescape(v)
              for k, v in re.findall(r'<input type="hidden" name="([^"]*)" value="([^"]*)">', page)}
    return action, fields


def launch(platform: Platform, spec: LaunchSpec, session: requests.Session | None = None):
    """Click the platform's link: the OIDC login through the tool and the platform, then post the id_token
    to the tool. Returns (the tool's answer, the session, the posted form)."""
    session = session or requests.Session()
    r = session.get(platform.launch_url(platform.prepare(spec)), timeout=30)
    assert r.status_code == 200, f"the platform did not answer the tool's login: {r.status_code} {r.text[:300]}"
    action, fields = form_fields(r.text)
    return session.post(action, data=fields, timeout=30, allow_redirects=False), session, (action, fields)


# --------------------------------------------------------------------------- a hub that takes launches
LTI_HUB_PORTS = {"bind": 18200, "hub": 18281, "proxy_api": 18201, "services": 18300}


@dataclass
class LtiHub:
    """A second JupyterHub on the test stack, with hub.authenticator: lti (the stack's own hub stays PAM)."""

    url: str
    api_token: str
    home: Path
    process: subprocess.Popen
    log: Path

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def platform_for_lti_hub(port: int, *, grades: bool = False) -> Platform:
    """A started platform that registers the LTI hub (start_lti_hub's ports) as its tool; with `grades`, the
    tool's JWKS is the hub's grades service's."""
    hub = f"http://127.0.0.1:{LTI_HUB_PORTS['bind']}"
    return Platform(port=port, redirect_uris=[f"{hub}/hub/lti13/oauth_callback"],
                    tool_login_url=f"{hub}/hub/lti13/oauth_login", tool_url=f"{hub}/",
                    tool_jwks_url=f"{hub}/services/aifw-lti-grades/jwks.json" if grades else None).start()


def remove_launched_accounts(prefix: str, group: str) -> None:
    """Delete the unix accounts launches made (their names start with `prefix`) and their group."""
    for account in pwd.getpwall():
        if account.pw_name.startswith(prefix):
            subprocess.run(["userdel", "--remove", account.pw_name], capture_output=True)
    subprocess.run(["groupdel", group], capture_output=True)


def start_lti_hub(stack_site: Path, home: Path, venv_bin: Path, slurm_conf: str,
                  lti_section: dict, timeout_s: float = 60) -> LtiHub:
    """Start a hub from the stack's effective site (`stack_site`, its Slurm and courses) with its own ports,
    state under `home` (made anew) and the given `lti` section; returns once /hub/health answers."""
    import aifw.hub_config

    home = Path(home)
    shutil.rmtree(home, ignore_errors=True)
    (home / "state" / "hub").mkdir(parents=True)
    (home / "state" / "hub").chmod(0o700)
    (home / "proxy").symlink_to(Path(venv_bin).parents[1] / "proxy")
    data = yaml.safe_load(Path(stack_site).read_text())
    url = f"http://127.0.0.1:{LTI_HUB_PORTS['bind']}"
    data["hub"].update(bind_url=url, hub_port=LTI_HUB_PORTS["hub"], proxy_api_port=LTI_HUB_PORTS["proxy_api"],
                       services_port_base=LTI_HUB_PORTS["services"], authenticator="lti")
    data["lti"] = lti_section
    site = home / "site.yaml"
    site.write_text(yaml.safe_dump(data, sort_keys=False))
    token = secrets.token_hex(24)
    env = {"PATH": f"{venv_bin}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
           "HOME": str(home / "state" / "hub"), "LANG": "C.UTF-8", "AIFW_SITE": str(site), "AIFW_HOME": str(home),
           "AIFW_ADMIN_TOKEN": token, "SLURM_CONF": slurm_conf, "CONFIGPROXY_AUTH_TOKEN": secrets.token_hex(24)}
    log = home / "hub.log"
    config = Path(aifw.hub_config.__file__).with_name("jupyterhub_config.py")
    services = LTI_HUB_PORTS["services"]
    end_listeners(range(services, services + 10))  # what a crashed run's hub left on its service ports
    with log.open("w") as out:
        process = subprocess.Popen([str(Path(venv_bin) / "jupyterhub"), "-f", str(config)], env=env,
                                   cwd=str(home / "state" / "hub"), stdout=out, stderr=subprocess.STDOUT)
    return wait_for_hub(LtiHub(url=url, api_token=token, home=home, process=process, log=log), timeout_s, "LTI hub")


def wait_for_hub(hub: LtiHub, timeout_s: float, what: str) -> LtiHub:
    """`hub` once /hub/health answers (every 0.5 s, at most `timeout_s`); a hub that exits or stays silent is
    stopped and fails the test with its log. The test helpers' second hubs (LTI, REST, two clusters) use it."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if hub.process.poll() is not None:
            raise AssertionError(f"the {what} exited during start-up:\n{hub.log_tail()}")
        try:
            if requests.get(f"{hub.url}/hub/health", timeout=2).status_code == 200:
                return hub
        except requests.RequestException:
            pass
        time.sleep(0.5)
    stop_lti_hub(hub)
    raise AssertionError(f"the {what} did not answer within {timeout_s} s:\n{hub.log_tail()}")


def stop_lti_hub(hub: LtiHub) -> None:
    """Stop the hub (it stops its proxy and services) and whatever of them is left: the proxy by pid file, and
    anything still listening on the hub's service ports (a hub killed after 20 s leaves its managed services
    running, in sessions of their own, and the next hub on these ports could not start them)."""
    hub.process.terminate()
    try:
        hub.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        hub.process.kill()
        hub.process.wait(timeout=10)
    pid_file = hub.home / "state" / "hub" / "proxy.pid"
    try:
        os.kill(int(pid_file.read_text().strip()), signal.SIGTERM)
    except (OSError, ValueError):
        pass
    try:
        base = int(yaml.safe_load((hub.home / "site.yaml").read_text())["hub"]["services_port_base"])
    except (OSError, KeyError, TypeError, ValueError):
        return
    end_listeners(range(base, base + 10))


def end_listeners(ports: range) -> list[int]:
    """SIGKILL the processes listening at these TCP ports, the tests' own (`ss`, bounded); returns their pids."""
    p = subprocess.run(["ss", "-ltnpH", f"( sport >= :{ports.start} and sport < :{ports.stop} )"],
                       capture_output=True, text=True, timeout=10)
    pids = sorted({int(m) for m in re.findall(r"pid=(\d+)", p.stdout)})
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return pids
