"""A configurable 2D U-Net (Ronneberger et al. 2015) covering every seed architecture.

The network returns logits ``(B, K, Y', X')``: ``K = 1`` means a binary sigmoid output, ``K >= 2``
softmax classes; the final activation belongs to the loss / post-processing. With
``padding="valid"`` the output is smaller than the input by :attr:`UNet.output_margin` pixels on
each side and the skip connections are centre-cropped to the decoder's size.

With ``deep_supervision`` n > 0 the network in training mode returns a tuple: the logits, then
n lower-resolution logits from the decoder's 1/2 ... 1/2**n levels (for
:func:`lapseg.losses.deep_supervision_loss`); in evaluation mode it returns the logits alone.
"""

from __future__ import annotations

import copy
import math
import operator
from typing import Any

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from lapseg.config import UNetConfig
from lapseg.errors import LapsegInputError
from lapseg.models.blocks import ConvNormAct, ConvStack, TemporalStem, Upsample, center_crop

__all__ = ["UNet", "UNetConfig", "fuse_batchnorm"]


def _valid_sizes(config: UNetConfig, n: int) -> int | None:
    """Output size for input size ``n`` along one axis, or None if ``n`` is not usable."""
    if config.padding == "same":
        return n if n > 0 and n % 2**config.depth == 0 else None
    loss = config.convs_per_level * (config.kernel_size - 1)
    for _ in range(config.depth):  # encoder: convs then 2x2 pooling
        n -= loss
        if n <= 0 or n % 2:
            return None
        n //= 2
    n -= loss  # bottleneck
    if n <= 0:
        return None
    for _ in range(config.depth):  # decoder: 2x up then convs
        n = 2 * n - loss
        if n <= 0:
            return None
    return n


class UNet(nn.Module):
    """Configurable U-Net: ``(B, C, Y, X)`` images to ``(B, K, Y', X')`` logits.

    Parameters
    ----------
    config : UNetConfig
        The architecture (also stored as ``self.config``; save ``config.to_dict()`` alongside
        the ``state_dict``). ``out_channels`` not set (it follows the task when training)
        builds one (sigmoid) output.
    """

    def __init__(self, config: UNetConfig) -> None:
        super().__init__()
        if not isinstance(config, UNetConfig):
            raise LapsegInputError(f"UNet needs a UNetConfig, got {type(config).__name__}")
        if config.out_channels is None:
            config = config.replace(out_channels=1)
        self.config = config
        c = config
        every = c.dropout if c.dropout_where == "all" else 0.0
        conv_kw: dict[str, Any] = {
            "n_convs": c.convs_per_level,
            "kernel_size": c.kernel_size,
            "padding": c.padding,
            "norm": c.norm,
            "dropout": every,
            "dropout_before_bias": c.dropout_before_bias,
        }
        last = c.linear_last if c.depth == 0 else 0  # linear convs just before the output
        fuse_frames = c.temporal_fusion == "conv3d" and c.in_channels > 1  # first level in 3D
        levels: list[nn.Module] = [
            ConvStack(
                c.in_channels if i == 0 else c.features(i - 1),
                c.features(i),
                **conv_kw,
                linear_last=last,
            )
            for i in range(1 if fuse_frames else 0, c.depth + 1)
        ]
        if fuse_frames:
            stem = TemporalStem(
                c.in_channels,
                c.features(0),
                n_convs=c.convs_per_level,
                kernel_size=c.kernel_size,
                norm=c.norm,
                dropout=every,
                linear_last=last,
            )
            levels.insert(0, stem)
        self.encoder = nn.ModuleList(levels)
        self.pool = nn.MaxPool2d(2)
        # seed 001's Keras placement: dropout/2 after the first pooling, dropout after the others
        # and after every concatenation
        keras = c.dropout_where == "pool_concat" and c.dropout > 0
        self.pool_drop = nn.ModuleList(
            nn.Dropout(c.dropout * (0.5 if i == 0 else 1.0)) if keras else nn.Identity()
            for i in range(c.depth)
        )
        self.concat_drop = nn.ModuleList(
            nn.Dropout(c.dropout) if keras else nn.Identity() for _ in range(c.depth)
        )
        use_bottleneck_drop = c.dropout > 0 and c.dropout_where == "bottleneck"
        self.bottleneck_drop: nn.Module = (
            nn.Dropout(c.dropout) if use_bottleneck_drop else nn.Identity()
        )
        self.up = nn.ModuleList()
        self.decoder = nn.ModuleList()
        for i in reversed(range(c.depth)):
            f = c.features(i)
            self.up.append(
                Upsample(c.features(i + 1), f, mode=c.upsampling, kernel_size=c.up_kernel_size)
            )
            f_in = 2 * f if c.skip_connections else f
            self.decoder.append(
                ConvStack(f_in, f, **conv_kw, linear_last=c.linear_last if i == 0 else 0)
            )
        self.head = nn.Conv2d(c.features(0), c.outputs, 1)
        self.aux_heads = nn.ModuleList(
            nn.Conv2d(c.features(level), c.outputs, 1) for level in range(1, c.deep_supervision + 1)
        )
        self._init_weights()
        for up in self.up:  # learned upsampling starts as bilinear interpolation, whatever init
            if isinstance(up, Upsample):
                up.reset_bilinear()

    def _init_weights(self) -> None:
        if self.config.init == "default":
            return
        if self.config.init == "stemnet":
            self._init_stemnet()
            return
        for module in self.modules():
            if isinstance(module, nn.Conv2d | nn.Conv3d | nn.ConvTranspose2d):
                if self.config.init == "he":
                    nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
                else:
                    nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def _init_stemnet(self) -> None:
        """StemNet's TensorFlow initialisation (see ``UNetConfig.init``)."""
        k2 = self.config.kernel_size**2

        def init(
            conv: nn.Conv2d | nn.Conv3d | nn.ConvTranspose2d, std: float, *biases: Any
        ) -> None:
            nn.init.trunc_normal_(conv.weight, std=std, a=-2 * std, b=2 * std)
            for bias in (conv.bias, *biases):
                if bias is not None:
                    nn.init.constant_(bias, 0.1)

        for stacks, down in ((self.encoder, True), (self.decoder, False)):
            for unit in stacks.modules():
                if isinstance(unit, ConvNormAct):  # encoder: output features; decoder: input
                    n = unit.conv.out_channels if down else unit.conv.in_channels
                    init(unit.conv, math.sqrt(2 / (k2 * n)), unit.bias)
        for module in self.up.modules():
            if isinstance(module, nn.Conv2d | nn.ConvTranspose2d):
                init(module, math.sqrt(2 / (k2 * module.in_channels)))
        init(self.head, 0.1)

    @property
    def size_multiple(self) -> int:
        """Input sizes must be multiples of this (``2**depth``) with ``"same"`` padding."""
        return 2**self.config.depth

    @property
    def output_margin(self) -> int:
        """Pixels lost on each side with ``"valid"`` padding (92 for Ronneberger 2015); 0 else."""
        if self.config.padding == "same":
            return 0
        n = self.valid_input_size(1)
        return (n - self.output_size(n)) // 2

    def valid_input_size(self, n: int) -> int:
        """Smallest usable input size ``>= n`` along one axis.

        With ``"same"`` padding this is the next multiple of :attr:`size_multiple`; with
        ``"valid"`` padding, the next size whose feature maps stay even before every pooling.
        """
        try:
            m = max(operator.index(n), 1)
        except TypeError:
            raise LapsegInputError(f"valid_input_size needs an integer, got {n!r}") from None
        while _valid_sizes(self.config, m) is None:
            m += 1
        return m

    def output_size(self, n: int) -> int:
        """Output size along one axis for a usable input size ``n``."""
        out = _valid_sizes(self.config, n)
        if out is None:
            raise LapsegInputError(self._size_message((n,)))
        return out

    def _size_message(self, size: tuple[int, ...]) -> str:
        fixed = tuple(self.valid_input_size(int(s)) for s in size)
        shown = ", ".join(map(str, fixed))
        if self.config.padding == "same":
            return (
                f"input size {tuple(size)} is not a multiple of {self.size_multiple}: "
                f"pad to a multiple of {self.size_multiple}: ({shown})"
            )
        return (
            f"input size {tuple(size)} does not fit the valid-padding U-Net "
            f"(margin {self.output_margin} px per side): pad or crop to ({shown})"
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        """Logits of a batch.

        Parameters
        ----------
        x : (B, C, Y, X) tensor
            Images; ``Y`` and ``X`` must be usable sizes (:meth:`valid_input_size`).

        Returns
        -------
        (B, K, Y', X') tensor
            Logits; ``Y' = Y - 2 * output_margin`` (equal to ``Y`` with ``"same"`` padding).
            In training mode with ``deep_supervision`` n > 0: a tuple of these logits and n
            ``(B, K, Y / 2**i, X / 2**i)`` logits, i = 1 .. n.
        """
        if x.ndim != 4 or x.shape[1] != self.config.in_channels:
            raise LapsegInputError(
                f"UNet expects (B, {self.config.in_channels}, Y, X) input, got {tuple(x.shape)}"
            )
        size = (int(x.shape[-2]), int(x.shape[-1]))
        if any(_valid_sizes(self.config, s) is None for s in size):
            raise LapsegInputError(self._size_message(size))
        skips: list[torch.Tensor] = []
        where: list[torch.Tensor | None] = []  # max-pooling indices (max_unpool only)
        for i, stack in enumerate(self.encoder):
            if i > 0:
                if self.config.upsampling == "max_unpool":
                    x, indices = nn.functional.max_pool2d(x, 2, return_indices=True)
                    where.append(indices)
                else:
                    x = self.pool(x)
                    where.append(None)
                x = self.pool_drop[i - 1](x)
            x = stack(x)
            skips.append(x)
        x = self.bottleneck_drop(skips.pop())
        supervise = self.training and len(self.aux_heads) > 0
        coarse: list[torch.Tensor] = []  # deep supervision: finest first after reversing
        for j, (up, stack) in enumerate(zip(self.up, self.decoder, strict=True)):
            x = up(x, where.pop())
            if self.config.up_activation:
                x = torch.relu(x)
            skip = skips.pop()
            if self.config.skip_connections:
                x = torch.cat([center_crop(skip, (x.shape[-2], x.shape[-1])), x], dim=1)
            x = stack(self.concat_drop[j](x))
            level = self.config.depth - 1 - j
            if supervise and 1 <= level <= len(self.aux_heads):
                coarse.append(self._activate(self.aux_heads[level - 1](x)))
        logits = self._activate(self.head(x))
        return (logits, *reversed(coarse)) if supervise else logits

    def _activate(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.relu(logits) if self.config.head_activation == "relu" else logits


def fuse_batchnorm(model: nn.Module) -> nn.Module:
    """Return an eval-mode copy of ``model`` with every convolution + batch norm pair folded.

    Batch norm folded at test time: each :class:`ConvNormAct` whose norm is a batch norm
    gets a convolution with the normalisation baked into its weights and bias, and an
    ``Identity`` norm. The input model is left untouched. The copy is for inference only.

    Parameters
    ----------
    model : nn.Module
        Any module containing :class:`ConvNormAct` units (e.g. a :class:`UNet`).
    """
    fused = copy.deepcopy(model).eval()
    for module in fused.modules():
        if isinstance(module, ConvNormAct) and isinstance(
            module.norm, nn.BatchNorm2d | nn.BatchNorm3d
        ):
            module.conv = fuse_conv_bn_eval(module.conv, module.norm)
            module.norm = nn.Identity()
    return fused
