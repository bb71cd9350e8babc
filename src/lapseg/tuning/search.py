"""Hyperparameter search with Optuna: TPE or Gaussian-process sampling, per-epoch pruning,
resumable SQLite studies.

The space and its options are read by :mod:`lapseg.tuning.space`. Every trial is a normal
training run (``out_dir/trials/NNN``) whose per-epoch validation metric is reported to Optuna, so
a Hyperband or median pruner can stop unpromising trials early (the BOHB-like scheme seed 004
surveys); ``pruner="none"`` runs every trial to its end. The sampler is Optuna's TPE or its
``GPSampler`` (Bayesian optimisation with a Gaussian-process surrogate, the method seed 004 used
through the ``bayes_opt`` package; its first :data:`GP_STARTUP_TRIALS` trials are random).
With ``SearchOptions.fold`` every trial trains on one fold's split of ``lapseg cv --test-data``
(seed 004 searched on the split of its fourth model), written to ``out_dir/split.json``.

The study lives in ``out_dir/study.db`` (SQLite) unless an RDB URL is given, so the same command
resumes an interrupted search and several processes or machines can work on one study. A trial
whose process was killed outright (SIGKILL, power loss) would stay RUNNING forever: the next
search on the same machine marks it failed and tries its parameters again
(:func:`retry_abandoned_trials`). Outputs: ``best_config.yaml`` (ready to train), ``trials.csv``,
``optimization_history.png`` and ``param_importances.png``.
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

from lapseg.config import LapsegConfig, dump_config
from lapseg.data.split import write_split
from lapseg.errors import LapsegInputError, optional_import
from lapseg.io.files import write_text
from lapseg.io.locks import process_running, this_host
from lapseg.tuning.reports import (
    plot_optimization_history,
    plot_param_importances,
    write_trials_csv,
)
from lapseg.tuning.space import (
    DIRECTIONS,
    METRICS,
    PARAM_TYPES,
    PRUNERS,
    SAMPLERS,
    SearchOptions,
    SearchParam,
    apply_params,
    check_space,
    load_search_file,
    load_search_space,
    parse_search_space,
    suggest,
)

log = logging.getLogger(__name__)

GP_STARTUP_TRIALS = 5
"""Random trials before the Gaussian process guides the sampling: ``bayes_opt``'s default
``init_points`` (seed 004's optimiser; its 5 + 25 default iterations are 004's 30)."""


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


def make_sampler(name: str, seed: int) -> Any:
    """Optuna's ``TPESampler`` (``"tpe"``) or ``GPSampler`` (``"gp"``), seeded."""
    optuna = optional_import("optuna", extra="search", purpose="hyperparameter search")

    if name == "gp":
        if not hasattr(optuna.samplers, "GPSampler"):
            raise LapsegInputError(
                f"the installed Optuna {optuna.__version__} has no GPSampler (added in Optuna "
                "3.6): upgrade Optuna or use sampler tpe"
            )
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=GP_STARTUP_TRIALS)
    if name != "tpe":
        raise LapsegInputError(f"sampler={name!r} is not one of {', '.join(SAMPLERS)}")
    return optuna.samplers.TPESampler(seed=seed)


def _objective_value(history: Sequence[Mapping[str, Any]], metric: str, maximize: bool) -> float:
    values = [float(r[metric]) for r in history if metric in r and math.isfinite(float(r[metric]))]
    if not values:
        raise LapsegInputError(
            f"metric {metric!r} never appeared in the training history (no validation split? "
            "set data.val_fraction > 0 or use metric=train_loss)"
        )
    return max(values) if maximize else min(values)


def _with_fold_split(
    config: LapsegConfig, data_root: str | Path, out_dir: Path, options: SearchOptions
) -> LapsegConfig:
    """The base configuration training on fold ``options.fold``'s split (unchanged without)."""
    if options.fold is None:
        return config
    from lapseg.training.cv import validation_fold_split

    split = validation_fold_split(config, data_root, options.folds, options.fold)
    path = write_split(out_dir / "split.json", split)
    log.info(
        "every trial trains on fold %d of %d (%d training, %d validation samples): %s",
        options.fold,
        options.folds,
        len(split["train"]),
        len(split["val"]),
        path,
    )
    return config.replace(data=config.data.replace(split_file=str(path)))


def run_search(
    config: LapsegConfig,
    data_root: str | Path,
    space: Sequence[SearchParam] | Mapping[str, Any],
    out_dir: str | Path,
    *,
    n_trials: int,
    options: SearchOptions | None = None,
    progress: bool = False,
) -> SearchResult:
    """Run ``n_trials`` more trials of a (new or resumed) Optuna study and write its reports.

    Parameters
    ----------
    config : LapsegConfig
        Base configuration; each trial sets the searched keys on a copy.
    data_root : str or Path
        Dataset of the training runs (their validation split gives the metric); time-lapse
        layouts are split without leaks as in training (by sequence, or by time blocks of a
        single movie) or, with ``options.fold``, as ``lapseg cv`` folds them.
    space : sequence of SearchParam, or mapping
        The search space (a mapping is validated with :func:`parse_search_space`).
    out_dir : str or Path
        Output folder (``trials/NNN`` run folders, ``study.db`` and the reports).
    n_trials : int
        Trials to add in this call (an existing study keeps its earlier trials).
    options : SearchOptions, optional
        Metric, direction, pruner, sampler, seed, fold split, storage and study name.
    progress : bool, optional
        Show each trial's training progress bar.
    """
    optuna = optional_import("optuna", extra="search", purpose="hyperparameter search")

    from lapseg.training.trainer import fit

    options = options or SearchOptions()
    if isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials < 1:
        raise LapsegInputError(f"the number of trials must be an integer >= 1, got {n_trials!r}")
    params = list(space) if not isinstance(space, Mapping) else parse_search_space(space)
    check_space(config, params)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    config = _with_fold_split(config, data_root, out_dir, options)
    storage = options.storage or f"sqlite:///{(out_dir / 'study.db').resolve()}"
    study_name = options.study_name or "lapseg-search"
    metric, direction = options.metric, options.direction
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
        sampler=make_sampler(options.sampler, options.seed + len(study.trials)),
        pruner=_make_pruner(options.pruner),
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
    "DIRECTIONS",
    "GP_STARTUP_TRIALS",
    "METRICS",
    "PARAM_TYPES",
    "PRUNERS",
    "SAMPLERS",
    "SearchOptions",
    "SearchParam",
    "SearchResult",
    "apply_params",
    "check_space",
    "load_search_file",
    "load_search_space",
    "make_sampler",
    "parse_search_space",
    "retry_abandoned_trials",
    "run_search",
    "write_search_reports",
]
