"""Hyperparameter search with Optuna: TPE sampling, per-epoch pruning, resumable SQLite studies.

The search space is a YAML mapping from dotted configuration keys to distributions::

    train.lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
    train.batch_size: {type: int, low: 8, high: 16, step: 4}
    train.optimizer: {type: categorical, choices: [adam, adamw]}

Every trial is a normal training run (``out_dir/trials/NNN``) whose per-epoch validation metric
is reported to Optuna, so a Hyperband or median pruner stops unpromising trials early (the
BOHB-like scheme seed 004 surveys). The study lives in ``out_dir/study.db`` (SQLite) unless an
RDB URL is given, so the same command resumes an interrupted search and several processes or
machines can work on one study. A trial whose process was killed outright (SIGKILL, power loss)
would stay RUNNING forever: the next search on the same machine marks it failed and tries its
parameters again (:func:`retry_abandoned_trials`). Outputs: ``best_config.yaml`` (ready to
train), ``trials.csv``, ``optimization_history.png`` and ``param_importances.png``.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lapseg.config import (
    LapsegConfig,
    config_from_dict,
    config_to_dict,
    dump_config,
    read_yaml,
    set_key,
)
from lapseg.errors import LapsegInputError, optional_import
from lapseg.io.files import write_text
from lapseg.io.locks import process_running, this_host
from lapseg.tuning.reports import (
    plot_optimization_history,
    plot_param_importances,
    write_trials_csv,
)

PARAM_TYPES = ("float", "int", "categorical")
PRUNERS = ("hyperband", "median", "none")
METRICS = ("val_dice", "val_iou", "val_loss", "train_loss")
DIRECTIONS = ("maximize", "minimize")

log = logging.getLogger(__name__)


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
    """Read and validate a YAML search space file."""
    try:
        return parse_search_space(read_yaml(path))
    except LapsegInputError as error:
        if str(error).startswith(str(path)):
            raise
        raise LapsegInputError(str(error), path=path) from None


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


# --------------------------------------------------------------------------- the search


@dataclass(frozen=True)
class SearchResult:
    """Where a search wrote its outputs and what it found (``best_*`` None without a complete
    trial)."""

    out_dir: Path
    storage: str
    study_name: str
    n_trials_total: int
    n_complete: int
    n_pruned: int
    best_value: float | None
    best_params: dict[str, Any] | None
    best_config: Path | None


def _make_pruner(name: str) -> Any:
    optuna = optional_import("optuna", extra="search", purpose="hyperparameter search")

    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, reduction_factor=3)
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1)
    return optuna.pruners.NopPruner()


def _objective_value(history: Sequence[Mapping[str, Any]], metric: str, maximize: bool) -> float:
    values = [float(r[metric]) for r in history if metric in r and math.isfinite(float(r[metric]))]
    if not values:
        raise LapsegInputError(
            f"metric {metric!r} never appeared in the training history (no validation split? "
            "set data.val_fraction > 0 or use metric=train_loss)"
        )
    return max(values) if maximize else min(values)


def run_search(
    config: LapsegConfig,
    data_root: str | Path,
    space: Sequence[SearchParam] | Mapping[str, Any],
    out_dir: str | Path,
    *,
    n_trials: int,
    storage: str | None = None,
    study_name: str | None = None,
    metric: str = "val_dice",
    direction: str = "maximize",
    pruner: str = "hyperband",
    seed: int = 0,
    progress: bool = False,
) -> SearchResult:
    """Run ``n_trials`` more trials of a (new or resumed) Optuna study and write its reports.

    Parameters
    ----------
    config : LapsegConfig
        Base configuration; each trial sets the searched keys on a copy.
    data_root : str or Path
        Dataset of the training runs (their validation split gives the metric).
    space : sequence of SearchParam, or mapping
        The search space (a mapping is validated with :func:`parse_search_space`).
    out_dir : str or Path
        Output folder (``trials/NNN`` run folders, ``study.db`` and the reports).
    n_trials : int
        Trials to add in this call (an existing study keeps its earlier trials).
    storage : str, optional
        Optuna RDB URL; default ``sqlite:///<out_dir>/study.db``.
    study_name : str, optional
        Default ``"lapseg-search"``.
    metric, direction : str, optional
        Per-epoch history value to optimise (its best epoch is the trial's value) and
        ``"maximize"`` / ``"minimize"``.
    pruner : {"hyperband", "median", "none"}, optional
    seed : int, optional
        Seeds the TPE sampler (offset by the number of existing trials on resume).
    progress : bool, optional
        Show each trial's training progress bar.
    """
    optuna = optional_import("optuna", extra="search", purpose="hyperparameter search")

    from lapseg.training.trainer import fit

    if isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials < 1:
        raise LapsegInputError(f"the number of trials must be an integer >= 1, got {n_trials!r}")
    for name, value, allowed in (
        ("metric", metric, METRICS),
        ("direction", direction, DIRECTIONS),
        ("pruner", pruner, PRUNERS),
    ):
        if value not in allowed:
            raise LapsegInputError(f"{name}={value!r} is not one of {', '.join(allowed)}")
    params = list(space) if not isinstance(space, Mapping) else parse_search_space(space)
    check_space(config, params)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    storage = storage or f"sqlite:///{(out_dir / 'study.db').resolve()}"
    study_name = study_name or "lapseg-search"
    maximize = direction == "maximize"

    study = optuna.create_study(
        storage=storage,
        study_name=study_name,
        direction="maximize" if maximize else "minimize",
        load_if_exists=True,
    )
    if study.direction.name.lower() != direction:
        raise LapsegInputError(
            f"study {study_name!r} in {storage} was created with direction "
            f"{study.direction.name.lower()}; not {direction}"
        )
    study = optuna.load_study(
        study_name=study_name,
        storage=storage,
        sampler=optuna.samplers.TPESampler(seed=seed + len(study.trials)),
        pruner=_make_pruner(pruner),
    )
    retry_abandoned_trials(study)

    def objective(trial: Any) -> float:  # an optuna.Trial
        trial.set_user_attr("host", this_host())  # who runs it: see retry_abandoned_trials
        trial.set_user_attr("pid", os.getpid())
        values = {p.key: suggest(trial, p) for p in params}
        trial_config = apply_params(config, values)
        run_dir = out_dir / "trials" / f"{trial.number:03d}"
        trial.set_user_attr("run_dir", str(run_dir))
        if run_dir.exists():  # left by a study whose storage was deleted: start it afresh
            shutil.rmtree(run_dir)

        def report(row: dict[str, Any]) -> None:
            if metric in row and math.isfinite(float(row[metric])):
                trial.report(float(row[metric]), step=int(row["epoch"]))
                if trial.should_prune():
                    raise optuna.TrialPruned(f"pruned at epoch {row['epoch']}")

        result = fit(trial_config, data_root, run_dir, progress=progress, on_epoch_end=report)
        trial.set_user_attr("best_epoch", result.best_epoch)
        trial.set_user_attr("stopped_because", result.stopped_because)
        return _objective_value(result.history, metric, maximize)

    def write_table(study: Any, _trial: Any) -> None:  # an optuna.Study
        write_trials_csv(study, out_dir / "trials.csv")

    study.optimize(objective, n_trials=n_trials, callbacks=[write_table], catch=())
    return write_search_reports(study, config, out_dir, storage=storage)


def retry_abandoned_trials(study: Any) -> list[int]:
    """Mark trials that a killed process of this machine left RUNNING as failed and queue their
    parameters again; returns their numbers.

    A trial records the host and process id that run it; when that process no longer runs, the
    trial can never finish (SIGKILL, power loss). Without this it would stay RUNNING forever.
    Trials of other machines are left alone: lapseg cannot see their processes.
    """
    optuna = optional_import("optuna", extra="search", purpose="hyperparameter search")

    abandoned = []
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        pid, host = trial.user_attrs.get("pid"), trial.user_attrs.get("host")
        if host != this_host() or not isinstance(pid, int) or process_running(pid):
            continue
        study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
        study.enqueue_trial(dict(trial.params), user_attrs={"retry_of": trial.number})
        log.warning(
            "trial %d was left running by process %d, which no longer runs: marked failed, "
            "its parameters are tried again",
            trial.number,
            pid,
        )
        abandoned.append(trial.number)
    return abandoned


# --------------------------------------------------------------------------- reports


def write_search_reports(
    study: Any, config: LapsegConfig, out_dir: Path, *, storage: str
) -> SearchResult:
    """Write ``trials.csv``, ``optimization_history.png``, ``param_importances.png`` (with at
    least 2 complete trials) and ``best_config.yaml`` (with a complete trial)."""
    optuna = optional_import("optuna", extra="search", purpose="hyperparameter search")

    state = optuna.trial.TrialState
    trials = study.trials
    complete = [t for t in trials if t.state == state.COMPLETE]
    write_trials_csv(study, out_dir / "trials.csv")
    plot_optimization_history(study, out_dir / "optimization_history.png")
    if len(complete) >= 2 and complete[0].params:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # fANOVA fits a small random forest
            importances = optuna.importance.get_param_importances(study)
        plot_param_importances(importances, out_dir / "param_importances.png")
    best_value = best_params = best_path = None
    if complete:
        best = study.best_trial
        best_value, best_params = float(best.value), dict(best.params)
        header = (
            f"# best trial {best.number} of study {study.study_name!r}: "
            f"objective {best_value:.6g}\n# parameters: {best_params}\n"
        )
        best_path = out_dir / "best_config.yaml"
        write_text(best_path, header + dump_config(apply_params(config, best_params)))
    return SearchResult(
        out_dir=out_dir,
        storage=storage,
        study_name=study.study_name,
        n_trials_total=len(trials),
        n_complete=len(complete),
        n_pruned=sum(t.state == state.PRUNED for t in trials),
        best_value=best_value,
        best_params=best_params,
        best_config=best_path,
    )


__all__ = [
    "SearchParam",
    "SearchResult",
    "apply_params",
    "check_space",
    "load_search_space",
    "parse_search_space",
    "retry_abandoned_trials",
    "run_search",
    "write_search_reports",
]
