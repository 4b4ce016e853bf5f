"""One Slurm query per interval for every job the hub waits on.

Each starting spawner used to run its own ``squeue -j ID`` every `startup_poll_interval` (three requests
to slurmctld each: 200 pending sessions made 600 requests a second). Instead, spawners ask the shared
`JobWatch` for their job's `JobInfo`: once per interval it runs one ``squeue -j id1,id2,...`` for every
job someone waits on (`SlurmClient.jobs`; slurmctld serves it as one job listing, whatever the number of
ids), and answers everyone from it. Only a job that squeue no longer lists (it ended) is asked on its
own, through scontrol (`SlurmClient.ended_job`): once per job, when it ends.

Rules, each tested (tests/unit/test_job_watch.py):
- an answer is never older than the call: a caller gets the next round that starts after it asked;
- rounds start at most once per interval (the smallest interval of the callers waiting), one at a time;
  the first caller after a quiet spell is answered at once;
- "Slurm did not answer" (`SlurmUnavailable`) reaches each caller of that round as itself, never as
  "gone"; a job Slurm does not know at all is GONE;
- a caller that is cancelled leaves the round (its job is not asked for if no one else waits on it);
  the round task ends when no one waits, so nothing runs between spawns and no task is left behind.

The queue position of a pending job comes from one shared listing per partition too (`queue_order`).

One `JobWatch` per Slurm client identity (`SlurmClient.identity`) and event loop (`shared`): every
spawner of a hub has the same site, hence one identity per cluster, hence one watcher per cluster (a site
with several clusters: each cluster's jobs are asked of that cluster, and a silent one delays no other).
"""
from __future__ import annotations

import asyncio
import math
import time
import weakref
from typing import Any, Hashable

from aifw.names import JOB_ID, matches
from aifw.slurm import JobInfo, SlurmError

#: At most this many jobs squeue no longer lists are asked from scontrol at the same time.
ENDED_AT_ONCE = 8


class JobWatch:
    """Answers "what is job X doing?" for every caller from one query per interval. `slurm` is a
    `SlurmClient` (or anything with its `jobs`, `ended_job` and `pending_order`)."""

    def __init__(self, slurm: Any):
        self.slurm = slurm
        self._waiting: dict[str, list[tuple[asyncio.Future, float]]] = {}
        self._runner: asyncio.Task | None = None
        self._wake: asyncio.Future | None = None  # set while the runner waits for the next round
        self._last_round = -math.inf  # time.monotonic() when the last round started
        self.rounds = 0  # rounds run so far (each one squeue per max_jobs_per_query ids)
        self._orders: dict[str, tuple[float, list[str]]] = {}  # partition -> (when, pending ids by priority)
        self._order_refresh: dict[str, asyncio.Task] = {}

    @property
    def idle(self) -> bool:
        """No one waits and no round runs."""
        return self._runner is None and not self._waiting

    async def job(self, job_id: str, interval: float) -> JobInfo:
        """The job's state, from the next round that starts after this call; rounds are `interval`
        seconds apart at least. Raises what the round met: SlurmUnavailable when Slurm did not answer,
        another SlurmError when it refused; ValueError for a text that is no job id (before any round)."""
        if not matches(JOB_ID, job_id):
            raise ValueError(f"not a Slurm job id: {job_id!r}")
        waiter = asyncio.get_running_loop().create_future()
        entry = (waiter, max(0.0, float(interval)))
        self._waiting.setdefault(job_id, []).append(entry)
        if self._runner is None:
            self._runner = asyncio.ensure_future(self._run())
        try:
            return await waiter
        finally:
            # Cancelled (or answered): out of the next round. A job no one waits on is not asked for.
            entries = self._waiting.get(job_id)
            if entries is not None and entry in entries:
                entries.remove(entry)
                if not entries:
                    del self._waiting[job_id]
                if not self._waiting and self._wake is not None and not self._wake.done():
                    self._wake.set_result(None)  # the last caller left: the runner ends now, not a round on

    async def _run(self) -> None:
        batch: dict[str, list[tuple[asyncio.Future, float]]] = {}
        try:
            while self._waiting:
                interval = min(iv for entries in self._waiting.values() for _, iv in entries)
                delay = self._last_round + interval - time.monotonic()
                if delay > 0:
                    self._wake = asyncio.get_running_loop().create_future()
                    try:
                        await asyncio.wait([self._wake], timeout=delay)
                    finally:
                        self._wake = None
                    continue  # who waits, and the smallest interval, may have changed meanwhile
                batch, self._waiting = self._waiting, {}
                self._last_round = time.monotonic()
                self.rounds += 1
                await self._answer(batch)
                batch = {}
        except asyncio.CancelledError:  # the hub stops: so do its callers, none is left hanging
            for entries in (*batch.values(), *self._waiting.values()):
                for waiter, _ in entries:
                    waiter.cancel()
            raise
        except Exception as err:  # noqa: BLE001 - a bug below: every caller gets it; the next call starts anew
            for entries in (*batch.values(), *self._waiting.values()):
                _settle(entries, error=err)
        finally:
            self._runner = None

    async def _answer(self, batch: dict[str, list[tuple[asyncio.Future, float]]]) -> None:
        """One round: one listing for every job of the batch, scontrol for those it leaves out."""
        ids = list(batch)
        try:
            listed = await self.slurm.jobs(ids)
        except SlurmError as err:
            for job_id in ids:
                _settle(batch[job_id], error=err)
            return
        for job_id, info in listed.items():
            _settle(batch.get(job_id, []), info)
        ended = [j for j in ids if j not in listed]
        if not ended:
            return
        limit = asyncio.Semaphore(ENDED_AT_ONCE)

        async def ask(job_id: str) -> None:
            async with limit:
                try:
                    info = await self.slurm.ended_job(job_id)
                except SlurmError as err:
                    _settle(batch[job_id], error=err)
                else:
                    _settle(batch[job_id], info)

        await asyncio.gather(*(ask(j) for j in ended))

    async def queue_order(self, partition: str, job_id: str, *, max_age: float, min_age: float) -> list[str]:
        """The ids of the jobs pending in `partition`, in the order Slurm will consider them, from one
        listing shared by every caller: reused while younger than `max_age` seconds, or, when `job_id` is
        not in it yet (just submitted), while younger than `min_age`. Raises SlurmError."""
        now = time.monotonic()
        known = self._orders.get(partition)
        if known is not None:
            age = now - known[0]
            if age < max_age and (job_id in known[1] or age < min_age):
                return known[1]
        refresh = self._order_refresh.get(partition)
        if refresh is None:
            refresh = asyncio.ensure_future(self._refresh_order(partition))
            self._order_refresh[partition] = refresh
            refresh.add_done_callback(lambda task: self._refreshed(partition, task))
        # Shielded: a caller that is cancelled does not cancel the listing others wait on.
        return await asyncio.shield(refresh)

    async def _refresh_order(self, partition: str) -> list[str]:
        order = await self.slurm.pending_order(partition)
        self._orders[partition] = (time.monotonic(), order)
        return order

    def _refreshed(self, partition: str, task: asyncio.Task) -> None:
        if self._order_refresh.get(partition) is task:
            del self._order_refresh[partition]
        if not task.cancelled():
            task.exception()  # seen: each caller got it already; no "never retrieved" at exit


def _settle(entries: list[tuple[asyncio.Future, float]], info: JobInfo | None = None,
            error: BaseException | None = None) -> None:
    """Hand the round's answer to each caller still waiting (one error object each: tracebacks apart)."""
    for waiter, _ in entries:
        if waiter.done():
            continue
        if error is not None:
            waiter.set_exception(_copy(error))
        else:
            waiter.set_result(info)


def _copy(error: BaseException) -> BaseException:
    try:
        return type(error)(*error.args)
    except Exception:  # noqa: BLE001 - an error type with another constructor: handed on as it is
        return error


# One watcher per event loop and Slurm client identity. Weak on the loop: a loop that is gone (tests run
# one per test) takes its watchers with it; an idle watcher holds nothing of its loop.
_watches: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Hashable, JobWatch]]" = weakref.WeakKeyDictionary()


def shared(slurm: Any) -> JobWatch:
    """The watcher every spawner of this hub shares for `slurm`'s cluster: clients with the same
    `identity` share one; a stand-in without `identity` (a test's fake) gets one of its own."""
    loop = asyncio.get_running_loop()
    watches = _watches.setdefault(loop, {})
    identity = getattr(slurm, "identity", None)
    key: Hashable = ("client", identity) if identity is not None else ("object", id(slurm))
    watch = watches.get(key)
    if watch is None or (identity is None and watch.slurm is not slurm):
        watch = watches[key] = JobWatch(slurm)
    return watch
