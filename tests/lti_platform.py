"""A real LTI 1.3 platform (the LMS side) for the tests, on 127.0.0.1: the OIDC third-party login, id_tokens
signed with its RSA key (PyJWT, cryptography), its JWKS, and each kind of bad launch on request.

    platform = Platform(port=18090, redirect_uris=[hub + "/hub/lti13/oauth_callback"]).start()
    hint = platform.prepare(LaunchSpec(user="ada", context_id="ctx-1", custom={"module": "m1-first-steps"}))
    browser/requests: GET platform.launch_url(hint) -> the tool's login initiation -> GET /auth here ->
    an auto-posting form with id_token and state to the tool's redirect_uri

The routes are a table (`Platform.routes`): the next slice adds a token endpoint (client-credentials JWT
grant) and Assignment and Grade Services line items and scores beside them.
"""
from __future__ import annotations

import html
import json
import os
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


@dataclass
class LaunchSpec:
    """One launch the platform will make: who, from which course, with which roles and link."""

    user: str
    context_id: str
    roles: list[str] = field(default_factory=lambda: [LEARNER])
    custom: dict[str, str] = field(default_factory=dict)
    target_link_uri: str | None = None  # default: the tool's base URL
    fault: str | None = None  # one of FAULTS

    def __post_init__(self):
        if self.fault is not None and self.fault not in FAULTS:
            raise ValueError(f"unknown fault {self.fault!r}; the platform makes {', '.join(FAULTS)}")


def _rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class Platform:
    """The platform: its issuer is http://127.0.0.1:<port>, its client id names the tool."""

    def __init__(self, *, port: int, redirect_uris: list[str], tool_login_url: str, tool_url: str,
                 client_id: str = "aifw-test-tool", deployment_id: str = "aifw-test-deployment"):
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
        self.routes: dict[tuple[str, str], Callable[[BaseHTTPRequestHandler, dict[str, str]], None]] = {
            ("GET", "/jwks.json"): self._jwks,
            ("GET", "/auth"): self._auth,
            ("POST", "/auth"): self._auth,
            ("GET", "/launch"): self._launch,
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

    def site_section(self, courses: list[dict[str, str]], **extra) -> dict:
        """The site file's `lti` section that registers this platform."""
        return {"issuer": self.issuer, "client_ids": [self.client_id], "deployment_ids": [self.deployment_id],
                "authorize_url": self.authorize_url, "jwks_url": self.jwks_url, "courses": courses, **extra}

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

    def start(self) -> "Platform":
        platform = self

        class Handler(BaseHTTPRequestHandler):
            def _dispatch(self, method: str) -> None:
                url = urlsplit(self.path)
                body = ""
                if method == "POST":
                    length = min(int(self.headers.get("Content-Length") or 0), 1 << 20)
                    body = self.rfile.read(length).decode()
                args = {k: v[0] for k, v in parse_qs(url.query or body).items()}
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
    with log.open("w") as out:
        process = subprocess.Popen([str(Path(venv_bin) / "jupyterhub"), "-f", str(config)], env=env,
                                   cwd=str(home / "state" / "hub"), stdout=out, stderr=subprocess.STDOUT)
    hub = LtiHub(url=url, api_token=token, home=home, process=process, log=log)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the LTI hub exited during start-up:\n{hub.log_tail()}")
        try:
            if requests.get(f"{url}/hub/health", timeout=2).status_code == 200:
                return hub
        except requests.RequestException:
            pass
        time.sleep(0.5)
    stop_lti_hub(hub)
    raise AssertionError(f"the LTI hub did not answer within {timeout_s} s:\n{hub.log_tail()}")


def stop_lti_hub(hub: LtiHub) -> None:
    """Stop the hub (it stops its proxy and services) and whatever of them is left by pid file."""
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
