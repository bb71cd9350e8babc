"""A search: the space of configuration values (dotted keys -> distributions) and its options.

A search file is a YAML mapping from dotted configuration keys to distributions::

    train.lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
    train.batch_size: {type: int, low: 8, high: 16, step: 4}
    train.optimizer: {type: categorical, choices: [adam, adamw]}

plus, optionally, one ``search:`` mapping of defaults for how the space is searched (the
command line overrides each)::

    search: {sampler: gp, pruner: none, trials: 30, fold: 3, folds: 5}

Everything is checked before any training (:func:`check_space` also applies the extreme values
to the base configuration), with one-line errors naming the key.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from lapseg.config import LapsegConfig, config_from_dict, config_to_dict, read_yaml, set_key
from lapseg.errors import LapsegInputError

__all__ = [
    "DIRECTIONS",
    "METRICS",
    "OPTIONS_KEY",
    "PARAM_TYPES",
    "PRUNERS",
    "SAMPLERS",
    "SearchOptions",
    "SearchParam",
    "apply_params",
    "check_space",
    "load_search_file",
    "load_search_space",
    "parse_param",
    "parse_search_space",
    "suggest",
]

PARAM_TYPES = ("float", "int", "categorical")
PRUNERS = ("hyperband", "median", "none")
SAMPLERS = ("tpe", "gp")
METRICS = ("val_dice", "val_iou", "val_loss", "train_loss")
DIRECTIONS = ("maximize", "minimize")
OPTIONS_KEY = "search"
"""The key of a search file's options section (configuration keys are dotted: no clash)."""


@dataclass(frozen=True)
class SearchParam:
    """One searched configuration value.

    key : dotted configuration key (``train.lr``, ``model.depth``, ``loss.params.alpha``).
    kind : "float", "int" or "categorical".
    low, high : bounds of numeric parameters (inclusive).
    log : sample log-uniformly (numeric, ``low > 0``).
    step : grid step of numeric parameters (None = continuous / 1 for integers).
    choices : values of a categorical parameter (numbers, strings, booleans or null).
    """

    key: str
    kind: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] = ()


_ALLOWED = {
    "float": {"type", "low", "high", "log", "step"},
    "int": {"type", "low", "high", "log", "step"},
    "categorical": {"type", "choices"},
}


def _number(value: Any, where: str, *, integer: bool) -> float:
    if isinstance(value, str):  # YAML 1.1 reads 1e-4 (no dot) as a string
        try:
            value = float(value)
        except ValueError:
            raise LapsegInputError(f"{where}={value!r} must be a number") from None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise LapsegInputError(f"{where}={value!r} must be a finite number")
    if integer and float(value) != int(value):
        raise LapsegInputError(f"{where}={value!r} must be an integer for type int")
    return int(value) if integer else float(value)


def parse_param(key: str, spec: Any) -> SearchParam:
    """Validate one search-space entry (``key: {type: ..., ...}``)."""
    if not isinstance(key, str) or len(key.split(".")) < 2 or not all(key.split(".")):
        raise LapsegInputError(
            f"search space key {key!r} must be a dotted config key such as train.lr"
        )
    if not isinstance(spec, dict):
        raise LapsegInputError(f"search space entry {key!r} must be a mapping with a type")
    kind = spec.get("type")
    if kind not in PARAM_TYPES:
        raise LapsegInputError(
            f"search space {key}: type={kind!r} is not one of {', '.join(PARAM_TYPES)}"
        )
    unknown = sorted(set(spec) - _ALLOWED[kind])
    if unknown:
        raise LapsegInputError(
            f"search space {key}: unknown field(s) {', '.join(unknown)} for type {kind}; "
            f"valid: {', '.join(sorted(_ALLOWED[kind]))}"
        )
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list) or not choices:
            raise LapsegInputError(f"search space {key}: choices must be a non-empty list")
        for choice in choices:
            if choice is not None and not isinstance(choice, bool | int | float | str):
                raise LapsegInputError(
                    f"search space {key}: choice {choice!r} must be a number, string, boolean "
                    "or null (search lists through separate keys)"
                )
        if len({repr(c) for c in choices}) != len(choices):
            raise LapsegInputError(f"search space {key}: choices has duplicates")
        return SearchParam(key=key, kind=kind, choices=tuple(choices))
    integer = kind == "int"
    for name in ("low", "high"):
        if name not in spec:
            raise LapsegInputError(f"search space {key}: {name} is missing")
    low = _number(spec["low"], f"search space {key}: low", integer=integer)
    high = _number(spec["high"], f"search space {key}: high", integer=integer)
    if low >= high:
        raise LapsegInputError(f"search space {key}: low={low} must be below high={high}")
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise LapsegInputError(f"search space {key}: log must be true or false")
    if log and low <= 0:
        raise LapsegInputError(f"search space {key}: log=true needs low > 0 (got {low})")
    step = spec.get("step")
    if step is not None:
        step = _number(step, f"search space {key}: step", integer=integer)
        if step <= 0:
            raise LapsegInputError(f"search space {key}: step must be > 0")
        if log:
            raise LapsegInputError(f"search space {key}: use either log or step, not both")
    return SearchParam(key=key, kind=kind, low=low, high=high, log=log, step=step)


def parse_search_space(values: Mapping[str, Any]) -> list[SearchParam]:
    """Validate a whole search space mapping (dotted keys -> distributions)."""
    if not isinstance(values, Mapping) or not values:
        raise LapsegInputError("the search space must be a non-empty mapping of dotted keys")
    return [parse_param(key, spec) for key, spec in values.items()]


def load_search_space(path: str | Path) -> list[SearchParam]:
    """Read and validate the space of a YAML search file (see :func:`load_search_file`)."""
    return load_search_file(path)[0]


def apply_params(config: LapsegConfig, params: Mapping[str, Any]) -> LapsegConfig:
    """A copy of ``config`` with dotted ``params`` set (validated like ``--set`` overrides)."""
    values = config_to_dict(config)
    for key, value in params.items():
        set_key(values, key.split("."), value, what=f"search space key {key!r}")
    return config_from_dict(values)


def _corners(space: Sequence[SearchParam]) -> list[dict[str, Any]]:
    def value(p: SearchParam, end: int) -> Any:
        if p.kind == "categorical":
            return p.choices[end % len(p.choices)]
        return p.low if end == 0 else p.high

    return [{p.key: value(p, end) for p in space} for end in (0, 1)]


def check_space(config: LapsegConfig, space: Sequence[SearchParam]) -> None:
    """Apply the lowest and highest values of every parameter to ``config`` so an unknown key
    or a value the configuration rejects fails before any training."""
    for sample in _corners(space):
        try:
            apply_params(config, sample)
        except LapsegInputError as error:
            raise LapsegInputError(
                f"search space does not fit the configuration: {error}"
            ) from None
    for p in space:  # categorical values one by one
        for choice in p.choices:
            try:
                apply_params(config, {p.key: choice})
            except LapsegInputError as error:
                raise LapsegInputError(f"search space {p.key}: {error}") from None


def suggest(trial: Any, param: SearchParam) -> Any:
    """Draw ``param`` from an ``optuna.Trial``."""
    if param.kind == "categorical":
        return trial.suggest_categorical(param.key, list(param.choices))
    if param.kind == "int":
        return trial.suggest_int(
            param.key,
            int(param.low or 0),
            int(param.high or 0),
            step=int(param.step or 1),
            log=param.log,
        )
    return trial.suggest_float(param.key, param.low, param.high, step=param.step, log=param.log)


@dataclass(frozen=True)
class SearchOptions:
    """How a space is searched (all but the space, the data and the number of trials).

    metric : history column optimised (a trial's value is its best epoch's); one of
        :data:`METRICS`.
    direction : "maximize" or "minimize".
    pruner : "hyperband", "median" or "none" (every trial runs all its epochs).
    sampler : "tpe" (Optuna's tree-structured Parzen estimator) or "gp" (Optuna's
        Gaussian-process sampler: Bayesian optimisation with a GP surrogate, as seed 004).
    seed : seeds the sampler (offset by the number of existing trials on resume).
    fold, folds : train every trial on the split of fold ``fold`` (0-based) of ``lapseg cv
        --test-data`` with ``folds`` folds (the other folds train, this one validates);
        None: the base configuration's own split.
    storage : Optuna RDB URL; None: ``sqlite:///<out_dir>/study.db``.
    study_name : None: ``"lapseg-search"``.
    """

    metric: str = "val_dice"
    direction: str = "maximize"
    pruner: str = "hyperband"
    sampler: str = "tpe"
    seed: int = 0
    fold: int | None = None
    folds: int = 5
    storage: str | None = None
    study_name: str | None = None

    def __post_init__(self) -> None:
        for name, allowed in (
            ("metric", METRICS),
            ("direction", DIRECTIONS),
            ("pruner", PRUNERS),
            ("sampler", SAMPLERS),
        ):
            value = getattr(self, name)
            if value not in allowed:
                raise LapsegInputError(f"{name}={value!r} is not one of {', '.join(allowed)}")
        for name in ("seed", "folds"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise LapsegInputError(f"{name}={value!r} must be an integer")
        if self.folds < 2:
            raise LapsegInputError(f"folds={self.folds} must be >= 2")
        if self.fold is not None and (
            isinstance(self.fold, bool)
            or not isinstance(self.fold, int)
            or not 0 <= self.fold < self.folds
        ):
            raise LapsegInputError(
                f"fold={self.fold!r} must be an integer in [0, {self.folds}) (folds are counted "
                "from 0: fold 3 is the fourth)"
            )

    def updated(self, values: Mapping[str, Any]) -> SearchOptions:
        """A copy with the non-None ``values`` set (command-line flags over file defaults)."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise LapsegInputError(
                f"unknown search option(s) {', '.join(unknown)}; valid: {', '.join(sorted(known))}"
            )
        return replace(self, **{k: v for k, v in values.items() if v is not None})


def load_search_file(path: str | Path) -> tuple[list[SearchParam], SearchOptions, int | None]:
    """Read a search file: its space, its ``search:`` options and their ``trials`` (or None)."""
    values = read_yaml(path)
    try:
        if not isinstance(values, Mapping):
            raise LapsegInputError("a search file must be a mapping of dotted keys")
        values = dict(values)
        section = values.pop(OPTIONS_KEY, None) or {}
        if not isinstance(section, Mapping):
            raise LapsegInputError(f"{OPTIONS_KEY}: must be a mapping of search options")
        section = dict(section)
        trials = section.pop("trials", None)
        if trials is not None and (
            isinstance(trials, bool) or not isinstance(trials, int) or trials < 1
        ):
            raise LapsegInputError(f"{OPTIONS_KEY}.trials={trials!r} must be an integer >= 1")
        options = SearchOptions().updated(section)
        return parse_search_space(values), options, trials
    except LapsegInputError as error:
        if str(error).startswith(str(path)):
            raise
        raise LapsegInputError(str(error), path=path) from None
