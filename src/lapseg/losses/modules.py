"""Thin ``nn.Module`` wrappers around :mod:`lapseg.losses.functional` and a name registry.

Every loss module has the same call signature,
``loss(logits, target, pixel_weights=None, valid_mask=None) -> () tensor``, with the layouts of
:mod:`lapseg.losses.functional`. Losses that cannot use per-pixel weights (Dice, Jaccard,
Tversky) raise ``ValueError`` when given them, so a border weight map is never silently dropped;
check ``module.supports_pixel_weights`` before training to fail early.

``create_loss(name, **params)`` builds a loss from a config entry; its constructor arguments are
kept in ``module.config`` so that the loss can be written back into a run's resolved config.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import nn

from lapseg.errors import LapsegInputError
from lapseg.losses import functional as LF

__all__ = [
    "LOSSES",
    "CrossEntropyLoss",
    "DiceCELoss",
    "DiceLoss",
    "FocalLoss",
    "JaccardLoss",
    "SegmentationLoss",
    "TverskyLoss",
    "create_loss",
]


def _weights_or_none(weights: Sequence[float] | torch.Tensor | None) -> list[float] | None:
    """Class weights as a plain list (serialisable), validated to be finite and >= 0."""
    if weights is None:
        return None
    values = torch.as_tensor(weights, dtype=torch.float64).flatten().tolist()
    if len(values) < 2 or any(not (v >= 0 and v < float("inf")) for v in values):
        raise ValueError(
            f"class weights must be at least 2 finite values >= 0 (one per class), got {values}"
        )
    return values


class SegmentationLoss(nn.Module):
    """Base class: the common ``forward`` signature and the ``config`` record."""

    supports_pixel_weights: ClassVar[bool] = True

    def __init__(self, **config: Any) -> None:
        super().__init__()
        self.config: dict[str, Any] = dict(config)

    def forward(
        self,
        logits: torch.Tensor,
        target: torch.Tensor,
        pixel_weights: torch.Tensor | None = None,
        valid_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Loss of ``logits : (B, K, Y, X)`` against ``target : (B, Y, X)``; a () tensor."""
        if pixel_weights is not None and not self.supports_pixel_weights:
            raise ValueError(
                f"{type(self).__name__} cannot use pixel_weights (a border weight map would be "
                "silently ignored); use 'ce', 'focal' or 'dice_ce', or do not pass pixel weights"
            )
        return self._loss(logits, target, pixel_weights, valid_mask)

    def _loss(
        self,
        logits: torch.Tensor,
        target: torch.Tensor,
        pixel_weights: torch.Tensor | None,
        valid_mask: torch.Tensor | None,
    ) -> torch.Tensor:
        raise NotImplementedError

    def extra_repr(self) -> str:
        return ", ".join(f"{key}={value!r}" for key, value in self.config.items())


class CrossEntropyLoss(SegmentationLoss):
    """Weighted cross-entropy (:func:`lapseg.losses.functional.cross_entropy`); ``normalize``
    ``"weights"`` (a weighted mean) or ``"pixels"`` (weighted sum over the pixel count)."""

    def __init__(
        self, *, class_weights: Sequence[float] | None = None, normalize: str = "weights"
    ) -> None:
        if normalize not in ("weights", "pixels"):
            raise ValueError(f"normalize must be 'weights' or 'pixels', got {normalize!r}")
        super().__init__(class_weights=_weights_or_none(class_weights), normalize=normalize)

    def _loss(
        self,
        logits: torch.Tensor,
        target: torch.Tensor,
        pixel_weights: torch.Tensor | None,
        valid_mask: torch.Tensor | None,
    ) -> torch.Tensor:
        return LF.cross_entropy(
            logits,
            target,
            class_weights=self.config["class_weights"],
            pixel_weights=pixel_weights,
            valid_mask=valid_mask,
            normalize=self.config["normalize"],
        )


class FocalLoss(SegmentationLoss):
    """Focal loss (:func:`lapseg.losses.functional.focal_loss`)."""

    def __init__(self, *, gamma: float = 2.0, alpha: float | Sequence[float] | None = None) -> None:
        if not gamma >= 0:
            raise ValueError(f"gamma must be >= 0, got {gamma}")
        if isinstance(alpha, int | float):
            if not 0 <= alpha <= 1:
                raise ValueError(f"a scalar alpha must lie in [0, 1], got {alpha}")
            alpha = float(alpha)
        else:
            alpha = _weights_or_none(alpha)
        super().__init__(gamma=float(gamma), alpha=alpha)

    def _loss(
        self,
        logits: torch.Tensor,
        target: torch.Tensor,
        pixel_weights: torch.Tensor | None,
        valid_mask: torch.Tensor | None,
    ) -> torch.Tensor:
        return LF.focal_loss(
            logits,
            target,
            gamma=self.config["gamma"],
            alpha=self.config["alpha"],
            pixel_weights=pixel_weights,
            valid_mask=valid_mask,
        )


def _overlap_config(smooth: float, include_background: bool, batch_dice: bool) -> dict[str, Any]:
    if not smooth >= 0:
        raise ValueError(f"smooth must be >= 0, got {smooth}")
    return {
        "smooth": float(smooth),
        "include_background": bool(include_background),
        "batch_dice": bool(batch_dice),
    }


class DiceLoss(SegmentationLoss):
    """Soft Dice loss (:func:`lapseg.losses.functional.soft_dice_loss`); no pixel weights."""

    supports_pixel_weights = False

    def __init__(
        self,
        *,
        smooth: float = 1.0,
        include_background: bool = False,
        batch_dice: bool = True,
        squared: bool = False,
        pool_classes: bool = False,
    ) -> None:
        super().__init__(
            **_overlap_config(smooth, include_background, batch_dice),
            squared=bool(squared),
            pool_classes=bool(pool_classes),
        )

    def _loss(
        self,
        logits: torch.Tensor,
        target: torch.Tensor,
        pixel_weights: torch.Tensor | None,
        valid_mask: torch.Tensor | None,
    ) -> torch.Tensor:
        return LF.soft_dice_loss(logits, target, valid_mask=valid_mask, **self.config)


class JaccardLoss(SegmentationLoss):
    """Soft Jaccard (IoU) loss (:func:`lapseg.losses.functional.jaccard_loss`); no pixel weights."""

    supports_pixel_weights = False

    def __init__(
        self, *, smooth: float = 1.0, include_background: bool = False, batch_dice: bool = True
    ) -> None:
        super().__init__(**_overlap_config(smooth, include_background, batch_dice))

    def _loss(
        self,
        logits: torch.Tensor,
        target: torch.Tensor,
        pixel_weights: torch.Tensor | None,
        valid_mask: torch.Tensor | None,
    ) -> torch.Tensor:
        return LF.jaccard_loss(logits, target, valid_mask=valid_mask, **self.config)


class TverskyLoss(SegmentationLoss):
    """Tversky loss (:func:`lapseg.losses.functional.tversky_loss`); no pixel weights."""

    supports_pixel_weights = False

    def __init__(
        self,
        *,
        alpha: float = 0.5,
        beta: float = 0.5,
        smooth: float = 1.0,
        include_background: bool = False,
        batch_dice: bool = True,
    ) -> None:
        if not (alpha >= 0 and beta >= 0 and alpha + beta > 0):
            raise ValueError(f"alpha and beta must be >= 0 and not both 0, got {alpha}, {beta}")
        super().__init__(
            alpha=float(alpha),
            beta=float(beta),
            **_overlap_config(smooth, include_background, batch_dice),
        )

    def _loss(
        self,
        logits: torch.Tensor,
        target: torch.Tensor,
        pixel_weights: torch.Tensor | None,
        valid_mask: torch.Tensor | None,
    ) -> torch.Tensor:
        return LF.tversky_loss(logits, target, valid_mask=valid_mask, **self.config)


class DiceCELoss(SegmentationLoss):
    """Dice + cross-entropy (:func:`lapseg.losses.functional.dice_ce_loss`).

    Class and pixel weights apply to the cross-entropy part.
    """

    def __init__(
        self,
        *,
        dice_weight: float = 1.0,
        ce_weight: float = 1.0,
        class_weights: Sequence[float] | None = None,
        smooth: float = 1.0,
        include_background: bool = False,
        batch_dice: bool = True,
    ) -> None:
        if not (dice_weight >= 0 and ce_weight >= 0):
            raise ValueError(
                f"dice_weight and ce_weight must be >= 0, got {dice_weight}, {ce_weight}"
            )
        super().__init__(
            dice_weight=float(dice_weight),
            ce_weight=float(ce_weight),
            class_weights=_weights_or_none(class_weights),
            **_overlap_config(smooth, include_background, batch_dice),
        )

    def _loss(
        self,
        logits: torch.Tensor,
        target: torch.Tensor,
        pixel_weights: torch.Tensor | None,
        valid_mask: torch.Tensor | None,
    ) -> torch.Tensor:
        return LF.dice_ce_loss(
            logits, target, pixel_weights=pixel_weights, valid_mask=valid_mask, **self.config
        )


LOSSES: dict[str, type[SegmentationLoss]] = {
    "ce": CrossEntropyLoss,
    "dice": DiceLoss,
    "jaccard": JaccardLoss,
    "tversky": TverskyLoss,
    "focal": FocalLoss,
    "dice_ce": DiceCELoss,
}


def create_loss(name: str, **params: Any) -> SegmentationLoss:
    """Build the loss registered as ``name`` with keyword ``params``.

    Parameters
    ----------
    name : str
        One of ``LOSSES``: ``"ce"``, ``"dice"``, ``"jaccard"``, ``"tversky"``, ``"focal"``,
        ``"dice_ce"``.
    **params
        Constructor arguments of that loss (e.g. ``class_weights=[1, 2]`` for ``"ce"``).

    Returns
    -------
    loss : SegmentationLoss
        With ``loss.config`` holding the resolved constructor arguments.

    Raises
    ------
    LapsegInputError
        Unknown name (the message lists the valid ones), unknown parameter (the message lists
        the accepted ones) or an invalid parameter value.
    """
    if name not in LOSSES:
        raise LapsegInputError(
            f"unknown loss {name!r}; valid names: {', '.join(sorted(LOSSES))}", path="loss.name"
        )
    cls = LOSSES[name]
    accepted = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise LapsegInputError(
            f"unknown parameter(s) {', '.join(unknown)} for loss {name!r}; "
            f"accepted: {', '.join(accepted) or '(none)'}",
            path="loss",
        )
    try:
        return cls(**params)
    except (TypeError, ValueError) as error:
        raise LapsegInputError(f"loss {name!r}: {error}", path="loss") from error
