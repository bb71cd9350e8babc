"""Overlap losses (Dice, Jaccard, Tversky) from soft counts ``tp, fp, fn`` of the probabilities.

Conventions (shapes, sigmoid for one channel, softmax otherwise, ``valid_mask``) as in
:mod:`lapseg.losses.functional`, which re-exports these functions; overlap losses cannot use
pixel weights.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lapseg.losses.checks import DENOMINATOR_EPS, check_inputs, safe_target

__all__ = ["jaccard_loss", "soft_dice_loss", "tversky_loss"]


def _scored(
    logits: torch.Tensor,
    target: torch.Tensor,
    include_background: bool,
    valid_mask: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Probabilities and one-hot targets ``(B, C, Y, X)`` of the C scored classes (0 where
    ignored)."""
    k = check_inputs(logits, target, None, valid_mask)
    logits = logits.float()
    target = safe_target(target, valid_mask)
    if k == 1:
        p_fg = torch.sigmoid(logits[:, 0])
        g_fg = target.float()
        if include_background:
            probs = torch.stack([1.0 - p_fg, p_fg], dim=1)
            onehot = torch.stack([1.0 - g_fg, g_fg], dim=1)
        else:
            probs, onehot = p_fg.unsqueeze(1), g_fg.unsqueeze(1)
    else:
        probs = torch.softmax(logits, dim=1)
        onehot = F.one_hot(target, k).permute(0, 3, 1, 2).float()
        if not include_background:
            probs, onehot = probs[:, 1:], onehot[:, 1:]
    if valid_mask is not None:
        keep = valid_mask.unsqueeze(1).float()
        probs, onehot = probs * keep, onehot * keep
    return probs, onehot


def _soft_counts(
    logits: torch.Tensor,
    target: torch.Tensor,
    include_background: bool,
    batch_dice: bool,
    valid_mask: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Soft true positives, false positives and false negatives per class.

    Returns three tensors of shape (C,) when ``batch_dice`` else (B, C), C the classes scored.
    """
    probs, onehot = _scored(logits, target, include_background, valid_mask)
    dims = (0, 2, 3) if batch_dice else (2, 3)
    tp = (probs * onehot).sum(dims)
    fp = (probs * (1.0 - onehot)).sum(dims)
    fn = ((1.0 - probs) * onehot).sum(dims)
    return tp, fp, fn


def _check_smooth(smooth: float) -> None:
    if not smooth >= 0:
        raise ValueError(f"smooth must be >= 0, got {smooth}")


def soft_dice_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    smooth: float = 1.0,
    include_background: bool = False,
    batch_dice: bool = True,
    valid_mask: torch.Tensor | None = None,
    squared: bool = False,
    pool_classes: bool = False,
) -> torch.Tensor:
    """Soft Dice loss ``1 - mean_c (2|P∩G| + s) / (|P| + |G| + s)``.

    Parameters
    ----------
    logits : (B, K, Y, X) tensor
        Softmax (K >= 2) or sigmoid (K == 1) probabilities are scored.
    target : (B, Y, X) integer tensor
    smooth : float
        Additive smoothing ``s`` in numerator and denominator.
    include_background : bool
        Score class 0 too. For K == 1 this adds the pair ``(1 - p, 1 - g)``.
    batch_dice : bool
        Sum the counts over the whole batch (nnU-Net "batch Dice") instead of per image; the
        mean is then over classes only, otherwise over images and classes.
    valid_mask : (B, Y, X) bool tensor, optional
    squared : bool
        Sums of squares in the denominator, ``sum p^2 + sum g^2`` (Milletari et al. 2016).
    pool_classes : bool
        One ratio of the counts summed over the scored classes instead of the mean of the
        per-class ratios. ``squared=True, pool_classes=True, include_background=True,
        batch_dice=True, smooth=0`` is StemNet's ``dice_coefficient`` cost (which adds 1e-5 to
        the denominator where this clamps it at 1e-7, and clips the ratio to
        [1e-5, 1 - 1e-5]).

    Returns
    -------
    loss : () tensor in [0, 1]
    """
    _check_smooth(smooth)
    probs, onehot = _scored(logits, target, include_background, valid_mask)
    dims = (0, 2, 3) if batch_dice else (2, 3)
    overlap = (probs * onehot).sum(dims)
    if squared:
        total = (probs * probs).sum(dims) + (onehot * onehot).sum(dims)
    else:
        total = probs.sum(dims) + onehot.sum(dims)
    if pool_classes:
        overlap, total = overlap.sum(-1), total.sum(-1)
    dice = (2 * overlap + smooth) / (total + smooth).clamp_min(DENOMINATOR_EPS)
    return 1.0 - dice.mean()


def jaccard_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    smooth: float = 1.0,
    include_background: bool = False,
    batch_dice: bool = True,
    valid_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Soft Jaccard (IoU) loss ``1 - mean_c (|P∩G| + s) / (|P∪G| + s)``.

    ``|P∪G| = |P| + |G| - |P∩G|``. Parameters as in :func:`soft_dice_loss`.

    Returns
    -------
    loss : () tensor in [0, 1]
    """
    _check_smooth(smooth)
    tp, fp, fn = _soft_counts(logits, target, include_background, batch_dice, valid_mask)
    iou = (tp + smooth) / (tp + fp + fn + smooth).clamp_min(DENOMINATOR_EPS)
    return 1.0 - iou.mean()


def tversky_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    alpha: float = 0.5,
    beta: float = 0.5,
    smooth: float = 1.0,
    include_background: bool = False,
    batch_dice: bool = True,
    valid_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Tversky loss ``1 - mean_c (TP + s) / (TP + alpha FP + beta FN + s)`` (Salehi et al. 2017).

    ``alpha`` weighs false positives, ``beta`` false negatives (``beta > alpha`` favours
    recall). ``alpha = beta = 0.5`` is the Dice loss with smoothing ``2 s``; ``alpha = beta = 1``
    is the Jaccard loss. Other parameters as in :func:`soft_dice_loss`.

    Returns
    -------
    loss : () tensor in [0, 1]
    """
    _check_smooth(smooth)
    if not (alpha >= 0 and beta >= 0 and alpha + beta > 0):
        raise ValueError(f"alpha and beta must be >= 0 and not both 0, got {alpha}, {beta}")
    tp, fp, fn = _soft_counts(logits, target, include_background, batch_dice, valid_mask)
    index = (tp + smooth) / (tp + alpha * fp + beta * fn + smooth).clamp_min(DENOMINATOR_EPS)
    return 1.0 - index.mean()
