"""Reports of an Optuna study: the trials table, optimisation history and parameter importances.

Figures use matplotlib's object API (no ``pyplot`` state) and every file is written atomically.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from lapseg.errors import optional_import
from lapseg.io.files import atomic_output, write_csv


def write_trials_csv(study: Any, path: Path) -> Path:
    """One row per trial: number, state, value, parameters, epochs run, run folder, duration."""
    trials = study.get_trials(deepcopy=False)
    keys: list[str] = []
    for trial in trials:
        keys.extend(k for k in trial.params if k not in keys)
    columns = ["number", "state", "value", *keys, "epochs_reported", "duration_s", "run_dir"]
    rows = []
    for trial in trials:
        duration = "" if trial.duration is None else round(trial.duration.total_seconds(), 2)
        rows.append(
            {
                "number": trial.number,
                "state": trial.state.name,
                "value": "" if trial.value is None else f"{trial.value:.6g}",
                **{k: trial.params.get(k, "") for k in keys},
                "epochs_reported": len(trial.intermediate_values),
                "duration_s": duration,
                "run_dir": trial.user_attrs.get("run_dir", ""),
            }
        )
    return write_csv(path, rows, columns=columns, float_format=None)


def _save(fig: Figure, path: Path) -> Path:
    FigureCanvasAgg(fig)
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return path


def plot_optimization_history(study: Any, path: Path) -> Path:
    """Objective value per completed trial and the best value so far."""
    optuna = optional_import("optuna", extra="search", purpose="hyperparameter search")

    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    fig = Figure(figsize=(6.0, 4.0))
    ax = fig.add_subplot()
    if done:
        numbers = np.array([t.number for t in done])
        values = np.array([t.value for t in done], dtype=np.float64)
        best = (
            np.maximum.accumulate(values)
            if study.direction == optuna.study.StudyDirection.MAXIMIZE
            else np.minimum.accumulate(values)
        )
        ax.scatter(numbers, values, s=18, label="trial")
        ax.step(numbers, best, where="post", color="tab:red", label="best so far")
        ax.legend()
    pruned = sum(t.state == optuna.trial.TrialState.PRUNED for t in study.trials)
    ax.set_xlabel("trial")
    ax.set_ylabel("objective")
    ax.set_title(f"{len(done)} complete, {pruned} pruned")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_param_importances(importances: Mapping[str, float], path: Path) -> Path:
    """Horizontal bars of the fANOVA parameter importances (they sum to 1)."""
    names = list(importances)[::-1]
    fig = Figure(figsize=(6.0, 1.0 + 0.4 * max(len(names), 1)))
    ax = fig.add_subplot()
    ax.barh(names, [importances[n] for n in names], color="tab:blue")
    ax.set_xlabel("importance (fANOVA)")
    ax.set_xlim(0, 1)
    return _save(fig, path)


__all__ = ["plot_optimization_history", "plot_param_importances", "write_trials_csv"]
