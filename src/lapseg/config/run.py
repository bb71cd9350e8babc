"""A run's whole configuration: the sections, YAML files and dotted overrides.

A run's configuration is a :class:`LapsegConfig`, built from (lowest to highest priority) the
section defaults, an optional YAML file, and ``--set section.key=value`` overrides. The resolved
configuration is written beside every run (``config.yaml``) and stored inside every checkpoint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import model_validator

from lapseg.config.augment import AugmentationConfig
from lapseg.config.base import Section
from lapseg.config.baseline import BaselineConfig
from lapseg.config.data import TARGET_OUTPUTS, DataConfig, NormalizationConfig, TemporalConfig
from lapseg.config.model import UNetConfig
from lapseg.config.predict import PostprocessConfig, PredictConfig
from lapseg.config.training import LossConfig, TrainConfig
from lapseg.errors import LapsegInputError

__all__ = [
    "SECTIONS",
    "LapsegConfig",
    "config_from_dict",
    "config_to_dict",
    "dump_config",
    "load_config",
    "merge_overrides",
    "override_prediction_settings",
    "parse_override",
    "read_yaml",
    "set_key",
]


class LapsegConfig(Section):
    """Everything a run needs; saved as ``config.yaml`` in the run folder and in checkpoints."""

    data: DataConfig = DataConfig()
    normalization: NormalizationConfig = NormalizationConfig()
    model: UNetConfig = UNetConfig()
    loss: LossConfig = LossConfig()
    augment: AugmentationConfig = AugmentationConfig()
    train: TrainConfig = TrainConfig()
    predict: PredictConfig = PredictConfig()
    temporal: TemporalConfig = TemporalConfig()
    postprocess: PostprocessConfig = PostprocessConfig()
    baseline: BaselineConfig = BaselineConfig()

    @model_validator(mode="before")
    @classmethod
    def _context_sets_input_channels(cls, values: Any) -> Any:
        """Temporal context k feeds frames t-k .. t+k: 2k+1 input channels unless given."""
        if not isinstance(values, dict):
            return values
        temporal, model = values.get("temporal"), values.get("model")
        context = temporal.get("context", 0) if isinstance(temporal, dict) else 0
        if isinstance(context, int) and context > 0 and isinstance(model, dict | None):
            model = dict(model or {})
            model.setdefault("in_channels", 2 * context + 1)
            values = {**values, "model": model}
        return values

    @model_validator(mode="after")
    def _consistent(self) -> LapsegConfig:
        channels = self.model.out_channels
        needed = TARGET_OUTPUTS.get(self.data.target)
        if needed is not None and channels is not None and channels != needed:
            raise ValueError(
                f"data.target={self.data.target} needs model.out_channels={needed} "
                f"(got {self.model.out_channels})"
            )
        return self


SECTIONS: dict[str, type[Section]] = {
    name: field.annotation  # type: ignore[misc]
    for name, field in LapsegConfig.model_fields.items()
}
"""Section name -> section class, in file order."""


def config_to_dict(config: LapsegConfig) -> dict[str, Any]:
    """Plain (YAML/JSON/``weights_only``-safe) nested dict of a configuration."""
    return config.to_dict()


def config_from_dict(values: Any) -> LapsegConfig:
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
    for name, section in values.items():
        if section is not None and not isinstance(section, dict):
            hint = (
                f" (did you mean {name}: {{preset: {section}}}?)"
                if isinstance(section, str)
                else ""
            )
            raise LapsegInputError(
                f"config section {name!r} must be a mapping of keys, got {section!r}{hint}"
            )
    return LapsegConfig.from_dict({k: v for k, v in values.items() if v is not None})


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


def _plain(value: Any) -> Any:
    if isinstance(value, Section):
        return value.to_dict()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def set_key(values: dict[str, Any], parts: list[str], value: Any, *, what: str) -> None:
    """Set the nested key ``parts`` of the plain mapping ``values`` in place (``what`` names
    the request in errors, e.g. "override 'train.lr=1'")."""
    node = values
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise LapsegInputError(f"{what}: {part!r} is not a section")
        node = child
    node[parts[-1]] = value


def merge_overrides(values: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return a copy of ``values`` with dotted ``overrides`` applied (later ones win)."""
    merged = _plain(values or {})
    for text in overrides:
        parts, value = parse_override(text)
        set_key(merged, parts, value, what=f"override {text!r}")
    return merged


PREDICTION_SECTIONS = ("predict", "postprocess")
"""Sections a trained model's settings may be changed in when predicting."""


def override_prediction_settings(config: LapsegConfig, overrides: list[str]) -> LapsegConfig:
    """A trained model's configuration with ``--set predict.*`` / ``postprocess.*`` overrides.

    Other sections describe how the model was trained and cannot change at prediction time.
    """
    for text in overrides:
        parts, _ = parse_override(text)
        if parts[0] not in PREDICTION_SECTIONS:
            raise LapsegInputError(
                f"override {text!r}: only {' and '.join(s + '.*' for s in PREDICTION_SECTIONS)} "
                "settings can change at prediction time"
            )
    if not overrides:
        return config
    return config_from_dict(merge_overrides(config.to_dict(), overrides))


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping from ``path`` (safe loader only) with one-line errors."""
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
    return yaml.safe_dump(config.to_dict(), sort_keys=False)
