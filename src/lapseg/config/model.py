"""The ``model`` section: the U-Net architecture, starting from a named preset.

``model.preset`` names an architecture of ``presets/models.yaml`` (one per seed system plus the
fast ``default``); every other key of the section replaces one field of that preset. The
resolved section holds every field, so a checkpoint rebuilds its network without the presets.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from lapseg.config.base import Bool, Int, Section, check_preset, load_presets
from lapseg.errors import LapsegInputError

__all__ = ["MODEL_PRESETS", "UNetConfig", "model_preset_descriptions"]


def model_preset_descriptions() -> dict[str, str]:
    """Preset name -> one-line description."""
    return {
        name: str(values.get("description", "")) for name, values in load_presets("models").items()
    }


def _preset_values(name: object) -> dict[str, Any]:
    """The fields a preset sets ({} for an unknown name: the field validator reports it)."""
    presets = load_presets("models")
    if not isinstance(name, str) or name not in presets:
        return {}
    return {k: v for k, v in presets[name].items() if k != "description"}


class UNetConfig(Section):
    """Architecture of the U-Net (Ronneberger et al. 2015) that maps ``(B, C, Y, X)`` images
    to ``(B, K, Y', X')`` logits; plain values only, so it lives in every checkpoint."""

    SECTION = "model"

    preset: str = "default"
    """Named architecture this section starts from (see ``lapseg.config.MODEL_PRESETS``)."""
    in_channels: Int = Field(1, ge=1)
    """Input channels ``C`` (set automatically to 2k+1 for temporal context k)."""
    out_channels: Int | None = Field(None, ge=1)
    """Output channels ``K``: 1 = binary (sigmoid), >= 2 = softmax classes; null = follows the
    task when training (1 binary, 3 for the 3-class instance target, K for K classes)."""
    depth: Int = Field(4, ge=0)
    """Number of 2x2 max-poolings; the network has ``depth + 1`` levels."""
    base_features: Int = Field(16, ge=1)
    """Feature maps of the first level, doubled at every level."""
    max_features: Int | None = Field(None, ge=1)
    """Cap on the feature maps of any level (null: no cap)."""
    kernel_size: Literal[3, 5] = 3
    """Convolution kernel size."""
    padding: Literal["same", "valid"] = "same"
    """``valid`` reproduces Ronneberger 2015 (572 -> 388 pixels); ``same`` keeps the size."""
    norm: Literal["batch", "group", "instance", "none"] = "batch"
    """Normalisation after every convolution."""
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    """Dropout probability."""
    dropout_where: Literal["bottleneck", "all", "pool_concat"] = "bottleneck"
    """After the bottleneck only, after every convolution (StemNet), or ``pool_concat`` (the
    pancreas Keras U-Net's placement): ``dropout / 2`` after the first max-pooling, ``dropout``
    after every other pooling and after every decoder concatenation."""
    upsampling: Literal["transpose", "bilinear", "nearest", "max_unpool", "learned_bilinear"] = (
        "transpose"
    )
    """``transpose``: learned transposed convolution; the others map the channels with a 1x1
    convolution, then double the size: ``bilinear`` / ``nearest`` interpolation,
    ``max_unpool`` (values back where the encoder's max-pooling found its maxima, zeros
    elsewhere; ``padding: same`` only) or ``learned_bilinear`` (a per-channel 4x4 transposed
    convolution initialised to bilinear interpolation, then trained: FCN)."""
    up_kernel_size: Literal[2, 3] = 2
    """Kernel of the stride-2 transposed convolution (output exactly 2x either way)."""
    skip_connections: Bool = True
    """Concatenate encoder features into the decoder (false: an encoder-decoder without them)."""
    init: Literal["he", "xavier", "default", "stemnet"] = "he"
    """Weight initialisation of convolutions (biases zero); ``default`` keeps PyTorch's;
    ``stemnet``: truncated normal (at 2 sigma) with sigma = sqrt(2 / (k^2 n)), n the output
    features of encoder convolutions and the input features of decoder and upsampling ones
    (k = ``kernel_size`` for all), sigma 0.1 for the 1x1 output, biases 0.1."""
    convs_per_level: Int = Field(2, ge=1)
    """Convolutions per level (2 in Ronneberger 2015, 1 in StemNet)."""
    dropout_before_bias: Bool = False
    """With ``dropout_where: all``: drop out the convolution's output before its bias, norm and
    ReLU (as StemNet's code does) instead of after the ReLU."""
    up_activation: Bool = False
    """A ReLU after every upsampling layer (StemNet's code)."""
    head_activation: Literal["none", "relu"] = "none"
    """``relu``: a ReLU on the output logits before the softmax (StemNet's code); ``none``."""
    linear_last: Int = Field(0, ge=0)
    """The last this many convolutions before the 1x1 output layer are linear: no
    normalisation, no activation (a compact U-Net's remedy for all-background output)."""
    temporal_fusion: Literal["early", "conv3d"] = "early"
    """How a temporal model (``temporal.context`` k > 0: 2k+1 frames as input channels) fuses
    its frames: ``early`` mixes them in the first convolution (StemNet, seed 000); ``conv3d``
    makes the first level's convolutions 3D over (t, y, x), shared by every frame and fusing
    them over t (3 frames at a time, down to the centre time point). One input frame (k = 0)
    builds the plain 2D level either way."""

    deep_supervision: Int = Field(0, ge=0)
    """Extra training outputs at the decoder's 1/2, 1/4, ... resolutions (nnU-Net's deep
    supervision): each has its own 1x1 head, its logits are upsampled to the target's size and
    its loss is weighted 1/2, 1/4, ... of the full-resolution output's (weights normalised to
    sum 1). Training only: validation, prediction and exports use the full-resolution output.
    0 = off; at most ``depth - 1``; needs ``padding: same``."""

    @model_validator(mode="before")
    @classmethod
    def _start_from_preset(cls, values: Any) -> Any:
        if not isinstance(values, dict):
            return values
        name = values.get("preset", "default")
        return {**_preset_values(name), **values, "preset": name}

    @field_validator("preset")
    @classmethod
    def _known_preset(cls, name: str) -> str:
        return check_preset(name, "models")

    @model_validator(mode="after")
    def _unpool_needs_same_padding(self) -> UNetConfig:
        if self.upsampling == "max_unpool" and self.padding != "same":
            raise ValueError(
                "model.upsampling=max_unpool needs model.padding=same (with valid padding the "
                "decoder's maps are smaller than the pooled encoder maps)"
            )
        return self

    @model_validator(mode="after")
    def _conv3d_fusion_fits(self) -> UNetConfig:
        if self.temporal_fusion != "conv3d":
            return self
        clash = {
            "model.padding=valid": self.padding == "valid",
            "model.dropout_before_bias=true": self.dropout_before_bias and self.dropout > 0,
            "model.init=stemnet": self.init == "stemnet",
        }
        named = [name for name, applies in clash.items() if applies]
        if named:
            raise ValueError(
                f"model.temporal_fusion=conv3d does not combine with {', '.join(named)} "
                "(use temporal_fusion=early)"
            )
        return self

    @model_validator(mode="after")
    def _deep_supervision_fits(self) -> UNetConfig:
        if self.deep_supervision == 0:
            return self
        if self.deep_supervision >= max(self.depth, 1):
            raise ValueError(
                f"model.deep_supervision={self.deep_supervision} needs model.depth > "
                f"{self.deep_supervision} (one extra output per decoder level below full "
                f"resolution, the bottleneck excluded; depth is {self.depth})"
            )
        if self.padding != "same":
            raise ValueError("model.deep_supervision needs model.padding=same")
        return self

    @model_validator(mode="after")
    def _linear_last_fits(self) -> UNetConfig:
        if self.linear_last > self.convs_per_level:
            raise ValueError(
                f"model.linear_last={self.linear_last} exceeds the convolutions of the last "
                f"level (model.convs_per_level={self.convs_per_level})"
            )
        return self

    @property
    def outputs(self) -> int:
        """``out_channels`` once the task has decided it (an error before)."""
        if self.out_channels is None:
            raise ValueError("model.out_channels is not resolved yet: it follows the task")
        return self.out_channels

    def features(self, level: int) -> int:
        """Feature maps at ``level`` (0 = full resolution, ``depth`` = bottleneck)."""
        n = self.base_features * 2**level
        return n if self.max_features is None else min(n, self.max_features)


def _all_presets() -> dict[str, UNetConfig]:
    try:
        return {name: UNetConfig(preset=name) for name in load_presets("models")}
    except LapsegInputError as error:  # pragma: no cover - a broken shipped preset
        raise RuntimeError(f"invalid model preset file: {error}") from None


MODEL_PRESETS: dict[str, UNetConfig] = _all_presets()
"""Every named architecture, resolved."""
