"""Building blocks of the U-Net: conv-norm-activation units, encoder/decoder levels, upsampling.

Every block follows the device and memory format of its input tensor (CPU, CUDA, MPS;
contiguous or channels_last); none of them hard-codes a device.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = [
    "ConvNormAct",
    "ConvStack",
    "Upsample",
    "center_crop",
    "make_norm",
]


def make_norm(kind: str, channels: int) -> nn.Module:
    """Return the normalisation layer ``kind`` for ``channels`` feature maps.

    Parameters
    ----------
    kind : {"batch", "group", "instance", "none"}
        ``"group"`` uses ``gcd(8, channels)`` groups; ``"instance"`` is affine.
    channels : int
        Number of feature maps.
    """
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        return nn.GroupNorm(math.gcd(8, channels), channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r}")  # UNetConfig validates user input first


class ConvNormAct(nn.Module):
    """Conv2d -> norm -> ReLU (in place) -> optional dropout.

    The convolution has a bias only when there is no normalisation (a norm's shift makes it
    redundant). ``padding="valid"`` loses ``(kernel_size - 1) // 2`` pixels per side.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        kernel_size: int = 3,
        padding: str = "same",
        norm: str = "batch",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        pad = (kernel_size - 1) // 2 if padding == "same" else 0
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, padding=pad, bias=norm == "none"
        )
        self.norm = make_norm(norm, out_channels)
        self.act = nn.ReLU(inplace=True)
        self.drop: nn.Module = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(B, C_in, Y, X)`` to ``(B, C_out, Y', X')``."""
        return self.drop(self.act(self.norm(self.conv(x))))


class ConvStack(nn.Sequential):
    """``n_convs`` :class:`ConvNormAct` units: the convolutions of one U-Net level."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        n_convs: int = 2,
        kernel_size: int = 3,
        padding: str = "same",
        norm: str = "batch",
        dropout: float = 0.0,
    ) -> None:
        units = [
            ConvNormAct(
                in_channels if i == 0 else out_channels,
                out_channels,
                kernel_size=kernel_size,
                padding=padding,
                norm=norm,
                dropout=dropout,
            )
            for i in range(n_convs)
        ]
        super().__init__(*units)


class Upsample(nn.Module):
    """Exact 2x upsampling from ``in_channels`` to ``out_channels`` feature maps.

    ``mode="transpose"``: a learned stride-2 transposed convolution with kernel 2 (Ronneberger
    2015) or 3 (Keras ``Conv2DTranspose(3, strides=2, padding="same")``); the output is exactly
    twice the input size either way. ``mode="bilinear"``: a 1x1 convolution followed by bilinear
    interpolation. Both operations are linear and the interpolation weights sum to one, so
    applying the 1x1 convolution first gives the same result at a quarter of the cost.
    """

    def __init__(
        self, in_channels: int, out_channels: int, *, mode: str = "transpose", kernel_size: int = 2
    ) -> None:
        super().__init__()
        self.mode = mode
        if mode == "transpose":
            pad = (kernel_size - 1) // 2
            self.conv: nn.Module = nn.ConvTranspose2d(
                in_channels,
                out_channels,
                kernel_size,
                stride=2,
                padding=pad,
                output_padding=2 + 2 * pad - kernel_size,
            )
        else:
            self.conv = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(B, C_in, Y, X)`` to ``(B, C_out, 2Y, 2X)``."""
        x = self.conv(x)
        if self.mode == "bilinear":
            x = nn.functional.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
        return x


def center_crop(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Centre crop of ``x`` (B, C, Y, X) to the spatial ``size`` (Y', X') (a view, no copy)."""
    dy = (x.shape[-2] - size[0]) // 2
    dx = (x.shape[-1] - size[1]) // 2
    if dy == 0 and dx == 0 and x.shape[-2:] == size:
        return x
    return x[..., dy : dy + size[0], dx : dx + size[1]]
