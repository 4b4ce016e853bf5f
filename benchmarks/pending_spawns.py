"""Many spawns pending at once: slurmctld's RPCs per second and the hub's CPU, per-spawner polling against
the shared job watcher, side by side in one run (issue 13, part 4).

Runs as root against a running sandbox (it reads $AIFW_HOME/sandbox.json, or --home):

    /opt/aifw/venv/bin/python benchmarks/pending_spawns.py [--home /opt/aifw] [--spawns 200] [--json out.json]

What it measures, in two parts:

1. In-process, at scale. N jobs are submitted *held* (``sbatch --hold``, as --user): they wait in the queue
   with reason JobHeldUser, whatever the load, and use no CPU, GPU or node, so 2 cores need not run N
   servers, and nothing they do can start them during the window (a job waiting for busy resources would
   need the nodes filled first, and could start when they free up). For the same N jobs, in turn:
   - "idle": no one polls (slurmctld's background traffic: node pings, the hub's own look-ups);
   - "old": N tasks run the start-up loop every spawner ran before the shared watcher, each on its own:
     ``SlurmClient.job`` (one ``squeue -j ID``) every interval, and every 15 s its own queue explanation
     (``squeue -t PENDING -p P`` and ``squeue --start -j ID``), with the spawners' shared partition cache;
   - "new": N real AIFSlurmSpawner objects run their start-up loop (``_wait_until_serving``) against the
     real slurmctld: one ``squeue -j id1,...`` per interval for all of them (aifw.spawners.job_watch).
   Over a fixed window after a warm-up: slurmctld's RPCs (``sdiag`` read before and after; its own
   REQUEST_STATS_INFO left out), the CPU of this process (which plays the hub) and of the Slurm commands
   it ran (/proc/self/stat: utime+stime, cutime+cstime), and how often each spawner got an answer.
2. Through the real hub, with a handful (--hub-spawns K, at most the sandbox's users but one). Every GPU
   is taken by filler jobs (as --holder), then K users start a GPU session through the REST API: they
   pend (Resources). Windows with 0, 1 and K pending spawns: slurmctld's RPCs per second and the hub
   process's CPU (/proc/<hub pid>/stat, with its reaped children). The hub runs the shared watcher only
   (the old loop is gone from the code), so this part shows the rate staying flat from 1 to K.

Prints a table; the headline (RPCs/s old vs new, and their ratio) is the last line. --json writes it all.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import requests
from traitlets.config import Config

from aifw.site import load_site
from aifw.slurm import BatchJob, BatchScript, SlurmClient, SlurmError, SlurmUnavailable, build_batch_script
from aifw.slurm.parse import RpcCounts
from aifw.spawners.request import SessionRequest
from aifw.spawners.spawner import AIFSlurmSpawner

EXPLAIN_EVERY_S = 15.0  # the old loop's queue explanation period (the spawner's _EXPLAIN_EVERY_S)
OWN_REQUEST = "REQUEST_STATS_INFO"  # sdiag's own request: left out of the counts


# -- measuring ---------------------------------------------------------------------------------------------
def cpu_seconds(pid: int | str = "self") -> tuple[float, float]:
    """(the process's own CPU seconds, its reaped children's) from /proc/<pid>/stat."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2:].split()  # after "pid (comm) ": field 3 (state) is fields[0]
    tick = os.sysconf("SC_CLK_TCK")
    utime, stime, cutime, cstime = (int(fields[i]) for i in (11, 12, 13, 14))
    return (utime + stime) / tick, (cutime + cstime) / tick


@dataclass
class Window:
    """One measured window: what ran, its length, slurmctld's requests in it, the CPU and the answers."""

    mode: str
    what: str
    seconds: float = 0.0
    rpcs: dict[str, int] = field(default_factory=dict)
    cpu_own_s: float = 0.0
    cpu_children_s: float = 0.0
    pending: int = 0
    answers: int = 0  # answers the spawners got in the window (in-process part)

    @property
    def rpc_rate(self) -> float:
        return sum(self.rpcs.values()) / self.seconds if self.seconds else 0.0

    def as_json(self) -> dict:
        return {"mode": self.mode, "what": self.what, "seconds": round(self.seconds, 2), "pending_spawns": self.pending,
                "rpcs": self.rpcs, "rpcs_per_s": round(self.rpc_rate, 2),
                "cpu_own_percent": round(100 * self.cpu_own_s / self.seconds, 1) if self.seconds else 0,
                "cpu_children_percent": round(100 * self.cpu_children_s / self.seconds, 1) if self.seconds else 0,
                "answers_per_spawn_per_s": round(self.answers / self.seconds / self.pending, 2)
                if self.seconds and self.pending and self.answers else None}


class Meter:
    """Reads slurmctld's counters and a process's CPU at the start and the end of a window."""

    def __init__(self, client: SlurmClient, pid: int | str = "self"):
        self.client, self.pid = client, pid

    def start(self) -> None:
        self._rpc0, self._cpu0, self._t0 = self.client.rpc_counts_sync(), cpu_seconds(self.pid), time.monotonic()

    def stop(self, window: Window) -> Window:
        t1, cpu1, rpc1 = time.monotonic(), cpu_seconds(self.pid), self.client.rpc_counts_sync()
        between: RpcCounts = rpc1.since(self._rpc0)
        window.seconds = t1 - self._t0
        window.rpcs = {k: v for k, v in sorted(between.by_type.items(), key=lambda kv: -kv[1]) if k != OWN_REQUEST}
        window.cpu_own_s = cpu1[0] - self._cpu0[0]
        window.cpu_children_s = cpu1[1] - self._cpu0[1]
        return window


# -- part 1: in-process, N held jobs ---------------------------------------------------------------------------
def held_script(partition: str | None) -> str:
    return build_batch_script(
        BatchJob(job_name="aifw-bench-held", time_minutes=5, partition=partition, output="/dev/null", chdir="/tmp"),
        BatchScript(command=["sleep", "60"], purpose="benchmark held job"))


async def submit_held(client: SlurmClient, n: int, user: str, partition: str | None) -> list[str]:
    script, limit = held_script(partition), asyncio.Semaphore(8)

    async def one() -> str:
        async with limit:
            return await client.submit(script, user=user, hold=True)

    return list(await asyncio.gather(*(one() for _ in range(n))))


async def old_spawner(client: SlurmClient, live: AIFSlurmSpawner, job_id: str, partition: str,
                      interval: float, answers: list[int]) -> None:
    """The start-up loop of a pending spawner before the shared watcher (spawner.py before commit 0d01e7b):
    its own squeue every interval; on a change, and every 15 s, its own queue order and start estimate."""
    last_seen, last_explained = "", 0.0
    while True:
        try:
            info = await client.job(job_id)
        except SlurmUnavailable:
            info = None
        answers[0] += 1
        if info is not None and info.is_pending:
            key = f"{info.state}/{info.reason}"
            if key != last_seen or time.monotonic() - last_explained > EXPLAIN_EVERY_S:
                try:
                    await client.pending_order(info.partition or partition)
                    await client.start_estimates([job_id])
                except SlurmError:
                    pass
                await live.live_partitions()  # the spawners' shared cache, as before
                last_seen, last_explained = key, time.monotonic()
        await asyncio.sleep(interval)


class CountingSpawner(AIFSlurmSpawner):
    """The real spawner; counts the answers its start-up loop gets (nothing else differs)."""

    answers: list[int]

    async def _job(self, interval=None):
        info = await super()._job(interval)
        self.answers[0] += 1
        return info


async def in_process(args, site, client: SlurmClient, job_ids: list[str], partition: str) -> list[Window]:
    meter = Meter(client)
    c = Config()
    c.AIFSlurmSpawner.site = site
    c.AIFSlurmSpawner.startup_poll_interval = args.interval
    request = SessionRequest(partition, cpus=1, memory_gb=1, gpus=0, runtime_minutes=5)
    windows = []
    plan = [("idle", "no one polls the held jobs (background traffic)")]
    for _ in range(args.rounds):
        plan += [("old", f"{len(job_ids)} tasks, each its own squeue -j ID every {args.interval:g} s (the old loop)"),
                 ("new", f"{len(job_ids)} AIFSlurmSpawner start-up loops through the shared watcher")]
    for mode, what in plan:
        answers = [0]
        tasks: list[asyncio.Task] = []
        if mode == "old":
            live = AIFSlurmSpawner(config=c, user=SimpleNamespace(name=args.user))
            tasks = [asyncio.ensure_future(old_spawner(client, live, j, partition, args.interval, answers))
                     for j in job_ids]
        elif mode == "new":
            for j in job_ids:
                s = CountingSpawner(config=c, user=SimpleNamespace(name=args.user))
                s.answers, s.job_id, s._events = answers, j, []
                tasks.append(asyncio.ensure_future(s._wait_until_serving(request)))
        try:
            await asyncio.sleep(args.warmup)  # first sight of every job (its first explanation) is not measured
            start_answers = answers[0]
            meter.start()
            await asyncio.sleep(args.seconds)
            window = meter.stop(Window(mode, what, pending=len(job_ids)))
            window.answers = answers[0] - start_answers if mode != "idle" else 0
            windows.append(window)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        failed = [t for t in tasks if not t.cancelled() and t.exception() is not None]
        if failed:
            raise RuntimeError(f"{len(failed)} {mode} spawners failed: {failed[0].exception()!r}")
        print(f"  {mode:<5} {window.rpc_rate:8.1f} RPCs/s  ({what})", flush=True)
    await settled(client.timeout_s + 5)
    return windows


async def settled(timeout_s: float) -> None:
    """Wait until nothing runs but this (the shared watcher ends its round in flight once its callers are
    gone); a task still running after `timeout_s` is a leak: said with its stack."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        left = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        if not left:
            return
        await asyncio.sleep(0.1)
    for task in left:
        task.print_stack()
    raise RuntimeError(f"{len(left)} task(s) still running {timeout_s:g} s after every spawner was cancelled")


# -- part 2: through the real hub --------------------------------------------------------------------------------
class Hub:
    def __init__(self, info: dict, home: Path):
        self.api = info["api_url"]
        self.s = requests.Session()
        self.s.headers["Authorization"] = f"token {info['api_token']}"
        pid_file = home / "state" / "hub" / "jupyterhub.pid"
        self.pid = int(pid_file.read_text().split()[0])

    def server(self, user: str) -> dict | None:
        r = self.s.get(f"{self.api}/users/{user}", timeout=30)
        r.raise_for_status()
        return r.json()["servers"].get("")

    def start_pending(self, user: str, options: dict) -> None:
        r = self.s.post(f"{self.api}/users/{user}/server", json={"user_options": options}, timeout=60)
        if r.status_code not in (201, 202):
            raise RuntimeError(f"the hub refused {user}'s session: {r.status_code} {r.text[:300]}")
        server = self.server(user)
        if not server or server.get("pending") != "spawn":
            raise RuntimeError(f"{user}'s session is not pending: {server}")

    def stop(self, user: str, timeout_s: float = 60) -> None:
        self.s.delete(f"{self.api}/users/{user}/server", timeout=60)
        deadline = time.monotonic() + timeout_s
        while self.server(user) and time.monotonic() < deadline:
            time.sleep(0.3)


def wait_for_jobs(client: SlurmClient, ids: list[str], states: set[str], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        seen = asyncio.run(client.jobs(ids))
        if len(seen) == len(ids) and all(j.state in states for j in seen.values()):
            return
        time.sleep(0.3)
    raise RuntimeError(f"jobs {', '.join(ids)} did not reach {'/'.join(sorted(states))} in {timeout_s:g} s")


def through_hub(args, info: dict, home: Path, client: SlurmClient, holder: str, users: list[str]) -> list[Window]:
    hub = Hub(info, home)
    meter = Meter(client, hub.pid)
    busy = [u for u in users if hub.server(u)]
    if busy:
        raise RuntimeError(f"{', '.join(busy)} already have a server; stop them first (the benchmark starts its own)")
    gpu_nodes = [n for n in client.nodes_sync() if n.partition == args.hub_partition and n.gpus and n.takes_jobs]
    if not gpu_nodes:
        raise RuntimeError(f"partition {args.hub_partition} has no GPU node that takes jobs: nothing to fill")
    filler = build_batch_script(
        BatchJob(job_name="aifw-bench-filler", time_minutes=10, partition=args.hub_partition,
                 gpus=max(n.gpus for n in gpu_nodes), output="/dev/null", chdir="/tmp"),
        BatchScript(command=["sleep", "600"], purpose="benchmark GPU filler"))
    fillers: list[str] = []
    started: list[str] = []
    windows = []

    def measure(mode: str, what: str, pending: int) -> None:
        time.sleep(args.warmup)
        meter.start()
        time.sleep(args.seconds)
        window = meter.stop(Window(mode, what, pending=pending))
        windows.append(window)
        print(f"  {mode:<5} {window.rpc_rate:8.1f} RPCs/s  ({what})", flush=True)

    try:
        measure("hub-0", "the hub with no spawn pending", 0)
        fillers = [client.submit_sync(filler, user=holder) for _ in {n.name for n in gpu_nodes}]
        wait_for_jobs(client, fillers, {"RUNNING"})
        steps = sorted({1, len(users)})
        for k in steps:
            for user in users[len(started):k]:
                hub.start_pending(user, {"partition": args.hub_partition, "gpus": 1})
                started.append(user)
            measure(f"hub-{k}", f"the hub with {k} GPU session(s) pending (Resources)", k)
    finally:
        for user in started:
            hub.stop(user)
        if fillers:
            client.cancel_sync(fillers)
    return windows


# -- output -------------------------------------------------------------------------------------------------------
def table(windows: list[Window]) -> str:
    head = f"{'mode':<6} {'pending':>7} {'RPCs/s':>8} {'answers/spawn/s':>15} {'CPU own':>8} {'CPU cmds':>8}  top RPC types"
    lines = [head, "-" * len(head)]
    for w in windows:
        j = w.as_json()
        top = ", ".join(f"{k.removeprefix('REQUEST_')} {v / w.seconds:.1f}/s" for k, v in list(w.rpcs.items())[:3])
        per = f"{j['answers_per_spawn_per_s']:.2f}" if j["answers_per_spawn_per_s"] is not None else "-"
        lines.append(f"{w.mode:<6} {w.pending:>7} {w.rpc_rate:>8.1f} {per:>15} {j['cpu_own_percent']:>7.1f}% "
                     f"{j['cpu_children_percent']:>7.1f}%  {top}")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--home", default=os.environ.get("AIFW_HOME", "/opt/aifw"), help="the sandbox (its sandbox.json)")
    ap.add_argument("--spawns", type=int, default=200, help="pending spawns (held jobs) in the in-process part")
    ap.add_argument("--interval", type=float, default=1.0, help="startup_poll_interval of the spawners (s)")
    ap.add_argument("--seconds", type=float, default=20.0, help="length of each measured window (s)")
    ap.add_argument("--warmup", type=float, default=3.0, help="seconds between starting a mode and measuring it")
    ap.add_argument("--rounds", type=int, default=1, help="old/new pairs, interleaved")
    ap.add_argument("--user", help="who submits the held jobs (default: the sandbox's first user)")
    ap.add_argument("--partition", help="partition of the held jobs (default: Slurm's default partition)")
    ap.add_argument("--hub-spawns", type=int, default=3, help="pending spawns through the real hub (0: skip that part)")
    ap.add_argument("--hub-partition", default="gpu", help="the GPU partition the hub part fills and asks")
    ap.add_argument("--holder", help="who holds every GPU in the hub part (default: a researcher, else the last user)")
    ap.add_argument("--json", type=Path, help="write the figures here")
    args = ap.parse_args()
    if args.spawns < 1 or args.seconds <= 0 or args.interval <= 0:
        ap.error("--spawns, --seconds and --interval must be positive")
    logging.getLogger("traitlets").setLevel(logging.WARNING)  # the spawners' progress lines, N of each
    home = Path(args.home)
    info = json.loads((home / "sandbox.json").read_text())
    site = load_site(Path(info["site_file"]))
    client = SlurmClient.for_site(site.slurm, timeout_s=30)
    users = list(info["users"])
    user = args.user or users[0]
    os.chdir("/tmp")  # sbatch runs as `user` here: a directory every user may enter
    partition = args.partition or next((p.name for p in site.partitions if p.default), site.partitions[0].name)

    print(f"Part 1, in-process: {args.spawns} held jobs (sbatch --hold, as {user}, partition {partition}); "
          f"interval {args.interval:g} s, windows of {args.seconds:g} s after {args.warmup:g} s of warm-up; "
          f"slurmctld {info.get('slurm_conf', site.slurm.conf)}", flush=True)
    t0 = time.monotonic()
    job_ids = asyncio.run(submit_held(client, args.spawns, user, partition))
    windows: list[Window] = []
    try:
        print(f"  submitted in {time.monotonic() - t0:.1f} s", flush=True)
        wait_for_jobs(client, job_ids, {"PENDING"})
        windows += asyncio.run(in_process(args, site, client, job_ids, partition))
    finally:
        client.cancel_sync(job_ids)
    hub_windows: list[Window] = []
    if args.hub_spawns > 0:
        holder = args.holder or next((u for u in users if "researcher" in u), users[-1])
        spawners = [u for u in users if u != holder][:args.hub_spawns]
        print(f"Part 2, through the hub (pid from {home}/state/hub/jupyterhub.pid): every GPU of partition "
              f"{args.hub_partition} held by {holder}; {len(spawners)} pending GPU session(s) of {', '.join(spawners)}",
              flush=True)
        hub_windows = through_hub(args, info, home, client, holder, spawners)

    print()
    print("Part 1 (in-process; CPU own = this process, playing the hub; CPU cmds = the squeue/scontrol it ran):")
    print(table(windows))
    if hub_windows:
        print("\nPart 2 (the real hub; CPU own = the hub process, CPU cmds = the commands it ran):")
        print(table(hub_windows))
    old = [w for w in windows if w.mode == "old"]
    new = [w for w in windows if w.mode == "new"]
    old_rate = sum(w.rpc_rate for w in old) / len(old)
    new_rate = sum(w.rpc_rate for w in new) / len(new)
    ratio = old_rate / new_rate if new_rate else float("inf")
    result = {
        "measured": {
            "part1": "in-process against the real slurmctld: held jobs; old = one SlurmClient.job per job per "
                     "interval (+ its own queue explanation every 15 s), new = real AIFSlurmSpawner start-up loops "
                     "through aifw.spawners.job_watch",
            "part2": "the real hub's REST API, GPU sessions pending behind GPU fillers; new code only",
        },
        "spawns": args.spawns, "interval_s": args.interval, "window_s": args.seconds,
        "windows": [w.as_json() for w in windows], "hub_windows": [w.as_json() for w in hub_windows],
        "headline": {"old_rpcs_per_s": round(old_rate, 2), "new_rpcs_per_s": round(new_rate, 2),
                     "ratio": round(ratio, 1)},
    }
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\n{args.spawns} pending spawns, slurmctld RPCs/s: old (one squeue per spawner) {old_rate:.1f}, "
          f"new (one shared squeue) {new_rate:.1f}: {ratio:.1f}x fewer")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
