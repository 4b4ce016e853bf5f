"""Timing GPU work correctly: wait for the device to finish before reading the clock.

GPU kernels run asynchronously: ``y = a @ b`` on CUDA returns as soon as the work is *queued*. A clock read
right after it measures the queueing, not the work. :func:`time_it` and :class:`Stopwatch` synchronise the
device before each clock read (on CPU synchronising is a no-op)::

    from aifw.extensions.kernel.timing import time_it, Stopwatch
    t = time_it(lambda: a @ b, device=device, repeat=5, warmup=1)
    print(t)                      # "median 1.23 ms over 5 runs (best 1.20 ms)"
    with Stopwatch(device) as sw:
        train_one_epoch(...)
    print(sw.seconds)
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Callable

import torch

__all__ = ["synchronize", "Timing", "time_it", "Stopwatch"]


def synchronize(device: torch.device | str | None = None) -> None:
    """Block until all queued work on ``device`` is done (no-op on CPU)."""
    device = torch.device(device) if device is not None else None
    if device is None:
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.synchronize()
        return
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def _fmt(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.3g} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.3g} ms"
    return f"{seconds * 1e6:.3g} µs"


@dataclass(frozen=True)
class Timing:
    """Durations (seconds) of repeated runs."""

    seconds: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def best(self) -> float:
        return min(self.seconds)

    def __str__(self) -> str:
        return f"median {_fmt(self.median)} over {len(self.seconds)} runs (best {_fmt(self.best)})"


def time_it(
    fn: Callable[[], object],
    *,
    device: torch.device | str | None = None,
    repeat: int = 5,
    warmup: int = 1,
    clock: Callable[[], float] = time.perf_counter,
) -> Timing:
    """Run ``fn`` ``warmup`` times untimed, then ``repeat`` times timed, synchronising around each run."""
    if repeat < 1 or warmup < 0:
        raise ValueError("repeat must be >= 1 and warmup >= 0")
    for _ in range(warmup):
        fn()
    durations = []
    for _ in range(repeat):
        synchronize(device)
        start = clock()
        fn()
        synchronize(device)
        durations.append(clock() - start)
    return Timing(tuple(durations))


class Stopwatch:
    """``with Stopwatch(device) as sw: ...`` - ``sw.seconds`` is the synchronised wall time of the block."""

    def __init__(self, device: torch.device | str | None = None, clock: Callable[[], float] = time.perf_counter):
        self.device = device
        self.clock = clock
        self.seconds: float | None = None
        self._start = 0.0

    def __enter__(self) -> "Stopwatch":
        synchronize(self.device)
        self._start = self.clock()
        return self

    def __exit__(self, *exc) -> None:
        synchronize(self.device)
        self.seconds = self.clock() - self._start
