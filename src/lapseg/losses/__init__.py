"""Segmentation losses: a functional core, thin ``nn.Module`` wrappers and class weights.

Layouts (see :mod:`lapseg.losses.functional`): ``logits : (B, K, Y, X)`` (K == 1 sigmoid,
K >= 2 softmax), ``target : (B, Y, X)`` int64, optional ``pixel_weights : (B, Y, X)`` float and
``valid_mask : (B, Y, X)`` bool. Pixel-wise losses reduce as ``sum(w * l) / sum(w)``.
"""

from __future__ import annotations

from lapseg.losses.class_weights import (
    class_pixel_counts,
    inverse_frequency_weights,
    median_frequency_weights,
    total_ratio_weights,
)
from lapseg.losses.deep_supervision import deep_supervision_loss, deep_supervision_weights
from lapseg.losses.functional import (
    cross_entropy,
    dice_ce_loss,
    focal_loss,
    jaccard_loss,
    soft_dice_loss,
    tversky_loss,
)
from lapseg.losses.modules import (
    LOSSES,
    CrossEntropyLoss,
    DiceCELoss,
    DiceLoss,
    FocalLoss,
    JaccardLoss,
    SegmentationLoss,
    TverskyLoss,
    create_loss,
)
from lapseg.losses.regression import ClassesAndMapsLoss

__all__ = [
    "LOSSES",
    "ClassesAndMapsLoss",
    "CrossEntropyLoss",
    "DiceCELoss",
    "DiceLoss",
    "FocalLoss",
    "JaccardLoss",
    "SegmentationLoss",
    "TverskyLoss",
    "class_pixel_counts",
    "create_loss",
    "cross_entropy",
    "deep_supervision_loss",
    "deep_supervision_weights",
    "dice_ce_loss",
    "focal_loss",
    "inverse_frequency_weights",
    "jaccard_loss",
    "median_frequency_weights",
    "soft_dice_loss",
    "total_ratio_weights",
    "tversky_loss",
]
