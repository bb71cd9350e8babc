"""Named U-Net presets (one per seed system) and :func:`create_model`.

Parameter counts (1 input channel, as configured below), asserted in the tests:

=============== =========== ==================================================================
preset          parameters  notes
=============== =========== ==================================================================
default          1,942,289  depth 4, 16 base features, BatchNorm, transposed convs
ronneberger2015 31,030,658  the "31.0M" of the original U-Net (64 features, 2 classes, valid)
stemnet         37,744,002  7 levels (6 poolings), one 5x5 conv per level, 16 base features
stemnet-exact   37,744,002  the same layers, ordered and initialised as StemNet's TF code
compact-unet       466,595  32 base features, 2 poolings, last two convs linear, 3 classes
pancreas-keras   2,159,889  16 base features, 4 poolings, BatchNorm, 3x3 transposed convs
cryo-sem        31,036,481  seed 004 reports 31,044,289: see below
=============== =========== ==================================================================

The cryo-SEM thesis (seed 004) reports 31,044,289 parameters for its PyTorch U-Net (64 base
features, 4 poolings, BatchNorm, 2x2 transposed convs, one sigmoid output) but does not list its
layers. Our preset has 7,808 fewer (0.025 %). The difference is matched exactly by 5,888
convolution biases (redundant before BatchNorm; ours have none) plus 1,920 parameters of a
BatchNorm after each of the four transposed convolutions (2 x (512 + 256 + 128 + 64)), which is
our best reading of the thesis's "batch normalization after convolutional layers".

StemNet (000) applies its dropout before bias + ReLU, puts a ReLU after each transposed
convolution and on its output, and initialises from truncated normals: the preset
``stemnet-exact`` does all of it (``stemnet`` is the plain reading of its text). The compact
U-Net (002) upsamples by nearest-neighbour + 2x2 convolution + ReLU where ``compact-unet`` has a
2x2 transposed convolution + ReLU (the same parameters) and ends with one more 3x3 convolution to
two channels. Simplifications against the seeds (the config has no field for them): the Keras
pancreas U-Net (001) drops out after every pooling (0.25 at the first, 0.5 after) and
after every concatenation, where this preset drops out (0.5) after the bottleneck only.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from lapseg.config import MODEL_PRESETS, UNetConfig, model_preset_descriptions
from lapseg.errors import LapsegInputError
from lapseg.models.unet import UNet

__all__ = ["PRESETS", "PRESET_DESCRIPTIONS", "count_parameters", "create_model"]

PRESETS: dict[str, UNetConfig] = MODEL_PRESETS
"""Named architectures (``presets/models.yaml`` of :mod:`lapseg.config`)."""

PRESET_DESCRIPTIONS: dict[str, str] = model_preset_descriptions()
"""Preset name -> one-line description."""


def create_model(spec: str | UNetConfig | dict[str, Any], **overrides: Any) -> UNet:
    """Build a :class:`UNet` from a preset name, a config or a config dict.

    Parameters
    ----------
    spec : str or UNetConfig or dict
        A name in :data:`PRESETS`, a :class:`UNetConfig`, or a dict from
        :meth:`UNetConfig.to_dict` (as stored in checkpoints; its ``preset`` key, if any,
        supplies the fields the dict does not give).
    **overrides
        Config fields to replace, e.g. ``in_channels=5, out_channels=3``.

    Returns
    -------
    UNet
        A freshly initialised network.

    Raises
    ------
    LapsegInputError
        Unknown preset name (the message lists the valid ones), unknown override field (the
        message lists the fields) or an invalid field value.
    """
    if isinstance(spec, str):
        if spec not in PRESETS:
            raise LapsegInputError(
                f"unknown model preset {spec!r}; valid presets: {', '.join(PRESETS)}"
            )
        config = PRESETS[spec]
    elif isinstance(spec, UNetConfig):
        config = spec
    elif isinstance(spec, dict):
        config = UNetConfig.from_dict(spec)
    else:
        raise LapsegInputError(
            f"model spec must be a preset name, UNetConfig or dict, got {type(spec).__name__}"
        )
    if overrides:
        names = list(UNetConfig.model_fields)
        unknown = sorted(set(overrides) - set(names))
        if unknown:
            raise LapsegInputError(
                f"unknown model option(s) {', '.join(map(repr, unknown))}; "
                f"valid options: {', '.join(names)}"
            )
        config = config.replace(**overrides)
    return UNet(config)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters (elements with ``requires_grad``) of ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
