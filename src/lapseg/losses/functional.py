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

import torch

from lapseg.losses.checks import (
    ClassWeights,
    check_inputs,
    class_weight_tensor,
    log_prob_of_target,
    pixel_weight_map,
    safe_target,
    weighted_mean,
)
from lapseg.losses.overlap import jaccard_loss, soft_dice_loss, tversky_loss

__all__ = [
    "cross_entropy",
    "dice_ce_loss",
    "focal_loss",
    "jaccard_loss",
    "soft_dice_loss",
    "tversky_loss",
]

_FOCAL_EPS = 1e-12  # keeps (1 - p_t) ** gamma differentiable for gamma < 1 when p_t == 1


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
    k = check_inputs(logits, target, pixel_weights, valid_mask)
    logits = logits.float()
    target = safe_target(target, valid_mask)
    weights = class_weight_tensor(class_weights, max(k, 2), logits, "class_weights")
    w = pixel_weight_map(target, weights, pixel_weights, valid_mask)
    loss = -log_prob_of_target(logits, target)
    if normalize == "pixels":
        n = w.new_tensor(float(target.numel())) if valid_mask is None else valid_mask.sum().float()
        return (w * loss).sum() / n.clamp_min(1.0)
    return weighted_mean(loss, w)


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
    k = check_inputs(logits, target, pixel_weights, valid_mask)
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
    target = safe_target(target, valid_mask)
    weights = class_weight_tensor(alpha, max(k, 2), logits, "alpha")
    w = pixel_weight_map(target, weights, pixel_weights, valid_mask)
    log_pt = log_prob_of_target(logits, target)
    loss = -log_pt
    if gamma != 0:
        one_minus_pt = (-torch.expm1(log_pt)).clamp_min(_FOCAL_EPS)
        loss = loss * one_minus_pt.pow(gamma)
    return weighted_mean(loss, w)


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
