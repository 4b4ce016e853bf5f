"""Helpers the course notebooks share: pick_device(), the synchronising timers, and grading-safe interact()."""
from __future__ import annotations

import ipywidgets as widgets
import pytest
import torch

from aifw.extensions.kernel import device as dev
from aifw.extensions.kernel import timing
from aifw.extensions.kernel.widgets import interact


# --------------------------------------------------------------------------- pick_device
def test_pick_device_prefers_a_gpu_and_falls_back_to_the_cpu(monkeypatch):
    monkeypatch.delenv(dev.DEVICE_ENV, raising=False)
    monkeypatch.setattr(dev, "_mps_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert dev.pick_device() == torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert dev.pick_device() == torch.device("cpu")


def test_pick_device_honours_an_explicit_choice_and_the_environment(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert dev.pick_device("cpu") == torch.device("cpu")
    monkeypatch.setenv(dev.DEVICE_ENV, "cuda:1")
    assert dev.pick_device() == torch.device("cuda:1")
    with pytest.raises(RuntimeError, match="only 2 GPU"):
        dev.pick_device("cuda:5")


def test_asking_for_a_missing_gpu_says_so(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    with pytest.raises(RuntimeError, match="no CUDA GPU is visible here"):
        dev.pick_device("cuda")


def test_device_summary_of_the_cpu():
    assert dev.device_summary("cpu").startswith("cpu - ") and "threads" in dev.device_summary("cpu")


# --------------------------------------------------------------------------- timing
def test_time_it_warms_up_then_synchronises_around_every_timed_run(monkeypatch):
    events: list[str] = []
    monkeypatch.setattr(timing, "synchronize", lambda device=None: events.append("sync"))

    def clock():
        events.append("clock")
        return float(len(events))

    result = timing.time_it(lambda: events.append("fn"), device="cpu", repeat=2, warmup=1, clock=clock)
    assert events == ["fn"] + ["sync", "clock", "fn", "sync", "clock"] * 2
    assert result.seconds == (3.0, 3.0) and result.median == 3.0 and result.best == 3.0
    assert str(result) == "median 3 s over 2 runs (best 3 s)"


def test_stopwatch_synchronises_before_both_clock_reads(monkeypatch):
    events: list[str] = []
    monkeypatch.setattr(timing, "synchronize", lambda device=None: events.append("sync"))
    ticks = iter([10.0, 10.25])

    def clock():
        events.append("clock")
        return next(ticks)

    with timing.Stopwatch("cpu", clock=clock) as sw:
        events.append("work")
    assert events == ["sync", "clock", "work", "sync", "clock"]
    assert sw.seconds == 0.25


def test_time_it_refuses_nonsense_and_times_real_work():
    with pytest.raises(ValueError):
        timing.time_it(lambda: None, repeat=0)
    a = torch.randn(64, 64)
    t = timing.time_it(lambda: a @ a, device="cpu", repeat=3)
    assert len(t.seconds) == 3 and all(s > 0 for s in t.seconds)
    timing.synchronize("cpu")  # a no-op on the CPU


# --------------------------------------------------------------------------- interact
def test_interact_while_grading_calls_the_function_once_with_the_initial_values(monkeypatch, capsys):
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    calls = []

    @interact(lr=widgets.FloatLogSlider(value=0.1, base=10, min=-3, max=0), n=(1, 24), kind=["a", "b"],
              seed=widgets.fixed(7), flag=True)
    def show(lr, n, kind, seed, flag):
        calls.append((lr, n, kind, seed, flag))

    assert calls == [(0.1, 12, "a", 7, True)]  # ipywidgets' own starting values
    assert callable(show)
    interact(lambda x: calls.append(x), x=(0.5, 1.0, 0.05))
    assert calls[-1] == pytest.approx(0.75)


def test_interact_in_a_session_is_ipywidgets_interact(monkeypatch):
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    seen = []
    monkeypatch.setattr(widgets, "interact", lambda f=None, **kw: seen.append((f, kw)) or "widget")
    f = lambda n: n  # noqa: E731
    assert interact(f, n=(1, 3)) == "widget"
    assert seen == [(f, {"n": (1, 3)})]
