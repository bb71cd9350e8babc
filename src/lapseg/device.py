"""Compute devices: which one to run on, and mixed precision where it pays.

lapseg runs on CUDA, Apple MPS and the CPU. :func:`select_device` picks the best available one;
:func:`autocast_context` enables mixed precision (float16 on CUDA, bfloat16 on CPUs whose
oneDNN kernels support it natively) only where the caller asked for it.
"""

from __future__ import annotations

import contextlib

import torch

__all__ = ["autocast_context", "cpu_supports_bf16", "select_device"]


def select_device(name: str = "auto") -> torch.device:
    """``"auto"`` picks CUDA, then Apple MPS, then the CPU; anything else is used as given."""
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def cpu_supports_bf16() -> bool:
    """True when oneDNN has native bfloat16 kernels on this CPU (AVX512-BF16 or AMX)."""
    mkldnn = getattr(torch.ops, "mkldnn", None)
    check = getattr(mkldnn, "_is_mkldnn_bf16_supported", None) if mkldnn is not None else None
    try:
        return bool(check()) if check is not None else False
    except RuntimeError:  # pragma: no cover - builds without oneDNN
        return False


def autocast_context(
    device: torch.device, enabled: bool, *, cpu_dtype: torch.dtype | None = None
) -> contextlib.AbstractContextManager:
    """Mixed precision: float16 autocast on CUDA; on the CPU only with ``cpu_dtype`` given
    (bfloat16); a no-op elsewhere or when not ``enabled``."""
    if enabled and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.float16)
    if enabled and device.type == "cpu" and cpu_dtype is not None:
        return torch.autocast(device_type="cpu", dtype=cpu_dtype)
    return contextlib.nullcontext()
