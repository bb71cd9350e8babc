"""Deep supervision (nnU-Net): one loss over a network's full- and lower-resolution outputs."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F

__all__ = ["deep_supervision_loss", "deep_supervision_weights"]


def deep_supervision_weights(n_outputs: int) -> list[float]:
    """Weights ``1, 1/2, 1/4, ...`` of ``n_outputs`` outputs (finest first), normalised to sum 1.

    >>> deep_supervision_weights(3)
    [0.5714285714285714, 0.2857142857142857, 0.14285714285714285]
    """
    if n_outputs < 1:
        raise ValueError(f"n_outputs must be >= 1, got {n_outputs}")
    raw = [0.5**i for i in range(n_outputs)]
    return [w / sum(raw) for w in raw]


def deep_supervision_loss(
    loss_fn: Callable[..., torch.Tensor],
    outputs: Sequence[torch.Tensor],
    target: torch.Tensor,
    **loss_kwargs: Any,
) -> torch.Tensor:
    """``sum_i w_i * loss_fn(up(outputs[i]), target, **loss_kwargs)``, ``w`` from
    :func:`deep_supervision_weights`.

    Parameters
    ----------
    loss_fn : callable
        A lapseg loss: ``loss_fn(logits (B, K, Y, X), target (B, Y, X), **loss_kwargs)``.
    outputs : sequence of (B, K, y_i, x_i) tensors
        Full-resolution logits first (their size must be the target's), then coarser ones
        (``y_i = Y / 2**i``), each upsampled bilinearly to ``(Y, X)`` in float32 before its
        loss, so the target, pixel weights, masks and regression maps are used at full
        resolution, unresampled.
    target : (B, Y, X) tensor
    **loss_kwargs
        Passed to every call (``pixel_weights``, ``valid_mask``, ``maps``).

    Returns
    -------
    () tensor
    """
    size = tuple(target.shape[-2:])
    total = torch.zeros((), device=target.device)
    weights = deep_supervision_weights(len(outputs))
    for i, (weight, logits) in enumerate(zip(weights, outputs, strict=True)):
        logits = logits.float()
        if i > 0 and tuple(logits.shape[-2:]) != size:  # the first output must fit as it is
            logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
        total = total + weight * loss_fn(logits, target, **loss_kwargs)
    return total
