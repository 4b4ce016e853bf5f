"""Benchmark 5: the single-user server's start-up, by extension and by import, down to its floor.

    /opt/aifw-test/venv/bin/python benchmarks/server_startup.py [--home /opt/aifw-test] [--runs 3] [--json out.json]

Starts the sessions' server (`jupyterhub-singleuser` from the runtime venv, with the arguments the hub gives
sessions) on 127.0.0.1 as an unprivileged user (`nobody`, with a fresh empty home), against a stand-in for
the hub's API in this process (it answers the server's start-up check of the hub), and times each start
from the moment the process is started until the server answers GET /user/<name>/api. The runs are
interleaved, --runs times each:

- "as sessions": every server extension the venv's Jupyter config turns on;
- "without X": the same with server extension X turned off on the command line, one row per extension;
- "bare": every optional extension off (jupyter_server and JupyterHub's single-user extension only);
- "X not importable": as sessions, with module X made unimportable by a stub on PYTHONPATH (what an
  absent optional dependency looks like). The default X is rfc3987_syntax: jsonschema imports it for its
  "iri" format check (which no Jupyter schema uses) and it builds Lark parsers at import time.

Then one start as sessions under `python -X importtime`: the imports each extension brought in (in the order
the server loads them) and the import self-time by top-level package.
Each start's CPU time (user + system of its processes until it answered) is the CPU cost of one start.

Prints a table; the last line is the headline. --json writes every figure. Needs root (it runs the server as
another user) or runs the server as the current user when that is not root.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import pwd
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

SERVER_USER_PATH = "/user/bench/"  # the server's base URL (JUPYTERHUB_SERVICE_PREFIX); any user name does
DEFAULT_BLOCKED = ("rfc3987_syntax",)
# The extensions `jupyterhub-singleuser` always loads (the "bare" server keeps them).
ALWAYS_ON = ("jupyterhub",)

EXTENSIONS_SNIPPET = """
import json
from jupyter_core.paths import jupyter_config_path
from jupyter_server.extension.config import ExtensionConfigManager
import jupyterhub
enabled = ExtensionConfigManager(read_config_path=jupyter_config_path()).get_jpserver_extensions()
print(json.dumps({"extensions": sorted(k for k, v in enabled.items() if v), "jupyterhub": jupyterhub.__version__}))
"""


def default_home() -> Path:
    """$AIFW_HOME, else the test stack's prefix when it is installed, else the sandbox's."""
    if os.environ.get("AIFW_HOME"):
        return Path(os.environ["AIFW_HOME"])
    return Path("/opt/aifw-test") if Path("/opt/aifw-test/venv/bin/jupyterhub-singleuser").exists() else Path("/opt/aifw")


def session_server_args(home: Path) -> list[str]:
    """The arguments the hub gives a session's server (c.Spawner.args from aifw.hub_config.settings, for the
    site installed under `home`); [] when no site is installed there."""
    site_file = home / "state" / "site.yaml"
    if not site_file.exists():
        return []
    from aifw.hub_config.settings import build_settings
    from aifw.site import load_site

    return list(build_settings(load_site(str(site_file)), home=str(home))["Spawner"].get("args", []))


# -- the stand-in hub ----------------------------------------------------------------------------
class StandInHub:
    """Answers the server's requests to the hub (GET /hub/api with the version, activity posts) with 200."""

    def __init__(self, version: str):
        body = json.dumps({"version": version}).encode()

        class Handler(BaseHTTPRequestHandler):
            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer

            def log_message(self, *args):  # quiet
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hub/api"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- running the server ----------------------------------------------------------------------------
@dataclass
class Runner:
    venv: Path
    user: str | None  # run as this user (through runuser), None: as this process's user
    home: Path  # the server user's home (empty, theirs)
    hub: StandInHub
    args: list[str]
    timeout_s: float
    logs: Path
    failures: list[str] = field(default_factory=list)

    def env(self, port: int, extra: dict[str, str] | None = None) -> dict[str, str]:
        prefix = SERVER_USER_PATH
        env = {
            "PATH": f"{self.venv / 'bin'}:/usr/local/bin:/usr/bin:/bin",
            "HOME": str(self.home),
            "LANG": "C.UTF-8",
            "JUPYTERHUB_API_TOKEN": "stand-in-token",
            "JUPYTERHUB_CLIENT_ID": "jupyterhub-user-bench",
            "JUPYTERHUB_USER": "bench",
            "JUPYTERHUB_SERVER_NAME": "",
            "JUPYTERHUB_API_URL": self.hub.api_url,
            "JUPYTERHUB_ACTIVITY_URL": f"{self.hub.api_url}/users/bench/activity",
            "JUPYTERHUB_BASE_URL": "/",
            "JUPYTERHUB_SERVICE_PREFIX": prefix,
            "JUPYTERHUB_SERVICE_URL": f"http://127.0.0.1:{port}{prefix}",
            "JUPYTERHUB_OAUTH_CALLBACK_URL": f"{prefix}oauth_callback",
            "JUPYTERHUB_DEFAULT_URL": "/lab",
        }
        env.update(extra or {})
        return env

    def argv(self, command: list[str], env: dict[str, str]) -> list[str]:
        """`command` with exactly `env`, as the server's user (runuser resets HOME and PATH: env -i sets them)."""
        if self.user is None:
            return command
        runuser = shutil.which("runuser", path="/usr/sbin:/sbin:/usr/bin:/bin") or "runuser"
        return [runuser, "-u", self.user, "--", "/usr/bin/env", "-i", *(f"{k}={v}" for k, v in env.items()), *command]

    def python(self, code: str, *, importtime: bool = False) -> subprocess.CompletedProcess:
        flags = ["-X", "importtime"] if importtime else []
        env = self.env(free_port())
        return subprocess.run(self.argv([str(self.venv / "bin" / "python"), *flags, "-c", code], env), env=env,
                              cwd=str(self.home), capture_output=True, text=True, timeout=self.timeout_s)

    def start(self, label: str, args: list[str], extra_env: dict[str, str] | None = None,
              python_flags: tuple[str, ...] = ()) -> tuple[float, float, Path] | None:
        """Start the server, wait until it answers, stop it. (seconds, CPU seconds, its log), or None (noted)."""
        port = free_port()
        command = [str(self.venv / "bin" / "python"), *python_flags, str(self.venv / "bin" / "jupyterhub-singleuser"),
                   *self.args, *args]
        log = self.logs / f"{re.sub(r'[^A-Za-z0-9]+', '-', label)}-{port}.log"
        url = f"http://127.0.0.1:{port}{SERVER_USER_PATH}api"
        with open(log, "w") as out:
            t0 = time.perf_counter()
            env = self.env(port, extra_env)
            proc = subprocess.Popen(self.argv(command, env), env=env, cwd=str(self.home),
                                    stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
            try:
                answered = wait_for_answer(url, proc, t0 + self.timeout_s)
                elapsed = time.perf_counter() - t0
                cpu = group_cpu_seconds(proc.pid)
                exit_code = proc.poll()
            finally:
                stop_group(proc)
        if not answered:
            why = f"exited with {exit_code}" if exit_code is not None else f"did not answer in {self.timeout_s:g} s"
            self.failures.append(f"{label}: the server {why}; the end of its log:\n{tail(log)}")
            return None
        return elapsed, cpu, log


def wait_for_answer(url: str, proc: subprocess.Popen, deadline: float) -> bool:
    """Poll `url` every 10 ms until it answers 200 (True), the process exits or the deadline passes (False)."""
    while time.perf_counter() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status == 200:
                    return True
        except (urllib.error.URLError, ConnectionError, OSError):
            pass
        if proc.poll() is not None:
            return False
        time.sleep(0.01)
    return False


def group_cpu_seconds(pgid: int) -> float:
    """User + system CPU seconds of every live process in process group `pgid` (the server and runuser), with
    those of the children each has waited for (JupyterLab runs `node yarn.js config` at import: 0.3-0.5 CPU-s
    of every start, which counting live processes alone left out)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # after "pid (comm)": state ppid pgrp session ... utime(12) stime(13) cutime(14) cstime(15)
        if int(fields[2]) == pgid:
            total += int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])
    return total / ticks


def stop_group(proc: subprocess.Popen) -> None:
    """SIGKILL the server's process group (its shutdown is not what is measured; runuser would hold a SIGTERM
    for 2 s) and reap it."""
    try:
        os.killpg(proc.pid, 9)
    except ProcessLookupError:
        pass
    proc.wait(timeout=30)


def tail(path: Path, lines: int = 8) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# -- -X importtime ---------------------------------------------------------------------------------
IMPORT_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( +)(\S+)")


def parse_importtime(text: str, after: str | None = None) -> list[tuple[int, int, int, str]]:
    """(self µs, cumulative µs, depth, module) of each `-X importtime` line (after the line `after`)."""
    rows = []
    started = after is None
    for line in text.splitlines():
        if not started:
            started = line.strip() == after
            continue
        m = IMPORT_LINE.match(line)
        if m:
            rows.append((int(m[1]), int(m[2]), (len(m[3]) - 1) // 2, m[4]))
    return rows


def self_time_by_package(rows: list[tuple[int, int, int, str]]) -> dict[str, float]:
    """Seconds of import self-time per top-level package, largest first."""
    by = collections.Counter()
    for own, _cum, _depth, name in rows:
        by[name.split(".")[0]] += own
    return {k: v / 1e6 for k, v in by.most_common()}


def import_seconds_by_extension(rows: list[tuple[int, int, int, str]], extensions: list[str]) -> dict[str, float]:
    """Seconds of the imports each extension brought in during one start, in the order the server loaded them
    (an import shared by two extensions counts for the first), and the rest under "(the server itself)".
    Each top-level import (depth 0: the server importing an extension, or what the extension's loading
    imports) goes to the extension whose module it is, is in, or is a package of."""
    out = {e: 0.0 for e in extensions}
    out["(the server itself)"] = 0.0
    pending: list[tuple[str, int]] = []  # parent packages imported just before an extension's own module
    for _own, cum, depth, name in rows:
        if depth != 0:
            continue
        owner = next((e for e in extensions if name == e or name.startswith(e + ".")), None)
        if owner is None and any(e.startswith(name + ".") for e in extensions):
            pending.append((name, cum))
            continue
        if owner is not None:
            for parent, pcum in pending:
                if owner.startswith(parent + "."):
                    out[owner] += pcum / 1e6
                else:
                    out["(the server itself)"] += pcum / 1e6
            pending = []
            out[owner] += cum / 1e6
        else:
            out["(the server itself)"] += cum / 1e6
    for _parent, pcum in pending:
        out["(the server itself)"] += pcum / 1e6
    return out


# -- the benchmark -------------------------------------------------------------------------------
def blocker_dir(base: Path, modules: list[str]) -> Path:
    """A folder for PYTHONPATH in which each of `modules` raises ImportError when imported."""
    d = base / "blocked"
    for name in modules:
        pkg = d / name
        pkg.mkdir(parents=True, exist_ok=True)
        (pkg / "__init__.py").write_text(f"raise ImportError('{name} is blocked by benchmarks/server_startup.py')\n")
    for p in [d, *d.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)
    return d


def median(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None


def fmt(x: float | None, width: int = 7) -> str:
    return f"{x:{width}.2f}" if x is not None else f"{'-':>{width}}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--home", type=Path, default=None,
                    help="runtime prefix (venv/ and state/site.yaml); default $AIFW_HOME, /opt/aifw-test or /opt/aifw")
    ap.add_argument("--runs", type=int, default=3, help="starts of each configuration (default 3)")
    ap.add_argument("--extensions", default=None,
                    help="comma-separated server extensions to turn off one by one (default: every one that is on)")
    ap.add_argument("--block", default=",".join(DEFAULT_BLOCKED),
                    help="comma-separated modules to make unimportable in one more configuration ('' for none)")
    ap.add_argument("--user", default="nobody", help="the unix user the server runs as when this runs as root")
    ap.add_argument("--no-profile", action="store_true", help="skip the -X importtime measurements")
    ap.add_argument("--timeout", type=float, default=90.0, help="seconds one start may take")
    ap.add_argument("--json", type=Path, default=None, help="write every figure to this file")
    ap.add_argument("--keep-logs", action="store_true", help="keep the servers' logs (their folder is printed)")
    args = ap.parse_args(argv)
    if args.runs < 1:
        ap.error("--runs must be at least 1")

    home = args.home or default_home()
    venv = home / "venv"
    if not (venv / "bin" / "jupyterhub-singleuser").exists():
        sys.exit(f"no runtime venv with jupyterhub-singleuser under {home}: install one (make sandbox or "
                 f"make install-test), or pass --home")
    server_args = session_server_args(home)

    base = Path(tempfile.mkdtemp(prefix="aifw-bench-startup-"))
    base.chmod(0o755)
    server_home = base / "home"
    server_home.mkdir()
    user = None
    if os.geteuid() == 0:
        user = args.user
        try:
            pw = pwd.getpwnam(user)
        except KeyError:
            sys.exit(f"there is no unix user {user!r} to run the server as; pass --user")
        os.chown(server_home, pw.pw_uid, pw.pw_gid)
    server_home.chmod(0o700)
    logs = base / "logs"
    logs.mkdir()
    hub = StandInHub("unknown")
    runner = Runner(venv=venv, user=user, home=server_home, hub=hub, args=server_args, timeout_s=args.timeout, logs=logs)
    try:
        probe = runner.python(EXTENSIONS_SNIPPET)
        if probe.returncode != 0:
            sys.exit(f"cannot read the venv's server extensions:\n{probe.stderr[-2000:]}")
        info = json.loads(probe.stdout.strip().splitlines()[-1])
        hub.close()
        hub = runner.hub = StandInHub(info["jupyterhub"])
        enabled = [e for e in info["extensions"] if e not in ALWAYS_ON]
        toggled = enabled if args.extensions is None else [e.strip() for e in args.extensions.split(",") if e.strip()]
        unknown = [e for e in toggled if e not in enabled]
        if unknown:
            sys.exit(f"not on in this venv: {', '.join(unknown)}; on: {', '.join(enabled)}")
        blocked = [m.strip() for m in args.block.split(",") if m.strip()]

        off = {e: [f"--ServerApp.jpserver_extensions={e}=False"] for e in enabled}
        configs: dict[str, tuple[list[str], dict[str, str]]] = {"as sessions": ([], {})}
        for e in toggled:
            configs[f"without {e}"] = (off[e], {})
        configs["bare (no optional extension)"] = ([a for e in enabled for a in off[e]], {})
        if blocked:
            configs[f"{', '.join(blocked)} not importable"] = ([], {"PYTHONPATH": str(blocker_dir(base, blocked))})

        print(f"server start-up: {venv}, {os.cpu_count()} cores, {args.runs} run(s) of {len(configs)} "
              f"configurations, interleaved; server args {server_args or 'none'}", flush=True)
        times: dict[str, list[float]] = {k: [] for k in configs}
        cpus: dict[str, list[float]] = {k: [] for k in configs}
        for _ in range(args.runs):
            for label, (extra_args, extra_env) in configs.items():
                got = runner.start(label, extra_args, extra_env)
                if got:
                    times[label].append(got[0])
                    cpus[label].append(got[1])
        interpreter = []
        for _ in range(args.runs):
            t = time.perf_counter()
            if runner.python("pass").returncode == 0:
                interpreter.append(time.perf_counter() - t)

        imports: dict[str, float] = {}
        packages: dict[str, float] = {}
        profiled_start = None
        if not args.no_profile:
            got = runner.start("importtime", [], python_flags=("-X", "importtime"))
            if got:
                profiled_start = got[0]
                rows = parse_importtime(got[2].read_text(errors="replace"))
                packages = self_time_by_package(rows)
                imports = import_seconds_by_extension(rows, enabled)

        full = median(times["as sessions"])
        rows = []
        print()
        print(f"{'configuration':<52} {'start s':>7} {'CPU s':>7} {'vs sessions':>11}  n")
        for label in configs:
            m = median(times[label])
            delta = m - full if m is not None and full is not None and label != "as sessions" else None
            rows.append({"configuration": label, "args": configs[label][0], "start_s": m, "cpu_s": median(cpus[label]),
                         "runs_s": times[label], "cpu_runs_s": cpus[label], "delta_s": delta})
            d = f"{delta:+11.2f}" if delta is not None else f"{'':>11}"
            print(f"{label:<52} {fmt(m)} {fmt(median(cpus[label]))} {d}  {len(times[label])}")
        print(f"{'python -c pass (the interpreter, as the same user)':<52} {fmt(median(interpreter))}")
        if packages:
            total = sum(packages.values())
            print()
            print(f"one start as sessions under -X importtime: {fmt(profiled_start, 0)} s, of which imports {total:.2f} s")
            print(f"  {'imports each extension brought in (load order; shared ones count once)':<70} {'s':>7}")
            for e, sec in imports.items():
                print(f"    {e:<68} {sec:7.2f}")
            print(f"  {'import self time by package (the largest 12)':<70} {'s':>7}")
            for name, sec in list(packages.items())[:12]:
                print(f"    {name:<68} {sec:7.3f}")
        for f in runner.failures:
            print(f"FAILED {f}")
        bare = median(times["bare (no optional extension)"])
        blocked_label = f"{', '.join(blocked)} not importable" if blocked else None
        unblocked = median(times[blocked_label]) if blocked_label else None
        result = {
            "benchmark": "server_startup",
            "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "machine": {"cores": os.cpu_count(), "python": platform.python_version(), "node": platform.node()},
            "venv": str(venv), "server_args": server_args, "runs": args.runs, "jupyterhub": info["jupyterhub"],
            "extensions_on": enabled, "configurations": rows,
            "interpreter_s": median(interpreter), "extension_import_s": imports,
            "import_self_s_by_package": dict(list(packages.items())[:40]), "profiled_start_s": profiled_start,
            "failures": runner.failures,
            "headline": {"as_sessions_s": full, "bare_s": bare, "blocked": blocked, "blocked_s": unblocked},
        }
        if args.json:
            args.json.write_text(json.dumps(result, indent=2) + "\n")
            print(f"figures written to {args.json}")
        if args.keep_logs:
            print(f"server logs kept in {logs}")
        extra = f"; with {', '.join(blocked)} not importable {fmt(unblocked, 0)} s" if blocked else ""
        print(f"headline: server start as sessions {fmt(full, 0)} s (median of {len(times['as sessions'])}); "
              f"bare {fmt(bare, 0)} s{extra}")
        return 1 if runner.failures or full is None else 0
    finally:
        hub.close()
        if not args.keep_logs:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
