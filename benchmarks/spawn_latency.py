"""How fast does a person get a session? Spawn sessions through the hub's REST API, one user after
another and then all at once, and print request → ready and stop times.

Runs against a running sandbox (as root, it reads $AIFW_HOME/sandbox.json):

    /opt/aifw/venv/bin/python benchmarks/spawn_latency.py [--home /opt/aifw] [--partition debug]

It starts and stops only the servers of the sandbox's demo users that are not running already.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--home", default="/opt/aifw")
    ap.add_argument("--partition", default="debug")
    ap.add_argument("--rounds", type=int, default=2, help="sequential rounds per user")
    args = ap.parse_args()
    info = json.loads((Path(args.home) / "sandbox.json").read_text())
    api = info["api_url"]
    s = requests.Session()
    s.headers["Authorization"] = f"token {info['api_token']}"
    users = [u for u in info["users"] if not s.get(f"{api}/users/{u}", timeout=30).json()["servers"]]
    if not users:
        print("every demo user already has a server; stop them first")
        return 1

    def spawn(user: str) -> tuple[float, float]:
        t0 = time.perf_counter()
        r = s.post(f"{api}/users/{user}/server", json={"user_options": {"partition": args.partition}}, timeout=120)
        r.raise_for_status()
        while True:
            server = s.get(f"{api}/users/{user}", timeout=30).json()["servers"].get("", {})
            if server.get("ready"):
                break
            if not server:
                raise RuntimeError(f"{user}'s spawn failed")
            time.sleep(0.1)
        ready = time.perf_counter() - t0
        t1 = time.perf_counter()
        s.delete(f"{api}/users/{user}/server", timeout=120)
        while s.get(f"{api}/users/{user}", timeout=30).json()["servers"]:
            time.sleep(0.1)
        return ready, time.perf_counter() - t1

    sequential = [spawn(u) for _ in range(args.rounds) for u in users]
    t0 = time.perf_counter()
    with ThreadPoolExecutor(len(users)) as pool:
        concurrent = list(pool.map(spawn, users))
    wall = time.perf_counter() - t0

    def row(name: str, xs: list[float]) -> str:
        return f"{name:<34} n={len(xs):<3} mean {statistics.mean(xs):5.2f} s   min {min(xs):5.2f} s   max {max(xs):5.2f} s"

    print(f"partition {args.partition}, users {', '.join(users)}")
    print(row("one at a time: request -> ready", [r for r, _ in sequential]))
    print(row("one at a time: stop -> gone", [st for _, st in sequential]))
    print(row(f"{len(users)} at once: request -> ready", [r for r, _ in concurrent]))
    print(f"{len(users)} at once: all ready and stopped in {wall:.2f} s "
          f"(ratio to one session: {wall / statistics.mean([r + st for r, st in sequential]):.2f}x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
