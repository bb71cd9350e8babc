"""Shared helpers for lapseg benchmarks: machine description, peak probe, interleaved timing.

Figures on a shared 2-core machine drift by up to 1.7x between runs, so every benchmark measures
its candidates in ONE process, interleaved over >= 3 rounds, and reports medians together with a
peak probe measured in the same rounds. Only same-run ratios are meaningful.
"""

from __future__ import annotations

import os
import platform
import resource
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

PROBE_FLOPS = 2 * 8 * 512 * 512 * 9 * 32 * 32  # 3x3 conv, 512->512 ch, 32x32, batch 8


def machine_info() -> dict[str, str]:
    """Describe the machine and software versions the figures were measured with."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    device = "cpu"
    if torch.cuda.is_available():
        device = torch.cuda.get_device_name(0)
    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "torch_threads": str(torch.get_num_threads()),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
        "accelerator": device,
    }


def print_machine_info() -> None:
    """Print :func:`machine_info` as ``key: value`` lines."""
    for key, value in machine_info().items():
        print(f"# {key}: {value}")


def make_peak_probe(device: torch.device | str = "cpu") -> Callable[[], None]:
    """Return a callable running the reference 3x3 conv (512->512, 32x32, batch 8, channels_last)."""
    conv = torch.nn.Conv2d(512, 512, 3, padding=1, bias=False).to(device)
    conv = conv.to(memory_format=torch.channels_last)
    x = torch.randn(8, 512, 32, 32, device=device).to(memory_format=torch.channels_last)

    def run() -> None:
        with torch.inference_mode():
            conv(x)
        if torch.cuda.is_available():
            torch.cuda.synchronize()

    run()  # warm-up
    return run


def time_call(fn: Callable[[], object], *, repeats: int = 1) -> float:
    """Seconds per call of ``fn`` (best effort wall clock, ``repeats`` calls averaged)."""
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def interleaved_medians(
    candidates: dict[str, Callable[[], object]], *, rounds: int = 3, repeats: int = 1
) -> dict[str, float]:
    """Median seconds per call of each candidate, measured in interleaved rounds.

    Each round calls every candidate once (``repeats`` times) in turn, so slow drifts of the
    machine's speed affect all candidates alike.
    """
    times: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(rounds):
        for name, fn in candidates.items():
            times[name].append(time_call(fn, repeats=repeats))
    return {name: statistics.median(values) for name, values in times.items()}


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far, in MiB (Linux: ru_maxrss is KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def current_peak_rss_mib() -> float:
    """Peak RSS of this process image in MiB.

    Linux ``VmHWM`` (reset by ``exec``). ``ru_maxrss`` is not usable in a child: the kernel
    carries the parent's peak over ``fork``/``exec``, so every child would report at least the
    parent's size. Falls back to :func:`peak_rss_mib` elsewhere.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return peak_rss_mib()
