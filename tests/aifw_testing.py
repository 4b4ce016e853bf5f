"""Test helpers: talk to the real hub (login form, REST API, kernels through the proxy) and real Slurm."""
from __future__ import annotations

import json
import os
import re
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import requests
import websocket


def wait_until(check, timeout: float = 30, interval: float = 0.5) -> bool:
    """Poll `check` until it is true (True) or `timeout` seconds pass (False): a bounded wait."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(interval)
    return False


@dataclass
class StackInfo:
    hub_url: str
    api_url: str
    api_token: str
    users: dict[str, str]
    slurm_conf: str
    home: Path
    logs: Path
    stack: object  # aifw.sandbox.layout.Stack

    @classmethod
    def load(cls, stack) -> "StackInfo":
        data = json.loads(stack.sandbox_json.read_text())
        return cls(
            hub_url=data["hub_url"],
            api_url=data["api_url"],
            api_token=data["api_token"],
            users=data["users"],
            slurm_conf=data["slurm_conf"],
            home=stack.home,
            logs=stack.logs,
            stack=stack,
        )

    def learners(self) -> list[str]:
        return sorted(u for u in self.users if "learner" in u)

    def slurm(self, *args: str) -> str:
        env = dict(os.environ, SLURM_CONF=self.slurm_conf)
        return subprocess.run(list(args), capture_output=True, text=True, env=env, timeout=30, check=True).stdout

    def squeue(self, user: str | None = None) -> list[dict[str, str]]:
        args = ["squeue", "-h", "-o", "%i|%u|%T|%P|%b|%r"]
        if user:
            args += ["-u", user]
        jobs = []
        for line in self.slurm(*args).splitlines():
            i, u, t, p, b, r = line.strip().split("|")
            jobs.append({"id": i, "user": u, "state": t, "partition": p, "tres": b, "reason": r})
        return jobs


class HubClient:
    """Admin-token client plus per-user sessions made through the real login form."""

    def __init__(self, info: StackInfo):
        self.info = info
        self.admin = requests.Session()
        self.admin.headers["Authorization"] = f"token {info.api_token}"
        self.started: set[str] = set()

    # -- REST as admin ------------------------------------------------------------------------
    def api(self, method: str, path: str, **kw) -> requests.Response:
        return self.admin.request(method, f"{self.info.api_url}{path}", timeout=60, **kw)

    def user_model(self, name: str) -> dict:
        r = self.api("GET", f"/users/{name}")
        r.raise_for_status()
        return r.json()

    # -- as a user ----------------------------------------------------------------------------
    def login(self, name: str, password: str | None = None) -> requests.Session:
        """Log in through the real login form (PAM); returns the browser-like session."""
        s = requests.Session()
        r = s.get(f"{self.info.hub_url}/hub/login", timeout=30)
        r.raise_for_status()
        xsrf = s.cookies.get("_xsrf") or re.search(r'name="_xsrf" value="([^"]+)"', r.text).group(1)
        r = s.post(
            f"{self.info.hub_url}/hub/login",
            data={"username": name, "password": password or self.info.users[name], "_xsrf": xsrf},
            timeout=30,
            allow_redirects=False,
        )
        if r.status_code != 302:
            raise AssertionError(f"login of {name} failed: {r.status_code} {r.text[:300]}")
        s.headers["X-XSRFToken"] = s.cookies.get("_xsrf") or xsrf
        return s

    def user_token(self, session: requests.Session, name: str) -> str:
        """A token for the logged-in user, made with the login session (as a person would in the UI)."""
        r = session.post(f"{self.info.api_url}/users/{name}/tokens", json={"note": "tests", "expires_in": 3600}, timeout=30)
        r.raise_for_status()
        return r.json()["token"]

    def start(self, name: str, options: dict | None = None, token: str | None = None) -> requests.Response:
        headers = {"Authorization": f"token {token}"} if token else None
        body = {"user_options": options} if options is not None else {}
        sess = requests if token else self.admin
        r = sess.post(f"{self.info.api_url}/users/{name}/server", json=body, headers=headers, timeout=120)
        if r.status_code in (201, 202):
            self.started.add(name)
        return r

    def start_pending(self, name: str, options: dict) -> None:
        """Start a server that must stay pending (its job waits in the queue). JupyterHub answers 202 as a
        rule, but 201 when the user's previous spawn had failed (its handler then reads the discarded
        spawner), so the server model is what says "pending"."""
        r = self.start(name, options)
        assert r.status_code in (201, 202), f"{r.status_code} {r.text[:300]}"
        server = self.user_model(name)["servers"].get("")
        assert server and server["pending"] == "spawn", server

    def wait_ready(self, name: str, timeout: float = 90) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            server = self.user_model(name)["servers"].get("")
            if server and server.get("ready"):
                return server
            if not server:
                raise AssertionError(f"{name}'s server went away while starting: {self.user_model(name)}")
            time.sleep(0.5)
        raise AssertionError(f"{name}'s server was not ready after {timeout} s")

    def stop(self, name: str, wait: bool = True) -> None:
        if self.user_model(name).get("pending") != "stop":  # JupyterHub answers 500 to a stop during a stop
            r = self.api("DELETE", f"/users/{name}/server")
            assert r.status_code in (202, 204, 400), r.text
        if wait:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if not self.user_model(name)["servers"]:
                    break
                time.sleep(0.5)
        self.started.discard(name)

    def stop_all_servers(self) -> None:
        for name in list(self.started):
            try:
                self.stop(name)
            except Exception:  # noqa: BLE001 - cleanup
                pass

    def progress(self, name: str, until: float = 60, stop_when=None) -> list[dict]:
        """Read the spawn's progress event stream (what the pending page shows) until it ends."""
        events: list[dict] = []
        deadline = time.monotonic() + until
        with self.admin.get(f"{self.info.api_url}/users/{name}/server/progress", stream=True, timeout=until) as r:
            r.raise_for_status()
            for line in r.iter_lines(chunk_size=1, decode_unicode=True):
                if line and line.startswith("data:"):
                    events.append(json.loads(line[5:]))
                    if events[-1].get("ready") or events[-1].get("failed"):
                        break
                    if stop_when and stop_when(events[-1]):
                        break
                if time.monotonic() > deadline:
                    break
        return events

    def submit_filler(self, user: str, partition: str, gres: str, seconds: int = 300) -> str:
        """A plain batch job (as `user`) that holds resources, e.g. both GPUs."""
        env = dict(os.environ, SLURM_CONF=self.info.slurm_conf)
        p = subprocess.run(
            ["runuser", "-u", user, "--", "sbatch", "--parsable", "-p", partition, f"--gres={gres}", "-t", "10",
             "-o", "/dev/null", "--wrap", f"sleep {seconds}"],
            capture_output=True, text=True, env=env, timeout=30, cwd="/tmp",
        )
        assert p.returncode == 0, p.stderr
        return p.stdout.strip().split(";")[0]

    def fill_every_gpu(self, user: str, timeout: float = 30) -> list[str]:
        """One job per compute node (as `user`, partition gpu) holding all its GPUs; their ids once all run."""
        site = self.info.stack.site
        env = dict(os.environ, SLURM_CONF=self.info.slurm_conf)
        ids = []
        for node, _address in site.sandbox.nodes:
            p = subprocess.run(
                ["runuser", "-u", user, "--", "sbatch", "--parsable", "-p", "gpu", "-w", node,
                 f"--gres=gpu:{site.sandbox.node.gpus}", "-t", "10", "-o", "/dev/null", "--wrap", "sleep 300"],
                capture_output=True, text=True, env=env, timeout=30, cwd="/tmp",
            )
            assert p.returncode == 0, p.stderr
            ids.append(p.stdout.strip().split(";")[0])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if {j["id"] for j in self.info.squeue(user) if j["state"] == "RUNNING"} >= set(ids):
                return ids
            time.sleep(0.3)
        self.info.slurm("scancel", *ids)
        raise AssertionError(f"the GPU fillers did not all run: {self.info.squeue(user)}")

    # -- kernels through the proxy ------------------------------------------------------------
    def run_code(self, name: str, token: str, code: str, timeout: float = 60) -> str:
        """Start a kernel on `name`'s server through the proxy, run `code`, return its stdout."""
        base = f"{self.info.hub_url}/user/{name}"
        headers = {"Authorization": f"token {token}"}
        r = requests.post(f"{base}/api/kernels", headers=headers, json={"name": "python3"}, timeout=60)
        r.raise_for_status()
        kernel_id = r.json()["id"]
        ws_url = base.replace("http", "ws", 1) + f"/api/kernels/{kernel_id}/channels"
        ws = websocket.create_connection(ws_url, header=[f"Authorization: token {token}"], timeout=timeout)
        try:
            msg_id = uuid.uuid4().hex
            ws.send(json.dumps({
                "header": {"msg_id": msg_id, "username": name, "session": uuid.uuid4().hex,
                           "msg_type": "execute_request", "version": "5.3"},
                "parent_header": {}, "metadata": {}, "channel": "shell",
                "content": {"code": code, "silent": False, "store_history": False,
                            "user_expressions": {}, "allow_stdin": False},
            }))
            out, deadline = [], time.monotonic() + timeout
            while time.monotonic() < deadline:
                msg = json.loads(ws.recv())
                if msg.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                kind = msg["header"]["msg_type"]
                if kind == "stream":
                    out.append(msg["content"]["text"])
                elif kind == "error":
                    raise AssertionError("kernel error: " + "\n".join(msg["content"]["traceback"]))
                elif kind == "status" and msg["content"]["execution_state"] == "idle":
                    return "".join(out)
            raise AssertionError("the kernel did not finish in time")
        finally:
            ws.close()
            requests.delete(f"{base}/api/kernels/{kernel_id}", headers=headers, timeout=30)


# -- as a unix user -----------------------------------------------------------------------------
def run_as(user: str, argv: list[str], *, venv: Path | None = None, cwd: str | None = None,
           timeout: float = 120) -> subprocess.CompletedProcess:
    """Run `argv` as the unix `user` (runuser, fresh groups), with the runtime venv first on PATH."""
    path = "/usr/local/bin:/usr/bin:/bin"
    if venv is not None:
        path = f"{venv / 'bin'}:{path}"
    return subprocess.run(["runuser", "-u", user, "--", "env", f"PATH={path}", "LANG=C.UTF-8", *argv],
                          capture_output=True, text=True, timeout=timeout, cwd=cwd or "/")


def assert_denied(user: str, argv: list[str], **kw) -> None:
    """The command fails for `user` with a permission error (not for another reason)."""
    p = run_as(user, argv, **kw)
    out = p.stdout + p.stderr
    assert p.returncode != 0, f"{user} could run {argv}: {out[:500]}"
    assert "Permission denied" in out or "Operation not permitted" in out, f"{argv} failed otherwise: {out[:500]}"


def run_coroutine(coro, timeout_s: float = 60):
    """Run a coroutine to its end in a thread of its own and return its result (or raise its error).
    A thread of its own: the test session may already run an event loop in this thread (Playwright's
    sync API does, once a browser test has run), where asyncio.run() refuses to start."""
    import asyncio
    import threading

    outcome: dict = {}

    def target():
        try:
            outcome["value"] = asyncio.run(coro)
        except BaseException as err:  # noqa: BLE001 - handed back to the caller
            outcome["error"] = err

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        raise TimeoutError(f"the coroutine did not finish within {timeout_s} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def new_gradebook(path):
    """A new nbgrader gradebook at `path`, opened with nbgrader's own API (no nbgrader app runs): a
    context manager giving the Gradebook, closed (and committed) at the end of the block."""
    import contextlib
    import sqlite3
    import warnings

    from nbgrader.api import Gradebook

    @contextlib.contextmanager
    def opened():
        con = sqlite3.connect(path)  # with this table nbgrader skips its `alembic heads` subprocess
        con.execute("create table alembic_version (version_num varchar(32) not null)")
        con.commit()
        con.close()
        with warnings.catch_warnings(), Gradebook(f"sqlite:///{path}") as gb:
            warnings.simplefilter("ignore")  # nbgrader's models trip SQLAlchemy 2 warnings
            yield gb
            gb.db.commit()

    return opened()


def run_batch_job(job, body, *, within_s: float, logs) -> str:
    """Submit a batch job (aifw.slurm BatchJob + BatchScript) as the caller, wait until Slurm has none of
    its tasks left (at most `within_s`, polled every second), cancel it whatever happened, and return the
    text of its output files (`logs`: a directory whose job-*.out files are the job's output)."""
    from aifw.slurm import SlurmClient, build_batch_script

    client = SlurmClient(bin_dir=None)
    job_id = client.submit_sync(build_batch_script(job, body))
    try:
        deadline = time.monotonic() + within_s
        while client.job_tasks_sync(job_id) and time.monotonic() < deadline:
            time.sleep(1)
    finally:
        client.cancel_sync([job_id])
    return f"job {job_id}: " + "\n".join(p.read_text(errors="replace") for p in sorted(Path(logs).glob("job-*.out")))
