"""Choosing the compute device at run time, so one notebook runs on a laptop CPU and on a GPU node.

    from aifw.extensions.kernel.device import pick_device, device_summary
    device = pick_device()          # cuda when a GPU is visible, else cpu
    print(device_summary(device))   # e.g. "cuda:0 - NVIDIA H100 80GB HBM3, 79.1 GiB" or "cpu - 4 threads"

``$AIFW_DEVICE`` (``cpu``, ``cuda``, ``cuda:1``, ``mps``) overrides the automatic choice, e.g. to force CPU
on a GPU node while debugging.
"""
from __future__ import annotations

import os

import torch

__all__ = ["DEVICE_ENV", "pick_device", "device_summary"]

DEVICE_ENV = "AIFW_DEVICE"


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps and mps.is_available())


def pick_device(prefer: str | None = None) -> torch.device:
    """The device to compute on: ``prefer`` or ``$AIFW_DEVICE`` if given, else cuda > mps > cpu.

    Asking for a GPU that is not there raises ``RuntimeError`` (it would otherwise fail later, far
    from the cause).
    """
    wanted = (prefer or os.environ.get(DEVICE_ENV) or "auto").strip().lower()
    if wanted == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(wanted)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(f"you asked for {wanted!r} but no CUDA GPU is visible here (CUDA_VISIBLE_DEVICES="
                               f"{os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')!r})")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise RuntimeError(f"you asked for {wanted!r} but only {torch.cuda.device_count()} GPU(s) are visible")
    if device.type == "mps" and not _mps_available():
        raise RuntimeError("you asked for 'mps' but Apple's Metal backend is not available here")
    return device


def device_summary(device: torch.device | str | None = None) -> str:
    """One line that says what ``device`` is (its name and memory for a GPU, threads for the CPU)."""
    device = torch.device(device) if device is not None else pick_device()
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        props = torch.cuda.get_device_properties(index)
        return f"cuda:{index} - {props.name}, {props.total_memory / 2**30:.1f} GiB"
    if device.type == "cpu":
        return f"cpu - {torch.get_num_threads()} threads"
    return str(device)
