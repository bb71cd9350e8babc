"""Segmentation losses as pure functions of logits and integer targets.

Conventions shared by every function here (the training loop relies on them):

- ``logits : (B, K, Y, X)`` float tensor. ``K == 1`` is a binary model read through a sigmoid
  (the single channel is the foreground logit); ``K >= 2`` is read through a softmax.
- ``target : (B, Y, X)`` integer class indices in ``[0, K)`` (``{0, 1}`` when ``K == 1``).
- ``pixel_weights : (B, Y, X)`` optional non-negative float tensor multiplying each pixel's loss
  (the U-Net border weight map, see :func:`lapseg.data.weightmap.border_weight_map`).
- ``valid_mask : (B, Y, X)`` optional bool tensor; pixels where it is False are ignored
  entirely (partial ground truth). Their target values are not checked and may be anything.

Reduction convention (one for all pixel-wise losses): a **weighted mean**,
``sum(w * l) / sum(w)`` over the valid pixels of the whole batch, where ``w`` is the product of
the class weight of the pixel's target, its pixel weight and its validity. This is the convention
of ``torch.nn.functional.cross_entropy(weight=...)`` and nnU-Net. Consequences: multiplying all
weights by a constant leaves the loss unchanged (weights are relative); a batch without any valid
(or positively weighted) pixel gives a loss of 0 that is still connected to the graph.
:func:`cross_entropy` also offers ``normalize="pixels"``, ``sum(w * l) / n`` over the ``n`` valid
pixels (TensorFlow's ``reduce_mean`` of a weighted loss, as StemNet trains): the weights are then
absolute and the loss scale follows the share of weighted pixels in the batch.

Overlap losses (Dice, Jaccard, Tversky) are computed from soft counts ``tp, fp, fn`` of the
probabilities; they cannot use pixel weights.

All computation is done in float32 (also under ``torch.autocast``) on the device of ``logits``.
Input errors are programming errors and raise ``ValueError``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

__all__ = [
    "cross_entropy",
    "dice_ce_loss",
    "focal_loss",
    "jaccard_loss",
    "soft_dice_loss",
    "tversky_loss",
]

ClassWeights = torch.Tensor | Sequence[float] | None

_DENOMINATOR_EPS = 1e-7  # keeps overlap ratios finite when smooth == 0 and a class is absent
_FOCAL_EPS = 1e-12  # keeps (1 - p_t) ** gamma differentiable for gamma < 1 when p_t == 1


# --------------------------------------------------------------------------------------------
# input checking and shared helpers
# --------------------------------------------------------------------------------------------
def _shape_of(value: object) -> object:
    return tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__


def _check_inputs(
    logits: torch.Tensor,
    target: torch.Tensor,
    pixel_weights: torch.Tensor | None,
    valid_mask: torch.Tensor | None,
) -> int:
    """Validate shapes, dtypes and target values; return the number of channels K."""
    if not isinstance(logits, torch.Tensor) or logits.ndim != 4:
        raise ValueError(f"logits must be a (B, K, Y, X) tensor, got {_shape_of(logits)}")
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
                f"{tuple(logits.shape)}, got {_shape_of(value)}"
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


def _safe_target(target: torch.Tensor, valid_mask: torch.Tensor | None) -> torch.Tensor:
    """Target as int64 with ignored pixels set to class 0 (so indexing never goes out of range)."""
    target = target.long()
    if valid_mask is not None:
        target = torch.where(valid_mask, target, torch.zeros_like(target))
    return target


def _class_weight_tensor(
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


def _pixel_weight_map(
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


def _weighted_mean(loss: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``sum(w * loss) / sum(w)``; 0 (still in the graph) when ``sum(w) == 0``."""
    total = w.sum()
    numerator = (w * loss).sum()
    return numerator / total.clamp_min(torch.finfo(torch.float32).tiny)


def _log_prob_of_target(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(B, Y, X) log-probability of each pixel's target class, numerically stable."""
    if logits.shape[1] == 1:
        # log sigmoid(z) for target 1, log sigmoid(-z) for target 0
        return -F.binary_cross_entropy_with_logits(
            logits[:, 0], target.to(logits.dtype), reduction="none"
        )
    log_p = F.log_softmax(logits, dim=1)
    return log_p.gather(1, target.unsqueeze(1)).squeeze(1)


# --------------------------------------------------------------------------------------------
# pixel-wise losses
# --------------------------------------------------------------------------------------------
def cross_entropy(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    class_weights: ClassWeights = None,
    pixel_weights: torch.Tensor | None = None,
    valid_mask: torch.Tensor | None = None,
    normalize: str = "weights",
) -> torch.Tensor:
    """(Weighted) cross-entropy, softmax for K >= 2 and binary (sigmoid) for K == 1.

    Parameters
    ----------
    logits : (B, K, Y, X) tensor
        Raw network outputs.
    target : (B, Y, X) integer tensor
        Class indices in ``[0, K)``; ``{0, 1}`` when ``K == 1``.
    class_weights : (K,) tensor or sequence, optional
        Weight of each target class; for ``K == 1`` a ``(background, foreground)`` pair, e.g.
        ``(1.0, 2.0)`` for "weight 2 for cells".
    pixel_weights : (B, Y, X) tensor, optional
        Per-pixel weights (border weight map), multiplied with the class weights.
    valid_mask : (B, Y, X) bool tensor, optional
        False marks pixels to ignore.
    normalize : {"weights", "pixels"}
        Divide the weighted sum by the sum of the weights (default) or by the number of valid
        pixels (class weights ``(1, 3)`` then give cells the loss ``1 + 2 y`` of StemNet's
        ``weighted_cost``).

    Returns
    -------
    loss : () tensor
        ``sum(w * ce) / sum(w)`` over the batch (see module docstring); equals
        ``F.cross_entropy(logits, target, weight=class_weights)`` for ``K >= 2``. With
        ``normalize="pixels"``: ``sum(w * ce) / n_valid``.
    """
    if normalize not in ("weights", "pixels"):
        raise ValueError(f"normalize must be 'weights' or 'pixels', got {normalize!r}")
    k = _check_inputs(logits, target, pixel_weights, valid_mask)
    logits = logits.float()
    target = _safe_target(target, valid_mask)
    weights = _class_weight_tensor(class_weights, max(k, 2), logits, "class_weights")
    w = _pixel_weight_map(target, weights, pixel_weights, valid_mask)
    loss = -_log_prob_of_target(logits, target)
    if normalize == "pixels":
        n = w.new_tensor(float(target.numel())) if valid_mask is None else valid_mask.sum().float()
        return (w * loss).sum() / n.clamp_min(1.0)
    return _weighted_mean(loss, w)


def focal_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    gamma: float = 2.0,
    alpha: float | ClassWeights = None,
    pixel_weights: torch.Tensor | None = None,
    valid_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Focal loss ``-alpha_t (1 - p_t)^gamma log p_t`` (Lin et al. 2017).

    Parameters
    ----------
    logits : (B, K, Y, X) tensor
    target : (B, Y, X) integer tensor
    gamma : float
        Focusing parameter >= 0; ``gamma = 0`` is cross-entropy.
    alpha : float or (K,) tensor or sequence, optional
        Class weights ``alpha_t``. For ``K == 1`` a float ``a`` means ``(1 - a, a)`` (RetinaNet:
        ``a`` weighs the foreground); a sequence is always one weight per class (2 for K == 1).
    pixel_weights : (B, Y, X) tensor, optional
    valid_mask : (B, Y, X) bool tensor, optional

    Returns
    -------
    loss : () tensor
        Weighted mean ``sum(w * fl) / sum(w)`` with ``w = alpha_t * pixel_weight * valid``, so
        that ``gamma = 0`` equals :func:`cross_entropy` with ``class_weights = alpha``.
    """
    k = _check_inputs(logits, target, pixel_weights, valid_mask)
    if not gamma >= 0:
        raise ValueError(f"gamma must be >= 0, got {gamma}")
    if isinstance(alpha, int | float):
        if k != 1:
            raise ValueError(
                f"a scalar alpha is only defined for K == 1 (binary); for K = {k} give one "
                "weight per class"
            )
        if not 0 <= alpha <= 1:
            raise ValueError(f"a scalar alpha must lie in [0, 1], got {alpha}")
        alpha = (1.0 - float(alpha), float(alpha))
    logits = logits.float()
    target = _safe_target(target, valid_mask)
    weights = _class_weight_tensor(alpha, max(k, 2), logits, "alpha")
    w = _pixel_weight_map(target, weights, pixel_weights, valid_mask)
    log_pt = _log_prob_of_target(logits, target)
    loss = -log_pt
    if gamma != 0:
        one_minus_pt = (-torch.expm1(log_pt)).clamp_min(_FOCAL_EPS)
        loss = loss * one_minus_pt.pow(gamma)
    return _weighted_mean(loss, w)


# --------------------------------------------------------------------------------------------
# overlap losses
# --------------------------------------------------------------------------------------------
def _scored(
    logits: torch.Tensor,
    target: torch.Tensor,
    include_background: bool,
    valid_mask: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Probabilities and one-hot targets ``(B, C, Y, X)`` of the C scored classes (0 where
    ignored)."""
    k = _check_inputs(logits, target, None, valid_mask)
    logits = logits.float()
    target = _safe_target(target, valid_mask)
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
    dice = (2 * overlap + smooth) / (total + smooth).clamp_min(_DENOMINATOR_EPS)
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
    iou = (tp + smooth) / (tp + fp + fn + smooth).clamp_min(_DENOMINATOR_EPS)
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
    index = (tp + smooth) / (tp + alpha * fp + beta * fn + smooth).clamp_min(_DENOMINATOR_EPS)
    return 1.0 - index.mean()


def dice_ce_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    dice_weight: float = 1.0,
    ce_weight: float = 1.0,
    class_weights: ClassWeights = None,
    pixel_weights: torch.Tensor | None = None,
    valid_mask: torch.Tensor | None = None,
    smooth: float = 1.0,
    include_background: bool = False,
    batch_dice: bool = True,
) -> torch.Tensor:
    """``dice_weight * soft_dice_loss + ce_weight * cross_entropy`` (nnU-Net's default loss).

    ``class_weights`` and ``pixel_weights`` apply to the cross-entropy part only; ``valid_mask``
    to both. Other parameters as in :func:`soft_dice_loss` and :func:`cross_entropy`.

    Returns
    -------
    loss : () tensor
    """
    if not (dice_weight >= 0 and ce_weight >= 0):
        raise ValueError(f"dice_weight and ce_weight must be >= 0, got {dice_weight}, {ce_weight}")
    ce = cross_entropy(
        logits,
        target,
        class_weights=class_weights,
        pixel_weights=pixel_weights,
        valid_mask=valid_mask,
    )
    dice = soft_dice_loss(
        logits,
        target,
        smooth=smooth,
        include_background=include_background,
        batch_dice=batch_dice,
        valid_mask=valid_mask,
    )
    return dice_weight * dice + ce_weight * ce
