"""A classification loss plus the regression of target maps (the ``distance`` representation).

The network's last ``M`` output channels regress maps in [0, 1] (read through a sigmoid); the
first ``K - M`` are softmax classes scored by any segmentation loss. The regression term is the
mean squared error per map, summed over the maps (KIT-Sch-GE's cell and neighbour distance
training), times ``weight``.
"""

from __future__ import annotations

import torch
from torch import nn

from lapseg.losses.modules import SegmentationLoss

__all__ = ["ClassesAndMapsLoss"]


class ClassesAndMapsLoss(nn.Module):
    """A segmentation loss on the classes plus the weighted squared error of the regressed maps:
    ``base(logits[:, :K-M], target) + weight * sum_m MSE(sigmoid(logits[:, K-M+m]), maps[:, m])``.

    Parameters
    ----------
    base : SegmentationLoss
        The loss of the class channels (pixel weights and the valid mask go to it).
    channels : int
        ``M``, the regressed maps (the last output channels).
    weight : float
        Weight of the regression term.
    """

    def __init__(self, base: SegmentationLoss, *, channels: int, weight: float) -> None:
        super().__init__()
        if channels < 1:
            raise ValueError(f"channels must be >= 1, got {channels}")
        self.base = base
        self.channels = int(channels)
        self.weight = float(weight)

    @property
    def supports_pixel_weights(self) -> bool:
        return self.base.supports_pixel_weights

    def forward(
        self,
        logits: torch.Tensor,
        target: torch.Tensor,
        pixel_weights: torch.Tensor | None = None,
        valid_mask: torch.Tensor | None = None,
        maps: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Loss of ``logits : (B, K, Y, X)`` against ``target : (B, Y, X)`` and
        ``maps : (B, M, Y, X)``; a () tensor."""
        if maps is None:
            raise ValueError(f"{type(self).__name__} needs the target maps (maps=None)")
        k = logits.shape[1] - self.channels
        if k < 1 or maps.shape[1] != self.channels or maps.shape[2:] != logits.shape[2:]:
            raise ValueError(
                f"maps {tuple(maps.shape)} do not fit logits {tuple(logits.shape)} with "
                f"{self.channels} regressed channel(s)"
            )
        classes = self.base(logits[:, :k], target, pixel_weights, valid_mask)
        squared = (torch.sigmoid(logits[:, k:]) - maps) ** 2  # (B, M, Y, X)
        if valid_mask is None:
            per_map = squared.mean(dim=(0, 2, 3))
        else:
            keep = valid_mask[:, None].to(squared.dtype)
            per_map = (squared * keep).sum(dim=(0, 2, 3)) / keep.sum().clamp(min=1.0)
        return classes + self.weight * per_map.sum()

    def extra_repr(self) -> str:
        return f"channels={self.channels}, weight={self.weight}"
