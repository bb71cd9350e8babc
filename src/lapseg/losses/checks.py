"""Input checks and weighting helpers shared by the loss functions (:mod:`lapseg.losses.functional`,
:mod:`lapseg.losses.overlap`); their conventions are documented in :mod:`lapseg.losses.functional`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

__all__ = [
    "DENOMINATOR_EPS",
    "ClassWeights",
    "check_inputs",
    "class_weight_tensor",
    "log_prob_of_target",
    "pixel_weight_map",
    "safe_target",
    "shape_of",
    "weighted_mean",
]

ClassWeights = torch.Tensor | Sequence[float] | None

DENOMINATOR_EPS = 1e-7  # keeps overlap ratios finite when smooth == 0 and a class is absent


def shape_of(value: object) -> object:
    return tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__


def check_inputs(
    logits: torch.Tensor,
    target: torch.Tensor,
    pixel_weights: torch.Tensor | None,
    valid_mask: torch.Tensor | None,
) -> int:
    """Validate shapes, dtypes and target values; return the number of channels K."""
    if not isinstance(logits, torch.Tensor) or logits.ndim != 4:
        raise ValueError(f"logits must be a (B, K, Y, X) tensor, got {shape_of(logits)}")
    if not logits.is_floating_point():
        raise ValueError(f"logits must be a floating-point tensor, got {logits.dtype}")
    b, k, y, x = logits.shape
    maps = (("target", target), ("pixel_weights", pixel_weights), ("valid_mask", valid_mask))
    for name, value in maps:
        if value is None and name != "target":
            continue
        if not isinstance(value, torch.Tensor) or value.shape != (b, y, x):
            raise ValueError(
                f"{name} must be a (B, Y, X) = {(b, y, x)} tensor to match logits "
                f"{tuple(logits.shape)}, got {shape_of(value)}"
            )
    if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
        raise ValueError(f"target must hold integer class indices, got dtype {target.dtype}")
    if valid_mask is not None and valid_mask.dtype != torch.bool:
        raise ValueError(f"valid_mask must be a bool tensor, got dtype {valid_mask.dtype}")
    if target.numel() > 0:  # one host sync for the range check; ignored pixels count as 0
        n_classes = 2 if k == 1 else k
        checked = target if valid_mask is None else torch.where(valid_mask, target, 0)
        lo, hi = torch.stack(torch.aminmax(checked)).tolist()
        if lo < 0 or hi >= n_classes:
            hint = " (K == 1 is a binary sigmoid model: targets must be 0 or 1)" if k == 1 else ""
            raise ValueError(
                f"target values must lie in [0, {n_classes}) for logits with K = {k} channels, "
                f"got values in [{lo}, {hi}]{hint}"
            )
    return k


def safe_target(target: torch.Tensor, valid_mask: torch.Tensor | None) -> torch.Tensor:
    """Target as int64 with ignored pixels set to class 0 (so indexing never goes out of range)."""
    target = target.long()
    if valid_mask is not None:
        target = torch.where(valid_mask, target, torch.zeros_like(target))
    return target


def class_weight_tensor(
    class_weights: ClassWeights, n_classes: int, like: torch.Tensor, name: str
) -> torch.Tensor | None:
    """(n_classes,) float32 weight tensor on the device of ``like``, or None."""
    if class_weights is None:
        return None
    weights = torch.as_tensor(class_weights, dtype=torch.float32, device=like.device)
    if weights.shape != (n_classes,):
        raise ValueError(
            f"{name} must have one weight per class, shape ({n_classes},), "
            f"got {tuple(weights.shape)}"
            + (" (for K == 1 give (background, foreground))" if like.shape[1] == 1 else "")
        )
    if not torch.isfinite(weights).all() or (weights < 0).any():
        raise ValueError(f"{name} must be finite and non-negative, got {weights.tolist()}")
    return weights


def pixel_weight_map(
    target: torch.Tensor,
    weights: torch.Tensor | None,
    pixel_weights: torch.Tensor | None,
    valid_mask: torch.Tensor | None,
) -> torch.Tensor:
    """(B, Y, X) float32 product of class weight, pixel weight and validity."""
    w = (
        weights[target]
        if weights is not None
        else torch.ones(target.shape, dtype=torch.float32, device=target.device)
    )
    if pixel_weights is not None:
        w = w * pixel_weights.to(device=target.device, dtype=torch.float32)
    if valid_mask is not None:
        w = w * valid_mask.to(dtype=torch.float32)
    return w


def weighted_mean(loss: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``sum(w * loss) / sum(w)``; 0 (still in the graph) when ``sum(w) == 0``."""
    total = w.sum()
    numerator = (w * loss).sum()
    return numerator / total.clamp_min(torch.finfo(torch.float32).tiny)


def log_prob_of_target(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(B, Y, X) log-probability of each pixel's target class, numerically stable."""
    if logits.shape[1] == 1:
        # log sigmoid(z) for target 1, log sigmoid(-z) for target 0
        return -F.binary_cross_entropy_with_logits(
            logits[:, 0], target.to(logits.dtype), reduction="none"
        )
    log_p = F.log_softmax(logits, dim=1)
    return log_p.gather(1, target.unsqueeze(1)).squeeze(1)
