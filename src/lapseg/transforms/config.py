"""Augmentation configuration: one frozen dataclass per transform, presets, curriculum stages.

Every transform has a ``probability`` (0 = off) and parameter ranges ``(low, high)`` from which
its parameters are drawn uniformly per sample. :class:`AugmentationConfig` groups them, names the
preset it started from, and holds the curriculum: stages that switch transforms on during
training (seed 002 adds elastic deformation once the validation IoU reaches 0.7).

The dataclass defaults are the ``"default"`` preset. :func:`augmentation_from_dict` builds a
configuration from a mapping such as a YAML section: it starts from ``values["preset"]`` (default
``"default"``) and every other key overrides one field, nested sections field by field, e.g.
``{"preset": "seed002", "elastic": {"alpha": [0, 60]}}``.

This module must not import :mod:`lapseg.config` at import time (that module imports this one).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

from lapseg.errors import LapsegInputError

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


def _where(name: str, key: str) -> str:
    return f"augment.{name}.{key}"


def _check_probability(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise LapsegInputError(f"{_where(name, 'probability')}={value!r} must be in [0, 1]")


def _check_range(
    name: str,
    key: str,
    value: tuple[float, float],
    *,
    low: float | None = None,
    high: float | None = None,
    open_low: bool = False,
) -> None:
    """``value`` must be ``(a, b)`` with ``a <= b`` inside ``[low, high]`` (``(low, high]``)."""
    where = _where(name, key)
    if len(value) != 2 or value[0] > value[1]:
        raise LapsegInputError(f"{where}={value!r} must be a range [low, high] with low <= high")
    if low is not None and (value[0] < low or (open_low and value[0] == low)):
        bound = f"> {low}" if open_low else f">= {low}"
        raise LapsegInputError(f"{where}={value!r} must be {bound}")
    if high is not None and value[1] > high:
        raise LapsegInputError(f"{where}={value!r} must be <= {high}")


@dataclass(frozen=True)
class FlipConfig:
    """Mirror along Y and, independently, along X, each with ``probability``."""

    NAME: ClassVar[str] = "flip"
    probability: float = 0.0

    def __post_init__(self) -> None:
        _check_probability(self.NAME, self.probability)


@dataclass(frozen=True)
class Rot90Config:
    """With ``probability``, 1-3 quarter turns (only half turns for non-square patches)."""

    NAME: ClassVar[str] = "rot90"
    probability: float = 0.0

    def __post_init__(self) -> None:
        _check_probability(self.NAME, self.probability)


@dataclass(frozen=True)
class RotationConfig:
    """Rotation by an angle drawn from ``degrees`` (counter-clockwise, about the centre)."""

    NAME: ClassVar[str] = "rotation"
    probability: float = 0.0
    degrees: tuple[float, float] = (-20.0, 20.0)

    def __post_init__(self) -> None:
        _check_probability(self.NAME, self.probability)
        _check_range(self.NAME, "degrees", self.degrees, low=-360.0, high=360.0)


@dataclass(frozen=True)
class ScaleConfig:
    """Magnification by a factor drawn from ``factor`` (> 1 zooms in), about the centre."""

    NAME: ClassVar[str] = "scale"
    probability: float = 0.0
    factor: tuple[float, float] = (0.9, 1.1)

    def __post_init__(self) -> None:
        _check_probability(self.NAME, self.probability)
        _check_range(self.NAME, "factor", self.factor, low=0.0, open_low=True)


@dataclass(frozen=True)
class TranslationConfig:
    """Shift along Y and X, each by a fraction of the patch size drawn from ``fraction``."""

    NAME: ClassVar[str] = "translation"
    probability: float = 0.0
    fraction: tuple[float, float] = (-0.1, 0.1)

    def __post_init__(self) -> None:
        _check_probability(self.NAME, self.probability)
        _check_range(self.NAME, "fraction", self.fraction, low=-1.0, high=1.0)


@dataclass(frozen=True)
class CropConfig:
    """Crop a random window whose side is ``fraction`` of the patch, resize it back (004: 0.5)."""

    NAME: ClassVar[str] = "crop"
    probability: float = 0.0
    fraction: tuple[float, float] = (0.5, 0.5)

    def __post_init__(self) -> None:
        _check_probability(self.NAME, self.probability)
        _check_range(self.NAME, "fraction", self.fraction, low=0.0, high=1.0, open_low=True)


@dataclass(frozen=True)
class ElasticConfig:
    """Simard et al. 2003: a U(-1, 1) field per axis, Gaussian-smoothed (``sigma`` px), times alpha.

    The displacement std is ``alpha / (2 sigma sqrt(3 pi))`` px (~2 px for alpha 50, sigma 4).
    """

    NAME: ClassVar[str] = "elastic"
    probability: float = 0.0
    alpha: tuple[float, float] = (0.0, 50.0)
    sigma: float = 4.0

    def __post_init__(self) -> None:
        _check_probability(self.NAME, self.probability)
        _check_range(self.NAME, "alpha", self.alpha, low=0.0)
        if self.sigma <= 0:
            raise LapsegInputError(f"{_where(self.NAME, 'sigma')}={self.sigma!r} must be > 0")


@dataclass(frozen=True)
class GridElasticConfig:
    """Ronneberger et al. 2015: N(0, ``std`` px) displacements on a coarse grid, bicubic between."""

    NAME: ClassVar[str] = "grid_elastic"
    probability: float = 0.0
    grid: tuple[int, int] = (3, 3)
    std: float = 10.0

    def __post_init__(self) -> None:
        _check_probability(self.NAME, self.probability)
        if len(self.grid) != 2 or min(self.grid) < 2:
            raise LapsegInputError(
                f"{_where(self.NAME, 'grid')}={self.grid!r} must be two ints >= 2"
            )
        if self.std < 0:
            raise LapsegInputError(f"{_where(self.NAME, 'std')}={self.std!r} must be >= 0")


@dataclass(frozen=True)
class QuadrantMirrorConfig:
    """Seed 002: a random quarter of the patch, mirrored into the other three quarters."""

    NAME: ClassVar[str] = "quadrant_mirror"
    probability: float = 0.0

    def __post_init__(self) -> None:
        _check_probability(self.NAME, self.probability)


@dataclass(frozen=True)
class BrightnessConfig:
    """Add a shift drawn from ``shift`` (in normalised intensity units) to every pixel."""

    NAME: ClassVar[str] = "brightness"
    probability: float = 0.0
    shift: tuple[float, float] = (-0.1, 0.1)

    def __post_init__(self) -> None:
        _check_probability(self.NAME, self.probability)
        _check_range(self.NAME, "shift", self.shift)


@dataclass(frozen=True)
class ContrastConfig:
    """Scale each channel's deviations from its mean by a factor drawn from ``factor``."""

    NAME: ClassVar[str] = "contrast"
    probability: float = 0.0
    factor: tuple[float, float] = (0.8, 1.25)

    def __post_init__(self) -> None:
        _check_probability(self.NAME, self.probability)
        _check_range(self.NAME, "factor", self.factor, low=0.0)


@dataclass(frozen=True)
class GammaConfig:
    """Gamma drawn from ``gamma`` applied to each channel rescaled to [0, 1] (then scaled back)."""

    NAME: ClassVar[str] = "gamma"
    probability: float = 0.0
    gamma: tuple[float, float] = (0.8, 1.25)

    def __post_init__(self) -> None:
        _check_probability(self.NAME, self.probability)
        _check_range(self.NAME, "gamma", self.gamma, low=0.0, open_low=True)


@dataclass(frozen=True)
class NoiseConfig:
    """Add Gaussian noise whose standard deviation is drawn from ``std``."""

    NAME: ClassVar[str] = "noise"
    probability: float = 0.0
    std: tuple[float, float] = (0.0, 0.05)

    def __post_init__(self) -> None:
        _check_probability(self.NAME, self.probability)
        _check_range(self.NAME, "std", self.std, low=0.0)


@dataclass(frozen=True)
class BlurConfig:
    """Gaussian blur in Y and X with a sigma (px) drawn from ``sigma``."""

    NAME: ClassVar[str] = "blur"
    probability: float = 0.0
    sigma: tuple[float, float] = (0.5, 1.5)

    def __post_init__(self) -> None:
        _check_probability(self.NAME, self.probability)
        _check_range(self.NAME, "sigma", self.sigma, low=0.0)


@dataclass(frozen=True)
class CurriculumStage:
    """A curriculum stage: the transforms it switches on and when.

    The stage is entered when ``after_epoch`` epochs have completed, or when the history value
    ``when_metric`` reaches ``threshold`` (``>=``; ``<=`` for metrics whose name contains
    "loss"), whichever comes first. Stages are entered in order.
    """

    name: str = ""
    transforms: tuple[str, ...] = ()
    after_epoch: int | None = None
    when_metric: str | None = None
    threshold: float | None = None

    def validate(self, index: int) -> None:
        """Raise :class:`LapsegInputError` naming ``augment.curriculum[index]`` if invalid."""
        where = f"augment.curriculum[{index}]"
        if not self.transforms:
            raise LapsegInputError(f"{where}.transforms is empty: name the transforms it enables")
        unknown = [t for t in self.transforms if t not in TRANSFORM_NAMES]
        if unknown:
            raise LapsegInputError(
                f"{where}.transforms has unknown name(s) {', '.join(unknown)}; "
                f"valid: {', '.join(TRANSFORM_NAMES)}"
            )
        if (self.when_metric is None) != (self.threshold is None):
            raise LapsegInputError(f"{where}: set both when_metric and threshold, or neither")
        if self.after_epoch is None and self.when_metric is None:
            raise LapsegInputError(f"{where} has no trigger: set after_epoch or when_metric")
        if self.after_epoch is not None and self.after_epoch < 0:
            raise LapsegInputError(f"{where}.after_epoch={self.after_epoch!r} must be >= 0")


@dataclass(frozen=True)
class AugmentationConfig:
    """Paired augmentation of image, target and weight map; see the module docstring.

    preset : the preset this configuration started from (informational; see
        :func:`augmentation_from_dict`).
    curriculum : stages; a transform named by a stage is off until that stage is entered, the
        others are on from the start.
    """

    preset: str = "default"
    flip: FlipConfig = field(default_factory=lambda: FlipConfig(0.5))
    rot90: Rot90Config = field(default_factory=lambda: Rot90Config(0.75))
    rotation: RotationConfig = field(default_factory=lambda: RotationConfig(0.3))
    scale: ScaleConfig = field(default_factory=lambda: ScaleConfig(0.3))
    translation: TranslationConfig = field(default_factory=TranslationConfig)
    crop: CropConfig = field(default_factory=CropConfig)
    elastic: ElasticConfig = field(default_factory=ElasticConfig)
    grid_elastic: GridElasticConfig = field(default_factory=GridElasticConfig)
    quadrant_mirror: QuadrantMirrorConfig = field(default_factory=QuadrantMirrorConfig)
    brightness: BrightnessConfig = field(default_factory=lambda: BrightnessConfig(0.3))
    contrast: ContrastConfig = field(default_factory=lambda: ContrastConfig(0.3))
    gamma: GammaConfig = field(default_factory=lambda: GammaConfig(0.3))
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    blur: BlurConfig = field(default_factory=BlurConfig)
    curriculum: tuple[CurriculumStage, ...] = ()

    def __post_init__(self) -> None:
        if self.preset not in AUGMENTATION_PRESET_NAMES:
            raise LapsegInputError(
                f"augment.preset={self.preset!r} is unknown; "
                f"valid: {', '.join(AUGMENTATION_PRESET_NAMES)}"
            )
        seen: dict[str, int] = {}
        for index, stage in enumerate(self.curriculum):
            stage.validate(index)
            for name in stage.transforms:
                if name in seen:
                    raise LapsegInputError(
                        f"augment.curriculum[{index}] enables {name!r}, already enabled by "
                        f"augment.curriculum[{seen[name]}]"
                    )
                if getattr(self, name).probability == 0:
                    raise LapsegInputError(
                        f"augment.curriculum[{index}] enables {name!r} but "
                        f"augment.{name}.probability is 0"
                    )
                seen[name] = index

    def transform(self, name: str) -> Any:
        """The sub-configuration of transform ``name`` (one of :data:`TRANSFORM_NAMES`)."""
        if name not in TRANSFORM_NAMES:
            raise KeyError(name)
        return getattr(self, name)


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
    changes: dict[str, Any] = {
        name: replace(getattr(config, name), probability=0.0) for name in disabled
    }
    return replace(config, curriculum=(), **changes)


def _preset(name: str, **transforms: Any) -> AugmentationConfig:
    """A preset: every transform off (its class defaults) except the given ones."""
    curriculum = transforms.pop("curriculum", ())
    base = {t: type(getattr(AugmentationConfig(), t))() for t in TRANSFORM_NAMES}
    base.update(transforms)
    return AugmentationConfig(preset=name, curriculum=curriculum, **base)


AUGMENTATION_PRESET_NAMES = ("default", "none", "seed002", "cryo-sem-004", "ronneberger2015")

AUGMENTATION_PRESETS: dict[str, AugmentationConfig] = {
    # flips and quarter turns (all 8 orientations equally likely), mild rotation/scale/intensity
    "default": AugmentationConfig(),
    "none": _preset("none"),
    # 002: mirroring, random rotation, a little quadrant mirroring; elastic (alpha ~ U(0, 50),
    # sigma 4) once the validation IoU reaches 0.7 (curriculum learning)
    "seed002": _preset(
        "seed002",
        flip=FlipConfig(0.5),
        rotation=RotationConfig(0.5, degrees=(-180.0, 180.0)),
        quadrant_mirror=QuadrantMirrorConfig(0.1),
        elastic=ElasticConfig(1.0, alpha=(0.0, 50.0), sigma=4.0),
        curriculum=(
            CurriculumStage(
                name="elastic", transforms=("elastic",), when_metric="val_iou", threshold=0.7
            ),
        ),
    ),
    # 004: random half-size crop resized back, random flips, random 90-degree rotations
    "cryo-sem-004": _preset(
        "cryo-sem-004",
        crop=CropConfig(0.5, fraction=(0.5, 0.5)),
        flip=FlipConfig(0.5),
        rot90=Rot90Config(0.75),
    ),
    # U-Net 2015: smooth deformations from a 3x3 grid of N(0, 10 px) displacements (bicubic),
    # plus shifts/rotations (flips and quarter turns here; patches already shift)
    "ronneberger2015": _preset(
        "ronneberger2015",
        grid_elastic=GridElasticConfig(1.0, grid=(3, 3), std=10.0),
        flip=FlipConfig(0.5),
        rot90=Rot90Config(0.75),
    ),
}


def augmentation_preset(name: str) -> AugmentationConfig:
    """The preset ``name``; :class:`LapsegInputError` lists the valid names otherwise."""
    if name not in AUGMENTATION_PRESETS:
        raise LapsegInputError(
            f"augmentation preset {name!r} is unknown; valid: {', '.join(AUGMENTATION_PRESETS)}"
        )
    return AUGMENTATION_PRESETS[name]


def augmentation_to_dict(config: AugmentationConfig) -> dict[str, Any]:
    """Plain nested dict (YAML/JSON-safe; tuples become lists) of ``config``."""

    def plain(value: Any) -> Any:
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, tuple | list):
            return [plain(v) for v in value]
        return value

    return plain(config)


def augmentation_from_dict(values: dict[str, Any] | None) -> AugmentationConfig:
    """Build a configuration: the preset ``values["preset"]``, overridden key by key.

    Nested transform sections are merged field by field; ``curriculum`` replaces the preset's
    curriculum as a whole. Unknown keys and wrong types raise :class:`LapsegInputError`.
    """
    from lapseg.config import section_from_dict  # lazy: lapseg.config imports this module

    values = dict(values or {})
    if not isinstance(values, dict):
        raise LapsegInputError("config section 'augment' must be a mapping")
    name = values.pop("preset", "default")
    if not isinstance(name, str):
        raise LapsegInputError(f"augment.preset={name!r} must be a string")
    merged = augmentation_to_dict(augmentation_preset(name))
    for key, value in values.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return section_from_dict(AugmentationConfig, merged, section="augment")
