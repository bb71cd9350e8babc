"""The ``augment`` section: one sub-section per transform, presets and curriculum stages.

Every transform has a ``probability`` (0 = off) and parameter ranges ``[low, high]`` from which
its parameters are drawn uniformly per sample. :class:`AugmentationConfig` starts from the preset
``augment.preset`` (``presets/augment.yaml``); every other key overrides it, nested sections
field by field (``{"preset": "seed002", "elastic": {"alpha": [0, 60]}}``), while
``curriculum`` replaces the preset's stages as a whole. Curriculum stages switch transforms on
during training (seed 002 adds elastic deformation once the validation IoU reaches 0.7).
"""

from __future__ import annotations

import functools
from typing import Any, ClassVar

from pydantic import Field, ValidationInfo, field_validator, model_validator

from lapseg.config.base import (
    Int,
    NonNegative,
    Positive,
    Probability,
    Section,
    check_preset,
    key_error,
    load_presets,
)

__all__ = [
    "AUGMENTATION_PRESETS",
    "GEOMETRIC_TRANSFORMS",
    "INTENSITY_TRANSFORMS",
    "TRANSFORM_NAMES",
    "AugmentationConfig",
    "BlurConfig",
    "BrightnessConfig",
    "ContrastConfig",
    "CropConfig",
    "CurriculumStage",
    "ElasticConfig",
    "FlipConfig",
    "GammaConfig",
    "GridElasticConfig",
    "NoiseConfig",
    "QuadrantMirrorConfig",
    "Rot90Config",
    "RotationConfig",
    "ScaleConfig",
    "TranslationConfig",
    "augmentation_preset",
    "config_for_stage",
]

GEOMETRIC_TRANSFORMS = (
    "flip",
    "rot90",
    "rotation",
    "scale",
    "translation",
    "crop",
    "elastic",
    "grid_elastic",
    "quadrant_mirror",
)
INTENSITY_TRANSFORMS = ("brightness", "contrast", "gamma", "noise", "blur")
TRANSFORM_NAMES = GEOMETRIC_TRANSFORMS + INTENSITY_TRANSFORMS

Range = tuple[float, float]
Bounds = dict[str, tuple[float | None, float | None, bool]]
_NO_BOUND = (None, None, False)


class _Transform(Section):
    """A transform: ``probability`` plus ranges checked against ``BOUNDS``.

    ``BOUNDS[key] = (low, high, open_low)``: the range ``[a, b]`` needs ``a <= b``, both inside
    ``[low, high]`` (``(low, high]`` when ``open_low``); None = unbounded.
    """

    BOUNDS: ClassVar[Bounds] = {}
    probability: Probability = 0.0
    """Chance that the transform is applied to a sample (0 = off)."""

    def __init__(self, probability: float | None = None, /, **values: Any) -> None:
        """``FlipConfig(0.5)`` is ``FlipConfig(probability=0.5)``."""
        if probability is not None:
            values["probability"] = probability
        super().__init__(**values)

    @field_validator("*")
    @classmethod
    def _range(cls, value: Any, info: ValidationInfo) -> Any:
        if info.field_name not in cls.BOUNDS:
            return value
        low, high, open_low = cls.BOUNDS[info.field_name]
        a, b = value
        if a > b:
            raise ValueError("must be a range [low, high] with low <= high")
        if low is not None and (a < low or (open_low and a == low)):
            raise ValueError(f"must be {'>' if open_low else '>='} {low}")
        if high is not None and b > high:
            raise ValueError(f"must be <= {high}")
        return value


class FlipConfig(_Transform):
    """Mirror along Y and, independently, along X, each with ``probability``."""

    SECTION = "augment.flip"


class Rot90Config(_Transform):
    """With ``probability``, 1-3 quarter turns (only half turns for non-square patches)."""

    SECTION = "augment.rot90"


class RotationConfig(_Transform):
    """Rotation by an angle drawn from ``degrees`` (counter-clockwise, about the centre)."""

    SECTION = "augment.rotation"

    BOUNDS: ClassVar[Bounds] = {"degrees": (-360.0, 360.0, False)}
    degrees: Range = (-20.0, 20.0)
    """Angle range in degrees."""


class ScaleConfig(_Transform):
    """Magnification by a factor drawn from ``factor`` (> 1 zooms in), about the centre."""

    SECTION = "augment.scale"

    BOUNDS: ClassVar[Bounds] = {"factor": (0.0, None, True)}
    factor: Range = (0.6, 1.5)
    """Zoom factor range."""


class TranslationConfig(_Transform):
    """Shift along Y and X, each by a fraction of the patch size drawn from ``fraction``."""

    SECTION = "augment.translation"

    BOUNDS: ClassVar[Bounds] = {"fraction": (-1.0, 1.0, False)}
    fraction: Range = (-0.1, 0.1)
    """Shift range as a fraction of the patch size."""


class CropConfig(_Transform):
    """Crop a random window whose side is ``fraction`` of the patch, resize it back."""

    SECTION = "augment.crop"

    BOUNDS: ClassVar[Bounds] = {"fraction": (0.0, 1.0, True)}
    fraction: Range = (0.5, 0.5)
    """Side of the crop window as a fraction of the patch."""


class ElasticConfig(_Transform):
    """Simard et al. 2003: a U(-1, 1) field per axis, Gaussian-smoothed (``sigma`` px), times
    alpha; the displacement std is ``alpha / (2 sigma sqrt(3 pi))`` px (~2 px for 50 and 4)."""

    SECTION = "augment.elastic"

    BOUNDS: ClassVar[Bounds] = {"alpha": (0.0, None, False)}
    alpha: Range = (0.0, 50.0)
    """Range of the field's scale alpha."""
    sigma: Positive = 4.0
    """Smoothing of the field in pixels."""


class GridElasticConfig(_Transform):
    """Ronneberger et al. 2015: N(0, ``std`` px) displacements on a coarse grid, bicubic between."""

    SECTION = "augment.grid_elastic"

    grid: tuple[int, int] = (3, 3)
    """Control points along Y and X (>= 2 each)."""
    std: NonNegative = 10.0
    """Standard deviation of the displacements in pixels."""

    @field_validator("grid")
    @classmethod
    def _grid(cls, grid: tuple[int, int]) -> tuple[int, int]:
        if min(grid) < 2:
            raise ValueError("must be two ints >= 2")
        return grid


class QuadrantMirrorConfig(_Transform):
    """A random quarter of the patch, mirrored into the other three quarters."""

    SECTION = "augment.quadrant_mirror"


class BrightnessConfig(_Transform):
    """Add a shift drawn from ``shift`` (in normalised intensity units) to every pixel."""

    SECTION = "augment.brightness"

    BOUNDS: ClassVar[Bounds] = {"shift": _NO_BOUND}
    shift: Range = (-0.1, 0.1)
    """Shift range."""


class ContrastConfig(_Transform):
    """Scale each channel's deviations from its mean by a factor drawn from ``factor``."""

    SECTION = "augment.contrast"

    BOUNDS: ClassVar[Bounds] = {"factor": (0.0, None, False)}
    factor: Range = (0.8, 1.25)
    """Contrast factor range."""


class GammaConfig(_Transform):
    """Gamma drawn from ``gamma`` applied to each channel rescaled to [0, 1] (then scaled back)."""

    SECTION = "augment.gamma"

    BOUNDS: ClassVar[Bounds] = {"gamma": (0.0, None, True)}
    gamma: Range = (0.8, 1.25)
    """Gamma range."""


class NoiseConfig(_Transform):
    """Add Gaussian noise whose standard deviation is drawn from ``std``."""

    SECTION = "augment.noise"

    BOUNDS: ClassVar[Bounds] = {"std": (0.0, None, False)}
    std: Range = (0.0, 0.05)
    """Noise standard deviation range."""


class BlurConfig(_Transform):
    """Gaussian blur in Y and X with a sigma (px) drawn from ``sigma``."""

    SECTION = "augment.blur"

    BOUNDS: ClassVar[Bounds] = {"sigma": (0.0, None, False)}
    sigma: Range = (0.5, 1.5)
    """Blur sigma range in pixels."""


class CurriculumStage(Section):
    """A curriculum stage: the transforms it switches on, and when.

    The stage is entered when ``after_epoch`` epochs have completed, or when the history value
    ``when_metric`` reaches ``threshold`` (``>=``; ``<=`` for metrics whose name contains
    "loss"), whichever comes first. Stages are entered in order.
    """

    name: str = ""
    """A label for the stage (logs, history)."""
    transforms: tuple[str, ...] = ()
    """Transforms the stage switches on."""
    after_epoch: Int | None = Field(None, ge=0)
    """Enter after this many epochs."""
    when_metric: str | None = None
    """Enter when this history value reaches ``threshold``."""
    threshold: float | None = None
    """The value ``when_metric`` must reach."""

    @model_validator(mode="after")
    def _trigger(self) -> CurriculumStage:
        if not self.transforms:
            raise key_error("transforms", "empty: name the transforms the stage enables")
        unknown = [t for t in self.transforms if t not in TRANSFORM_NAMES]
        if unknown:
            raise key_error(
                "transforms",
                f"unknown name(s) {', '.join(unknown)}; valid: {', '.join(TRANSFORM_NAMES)}",
            )
        if (self.when_metric is None) != (self.threshold is None):
            raise ValueError("set both when_metric and threshold, or neither")
        if self.after_epoch is None and self.when_metric is None:
            raise ValueError("the stage has no trigger: set after_epoch or when_metric")
        return self


def _merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """``changes`` over ``base``; nested transform sections are merged field by field."""
    merged = dict(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


class AugmentationConfig(Section):
    """Paired augmentation of image, target and weight map (identical geometry for every
    channel, temporal frames included)."""

    SECTION = "augment"

    preset: str = "default"
    """The preset this section starts from (``default``, ``none``, ``seed002``,
    ``cryo-sem-004``, ``ronneberger2015``)."""
    flip: FlipConfig = FlipConfig()
    rot90: Rot90Config = Rot90Config()
    rotation: RotationConfig = RotationConfig()
    scale: ScaleConfig = ScaleConfig()
    translation: TranslationConfig = TranslationConfig()
    crop: CropConfig = CropConfig()
    elastic: ElasticConfig = ElasticConfig()
    grid_elastic: GridElasticConfig = GridElasticConfig()
    quadrant_mirror: QuadrantMirrorConfig = QuadrantMirrorConfig()
    brightness: BrightnessConfig = BrightnessConfig()
    contrast: ContrastConfig = ContrastConfig()
    gamma: GammaConfig = GammaConfig()
    noise: NoiseConfig = NoiseConfig()
    blur: BlurConfig = BlurConfig()
    curriculum: tuple[CurriculumStage, ...] = ()
    """Stages; a transform named by a stage is off until that stage is entered."""

    @model_validator(mode="before")
    @classmethod
    def _start_from_preset(cls, values: Any) -> Any:
        if not isinstance(values, dict):
            return values
        name = values.get("preset", "default")
        presets = load_presets("augment")
        if not isinstance(name, str) or name not in presets:
            return values  # the field validator names the problem
        plain = {
            key: value.model_dump() if isinstance(value, Section) else value
            for key, value in values.items()
        }
        return _merge(_merge(presets[name], plain), {"preset": name})

    @field_validator("preset")
    @classmethod
    def _known_preset(cls, name: str) -> str:
        return check_preset(name, "augment")

    @model_validator(mode="after")
    def _curriculum(self) -> AugmentationConfig:
        seen: dict[str, int] = {}
        for index, stage in enumerate(self.curriculum):
            for name in stage.transforms:
                if name in seen:
                    raise key_error(
                        f"curriculum[{index}]",
                        f"enables {name!r}, already enabled by curriculum[{seen[name]}]",
                    )
                if getattr(self, name).probability == 0:
                    raise key_error(
                        f"curriculum[{index}]", f"enables {name!r} but {name}.probability is 0"
                    )
                seen[name] = index
        return self

    def transform(self, name: str) -> Any:
        """The sub-section of transform ``name`` (one of :data:`TRANSFORM_NAMES`)."""
        if name not in TRANSFORM_NAMES:
            raise KeyError(name)
        return getattr(self, name)


def augmentation_preset(name: str) -> AugmentationConfig:
    """The preset ``name``, resolved (a one-line error lists the valid names otherwise)."""
    return AugmentationConfig(preset=name)


AUGMENTATION_PRESETS: dict[str, AugmentationConfig] = {
    name: AugmentationConfig(preset=name) for name in load_presets("augment")
}
"""Every augmentation preset, resolved."""


@functools.lru_cache(maxsize=32)
def config_for_stage(config: AugmentationConfig, stage: int | None) -> AugmentationConfig:
    """The transforms active at curriculum ``stage`` (``None``: all, the curriculum ignored).

    Stage 0 is the start of training; stage ``k`` has entered ``config.curriculum[:k]``. The
    returned configuration has the not-yet-enabled transforms at probability 0 and no curriculum.
    """
    n_stages = len(config.curriculum)
    if stage is None:
        stage = n_stages
    if not 0 <= stage <= n_stages:
        raise ValueError(f"stage {stage} is outside 0..{n_stages} (the curriculum's stages)")
    disabled = {t for s in config.curriculum[stage:] for t in s.transforms}
    values = config.model_dump()
    values["curriculum"] = ()
    for name in disabled:
        values[name]["probability"] = 0.0
    return AugmentationConfig.model_validate(values)
