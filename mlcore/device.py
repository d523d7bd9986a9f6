"""Which torch device to run on: CUDA whenever it is available, else the CPU with a sane thread count."""

from __future__ import annotations

import os

import torch

__all__ = ["cpu_threads", "pick_device"]


def cpu_threads(num_threads: int | None = None) -> int:
    """Threads for CPU work (torch, OpenMP in scikit-learn): ``num_threads`` when given, else idle cores."""
    if num_threads:
        return max(1, int(num_threads))
    try:
        available = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        available = os.cpu_count() or 1
    # On a shared machine whose cores are already busy, OpenMP threads spin-waiting for each other make
    # torch and scikit-learn many times slower than one thread: use only the cores that look idle.
    try:
        busy = int(os.getloadavg()[0])
    except OSError:
        busy = 0
    return max(1, min(available, available - busy + 1))


def pick_device(preferred: str | None = None, *, num_threads: int | None = None) -> torch.device:
    """``preferred`` ("cpu", "cuda", "cuda:1", ...) when given and usable, else CUDA when available, else CPU.

    On the CPU, torch's intra-op thread count is set to ``num_threads`` or the cores this process may use:
    torch's default can exceed the cgroup/affinity limit on shared machines.
    """
    if preferred:
        device = torch.device(preferred)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {preferred!r} requested but CUDA is not available")
        if device.type == "cpu":
            torch.set_num_threads(cpu_threads(num_threads))
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    torch.set_num_threads(cpu_threads(num_threads))
    return torch.device("cpu")
