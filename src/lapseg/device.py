"""Compute devices: which one to run on, and mixed precision where it pays.

lapseg runs on CUDA, Apple MPS and the CPU. :func:`select_device` picks the best available one;
:func:`mixed_precision` says which reduced precision a device runs natively: float16 on CUDA,
bfloat16 on CPUs whose oneDNN kernels support it (AVX512-BF16 or AMX; about 2.3x faster
training steps on the 2-core reference machine, ``benchmarks/bench_training.py``), none
elsewhere; :func:`autocast_context` applies it.
"""

from __future__ import annotations

import contextlib
from typing import TypeVar

import torch

__all__ = [
    "autocast_context",
    "cpu_supports_bf16",
    "describe_precision",
    "mixed_precision",
    "place_model",
    "select_device",
]


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


ModuleT = TypeVar("ModuleT", bound=torch.nn.Module)


def place_model(model: ModuleT, device: torch.device) -> ModuleT:
    """``model`` on ``device``, its 4D weights in channels_last memory layout on CPU and CUDA
    (channels_last_3d for 5D ones: faster convolutions there; MPS keeps the default layout)."""
    model = model.to(device)
    if device.type != "mps":
        for parameter in model.parameters():
            layout = {4: torch.channels_last, 5: torch.channels_last_3d}.get(parameter.ndim)
            if layout is not None:
                parameter.data = parameter.data.contiguous(memory_format=layout)
    return model


def cpu_supports_bf16() -> bool:
    """True when oneDNN has native bfloat16 kernels on this CPU (AVX512-BF16 or AMX)."""
    mkldnn = getattr(torch.ops, "mkldnn", None)
    check = getattr(mkldnn, "_is_mkldnn_bf16_supported", None) if mkldnn is not None else None
    try:
        return bool(check()) if check is not None else False
    except RuntimeError:  # pragma: no cover - builds without oneDNN
        return False


def mixed_precision(device: torch.device, enabled: bool = True) -> torch.dtype | None:
    """The reduced precision ``device`` computes natively (None: float32 only, or disabled)."""
    if not enabled:
        return None
    if device.type == "cuda":
        return torch.float16
    if device.type == "cpu" and cpu_supports_bf16():
        return torch.bfloat16
    return None


def describe_precision(dtype: torch.dtype | None) -> str:
    """``"float32"``, or ``"bfloat16 mixed precision"`` and the like, for logs."""
    return "float32" if dtype is None else f"{str(dtype).removeprefix('torch.')} mixed precision"


def autocast_context(
    device: torch.device, dtype: torch.dtype | None
) -> contextlib.AbstractContextManager:
    """Autocast to ``dtype`` on ``device`` (from :func:`mixed_precision`); a no-op for None."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)
