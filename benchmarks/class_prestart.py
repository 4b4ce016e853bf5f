"""A class that is ready before it arrives: time-to-lab after login, in a real browser, for learners whose
session a trainer started beforehand (`aifw class start`).

    /opt/aifw-test/venv/bin/python benchmarks/class_prestart.py [--home /opt/aifw-test] [--course aif-foundations]

Runs as root against a running stack (the test stack or the sandbox: --home holds its sandbox.json and
state/site.yaml), with the course's learners as they are (its hub group course-<id>-learners). Steps:

1. Every learner's server is stopped, then `aifw class start COURSE --partition P` starts the class (the
   stack's admin token): the time until every session is ready.
2. Each learner logs in through the hub's login form in Playwright driving Debian's Chromium (a fresh browser
   context each): time-to-lab is from pressing "Sign in" until JupyterLab's shell is on the page
   (`#jp-main-dock-panel`), which is where the hub sends a learner whose server runs.
3. Every learner's server is stopped again and its job gone from Slurm's queue.

Prints a table, the headline on its last line; --json writes every figure. The issue's target is
time-to-lab <= 1 s; it is reported, not asserted.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import requests

TARGET_S = 1.0
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def default_home() -> Path:
    for candidate in (os.environ.get("AIFW_HOME"), "/opt/aifw-test", "/opt/aifw"):
        if candidate and (Path(candidate) / "sandbox.json").exists():
            return Path(candidate)
    return Path("/opt/aifw")


class Hub:
    def __init__(self, info: dict):
        self.url = info["hub_url"]
        self.s = requests.Session()
        self.s.headers["Authorization"] = f"token {info['api_token']}"

    def api(self, method: str, path: str, **kw) -> requests.Response:
        return self.s.request(method, f"{self.url}/hub/api{path}", timeout=60, **kw)

    def server(self, user: str) -> dict | None:
        r = self.api("GET", f"/users/{user}")
        r.raise_for_status()
        return r.json()["servers"].get("")

    def stop_all(self, users: list[str], timeout: float = 90) -> list[str]:
        """Stop each user's server and wait until none is left; returns what did not stop."""
        for u in users:
            if self.server(u):
                self.api("DELETE", f"/users/{u}/server")
        deadline = time.monotonic() + timeout
        left = users
        while left and time.monotonic() < deadline:
            left = [u for u in users if self.server(u)]
            time.sleep(0.5)
        return [f"{u}'s server did not stop within {timeout:.0f} s" for u in left]


def time_to_lab(browser, hub_url: str, user: str, password: str, timeout_s: float) -> dict[str, float]:
    """Seconds from "Sign in" to the lab's page (the hub's redirects and the OAuth round trip done) and to
    JupyterLab's shell; then the shell of the same lab reloaded (logged in, its files cached): the floor,
    what JupyterLab itself takes to come up in this browser on this machine."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        page = context.new_page()
        page.set_default_timeout(timeout_s * 1000)
        page.goto(f"{hub_url}/hub/login")
        page.fill("input[name=username]", user)
        page.fill("input[name=password]", password)
        t0 = time.monotonic()
        page.click("input[type=submit], button[type=submit]")
        page.wait_for_url(f"**/user/{user}/lab**", wait_until="commit")
        at_page = time.monotonic() - t0
        page.wait_for_selector("#jp-main-dock-panel", state="attached")
        at_shell = time.monotonic() - t0
        t1 = time.monotonic()
        page.reload(wait_until="commit")
        page.wait_for_selector("#jp-main-dock-panel", state="attached")
        return {"to_lab_page_s": at_page, "to_lab_shell_s": at_shell, "reload_shell_s": time.monotonic() - t1}
    finally:
        context.close()


def fmt(xs: list[float]) -> str:
    if not xs:
        return "-"
    return f"median {statistics.median(xs):.2f} s, max {max(xs):.2f} s"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--home", type=Path, default=None, help="the stack's prefix (default $AIFW_HOME, /opt/aifw-test or /opt/aifw)")
    ap.add_argument("--course", default="aif-foundations", help="the course whose class starts (default aif-foundations)")
    ap.add_argument("--partition", default="debug", help="the partition of the sessions (default debug)")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds the class start and each login may take")
    ap.add_argument("--json", type=Path, default=None, help="write every figure here")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        sys.exit("run as root: the class is started with the stack's admin token (sandbox.json is root's)")
    home = (args.home or default_home()).resolve()
    try:
        info = json.loads((home / "sandbox.json").read_text())
    except (OSError, ValueError) as err:
        sys.exit(f"no running stack under {home} ({err}): bring one up (make sandbox, or the test stack), or pass --home")
    hub = Hub(info)
    try:
        r = hub.api("GET", f"/groups/course-{args.course}-learners")
    except requests.RequestException as err:
        sys.exit(f"the stack's hub does not answer at {hub.url} ({err}): is the stack up?")
    if r.status_code != 200:
        sys.exit(f"the hub has no learner group of course {args.course!r} ({r.status_code}): pass --course")
    learners = sorted(r.json()["users"])
    missing = [u for u in learners if u not in info["users"]]
    if not learners or missing:
        sys.exit(f"course {args.course} has no learners with a known password here (missing: {', '.join(missing) or 'all'})")

    problems = hub.stop_all(learners)
    aifw = Path(sys.executable).with_name("aifw")
    t0 = time.monotonic()
    start = subprocess.run([str(aifw), "class", "start", args.course, "--partition", args.partition, "--runtime", "30",
                            "--wait", str(int(args.timeout)), "--site", str(home / "state" / "site.yaml")],
                           capture_output=True, text=True, timeout=args.timeout + 60)
    class_ready_s = time.monotonic() - t0
    if start.returncode != 0:
        problems.append(f"aifw class start exited {start.returncode}: {(start.stdout + start.stderr)[-800:]}")
    times: dict[str, dict[str, float]] = {}
    try:
        if start.returncode == 0:
            from playwright.sync_api import sync_playwright

            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
                try:
                    for u in learners:
                        try:
                            times[u] = time_to_lab(browser, hub.url, u, info["users"][u], args.timeout)
                        except Exception as err:  # noqa: BLE001 - reported per learner, the others still measured
                            problems.append(f"{u}: {err}")
                finally:
                    browser.close()
    finally:
        problems += hub.stop_all(learners)

    xs = [t["to_lab_shell_s"] for t in times.values()]
    pages = [t["to_lab_page_s"] for t in times.values()]
    floors = [t["reload_shell_s"] for t in times.values()]
    print(f"class pre-start: {hub.url}, course {args.course}, {len(learners)} learners, partition {args.partition}")
    print(f"{'learner':<20} {'to the lab page':>16} {'to the lab shell':>17} {'reload (floor)':>15}")
    for u in learners:
        t = times.get(u)
        print(f"{u:<20} {t['to_lab_page_s']:>14.2f} s {t['to_lab_shell_s']:>15.2f} s {t['reload_shell_s']:>13.2f} s"
              if t else f"{u:<20} failed")
    print(f"class ready (aifw class start, all sessions): {class_ready_s:.1f} s")
    for p in problems:
        print(f"problem: {p}")
    summary = {"learners": len(learners), "class_ready_s": class_ready_s, "per_learner": times,
               "median_s": statistics.median(xs) if xs else None, "max_s": max(xs) if xs else None,
               "median_to_lab_page_s": statistics.median(pages) if pages else None,
               "median_reload_floor_s": statistics.median(floors) if floors else None,
               "target_s": TARGET_S, "problems": problems}
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    verdict = ("meets" if xs and max(xs) <= TARGET_S else "misses") + f" the target (<= {TARGET_S:g} s)"
    floor = f"; JupyterLab's own reload {statistics.median(floors):.2f} s, ours/reload {statistics.median(xs) / statistics.median(floors):.2f}" if floors else ""
    page_line = f" (to the lab page: {fmt(pages)})" if pages else ""
    print(f"headline: {len(xs)} of {len(learners)} learners in their running lab after login: {fmt(xs)}{page_line}; "
          f"{verdict}{floor}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
