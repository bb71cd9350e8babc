"""Typed, frozen configuration: one dataclass per concern, YAML files and dotted overrides.

A run's configuration is a :class:`LapsegConfig`. It is built from (lowest to highest priority)
the dataclass defaults, an optional YAML file, and ``--set section.key=value`` overrides. Unknown
keys and wrongly typed values are rejected with a one-line :class:`LapsegInputError`, so a
misspelt option never passes silently. The resolved configuration is written beside every run and
stored inside every checkpoint.

The ``model`` section starts from a preset (``model.preset``, see
:data:`lapseg.models.registry.PRESETS`) and any other key in it overrides one field of that
preset's :class:`~lapseg.models.unet.UNetConfig`.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lapseg.baseline.settings import BaselineConfig
from lapseg.data.temporal import TemporalConfig
from lapseg.errors import LapsegInputError
from lapseg.inference.instances import PostprocessConfig
from lapseg.models.registry import PRESETS
from lapseg.models.unet import UNetConfig
from lapseg.transforms.config import AugmentationConfig, augmentation_from_dict

MASK_KINDS = ("binary", "instance", "classes")
LAYOUTS = ("folders", "sample-folders", "list", "sequences", "ctc")
OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("none", "exponential", "piecewise", "cosine", "plateau")
THRESHOLD_METHODS = ("fixed", "otsu", "tuned")
BLENDS = ("gaussian", "constant", "crop")
CLASS_WEIGHTING = ("none", "median_frequency", "inverse_frequency", "total_ratio", "fixed")


def _choice(section: str, name: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise LapsegInputError(f"{section}.{name}={value!r} is not one of {', '.join(allowed)}")


def _positive(section: str, name: str, value: float, *, allow_zero: bool = False) -> None:
    if value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise LapsegInputError(f"{section}.{name}={value!r} must be {bound}")


def _fraction(section: str, name: str, value: float) -> None:
    if not 0.0 <= value < 1.0:
        raise LapsegInputError(f"{section}.{name}={value!r} must be in [0, 1)")


@dataclass(frozen=True)
class DataConfig:
    """Where the images and masks are and how to read them.

    layout : "folders" (``images/`` + ``masks/`` paired by file stem), "sample-folders" (one
        folder per sample holding ``image_name`` and ``mask_name``, the Usiigaci layout) or
        "list" (a CSV/JSON file given as the data path).
    axes : axes of the image files (e.g. "YX", "YXC", "CYX"); None = from the file's metadata,
        "YX" for 2D arrays, "YXC" for RGB PNG/JPEG. Never guessed otherwise.
    mask_kind : "binary" (any nonzero is foreground), "instance" (label image: foreground for
        training, labels kept for instance metrics) or "classes" (class-index image).
    target : "binary" (foreground vs background, or the class indices of "classes" masks) or
        "three_class" (background / cell interior / cell boundary of ``boundary_width`` px from
        instance labels, 002's output; needs ``model.out_channels=3``; prediction then writes
        instance label images).
    resize : resize every image to (Y, X) before the network (004: 512x512); predictions are
        resized back to each input's own size.
    crop_or_pad : centre crop/pad every image to (Y, X) (000: 1024x1024); predictions are mapped
        back to the input's pixel grid.
    """

    layout: str = "folders"
    images_subdir: str = "images"
    masks_subdir: str = "masks"
    mask_suffix: str = ""
    image_name: str = "raw.tif"
    mask_name: str = "instances_ids.png"
    axes: str | None = None
    mask_kind: str = "binary"
    target: str = "binary"
    boundary_width: int = 2
    val_fraction: float = 0.2
    test_fraction: float = 0.0
    split_file: str | None = None
    resize: tuple[int, int] | None = None
    crop_or_pad: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        _choice("data", "layout", self.layout, LAYOUTS)
        _choice("data", "mask_kind", self.mask_kind, MASK_KINDS)
        _choice("data", "target", self.target, ("binary", "three_class"))
        if self.boundary_width < 1:
            raise LapsegInputError(f"data.boundary_width={self.boundary_width!r} must be >= 1")
        if self.target == "three_class" and self.mask_kind == "classes":
            raise LapsegInputError(
                "data.target=three_class needs instance (or binary) masks, not data.mask_kind=classes"
            )
        _fraction("data", "val_fraction", self.val_fraction)
        _fraction("data", "test_fraction", self.test_fraction)
        if self.val_fraction + self.test_fraction >= 1.0:
            raise LapsegInputError("data.val_fraction + data.test_fraction must be < 1")
        for name in ("resize", "crop_or_pad"):
            size = getattr(self, name)
            if size is not None and (len(size) != 2 or min(size) < 8):
                raise LapsegInputError(f"data.{name}={size!r} must be two sizes >= 8")
        if self.resize is not None and self.crop_or_pad is not None:
            raise LapsegInputError("set at most one of data.resize and data.crop_or_pad")


@dataclass(frozen=True)
class NormalizationConfig:
    """Intensity normalisation; its statistics come from the training split only.

    mode : "percentile" (per image, per channel: p_low -> 0, p_high -> 1), "percentile+meanstd"
        (then the training set's mean/std), "meanstd" (training mean/std only) or "none".
    """

    mode: str = "percentile"
    low_percentile: float = 1.0
    high_percentile: float = 99.8

    def __post_init__(self) -> None:
        _choice(
            "normalization",
            "mode",
            self.mode,
            ("percentile", "percentile+meanstd", "meanstd", "none"),
        )
        if not 0.0 <= self.low_percentile < self.high_percentile <= 100.0:
            raise LapsegInputError(
                "normalization percentiles must satisfy 0 <= low_percentile < high_percentile <= 100"
            )


@dataclass(frozen=True)
class LossConfig:
    """Loss function and pixel weighting.

    name : one of lapseg.losses.LOSSES ("ce", "dice", "jaccard", "tversky", "focal", "dice_ce").
    class_weighting : "none", "median_frequency" (000's preprocess.py), "inverse_frequency",
        "total_ratio" (000's get_weight) — computed from the training masks — or "fixed"
        (``class_weights`` as given, e.g. [1, 2] for 000's weight 2 on cells).
    border_weights : multiply the pixel losses by the U-Net border weight map (w0, sigma),
        computed once per training mask from its instances.
    params : extra keyword arguments of the loss (e.g. {alpha: 0.3, beta: 0.7} for Tversky).
    """

    name: str = "dice_ce"
    class_weighting: str = "none"
    class_weights: tuple[float, ...] = ()
    border_weights: bool = False
    w0: float = 10.0
    sigma: float = 5.0
    params: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _choice("loss", "class_weighting", self.class_weighting, CLASS_WEIGHTING)
        if self.class_weighting == "fixed" and not self.class_weights:
            raise LapsegInputError(
                "loss.class_weighting=fixed needs loss.class_weights, e.g. [1, 2]"
            )
        _positive("loss", "w0", self.w0, allow_zero=True)
        _positive("loss", "sigma", self.sigma)


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation, schedule, patches, budget and reproducibility.

    patches_per_epoch : random patches drawn per epoch (an epoch is this many samples).
    foreground_probability : chance that a patch is centred on a random foreground pixel.
    schedule : "none", "exponential" (lr * decay_rate ** (epoch / decay_epochs), 000),
        "piecewise" (after the k-th milestone epoch: lr * milestone_factors[k-1], or
        lr * gamma ** k when no factors are given; 002's table), "cosine" (to 1% of lr),
        "plateau" (reduce by ``gamma`` after ``plateau_patience`` epochs without improvement).
    time_budget_minutes : stop after this much wall-clock training time (equal-budget comparisons).
    deterministic : same seed + same machine -> same weights (slower; uses deterministic kernels).
    """

    epochs: int = 50
    batch_size: int = 8
    patch_size: tuple[int, int] = (256, 256)
    patches_per_epoch: int = 128
    foreground_probability: float = 0.5
    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str = "cosine"
    decay_rate: float = 0.95
    decay_epochs: float = 1.0
    milestones: tuple[int, ...] = ()
    milestone_factors: tuple[float, ...] = ()
    gamma: float = 0.1
    plateau_patience: int = 5
    warmup_epochs: int = 0
    early_stopping_patience: int | None = None
    val_every: int = 1
    monitor: str = "val_dice"
    seed: int = 0
    deterministic: bool = False
    device: str = "auto"
    amp: bool = True
    num_workers: int = 0
    time_budget_minutes: float | None = None
    tensorboard: bool = True

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "patches_per_epoch", "val_every"):
            if getattr(self, name) < 1:
                raise LapsegInputError(f"train.{name}={getattr(self, name)!r} must be >= 1")
        if len(self.patch_size) != 2 or min(self.patch_size) < 8:
            raise LapsegInputError(f"train.patch_size={self.patch_size!r} must be two sizes >= 8")
        if not 0.0 <= self.foreground_probability <= 1.0:
            raise LapsegInputError("train.foreground_probability must be in [0, 1]")
        _choice("train", "optimizer", self.optimizer, OPTIMIZERS)
        _choice("train", "schedule", self.schedule, SCHEDULES)
        _positive("train", "lr", self.lr)
        _positive("train", "weight_decay", self.weight_decay, allow_zero=True)
        _positive("train", "decay_rate", self.decay_rate)
        _positive("train", "decay_epochs", self.decay_epochs)
        _positive("train", "gamma", self.gamma)
        if self.num_workers < 0:
            raise LapsegInputError("train.num_workers must be >= 0")
        if self.early_stopping_patience is not None and self.early_stopping_patience < 1:
            raise LapsegInputError("train.early_stopping_patience must be >= 1 (or null)")
        if self.time_budget_minutes is not None:
            _positive("train", "time_budget_minutes", self.time_budget_minutes)
        if self.monitor not in ("val_dice", "val_iou", "val_loss"):
            raise LapsegInputError("train.monitor must be one of val_dice, val_iou, val_loss")
        if list(self.milestones) != sorted(self.milestones):
            raise LapsegInputError("train.milestones must be increasing epoch numbers")
        if self.milestone_factors and len(self.milestone_factors) != len(self.milestones):
            raise LapsegInputError("train.milestone_factors needs one factor per milestone")


@dataclass(frozen=True)
class PredictConfig:
    """Sliding-window prediction and thresholding.

    threshold_method : "fixed" (``threshold``), "otsu" (per image) or "tuned" (the threshold
        maximising validation Dice, found at the end of training and stored in the model).
    engine : "torch" (eager PyTorch) or "onnx" (ONNX Runtime on the CPU, about 2x faster there;
        needs ``pip install "lapseg[onnx]"``).
    """

    tile_size: tuple[int, int] = (512, 512)
    overlap: float = 0.25
    blend: str = "gaussian"
    batch_size: int = 4
    threshold_method: str = "fixed"
    threshold: float = 0.5
    engine: str = "torch"

    def __post_init__(self) -> None:
        _choice("predict", "engine", self.engine, ("torch", "onnx"))
        if len(self.tile_size) != 2 or min(self.tile_size) < 8:
            raise LapsegInputError(f"predict.tile_size={self.tile_size!r} must be two sizes >= 8")
        _fraction("predict", "overlap", self.overlap)
        _choice("predict", "blend", self.blend, BLENDS)
        _choice("predict", "threshold_method", self.threshold_method, THRESHOLD_METHODS)
        if not 0.0 < self.threshold < 1.0:
            raise LapsegInputError("predict.threshold must be in (0, 1)")
        if self.batch_size < 1:
            raise LapsegInputError("predict.batch_size must be >= 1")


@dataclass(frozen=True)
class LapsegConfig:
    """Everything a run needs; saved as ``config.yaml`` in the run folder and in checkpoints."""

    data: DataConfig = field(default_factory=DataConfig)
    normalization: NormalizationConfig = field(default_factory=NormalizationConfig)
    model_preset: str = "default"
    model: UNetConfig = field(default_factory=lambda: PRESETS["default"])
    loss: LossConfig = field(default_factory=LossConfig)
    augment: AugmentationConfig = field(default_factory=AugmentationConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    predict: PredictConfig = field(default_factory=PredictConfig)
    temporal: TemporalConfig = field(default_factory=TemporalConfig)
    postprocess: PostprocessConfig = field(default_factory=PostprocessConfig)
    baseline: BaselineConfig = field(default_factory=BaselineConfig)

    def __post_init__(self) -> None:
        if self.data.target == "three_class" and self.model.out_channels != 3:
            raise LapsegInputError(
                f"data.target=three_class needs model.out_channels=3 (got {self.model.out_channels})"
            )


SECTIONS: dict[str, type] = {
    "data": DataConfig,
    "normalization": NormalizationConfig,
    "model": UNetConfig,
    "loss": LossConfig,
    "augment": AugmentationConfig,
    "train": TrainConfig,
    "predict": PredictConfig,
    "temporal": TemporalConfig,
    "postprocess": PostprocessConfig,
    "baseline": BaselineConfig,
}


# --------------------------------------------------------------------------- conversion


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    """Check ``value`` against a type annotation and convert lists to tuples where declared."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except LapsegInputError:
                continue
        raise LapsegInputError(f"{where}={value!r} has the wrong type ({annotation})")
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise LapsegInputError(f"{where}={value!r} must be a list")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], where) for v in value)
        if len(value) != len(args):
            raise LapsegInputError(f"{where}={value!r} must have {len(args)} entries")
        return tuple(_coerce(v, a, where) for v, a in zip(value, args, strict=True))
    if origin is dict:
        if not isinstance(value, dict):
            raise LapsegInputError(f"{where}={value!r} must be a mapping")
        return {str(k): _coerce(v, args[1], f"{where}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(annotation):
        if isinstance(value, annotation):
            return value
        return section_from_dict(annotation, value, section=where)
    if annotation is bool:
        if not isinstance(value, bool):
            raise LapsegInputError(f"{where}={value!r} must be true or false")
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise LapsegInputError(f"{where}={value!r} must be an integer")
        return value
    if annotation is float:
        if isinstance(value, str):  # YAML 1.1 reads "1e-4" (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                raise LapsegInputError(f"{where}={value!r} must be a number") from None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise LapsegInputError(f"{where}={value!r} must be a number")
        return float(value)
    if annotation is str:
        if not isinstance(value, str):
            raise LapsegInputError(f"{where}={value!r} must be a string")
        return value
    raise TypeError(f"unsupported annotation {annotation!r} at {where}")


def section_from_dict(cls: type, values: dict[str, Any], *, section: str) -> Any:
    """Build the dataclass ``cls`` from a mapping, rejecting unknown keys and wrong types."""
    if not isinstance(values, dict):
        raise LapsegInputError(f"config section {section!r} must be a mapping")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise LapsegInputError(
            f"unknown key(s) {', '.join(f'{section}.{k}' for k in unknown)}; "
            f"valid keys in {section!r}: {', '.join(names)}"
        )
    kwargs = {k: _coerce(v, hints[k], f"{section}.{k}") for k, v in values.items()}
    return cls(**kwargs)


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def config_to_dict(config: LapsegConfig) -> dict[str, Any]:
    """Plain (YAML/JSON/``weights_only``-safe) nested dict of a configuration."""
    out: dict[str, Any] = {}
    for name in SECTIONS:
        out[name] = {
            f.name: _plain(getattr(getattr(config, name), f.name))
            for f in dataclasses.fields(getattr(config, name))
        }
    out["model"] = {"preset": config.model_preset, **out["model"]}
    return out


def config_from_dict(values: dict[str, Any]) -> LapsegConfig:
    """Build a :class:`LapsegConfig` from a nested mapping (as in a YAML file)."""
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise LapsegInputError("the configuration must be a mapping of sections")
    unknown = sorted(set(values) - set(SECTIONS))
    if unknown:
        raise LapsegInputError(
            f"unknown config section(s) {', '.join(unknown)}; valid: {', '.join(SECTIONS)}"
        )
    kwargs: dict[str, Any] = {}
    for name, cls in SECTIONS.items():
        if name in ("model", "augment"):
            continue
        kwargs[name] = section_from_dict(cls, values.get(name, {}) or {}, section=name)
    # augmentation starts from its preset (augment.preset), like the model section
    kwargs["augment"] = augmentation_from_dict(values.get("augment") or {})
    model_values = dict(values.get("model", {}) or {})
    preset = model_values.pop("preset", "default")
    if preset not in PRESETS:
        raise LapsegInputError(
            f"model.preset={preset!r} is unknown; valid presets: {', '.join(sorted(PRESETS))}"
        )
    base = {
        f.name: _plain(getattr(PRESETS[preset], f.name)) for f in dataclasses.fields(UNetConfig)
    }
    context = kwargs["temporal"].context
    if context > 0 and "in_channels" not in model_values:
        base["in_channels"] = 2 * context + 1  # frames t-k .. t+k of single-channel sequences
    base.update(model_values)
    kwargs["model"] = section_from_dict(UNetConfig, base, section="model")
    kwargs["model_preset"] = preset
    return LapsegConfig(**kwargs)


def parse_override(text: str) -> tuple[list[str], Any]:
    """Parse ``"section.key=value"``; the value is read as YAML (numbers, lists, null, ...)."""
    if "=" not in text:
        raise LapsegInputError(f"override {text!r} must look like section.key=value")
    key, raw = text.split("=", 1)
    parts = key.strip().split(".")
    if len(parts) < 2 or not all(parts):
        raise LapsegInputError(
            f"override {text!r} must name a section and a key, e.g. train.lr=1e-3"
        )
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as error:
        raise LapsegInputError(f"override {text!r}: value is not valid YAML ({error})") from None
    return parts, value


def merge_overrides(values: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return a copy of ``values`` with dotted ``overrides`` applied (later ones win)."""
    merged = _plain(values or {})
    for text in overrides:
        parts, value = parse_override(text)
        node = merged
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise LapsegInputError(f"override {text!r}: {part!r} is not a section")
            node = child
        node[parts[-1]] = value
    return merged


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping from ``path`` with one-line errors."""
    path = Path(path)
    if not path.is_file():
        raise LapsegInputError("config file not found", path=path)
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise LapsegInputError(f"not valid YAML ({first})", path=path) from None
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise LapsegInputError("a config file must hold a mapping of sections", path=path)
    return values


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> LapsegConfig:
    """Defaults <- YAML file <- dotted overrides, validated into a :class:`LapsegConfig`."""
    values = read_yaml(path) if path is not None else {}
    values = merge_overrides(values, list(overrides or []))
    if path is None:
        return config_from_dict(values)
    try:
        return config_from_dict(values)
    except LapsegInputError as error:
        raise LapsegInputError(str(error), path=path) from None


def dump_config(config: LapsegConfig) -> str:
    """The configuration as YAML text (what ``config.yaml`` in a run folder holds)."""
    return yaml.safe_dump(config_to_dict(config), sort_keys=False)
