"""Benchmarks 2 and 3: a class burst, and the hub under load. N learners press Start within one second,
each then runs a cell in a kernel (as hubtraf does); while the class runs, the latency of the hub's REST API
and of a proxied request to a learner's server, beside the same with no class running.

    /opt/aifw-test/venv/bin/python benchmarks/class_burst.py [--home /opt/aifw-test] [--learners 12] [--json out.json]

Runs as root against a running stack (the test stack or the sandbox: --home holds its sandbox.json). Steps:

1. Learners. The stack runs with a site derived from the one it runs now (`state/site.yaml`): N more demo
   accounts `bench-learner1..N`, in the first course and in the project of that course's first learner.
   `aifw.sandbox.stack.up` applies it (unix accounts, Slurm associations, course groups; the hub restarts
   to load the site). At the end, also after a failure or Ctrl-C, the original site is brought back the
   same way, sandbox.json's users are put back and the bench learners' hub users are deleted.
2. The CPU floor. One session server start as benchmarks/server_startup.py measures it (its functions,
   imported: as `nobody`, against a stand-in hub, --cpu-runs times before the burst and as many after it,
   the median of all: one start's CPU drifts by 20 % between minutes here): the CPU seconds of one start. The CPU
   floor of the class is N x those seconds / the number of cores: no class can be ready sooner on this
   machine, however good the hub and Slurm are.
   Beside it: the machine's busy CPU seconds (/proc/stat) from the Starts until the last learner is ready,
   and the hub's, the proxy's and slurmctld's own (by their pid files): what a session start costs in all.
3. The burst. N threads each `POST /hub/api/users/NAME/server` (admin token; partition --partition, 1 CPU,
   1 GB, 30 minutes), spread evenly over --spread seconds (< 1), follow the hub's progress stream until it
   says ready (as hubtraf does; --ready-by poll: no stream) and then `GET /user/NAME/api/status` with the
   learner's token through the proxy until it answers 200 (time-to-ready); then each starts a kernel
   through its server's REST API, executes one cell over the kernel's websocket and waits for its result
   (time-to-cell: request -> the cell's result). Failures are kept with why.
4. The hub under load. While every ready learner's kernel keeps executing a cell, one after another,
   --requests requests to the hub's API (`GET /hub/api/users/NAME`, admin token) and as many proxied
   ones (`GET /user/NAME/api/status`, the learner's token), alternated, one at a time, round robin over
   the learners, from a process of their own (so that no sample waits for the learner threads' GIL); the
   learner threads, stand-ins for browsers on other machines, run at nice 10 meanwhile. Then every server
   but one is stopped (and its job gone from Slurm), and the same requests are made with no class running
   (the proxied ones to the one idle server): the baseline, in the same run.
5. Every server it started is stopped and its job gone from Slurm's queue.

The partition must fit N 1-CPU/1-GB sessions at once (sinfo's idle CPUs and memory); the benchmark refuses
a larger N, saying how many fit. Prints a table, the headline on its last line; --json writes every
learner's times, every latency sample and the summary. It reports the issue's targets (0 failures, all
ready within 1.2 x the CPU floor, hub API p99 <= 50 ms with the class running); it asserts none of them.
"""
from __future__ import annotations

import argparse
import json
import os
import pwd
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import requests
import websocket
import yaml

from aifw.sandbox import stack as sandbox_stack
from aifw.sandbox.processes import read_pid
from aifw.sandbox.sandbox_json import load_sandbox_json, write_sandbox_json
from aifw.slurm import SlurmClient, SlurmError

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.dont_write_bytecode = True  # no __pycache__ in benchmarks/ from the imports below
from server_startup import Runner, StandInHub, default_home, session_server_args  # noqa: E402
from spawn_overhead import Failed, Hub, fmt, job_gone, wait_until  # noqa: E402

BENCH_PREFIX = "bench-learner"
REQUEST = {"cpus": 1, "memory_gb": 1, "runtime_minutes": 30}
FIRST_CELL = "print(sum(range(10**6)))"
FIRST_CELL_OUTPUT = str(sum(range(10**6)))
LOAD_CELL = "sum(i * i for i in range(100_000))"
TARGET_FLOOR_RATIO = 1.2
TARGET_HUB_P99_MS = 50.0


# -- figures -------------------------------------------------------------------------------------
def percentile(xs: list[float], p: float) -> float | None:
    """The p-th percentile (0-100) with linear interpolation between the closest ranks; None without data."""
    if not xs:
        return None
    s = sorted(xs)
    k = (len(s) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def spread(xs: list[float]) -> dict[str, float | None]:
    return {"p50": percentile(xs, 50), "p95": percentile(xs, 95), "p99": percentile(xs, 99),
            "max": max(xs) if xs else None, "n": len(xs)}


def machine_cpu_seconds() -> float:
    """CPU seconds the whole machine has been busy since boot (/proc/stat: every state but idle and iowait)."""
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (ticks + [0] * 8)[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pids: dict[str, int | None]) -> dict[str, float]:
    """User + system CPU seconds of each named live process (the stack's daemons), by name."""
    out = {}
    for name, pid in pids.items():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, TypeError):
            continue
        out[name] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return out


def daemon_pids(home: Path) -> dict[str, int | None]:
    """The stack's JupyterHub, proxy and slurmctld, by their pid files."""
    s = sandbox_stack.make_stack(home, home / "state" / "site.yaml")
    return {"JupyterHub": read_pid(s.hub_pid), "proxy": read_pid(s.proxy_pid), "slurmctld": read_pid(s.slurm_paths.ctld_pid)}


# -- the derived site ----------------------------------------------------------------------------
def bench_names(n: int) -> list[str]:
    return [f"{BENCH_PREFIX}{i}" for i in range(1, n + 1)]


def derive_site(data: dict, learners: list[str]) -> tuple[dict, str | None, str | None]:
    """The site `data` with `learners` as demo accounts, learners of its first course and members of the
    project of that course's first learner (else the first project any learner is in). Returns the new
    data, the course id and the project name (None where the site has none)."""
    out = json.loads(json.dumps(data))  # a deep copy of plain YAML data
    sandbox = out.get("sandbox") or {}
    have = {u["name"] for u in sandbox.get("demo_users", [])}
    sandbox.setdefault("demo_users", []).extend({"name": u} for u in learners if u not in have)
    course_id = project = None
    courses = out.get("courses") or []
    known: list[str] = []
    if courses:
        course = courses[0]
        course_id = course["id"]
        known = [u for u in course.get("learners", []) if u not in learners]
        course["learners"] = list(course.get("learners", [])) + [u for u in learners if u not in course.get("learners", [])]
    projects = out.get("projects") or []
    chosen = (next((p for p in projects if known and known[0] in p.get("users", [])), None)
              or next((p for p in projects if set(p.get("users", [])) & set(known)), None))
    if chosen is not None:
        project = chosen["name"]
        chosen["users"] = list(chosen.get("users", [])) + [u for u in learners if u not in chosen.get("users", [])]
    return out, course_id, project


@dataclass
class Learners:
    """Brings the stack up with N bench learners, and back to the site it ran before."""

    home: Path
    names: list[str]
    folder: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="aifw-bench-burst-")))
    applied: bool = False

    def __post_init__(self):
        self.original = self.folder / "original-site.yaml"
        shutil.copyfile(self.home / "state" / "site.yaml", self.original)
        self.original_users = dict(load_sandbox_json(sandbox_stack.make_stack(self.home, self.original)).get("users", {}))

    def apply(self) -> tuple[str | None, str | None]:
        data, course, project = derive_site(yaml.safe_load(self.original.read_text()), self.names)
        derived = self.folder / "site-with-bench-learners.yaml"
        derived.write_text(yaml.safe_dump(data, sort_keys=False))
        self.applied = True
        sandbox_stack.up(sandbox_stack.make_stack(self.home, derived))
        return course, project

    def restore(self) -> None:
        if self.applied:
            s = sandbox_stack.make_stack(self.home, self.original)
            sandbox_stack.up(s)
            info = load_sandbox_json(s)
            if set(info.get("users", {})) != set(self.original_users):
                info["users"] = {u: p for u, p in info.get("users", {}).items() if u in self.original_users}
                write_sandbox_json(s, info)
        shutil.rmtree(self.folder, ignore_errors=True)


# -- one learner ---------------------------------------------------------------------------------
class Kernel:
    """A kernel in a learner's server, started through its REST API, cells executed over its websocket."""

    def __init__(self, base_url: str, user: str, token: str, timeout: float):
        self.user, self.timeout = user, timeout
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"token {token}"
        self.api = f"{base_url}/user/{user}/api/kernels"
        r = self.http.post(self.api, json={"name": "python3"}, timeout=timeout)
        if r.status_code != 201:
            raise Failed(f"starting a kernel answered {r.status_code} {r.text[:200]}")
        self.id = r.json()["id"]
        ws_url = self.api.replace("http", "ws", 1) + f"/{self.id}/channels"
        self.ws = websocket.create_connection(ws_url, header=[f"Authorization: token {token}"], timeout=timeout)
        self.session = uuid.uuid4().hex

    def execute(self, code: str) -> str:
        """Run `code`; its stdout and result text. Failed when it raises or no reply comes in time. Done once
        both the shell channel's execute_reply and the iopub channel's "idle" (which follows every output)
        have come: the two channels' messages may arrive in either order."""
        msg_id = uuid.uuid4().hex
        self.ws.send(json.dumps({
            "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": self.user, "session": self.session,
                       "date": datetime.now(timezone.utc).isoformat(), "version": "5.3"},
            "parent_header": {}, "metadata": {}, "buffers": [], "channel": "shell",
            "content": {"code": code, "silent": False, "store_history": False, "user_expressions": {},
                        "allow_stdin": False, "stop_on_error": True},
        }))
        out: list[str] = []
        reply: dict | None = None
        idle = False
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            msg = json.loads(self.ws.recv())
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, content = msg.get("msg_type"), msg.get("content", {})
            if kind == "stream":
                out.append(content.get("text", ""))
            elif kind == "execute_result":
                out.append(content.get("data", {}).get("text/plain", ""))
            elif kind == "error":
                raise Failed(f"the cell raised {content.get('ename')}: {content.get('evalue')}")
            elif kind == "status" and content.get("execution_state") == "idle":
                idle = True
            elif kind == "execute_reply":
                reply = content
            if reply is not None and idle:
                if reply.get("status") != "ok":
                    raise Failed(f"the cell ended with status {reply.get('status')}")
                return "".join(out)
        raise Failed(f"no reply to the cell within {self.timeout:g} s")

    def close(self) -> None:
        try:
            self.ws.close()
        except websocket.WebSocketException:
            pass


@dataclass
class Learner:
    """One learner's burst: press Start at `at`, wait for the server, run a cell, then keep running cells
    until `stop` is set."""

    user: str
    hub: Hub
    options: dict
    at: float  # time.time() at which Start is pressed
    poll: float
    ready_by: str  # "progress": the hub's progress stream, then the proxy; "poll": the proxy every `poll` s
    timeout: float
    stop: threading.Event
    record: dict = field(default_factory=dict)
    first_cell_done: threading.Event = field(default_factory=threading.Event)
    kernel: Kernel | None = None
    daemons: dict[str, int | None] = field(default_factory=dict)

    def run(self) -> None:
        r = self.record
        r["user"] = self.user
        try:
            time.sleep(max(0.0, self.at - time.time()))
            if self.ready_by == "progress":
                t0, t1, job_id = spawn_watching_progress(self.hub, self.user, self.options, self.poll, self.timeout)
            else:
                t0, t1, job_id = self.hub.spawn(self.user, self.options, self.poll, self.timeout)
            r.update(request=t0, ready=t1, job_id=job_id, ready_s=t1 - t0, machine_cpu_at_ready=machine_cpu_seconds(),
                     daemon_cpu_at_ready=process_cpu_seconds(self.daemons))
            self.kernel = Kernel(self.hub.url, self.user, self.hub.user_token(self.user), self.timeout)
            got = self.kernel.execute(FIRST_CELL).strip()
            t2 = time.time()
            if got != FIRST_CELL_OUTPUT:
                raise Failed(f"the cell printed {got[:80]!r}, not {FIRST_CELL_OUTPUT}")
            r.update(cell_done=t2, cell_s=t2 - t0, kernel_and_cell_s=t2 - t1)
        except (Failed, requests.RequestException, websocket.WebSocketException, OSError, ValueError) as err:
            r["error"] = f"{type(err).__name__}: {err}" if not isinstance(err, Failed) else str(err)
            return
        finally:
            self.first_cell_done.set()
        cells = 0
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), CLIENT_NICE)  # this thread only (Linux)
            while not self.stop.is_set():
                self.kernel.execute(LOAD_CELL)
                cells += 1
        except (Failed, websocket.WebSocketException, OSError, ValueError) as err:
            r["load_error"] = f"{type(err).__name__}: {err}"
        r["load_cells"] = cells


def spawn_watching_progress(hub: Hub, user: str, options: dict, poll_s: float, timeout: float) -> tuple[float, float, str]:
    """POST the spawn and follow the hub's progress stream (`GET /hub/api/users/NAME/server/progress`, one
    long request, as hubtraf does) until it says ready; then `GET /user/NAME/api/status` through the proxy
    until it answers 200 (every `poll_s`). (request epoch, answered epoch, job id). Polling the proxy all
    along instead (`--ready-by poll`) costs the hub, the proxy and this process a request every `poll_s` per
    learner: CPU taken from the very starts it measures."""
    token = hub.user_token(user)
    answer: dict = {}

    def post():
        try:
            answer["response"] = hub.api("POST", f"/users/{user}/server", json={"user_options": options})
        except requests.RequestException as err:
            answer["error"] = err

    def refused() -> str | None:
        if "error" in answer:
            return str(answer["error"])
        if "response" in answer and answer["response"].status_code not in (201, 202):
            return f"{answer['response'].status_code} {answer['response'].text[:300]}"
        return None

    t0 = time.time()
    thread = threading.Thread(target=post, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    ready = False
    while not ready and time.monotonic() < deadline:
        if refused():
            raise Failed(f"the spawn was refused: {refused()}")
        try:
            with hub.admin.get(f"{hub.url}/hub/api/users/{user}/server/progress", stream=True,
                               timeout=(10, max(1.0, deadline - time.monotonic()))) as r:
                if r.status_code != 200:  # the spawn is not pending yet (the POST is on its way)
                    time.sleep(0.1)
                    continue
                for line in r.iter_lines(decode_unicode=True):
                    if not line or not line.startswith("data:"):
                        continue
                    event = json.loads(line[5:])
                    if event.get("failed"):
                        raise Failed(f"the spawn failed: {event.get('message', '')[:300]}")
                    if event.get("ready"):
                        ready = True
                        break
                    if time.monotonic() > deadline:
                        break
        except (requests.RequestException, ValueError):
            time.sleep(0.1)
    if not ready:
        raise Failed(f"the hub did not say {user}'s server is ready within {timeout:g} s")
    probe = requests.Session()
    probe.headers["Authorization"] = f"token {token}"
    while time.monotonic() < deadline:
        try:
            r = probe.get(f"{hub.url}/user/{user}/api/status", timeout=10, allow_redirects=False)
            if r.status_code == 200 and "started" in r.json():
                t1 = time.time()
                break
        except (requests.RequestException, ValueError):
            pass
        time.sleep(poll_s)
    else:
        raise Failed(f"/user/{user}/api/status did not answer 200 within {timeout:g} s of the Start")
    thread.join(timeout=30)
    if refused():
        raise Failed(f"the spawn was refused: {refused()}")
    state = (hub.server(user) or {}).get("state") or {}
    return t0, t1, str(state.get("job_id") or "")


# -- latency -------------------------------------------------------------------------------------
#: The benchmark's own learner threads (12 websockets executing cells back to back) stand in for learners'
#: browsers, which run on their laptops, not on the hub's machine: once a learner's first cell is done, its
#: thread runs at the nice value the sandbox gives its compute nodes' jobs (aifw.sandbox.slurm_daemons), so
#: that the stand-in clients do not take the cores from the hub they measure.
CLIENT_NICE = 10


def latencies(hub: Hub, users: list[str], proxied_users: list[str], n: int) -> dict[str, dict]:
    """`n` hub API and `n` proxied requests, alternated, one at a time, round robin; milliseconds each. Made
    from a process of their own (nice 0), so that no sample waits for this process's GIL, which the learner
    threads hold in turn while they parse their kernels' messages."""
    import multiprocessing

    tokens = {u: hub.user_token(u) for u in proxied_users}
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(sample_latencies, (hub.url, hub.token, users, proxied_users, tokens, n))


def sample_latencies(url: str, admin_token: str, users: list[str], proxied_users: list[str],
                     tokens: dict[str, str], n: int) -> dict[str, dict]:
    admin = requests.Session()
    admin.headers["Authorization"] = f"token {admin_token}"
    learner = {u: requests.Session() for u in proxied_users}
    for u, s in learner.items():
        s.headers["Authorization"] = f"token {tokens[u]}"
    out = {"hub_api": {"ms": [], "failed": []}, "proxied": {"ms": [], "failed": []}}
    for i in range(n):
        targets = [("hub_api", admin, f"{url}/hub/api/users/{users[i % len(users)]}")]
        if proxied_users:
            u = proxied_users[i % len(proxied_users)]
            targets.append(("proxied", learner[u], f"{url}/user/{u}/api/status"))
        for kind, session, target in targets:
            t = time.perf_counter()
            try:
                code = session.get(target, timeout=10, allow_redirects=False).status_code
            except requests.RequestException as err:
                out[kind]["failed"].append(f"{target}: {type(err).__name__}")
                continue
            ms = (time.perf_counter() - t) * 1000
            if code == 200:
                out[kind]["ms"].append(ms)
            else:
                out[kind]["failed"].append(f"{target}: {code}")
    return out


# -- Slurm -----------------------------------------------------------------------------------------
def capacity(slurm: SlurmClient, partition: str) -> tuple[int, list[str]]:
    """How many 1-CPU/1-GB sessions the partition's nodes can take now (at most: idle CPUs, memory), and
    one line per node."""
    total, lines = 0, []
    for n in slurm.nodes_sync():
        if n.partition != partition:
            continue
        fits = min(n.cpus_idle, n.memory_mb // (REQUEST["memory_gb"] * 1024)) if n.takes_jobs else 0
        total += fits
        lines.append(f"{n.name} ({n.state}, {n.cpus_idle} of {n.cpus} CPUs idle, {n.memory_mb} MB): {fits}")
    return total, lines


def stop_servers(hub: Hub, users: list[str], slurm: SlurmClient, job_ids: list[str], timeout: float = 120) -> list[str]:
    """Stop the users' servers (all requests first, then the waits) until the hub has none of them and
    their jobs are gone from Slurm. Returns what did not stop, in words."""
    problems = []
    for u in users:
        try:
            r = hub.api("DELETE", f"/users/{u}/server")
            if r.status_code not in (202, 204, 400):
                problems.append(f"stopping {u}'s server answered {r.status_code} {r.text[:200]}")
        except requests.RequestException as err:
            problems.append(f"stopping {u}'s server: {err}")
    deadline = time.monotonic() + timeout
    for u in users:
        try:
            wait_until(lambda: hub.server(u) is None, max(1.0, deadline - time.monotonic()), 0.25,
                       f"{u}'s server gone from the hub")
        except (Failed, requests.RequestException) as err:
            problems.append(str(err))
    for j in job_ids:
        try:
            wait_until(lambda: job_gone(slurm, j), max(1.0, deadline - time.monotonic()), 0.25, f"job {j} gone from Slurm")
        except Failed as err:
            problems.append(str(err))
    return problems


# -- the CPU floor ----------------------------------------------------------------------------------
def server_start_cpu_seconds(home: Path, hub_version: str, runs: int, timeout: float) -> tuple[list[float], list[str]]:
    """CPU seconds of `runs` starts of the sessions' server, measured as benchmarks/server_startup.py does."""
    base = Path(tempfile.mkdtemp(prefix="aifw-bench-burst-cpu-"))
    base.chmod(0o755)
    server_home, logs = base / "home", base / "logs"
    server_home.mkdir()
    logs.mkdir()
    user = None
    if os.geteuid() == 0:
        user = "nobody"
        pw = pwd.getpwnam(user)
        os.chown(server_home, pw.pw_uid, pw.pw_gid)
    server_home.chmod(0o700)
    stand_in = StandInHub(hub_version)
    runner = Runner(venv=home / "venv", user=user, home=server_home, hub=stand_in, args=session_server_args(home),
                    timeout_s=timeout, logs=logs)
    try:
        cpu = [got[1] for got in (runner.start("as sessions", []) for _ in range(runs)) if got]
        return cpu, runner.failures
    finally:
        stand_in.close()
        shutil.rmtree(base, ignore_errors=True)


# -- the benchmark -------------------------------------------------------------------------------
def print_report(learners: list[dict], cpu_s: float | None, cores: int, load: dict, base: dict, header: str,
                 problems: list[str], cpu_at_start: tuple[float, float, dict[str, float]] | None) -> dict:
    ready = [r["ready_s"] for r in learners if "ready_s" in r]
    cells = [r["cell_s"] for r in learners if "cell_s" in r]
    kc = [r["kernel_and_cell_s"] for r in learners if "kernel_and_cell_s" in r]
    failed = [r for r in learners if r.get("error")]
    n = len(learners)
    first_request = min((r["request"] for r in learners if "request" in r), default=None)
    all_ready_s = (max(r["ready"] for r in learners) - first_request
                   if first_request is not None and len(ready) == n else None)
    floor_s = n * cpu_s / cores if cpu_s else None
    ratio = all_ready_s / floor_s if all_ready_s is not None and floor_s else None
    print()
    print(header)
    print(f"{'':<40} {'p50 s':>7} {'p95 s':>7} {'max s':>7} {'n':>4} {'failed':>6}")
    for title, xs, lost in (("time-to-ready (request -> 200 via proxy)", ready, n - len(ready)),
                            ("time-to-cell (request -> cell result)", cells, len(ready) - len(cells)),
                            ("  of which kernel start + cell", kc, "")):
        s = spread(xs)
        print(f"{title:<40} {fmt(s['p50'])} {fmt(s['p95'])} {fmt(s['max'])} {len(xs):>4} {lost:>6}")
    cpu_text = f"{n} x {cpu_s:.2f} CPU-s / {cores} cores = {floor_s:.2f} s" if floor_s else "not measured"
    print(f"all ready {fmt(all_ready_s, 0)} s after the first Start; CPU floor {cpu_text}; "
          f"all ready / CPU floor {fmt(ratio, 0)} (target <= {TARGET_FLOOR_RATIO})")
    used = (max(r["machine_cpu_at_ready"] for r in learners) - cpu_at_start[1]
            if cpu_at_start is not None and all_ready_s is not None else None)
    daemons: dict[str, float] = {}
    if used is not None:
        wall = max(r["ready"] for r in learners) - cpu_at_start[0]
        last = max(learners, key=lambda r: r["ready"])["daemon_cpu_at_ready"]
        daemons = {k: v - cpu_at_start[2][k] for k, v in last.items() if k in cpu_at_start[2]}
        print(f"the machine was busy {used:.1f} CPU-s from the Starts until all were ready: {used / n:.2f} per "
              f"learner ({used / (wall * cores):.0%} of its {cores} cores), against {fmt(cpu_s, 0)} CPU-s of the "
              f"server's start alone; of the {used:.1f}: " + ", ".join(f"{k} {v:.1f}" for k, v in daemons.items()))
    print()
    print(f"{'latency, one request at a time':<52} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} {'n':>4} {'failed':>6}")
    rows = {}
    for key, title in (("hub_api", "hub API GET /hub/api/users/NAME"), ("proxied", "proxied GET /user/NAME/api/status")):
        for phase, data, label in (("class", load, "class running"), ("baseline", base, "no class")):
            got = data.get(key, {"ms": [], "failed": []})
            s = spread(got["ms"])
            rows[f"{key}_{phase}"] = {**s, "failed": len(got["failed"])}
            print(f"{title + ', ' + label:<52} {fmt(s['p50'], 7)} {fmt(s['p99'], 7)} {fmt(s['max'], 7)} "
                  f"{s['n']:>4} {len(got['failed']):>6}")
    load_cells = sum(r.get("load_cells", 0) for r in learners)
    print(f"(while the class ran, its kernels executed {load_cells} cells one after another; the baseline's "
          f"proxied requests went to one idle server)")
    for r in failed:
        print(f"FAILED {r['user']}: {r['error']}")
    for r in learners:
        if r.get("load_error"):
            print(f"FAILED {r['user']} while the class ran: {r['load_error']}")
    for p in problems:
        print(f"PROBLEM {p}")
    return {
        "learners": n, "ready": len(ready), "failed": len(failed), "time_to_ready_s": spread(ready),
        "time_to_cell_s": spread(cells), "kernel_and_cell_s": spread(kc), "all_ready_s": all_ready_s,
        "machine_cpu_s_until_all_ready": used, "machine_cpu_s_per_learner": used / n if used is not None else None,
        "daemon_cpu_s_until_all_ready": daemons,
        "cpu_s_per_server_start": cpu_s, "cores": cores, "cpu_floor_s": floor_s, "all_ready_over_cpu_floor": ratio,
        "latency_ms": rows, "load_cells": load_cells,
        "targets": {"failed": 0, "all_ready_over_cpu_floor": TARGET_FLOOR_RATIO, "hub_api_p99_ms_class": TARGET_HUB_P99_MS},
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--home", type=Path, default=None,
                    help="the stack's prefix (sandbox.json); default $AIFW_HOME, /opt/aifw-test or /opt/aifw")
    ap.add_argument("--learners", type=int, default=12, help="learners in the class (default 12)")
    ap.add_argument("--partition", default="debug", help="the partition the sessions run in (default debug)")
    ap.add_argument("--spread", type=float, default=0.9, help="seconds over which the Starts are pressed (< 1, default 0.9)")
    ap.add_argument("--requests", type=int, default=200, help="hub API and proxied requests in each phase (default 200)")
    ap.add_argument("--cpu-runs", type=int, default=3, help="server starts for the CPU floor, before the burst and again after it (median of all; default 3)")
    ap.add_argument("--ready-by", choices=("progress", "poll"), default="progress",
                    help="how a learner learns that its server is ready: the hub's progress stream, then one request "
                    "through the proxy (default, as hubtraf does); or a request through the proxy every --poll s")
    ap.add_argument("--poll", type=float, default=0.05,
                    help="seconds between a learner's readiness requests through the proxy (default 0.05)")
    ap.add_argument("--timeout", type=float, default=180.0, help="seconds a learner's spawn, kernel or cell may take")
    ap.add_argument("--json", type=Path, default=None, help="write every learner's times and every latency sample here")
    args = ap.parse_args(argv)
    if args.learners < 1 or args.requests < 1 or args.cpu_runs < 1:
        ap.error("--learners, --requests and --cpu-runs must be at least 1")
    if not 0 <= args.spread < 1:
        ap.error("--spread must be at least 0 and below 1 second (the class presses Start within one second)")
    if os.geteuid() != 0:
        sys.exit("run as root: the benchmark adds unix accounts and Slurm associations through `aifw sandbox up`")

    home = (args.home or default_home()).resolve()
    info_file = home / "sandbox.json"
    if not info_file.exists() or not (home / "state" / "site.yaml").exists():
        sys.exit(f"no running stack under {home} ({info_file} or state/site.yaml is missing): bring one up "
                 f"(make sandbox, or the test stack), or pass --home")
    info = json.loads(info_file.read_text())
    try:
        hub_version = requests.get(f"{info['api_url']}", timeout=10).json()["version"]
    except (requests.RequestException, ValueError, KeyError) as err:
        sys.exit(f"the stack's hub does not answer at {info['api_url']} ({err}): is the stack up?")
    stack_now = sandbox_stack.make_stack(home, home / "state" / "site.yaml")
    slurm = stack_now.slurm
    fits, node_lines = capacity(slurm, args.partition)
    if not node_lines:
        sys.exit(f"Slurm has no partition {args.partition!r}")
    if args.learners > fits:
        sys.exit(f"partition {args.partition} fits at most {fits} sessions of 1 CPU and 1 GB now ("
                 + "; ".join(node_lines) + f"), not {args.learners}: pass --learners {fits} or less, or another --partition")
    names = bench_names(args.learners)
    hub = Hub("ours", info["hub_url"], info["api_token"], Path(info["logs"]) / "jupyterhub.log")
    try:
        busy = [u for u in names if hub.api("GET", f"/users/{u}").status_code == 200 and hub.server(u)]
    except requests.RequestException as err:
        sys.exit(f"the stack's hub does not answer at {info['hub_url']} ({err})")
    if busy:
        sys.exit(f"{', '.join(busy)} have servers on {info['hub_url']} already: stop them first")

    cores = os.cpu_count() or 1
    load_before = os.getloadavg()
    options = {"partition": args.partition, **REQUEST}
    header = (f"class burst: {info['hub_url']} ({info.get('mode', '?')} mode), {args.learners} learners "
              f"({names[0]}..{names[-1]}), partition {args.partition} (1 CPU, 1 GB, 30 min), Start pressed over "
              f"{args.spread:g} s, ready told by " + ("the hub's progress stream" if args.ready_by == "progress" else
                                                     f"the proxy every {args.poll:g} s")
              + f"; {cores} cores, load average {load_before[0]:.2f} before the run")
    print(f"the CPU of one session server start ({args.cpu_runs} start(s), as benchmarks/server_startup.py measures it)",
          flush=True)
    cpu_runs, cpu_failures = server_start_cpu_seconds(home, hub_version, args.cpu_runs, args.timeout)
    cpu_s = statistics.median(cpu_runs) if cpu_runs else None
    problems = [f"server start for the CPU floor: {f}" for f in cpu_failures]

    learners: list[Learner] = []
    cpu_at_start = None
    load: dict = {}
    base: dict = {}
    course = project = None
    accounts = Learners(home, names)
    try:
        print(f"adding {names[0]}..{names[-1]} to the stack (aifw sandbox up with a derived site)", flush=True)
        course, project = accounts.apply()
        for u in names:
            r = hub.api("POST", f"/users/{u}/tokens", json={"note": "class_burst benchmark", "expires_in": 7200})
            if r.status_code != 201:
                raise Failed(f"cannot make a token for {u}: {r.status_code} {r.text[:200]} (is {u} a hub user?)")
            hub.user_tokens[u] = r.json()["token"]
        stop = threading.Event()
        t_start = time.time() + 0.5
        pids = daemon_pids(home)
        cpu_at_start = (time.time(), machine_cpu_seconds(), process_cpu_seconds(pids))
        for i, u in enumerate(names):
            h = Hub("ours", hub.url, hub.token, hub.log, user_tokens={u: hub.user_tokens[u]})
            learners.append(Learner(u, h, options, t_start + i * args.spread / max(1, args.learners - 1),
                                    args.poll, args.ready_by, args.timeout, stop, daemons=pids))
        threads = [threading.Thread(target=lr.run, daemon=True, name=lr.user) for lr in learners]
        print(f"the burst: {args.learners} Starts over {args.spread:g} s", flush=True)
        for t in threads:
            t.start()
        deadline = time.monotonic() + args.timeout * 3 + 10
        for lr in learners:
            lr.first_cell_done.wait(max(0.0, deadline - time.monotonic()))
        running = [lr.user for lr in learners if "cell_s" in lr.record]
        if running:
            print(f"the hub under load: {args.requests} hub API and {args.requests} proxied requests while "
                  f"{len(running)} kernels run cells", flush=True)
            load = latencies(hub, names, running, args.requests)
        stop.set()
        for t in threads:
            t.join(timeout=args.timeout + 10)
        for lr in learners:
            if lr.kernel:
                lr.kernel.close()
        keep = running[:1]
        job_ids = [lr.record["job_id"] for lr in learners if lr.record.get("job_id") and lr.user not in keep]
        problems += stop_servers(hub, [u for u in names if u not in keep], slurm, job_ids)
        print(f"the baseline: the class stopped; {args.requests} hub API and {args.requests} proxied requests"
              + (f" to {keep[0]}'s idle server" if keep else ""), flush=True)
        base = latencies(hub, names, keep, args.requests)
        # The floor's starts again, after the class: one start's CPU seconds drift by 20 % between minutes on
        # a shared machine, and the floor is the median of the starts before and after the burst.
        problems += stop_servers(hub, keep, slurm, [lr.record["job_id"] for lr in learners
                                                    if lr.user in keep and lr.record.get("job_id")])
        print(f"the CPU of one session server start again, after the class ({args.cpu_runs} start(s))", flush=True)
        after, failures = server_start_cpu_seconds(home, hub_version, args.cpu_runs, args.timeout)
        cpu_runs += after
        problems += [f"server start for the CPU floor: {f}" for f in failures]
        cpu_s = statistics.median(cpu_runs) if cpu_runs else None
    except (Failed, requests.RequestException, SlurmError) as err:
        problems.append(f"the run stopped early: {err}")
    finally:
        records = [lr.record for lr in learners]
        job_ids = [r["job_id"] for r in records if r.get("job_id")]
        problems += stop_servers(hub, names, slurm, job_ids)
        try:
            left = sorted(set(job_ids) & set(slurm.job_ids_sync())) if job_ids else []
            if left:
                problems.append(f"jobs still in Slurm's queue: {', '.join(left)}")
        except SlurmError as err:
            problems.append(f"cannot tell whether the class's jobs left Slurm's queue: {err}")
        print("taking the bench learners out again (aifw sandbox up with the original site)", flush=True)
        accounts.restore()
        for u in names:
            try:
                r = hub.api("DELETE", f"/users/{u}")
                if r.status_code not in (204, 404):
                    problems.append(f"deleting hub user {u} answered {r.status_code} {r.text[:200]}")
            except requests.RequestException as err:
                problems.append(f"deleting hub user {u}: {err}")
    summary = print_report(records, cpu_s, cores, load, base, header, problems, cpu_at_start)
    if args.json:
        args.json.write_text(json.dumps({
            "benchmark": "class_burst", "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "hub": info["hub_url"],
            "partition": args.partition, "request": options, "spread_s": args.spread, "course": course,
            "project": project, "cores": cores, "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
            "cpu_runs_s": cpu_runs, "capacity": {"fits": fits, "nodes": node_lines},
            "learners": records, "latency": {"class": load, "baseline": base}, "problems": problems,
            "summary": summary,
        }, indent=2) + "\n")
        print(f"figures written to {args.json}")
    lat = summary["latency_ms"]
    ttr = summary["time_to_ready_s"]
    print(f"headline: {summary['learners']} learners, {summary['ready']} ready, {summary['failed']} failed; "
          f"time-to-ready p50 {fmt(ttr['p50'], 0)} s, p95 {fmt(ttr['p95'], 0)} s, max {fmt(ttr['max'], 0)} s; "
          f"all ready / CPU floor {fmt(summary['all_ready_over_cpu_floor'], 0)} (target {TARGET_FLOOR_RATIO}); "
          f"hub API p99 {fmt(lat['hub_api_class']['p99'], 0)} ms with the class running, "
          f"{fmt(lat['hub_api_baseline']['p99'], 0)} ms without (target {TARGET_HUB_P99_MS:g})")
    return 1 if summary["failed"] or problems or summary["ready"] < summary["learners"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
