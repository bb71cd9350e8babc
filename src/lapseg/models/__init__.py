"""U-Net models: the configurable :class:`UNet`, seed presets and :func:`create_model`."""

from __future__ import annotations

from lapseg.models.registry import PRESET_DESCRIPTIONS, PRESETS, count_parameters, create_model
from lapseg.models.unet import UNet, UNetConfig, fuse_batchnorm

__all__ = [
    "PRESETS",
    "PRESET_DESCRIPTIONS",
    "UNet",
    "UNetConfig",
    "count_parameters",
    "create_model",
    "fuse_batchnorm",
]
