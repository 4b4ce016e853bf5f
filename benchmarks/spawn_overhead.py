"""Benchmark 1: spawn overhead. Time from the REST request until JupyterLab answers through the proxy, for
our spawner, for stock batchspawner and for the floor, measured side by side in one run.

    /opt/aifw-test/venv/bin/python benchmarks/spawn_overhead.py [--home /opt/aifw-test] [--runs 10] [--json out.json]

Runs as root against a running stack (the test stack or the sandbox: --home holds its sandbox.json):

- ours: `POST /hub/api/users/NAME/server` on the stack's hub (AIFSlurmSpawner), until
  `GET /user/NAME/api/status` with the user's token answers 200 through the stack's proxy;
- stock: the same through a second JupyterHub + configurable-http-proxy that this benchmark starts (and stops)
  on other ports (127.0.0.1:18400 proxy, <login node>:18481 hub, 127.0.0.1:18401 proxy API; state in a temp
  folder) with stock `batchspawner.SlurmSpawner` (benchmarks/stock_hub/jupyterhub_config.py);
- floor: a bare batch job of the same single-user server command (through `aifw.slurm`, as the user), timed
  from sbatch until the server answers GET /user/NAME/api on its node's address (the nodes' addresses come
  from sinfo through `aifw.slurm`; every node of the partition is polled, so no Slurm poll delays the floor);
- candidate (with --candidate-tree DIR): a second AIF Workbench hub run from another source tree (e.g. a git
  worktree with a change to the spawner), beside the stack's, on its own ports (18500, 18581, 18501) and
  state, with the same venv, site, Slurm and users: a change measured against the installed code in one run.

The same user, partition and request (1 CPU, 1 GB, 30 minutes) for all three, interleaved A B C A B C ...,
--runs of each. Each server is stopped and its job gone from Slurm before the next starts. Reports medians,
the ratios ours/floor and ours/stock, and where the time goes, from the timestamps the hub's log, slurmctld's
and slurmd's logs and the server's own log carry (milliseconds; one clock, one machine):

    request -> Slurm has the job -> allocated -> slurmd starts the script -> port reported to the hub
    -> the server's first log line (its imports done) -> listening -> the hub finds it ready -> 200 via proxy

Prints a table, the headline on the last line; --json writes every run's events and the medians.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Callable

import requests

from aifw.site import load_site
from aifw.slurm import BatchJob, BatchScript, SlurmClient, SlurmError, build_batch_script

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.dont_write_bytecode = True  # no __pycache__ in benchmarks/ from the import below
from server_startup import default_home, session_server_args  # noqa: E402

STOCK_CONFIG = Path(__file__).resolve().parent / "stock_hub" / "jupyterhub_config.py"
KINDS = ("ours", "candidate", "stock", "floor")
TITLES = {"ours": "ours (AIFSlurmSpawner)", "candidate": "candidate (--candidate-tree)",
          "stock": "stock batchspawner.SlurmSpawner", "floor": "floor (bare sbatch of the server)"}
# What the candidate's tree holds of the project (what scripts/install.sh installs).
TREE_PARTS = ("core", "hub_config", "spawners", "extensions", "courses", "notebooks", "pyproject.toml", "README.md")
# The chain of events of one spawn, in order; a segment runs from the last event before it that was seen.
EVENTS = ("request", "submitted", "allocated", "launched", "reported", "server_log", "listening", "hub_ready", "answered")
SEGMENTS = {
    "submitted": "hub: REST, checks, sbatch (-> Slurm has the job)",
    "allocated": "Slurm scheduling (submitted -> allocated)",
    "launched": "job launch (allocated -> slurmd starts the script)",
    "reported": "job start (script -> port reported to the hub)",
    "server_log": "server imports (-> its first log line)",
    "listening": "server start (-> listening)",
    "hub_ready": "hub readiness check (listening -> hub ready)",
    "answered": "proxy and client (-> 200; the floor: direct)",
}


# -- timestamps in logs (local time, milliseconds) -------------------------------------------------
JUPYTER_LINE = re.compile(r"^\[\w (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) [^\]]*\] (.*)$")
SLURM_LINE = re.compile(r"^\[(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})\] (.*)$")


def jupyter_stamps(text: str) -> list[tuple[float, str]]:
    """(epoch seconds, message) of each line a JupyterHub or Jupyter server log writes."""
    out = []
    for line in text.splitlines():
        m = JUPYTER_LINE.match(line)
        if m:
            out.append((datetime.strptime(m[1], "%Y-%m-%d %H:%M:%S.%f").timestamp(), m[2]))
    return out


def slurm_stamps(text: str) -> list[tuple[float, str]]:
    """(epoch seconds, message) of each line of a slurmctld or slurmd log."""
    out = []
    for line in text.splitlines():
        m = SLURM_LINE.match(line)
        if m:
            out.append((datetime.strptime(m[1], "%Y-%m-%dT%H:%M:%S.%f").timestamp(), m[2]))
    return out


def first(stamps: list[tuple[float, str]], pattern: str, since: float = 0.0) -> float | None:
    rx = re.compile(pattern)
    return next((t for t, msg in stamps if t >= since and rx.search(msg)), None)


def slurm_events(ctld: str, slurmd: dict[str, str], job_id: str, since: float) -> dict[str, float | None]:
    """The job's submit, allocation and launch in Slurm's logs, from `since` on (a rebuilt cluster counts its
    job ids from 1 again in the same log files)."""
    s = slurm_stamps(ctld)
    launched = None
    for text in slurmd.values():
        launched = launched or first(slurm_stamps(text), rf"Launching batch job {job_id}\b", since)
    return {
        "submitted": first(s, rf"_slurm_rpc_submit_batch_job: JobId={job_id}\b", since),
        # the main scheduler ("sched: Allocate JobId=N") or the backfill one ("sched/backfill: _start_job:
        # Started JobId=N")
        "allocated": first(s, rf"(sched: Allocate|_start_job: Started) JobId={job_id}\b", since),
        "launched": launched,
    }


def server_events(server_log: str) -> dict[str, float | None]:
    s = jupyter_stamps(server_log)
    return {"server_log": s[0][0] if s else None, "listening": first(s, r"Jupyter Server .* is running at")}


def hub_events(hub_log: str, user: str, since: float) -> dict[str, float | None]:
    s = jupyter_stamps(hub_log)
    return {
        "reported": first(s, rf"POST /hub/api/batchspawner \({re.escape(user)}@", since),
        "hub_ready": first(s, rf"User {re.escape(user)} took [\d.]+ seconds to start", since),
    }


def segments(events: dict[str, float | None]) -> dict[str, float]:
    """Seconds of each segment of the chain; a segment whose start event is missing starts at the last one seen."""
    out, last = {}, events.get("request")
    for name in EVENTS[1:]:
        t = events.get(name)
        if t is None or last is None:
            continue
        out[name] = t - last
        last = t
    return out


# -- Slurm's log files ---------------------------------------------------------------------------
@dataclass
class SlurmLogs:
    ctld: Path
    slurmd: dict[str, Path]  # node -> log

    @classmethod
    def from_conf(cls, conf: Path, nodes: list[str]) -> "SlurmLogs":
        """The log paths slurm.conf names (SlurmctldLogFile, SlurmdLogFile with %n per node)."""
        values = {}
        for line in conf.read_text().splitlines():
            key, _, value = line.partition("=")
            values[key.strip()] = value.split("#")[0].strip()
        if not values.get("SlurmctldLogFile") or not values.get("SlurmdLogFile"):
            sys.exit(f"{conf} names no SlurmctldLogFile/SlurmdLogFile: the breakdown reads Slurm's logs")
        return cls(Path(values["SlurmctldLogFile"]),
                   {n: Path(values["SlurmdLogFile"].replace("%n", n)) for n in nodes})

    def read(self, job_id: str, since: float) -> dict[str, float | None]:
        def text(p: Path) -> str:
            return p.read_text(errors="replace")[-2_000_000:] if p.exists() else ""
        return slurm_events(text(self.ctld), {n: text(p) for n, p in self.slurmd.items()}, job_id, since)


def read_from(path: Path, offset: int) -> str:
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read().decode(errors="replace")


# -- one spawn of each kind ----------------------------------------------------------------------
class Failed(Exception):
    pass


def wait_until(check: Callable[[], bool], timeout: float, interval: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(interval)
    raise Failed(f"{what} not within {timeout:g} s")


@dataclass
class Hub:
    """A JupyterHub reached with an admin token: spawn, wait for 200 through the proxy, stop."""

    name: str
    url: str  # the proxy's public URL
    token: str
    log: Path
    user_tokens: dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        self.admin = requests.Session()
        self.admin.headers["Authorization"] = f"token {self.token}"

    def api(self, method: str, path: str, **kw) -> requests.Response:
        return self.admin.request(method, f"{self.url}/hub/api{path}", timeout=120, **kw)

    def user_token(self, user: str) -> str:
        if user not in self.user_tokens:
            r = self.api("POST", f"/users/{user}/tokens", json={"note": "spawn_overhead benchmark", "expires_in": 7200})
            if r.status_code != 201:
                raise Failed(f"{self.name}: cannot make a token for {user}: {r.status_code} {r.text[:200]}")
            self.user_tokens[user] = r.json()["token"]
        return self.user_tokens[user]

    def server(self, user: str) -> dict | None:
        r = self.api("GET", f"/users/{user}")
        r.raise_for_status()
        return r.json()["servers"].get("")

    def spawn(self, user: str, options: dict | None, poll_s: float, timeout: float) -> tuple[float, float, str]:
        """POST the spawn; poll /user/NAME/api/status through the proxy. (request epoch, answered epoch, job id)."""
        token = self.user_token(user)
        status_url = f"{self.url}/user/{user}/api/status"
        answer: dict = {}
        body = {"user_options": options} if options is not None else None

        def post():
            try:
                answer["response"] = self.api("POST", f"/users/{user}/server", json=body)
            except requests.RequestException as err:
                answer["error"] = err

        t0 = time.time()
        thread = threading.Thread(target=post, daemon=True)
        thread.start()
        probe = requests.Session()
        probe.headers["Authorization"] = f"token {token}"
        deadline = time.monotonic() + timeout
        next_check = time.monotonic() + 1
        while time.monotonic() < deadline:
            try:
                r = probe.get(status_url, timeout=10, allow_redirects=False)
                if r.status_code == 200 and "started" in r.json():
                    t1 = time.time()
                    break
            except (requests.RequestException, ValueError):
                pass
            if "error" in answer or ("response" in answer and answer["response"].status_code not in (201, 202)):
                got = answer.get("error") or f"{answer['response'].status_code} {answer['response'].text[:300]}"
                raise Failed(f"{self.name}: the spawn was refused: {got}")
            if "response" in answer and time.monotonic() > next_check:  # a spawn that failed after the POST
                next_check = time.monotonic() + 1
                if self.server(user) is None:
                    raise Failed(f"{self.name}: {user}'s server went away while starting (see {self.log})")
            time.sleep(poll_s)
        else:
            raise Failed(f"{self.name}: /user/{user}/api/status did not answer 200 within {timeout:g} s")
        thread.join(timeout=30)
        state = (self.server(user) or {}).get("state") or {}
        return t0, t1, str(state.get("job_id") or "")

    def stop(self, user: str, timeout: float = 90) -> None:
        r = self.api("DELETE", f"/users/{user}/server")
        if r.status_code not in (202, 204, 400):
            raise Failed(f"{self.name}: stopping {user}'s server answered {r.status_code} {r.text[:200]}")
        wait_until(lambda: self.server(user) is None, timeout, 0.2, f"{self.name}: {user}'s server gone")


@dataclass
class Floor:
    """A bare batch job of the single-user server command, through aifw.slurm, as the user."""

    slurm: SlurmClient
    venv: Path
    server_args: list[str]
    hub_api_url: str  # the stack hub's API as the nodes reach it (the server checks it at start)
    partition: str
    addresses: list[str]  # every node address of the partition

    def spawn(self, user: str, home: str, token: str, poll_s: float, timeout: float) -> tuple[float, float, str, str]:
        port = random.randint(40000, 59999)
        prefix = f"/user/{user}/"
        env = {
            "PATH": f"{self.venv / 'bin'}:/usr/local/bin:/usr/bin:/bin", "HOME": home, "USER": user, "LANG": "C.UTF-8",
            "JUPYTERHUB_API_TOKEN": token, "JUPYTERHUB_USER": user, "JUPYTERHUB_CLIENT_ID": f"jupyterhub-user-{user}",
            "JUPYTERHUB_API_URL": self.hub_api_url, "JUPYTERHUB_ACTIVITY_URL": f"{self.hub_api_url}/users/{user}/activity",
            "JUPYTERHUB_BASE_URL": "/", "JUPYTERHUB_SERVICE_PREFIX": prefix, "JUPYTERHUB_SERVER_NAME": "",
            "JUPYTERHUB_SERVICE_URL": f"http://0.0.0.0:{port}{prefix}",
            "JUPYTERHUB_OAUTH_CALLBACK_URL": f"{prefix}oauth_callback", "JUPYTERHUB_DEFAULT_URL": "/lab",
        }
        if self.slurm.conf:
            env["SLURM_CONF"] = self.slurm.conf
        job = BatchJob(job_name=f"aifw-floor-{user}", partition=self.partition, cpus_per_task=1, memory_mb=1024,
                       time_minutes=30, output=f"{home}/.aifw-bench-floor-%j.log", chdir=home, requeue=False)
        script = build_batch_script(job, BatchScript(
            command=[str(self.venv / "bin" / "jupyterhub-singleuser"), *self.server_args], purpose="benchmark floor"))
        urls = [f"http://{a}:{port}{prefix}api" for a in self.addresses]
        t0 = time.time()
        job_id = self.slurm.submit_sync(script, user=user, env=env)
        probe = requests.Session()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for url in urls:
                try:
                    if probe.get(url, timeout=2, allow_redirects=False).status_code == 200:
                        return t0, time.time(), job_id, f"{home}/.aifw-bench-floor-{job_id}.log"
                except requests.RequestException:
                    pass
            time.sleep(poll_s)
        self.stop(job_id, user)
        raise Failed(f"floor: job {job_id}'s server did not answer within {timeout:g} s")

    def stop(self, job_id: str, user: str, timeout: float = 60) -> None:
        self.slurm.cancel_sync([job_id], user=user)
        wait_until(lambda: job_gone(self.slurm, job_id), timeout, 0.2, f"floor: job {job_id} gone from Slurm")


def job_gone(slurm: SlurmClient, job_id: str) -> bool:
    try:
        return all(t.is_finished for t in slurm.job_tasks_sync(job_id))
    except SlurmError:
        return False


# -- the stock hub -------------------------------------------------------------------------------
@dataclass
class StockHub:
    venv: Path
    proxy_command: str
    hub_ip: str
    ports: tuple[int, int, int]
    users: list[str]
    slurm_conf: str
    partition: str
    server_args: list[str]
    state: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="aifw-bench-stock-hub-")))
    proc: subprocess.Popen | None = None

    def start(self) -> Hub:
        for host, port in (("127.0.0.1", self.ports[0]), (self.hub_ip, self.ports[1]), ("127.0.0.1", self.ports[2])):
            if port_answers(host, port):
                sys.exit(f"{host}:{port} is in use: the stock hub needs it (--stock-ports PROXY,HUB,PROXY_API)")
        self.state.chmod(0o700)
        token = secrets.token_hex(32)
        env = {
            "PATH": f"{self.venv / 'bin'}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": str(self.state), "LANG": "C.UTF-8", "SLURM_CONF": self.slurm_conf,
            "CONFIGPROXY_AUTH_TOKEN": secrets.token_hex(32),
            "STOCK_HUB_STATE": str(self.state), "STOCK_HUB_VENV": str(self.venv), "STOCK_HUB_HUB_IP": self.hub_ip,
            "STOCK_HUB_PORTS": ",".join(map(str, self.ports)), "STOCK_HUB_PROXY": self.proxy_command,
            "STOCK_HUB_USERS": ",".join(self.users), "STOCK_HUB_TOKEN": token,
            "STOCK_HUB_PARTITION": self.partition, "STOCK_HUB_CPUS": "1", "STOCK_HUB_MEMORY": "1G",
            "STOCK_HUB_RUNTIME": "00:30:00", "STOCK_HUB_SERVER_ARGS": json.dumps(self.server_args),
        }
        log = self.state / "jupyterhub.log"
        with open(log, "w") as out:
            self.proc = subprocess.Popen([str(self.venv / "bin" / "jupyterhub"), "-f", str(STOCK_CONFIG)], env=env,
                                         cwd=str(self.state), stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        url = f"http://127.0.0.1:{self.ports[0]}"
        wait_until(lambda: hub_healthy(url, self.proc, log, "stock"), 60, 0.2, "the stock hub's /hub/health")
        return Hub("stock", url, token, log)

    def stop(self, keep: bool) -> None:
        """Stop the hub (it stops its servers and its proxy), then the proxy by pid file if it is still there."""
        stop_hub_process(self.proc, self.state / "proxy.pid")
        if keep:
            print(f"stock hub state and log kept in {self.state}")
        else:
            shutil.rmtree(self.state, ignore_errors=True)


# -- the candidate hub (another source tree) --------------------------------------------------------
@dataclass
class CandidateHub:
    """AIF Workbench's hub from another source tree, beside the stack's: the tree is installed (no
    dependencies) into a folder of its own that goes first on the hub's PYTHONPATH, so only the tree's code
    differs (hub config, spawner, batch script); the venv, the site (with other ports), Slurm, the users and
    what the sessions run are the stack's. The formgrader services are left out (the stack runs them)."""

    tree: Path
    stack_home: Path
    venv: Path
    ports: tuple[int, int, int]  # proxy, hub, proxy API
    state: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="aifw-bench-candidate-")))
    proc: subprocess.Popen | None = None

    def start(self) -> Hub:
        import yaml

        site = yaml.safe_load((self.stack_home / "state" / "site.yaml").read_text())
        for host_port in (("127.0.0.1", self.ports[0]), (site["hub"]["hub_ip"], self.ports[1]), ("127.0.0.1", self.ports[2])):
            if port_answers(*host_port):
                sys.exit(f"{host_port[0]}:{host_port[1]} is in use: the candidate hub needs it (--candidate-ports)")
        self.state.chmod(0o711)
        build, target, home = self.state / "build", self.state / "site-packages", self.state / "home"
        build.mkdir()
        for part in TREE_PARTS:
            src = self.tree / part
            if not src.exists():
                sys.exit(f"{self.tree} is no AIF Workbench tree: it has no {part}")
            (shutil.copytree if src.is_dir() else shutil.copy)(src, build / part)
        pip = subprocess.run([str(self.venv / "bin" / "pip"), "install", "-q", "--no-deps", "--no-build-isolation",
                              "--target", str(target), str(build)], capture_output=True, text=True, timeout=300)
        if pip.returncode != 0:
            sys.exit(f"cannot install {self.tree} for the candidate hub:\n{pip.stderr[-2000:]}")
        for d in [target, *target.rglob("*")]:  # the hub runs as root; keep it readable like the venv
            d.chmod(0o755 if d.is_dir() else 0o644)
        (home / "state" / "hub").mkdir(parents=True)
        (home / "state" / "hub").chmod(0o700)
        (home / "proxy").symlink_to(self.stack_home / "proxy")
        site["hub"].update(bind_url=f"http://127.0.0.1:{self.ports[0]}", hub_port=self.ports[1],
                           proxy_api_port=self.ports[2])
        site_file = self.state / "site.yaml"
        site_file.write_text(yaml.safe_dump(site, sort_keys=False))
        config = self.state / "candidate_config.py"
        config.write_text(
            "# The candidate tree's own hub config, without the formgrader services (the stack's hub runs them).\n"
            f"load_subconfig({str(target / 'aifw' / 'hub_config' / 'jupyterhub_config.py')!r})  # noqa: F821\n"
            "c = get_config()  # noqa: F821\n"
            "c.JupyterHub.services = [s for s in c.JupyterHub.services if not s['name'].startswith('formgrader-')]\n"
            "c.JupyterHub.load_roles = [r for r in c.JupyterHub.load_roles if not r['name'].startswith('formgrader-')]\n")
        token = secrets.token_hex(32)
        env = {
            "PATH": f"{self.venv / 'bin'}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": str(home / "state" / "hub"), "LANG": "C.UTF-8", "PYTHONPATH": str(target),
            "AIFW_SITE": str(site_file), "AIFW_HOME": str(home), "AIFW_ADMIN_TOKEN": token,
            "SLURM_CONF": str(site["slurm"]["conf"]), "CONFIGPROXY_AUTH_TOKEN": secrets.token_hex(32),
        }
        log = self.state / "jupyterhub.log"
        with open(log, "w") as out:
            self.proc = subprocess.Popen([str(self.venv / "bin" / "jupyterhub"), "-f", str(config)], env=env,
                                         cwd=str(home / "state" / "hub"), stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        url = f"http://127.0.0.1:{self.ports[0]}"
        wait_until(lambda: hub_healthy(url, self.proc, log, "candidate"), 90, 0.2, "the candidate hub's /hub/health")
        return Hub("candidate", url, token, log)

    def stop(self, keep: bool) -> None:
        stop_hub_process(self.proc, self.state / "home" / "state" / "hub" / "proxy.pid")
        if keep:
            print(f"candidate hub state and log kept in {self.state}")
        else:
            shutil.rmtree(self.state, ignore_errors=True)


def hub_healthy(url: str, proc: subprocess.Popen, log: Path, name: str) -> bool:
    """True when the hub at `url` answers /hub/health; Failed (with its log's end) when it has exited."""
    if proc.poll() is not None:
        raise Failed(f"the {name} hub exited ({proc.returncode}):\n" + "\n".join(
            log.read_text(errors="replace").splitlines()[-15:]))
    try:
        return requests.get(f"{url}/hub/health", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def stop_hub_process(proc: subprocess.Popen | None, proxy_pid_file: Path) -> None:
    """SIGTERM a hub we started, SIGKILL after 30 s; then its proxy by pid file (bounded waits)."""
    if proc is not None and proc.poll() is None:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait(timeout=10)
    if proxy_pid_file.exists():
        try:
            os.kill(int(proxy_pid_file.read_text().strip()), 15)
        except (ValueError, ProcessLookupError):
            pass


def port_answers(host: str, port: int) -> bool:
    import socket
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


# -- the benchmark -------------------------------------------------------------------------------
def median(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None


def fmt(x: float | None, width: int = 7) -> str:
    return f"{x:{width}.2f}" if x is not None else f"{'-':>{width}}"


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def report(runs: list[dict], kinds: list[str], n: int, header: str) -> dict:
    totals = {k: [r["total_s"] for r in runs if r["kind"] == k and r.get("total_s") is not None] for k in kinds}
    failed = {k: sum(1 for r in runs if r["kind"] == k and r.get("error")) for k in kinds}
    med = {k: median(v) for k, v in totals.items()}
    stops = {k: median([r["stop_s"] for r in runs if r["kind"] == k and r.get("stop_s") is not None]) for k in kinds}
    print()
    print(header)
    print(f"{'request -> 200':<36} {'median s':>8} {'min s':>7} {'max s':>7} {'n':>3} {'failed':>6}   {'stop s':>6}")
    for k in kinds:
        v = totals[k]
        print(f"{TITLES[k]:<36} {fmt(med[k], 8)} {fmt(min(v) if v else None)} {fmt(max(v) if v else None)} "
              f"{len(v):>3} {failed[k]:>6}   {fmt(stops[k], 6)}")
    print("(stop s: from the stop request until the job is gone from Slurm's queue; median)")
    ratios = {f"{a}/{b}": ratio(med.get(a), med.get(b))
              for a in ("ours", "candidate") for b in ("floor", "stock", "ours") if a != b and a in kinds and b in kinds}
    print("ratios of the medians: " + ", ".join(f"{k} {fmt(v, 0)}" for k, v in ratios.items()))
    seg = {k: {s: median([r["segments_s"][s] for r in runs if r["kind"] == k and s in r.get("segments_s", {})])
               for s in SEGMENTS} for k in kinds}
    print()
    print("where the time goes (median of each segment, seconds; a kind without an event folds it into the next)")
    print(f"  {'':<52}" + "".join(f"{k:>10}" for k in kinds))
    for s, what in SEGMENTS.items():
        if any(seg[k][s] is not None for k in kinds):
            print(f"  {what:<52}" + "".join(fmt(seg[k][s], 10) for k in kinds))
    side = {k: median([r["port_seen_after_report_s"] for r in runs if r["kind"] == k
                       and r.get("port_seen_after_report_s") is not None]) for k in kinds}
    if any(v is not None for v in side.values()):
        print(f"  {'port report -> the spawner says it (beside the above)':<52}" + "".join(fmt(side[k], 10) for k in kinds))
    for r in runs:
        if r.get("error"):
            print(f"FAILED {r['kind']} run {r['run']}: {r['error']}")
    return {"median_s": med, "stop_median_s": stops, "failed": failed, "ratios": ratios,
            "ours_over_floor": ratios.get("ours/floor"), "ours_over_stock": ratios.get("ours/stock"),
            "segments_median_s": seg, "n": n}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--home", type=Path, default=None,
                    help="the stack's prefix (sandbox.json); default $AIFW_HOME, /opt/aifw-test or /opt/aifw")
    ap.add_argument("--runs", type=int, default=10, help="spawns of each kind (default 10)")
    ap.add_argument("--kinds", default=None,
                    help="which of ours,candidate,stock,floor (default ours,stock,floor, and candidate with --candidate-tree)")
    ap.add_argument("--user", default=None, help="the user who spawns (default: the stack's first learner)")
    ap.add_argument("--partition", default="debug")
    ap.add_argument("--stock-ports", default="18400,18481,18401", help="the stock hub's PROXY,HUB,PROXY_API ports")
    ap.add_argument("--candidate-tree", type=Path, default=None,
                    help="another AIF Workbench source tree to run as a second hub, measured as 'candidate'")
    ap.add_argument("--candidate-ports", default="18500,18581,18501",
                    help="the candidate hub's PROXY,HUB,PROXY_API ports")
    ap.add_argument("--poll", type=float, default=0.05, help="seconds between readiness requests (default 0.05)")
    ap.add_argument("--settle", type=float, default=1.0, help="seconds of quiet after each stop (default 1)")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds one spawn may take")
    ap.add_argument("--json", type=Path, default=None, help="write every run's events and the medians here")
    ap.add_argument("--keep", action="store_true", help="keep the second hubs' state and logs and the jobs' logs")
    args = ap.parse_args(argv)
    default_kinds = ["ours", *(["candidate"] if args.candidate_tree else []), "stock", "floor"]
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()] if args.kinds is not None else default_kinds
    if not kinds or any(k not in KINDS for k in kinds):
        ap.error(f"--kinds takes some of {', '.join(KINDS)}")
    if "candidate" in kinds and not args.candidate_tree:
        ap.error("the candidate needs --candidate-tree")
    kinds = [k for k in KINDS if k in kinds]  # always in the same order
    if args.runs < 1:
        ap.error("--runs must be at least 1")
    if os.geteuid() != 0:
        sys.exit("run as root: the floor's jobs are submitted as the user, and the stock hub runs as root as ours does")

    home = args.home or default_home()
    info_file = home / "sandbox.json"
    if not info_file.exists():
        sys.exit(f"no running stack under {home} ({info_file} is missing): bring one up (make sandbox, or the test "
                 f"stack), or pass --home")
    info = json.loads(info_file.read_text())
    site = load_site(info["site_file"])
    slurm = SlurmClient.for_site(site.slurm)
    user = args.user or next((u for u in sorted(info["users"]) if "learner" in u), sorted(info["users"])[0])
    ours = Hub("ours", info["hub_url"], info["api_token"], Path(info["logs"]) / "jupyterhub.log")
    try:
        if ours.server(user):
            sys.exit(f"{user} has a server on {info['hub_url']} already: stop it first")
    except requests.RequestException as err:
        sys.exit(f"the stack's hub does not answer at {info['hub_url']} ({err}): is the stack up?")
    nodes = [n for n in slurm.nodes_sync() if n.partition == args.partition]
    if not nodes:
        sys.exit(f"Slurm has no partition {args.partition!r}")
    addresses = sorted({n.address or n.name for n in nodes})
    slurm_logs = SlurmLogs.from_conf(Path(info["slurm_conf"]), sorted({n.name for n in nodes}))
    server_args = session_server_args(home)
    user_home = os.path.expanduser(f"~{user}")
    options = {"partition": args.partition, "cpus": 1, "memory_gb": 1, "runtime_minutes": 30}
    hub_ip = site.hub.hub_connect_ip or site.hub.hub_ip or "127.0.0.1"
    floor = Floor(slurm, site.paths.venv, server_args, f"http://{hub_ip}:{site.hub.hub_port}/hub/api", args.partition,
                  addresses)
    stock_ports, candidate_ports = (tuple(int(p) for p in ports.split(",")) for ports in (args.stock_ports, args.candidate_ports))
    if len(stock_ports) != 3 or len(candidate_ports) != 3:
        ap.error("--stock-ports and --candidate-ports take three ports each: PROXY,HUB,PROXY_API")
    stock_hub = candidate_hub = None
    stock = candidate = None
    header = (f"spawn overhead: {info['hub_url']} ({info.get('mode', '?')} mode), user {user}, partition {args.partition} "
              f"(1 CPU, 1 GB, 30 min), {args.runs} run(s) of each, interleaved; {os.cpu_count()} cores; "
              f"server args {server_args or 'none'}")
    runs: list[dict] = []
    try:
        if "stock" in kinds:
            stock_hub = StockHub(site.paths.venv, str(Path(home) / "proxy" / "node_modules" / ".bin" / "configurable-http-proxy"),
                                 hub_ip, stock_ports, sorted(info["users"]), info["slurm_conf"], args.partition, server_args)
            stock = stock_hub.start()
        if "candidate" in kinds:
            candidate_hub = CandidateHub(args.candidate_tree.resolve(), home, site.paths.venv, candidate_ports)
            candidate = candidate_hub.start()
        token = ours.user_token(user)
        print(header, flush=True)
        for i in range(args.runs):
            for kind in kinds:
                run: dict = {"kind": kind, "run": i + 1}
                runs.append(run)
                try:
                    hub = {"ours": ours, "candidate": candidate, "stock": stock}.get(kind)
                    if hub is not None:
                        offset = hub.log.stat().st_size
                        t0, t1, job_id = hub.spawn(user, None if kind == "stock" else options, args.poll, args.timeout)
                        t_stop = time.monotonic()
                        hub.stop(user)
                        hub_text = read_from(hub.log, offset)
                        if not job_id:  # ours says it in its log too
                            m = re.search(rf"{re.escape(user)}: Submitted Slurm job (\d+)", hub_text)
                            job_id = m[1] if m else ""
                        events = {"request": t0, **hub_events(hub_text, user, t0 - 1), "answered": t1}
                        seen = first(jupyter_stamps(hub_text), rf"{re.escape(user)}: JupyterLab listens on node", t0 - 1)
                        if seen is not None and events.get("reported") is not None:
                            run["port_seen_after_report_s"] = seen - events["reported"]
                        logs = (f"{user_home}/jupyterhub_slurmspawner_{job_id}.log" if kind == "stock"
                                else f"{user_home}/.aifw-session-{job_id}.log")
                    else:
                        t0, t1, job_id, logs = floor.spawn(user, user_home, token, args.poll, args.timeout)
                        t_stop = time.monotonic()
                        floor.stop(job_id, user)
                        events = {"request": t0, "answered": t1}
                    if job_id:
                        wait_until(lambda: job_gone(slurm, job_id), 60, 0.2, f"job {job_id} gone from Slurm")
                    run["stop_s"] = time.monotonic() - t_stop
                    if job_id:
                        events.update({k: v for k, v in slurm_logs.read(job_id, t0 - 1).items() if v is not None})
                    log_text = Path(logs).read_text(errors="replace") if Path(logs).exists() else ""
                    events.update({k: v for k, v in server_events(log_text).items() if v is not None})
                    if kind in ("stock", "floor") and not args.keep and Path(logs).exists():
                        Path(logs).unlink()
                    run.update(job_id=job_id, total_s=t1 - t0, events=events, segments_s=segments(events))
                    print(f"  {kind:<5} run {i + 1}: {t1 - t0:5.2f} s (job {job_id or '?'})", flush=True)
                except (Failed, SlurmError, requests.RequestException) as err:
                    run["error"] = str(err)
                    print(f"  {kind:<5} run {i + 1}: FAILED {err}", flush=True)
                    for h in (ours, candidate, stock):
                        if h is not None:
                            try:
                                if h.server(user):
                                    h.stop(user)
                            except (Failed, requests.RequestException):
                                pass
                time.sleep(args.settle)
    finally:
        for second in (stock_hub, candidate_hub):
            if second is not None:
                second.stop(args.keep)
    summary = report(runs, kinds, args.runs, header)
    if args.json:
        args.json.write_text(json.dumps({
            "benchmark": "spawn_overhead", "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "hub": info["hub_url"], "user": user, "partition": args.partition, "request": options,
            "server_args": server_args, "cores": os.cpu_count(), "runs": runs, "summary": summary,
        }, indent=2) + "\n")
        print(f"figures written to {args.json}")
    med = summary["median_s"]
    shown = {k: v for k, v in summary["ratios"].items() if v is not None}
    print("headline: " + ", ".join(f"{k} {fmt(med[k], 0)} s" for k in kinds) + f" (medians of {args.runs})"
          + ("; " + ", ".join(f"{k} {v:.2f}" for k, v in shown.items()) if shown else ""))
    return 1 if any(summary["failed"].values()) or any(med[k] is None for k in kinds) else 0


if __name__ == "__main__":
    raise SystemExit(main())
