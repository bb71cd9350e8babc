"""K-fold cross-validation: one training run per fold, held-out test metrics, a summary table.

``run_cross_validation`` splits the samples into ``k`` folds. By default fold ``i`` is the test
set of run ``i``, a seeded fraction of the other samples is its validation set (model selection,
early stopping) and the rest is trained on. With ``test_data`` it follows seed 004's protocol
(Tables 5.1-5.4): fold ``i`` is the validation set of run ``i``, the other folds are trained on,
and every run is tested on the same external test set. Each run's best checkpoint then predicts
its test images and recall, precision and Dice are computed per image and averaged.

Time-lapse layouts (``sequences``, ``ctc``) are split without leaks
(:func:`lapseg.training.folds.make_timelapse_folds`): by sequence when there are at least ``k``
sequences (and ``temporal.split`` is ``sequence``), otherwise by contiguous time blocks of the
annotated frames with ``temporal.gap`` unused frames around each test block; test frames are
predicted with their temporal context (:mod:`lapseg.training.cv_evaluate`). Output folder::

    out_dir/
      config.yaml          the base configuration
      folds.json           the fold assignment (train / val / test names per fold)
      splits/foldK.json    the split file given to fold K's run (data.split_file)
      foldK/               a normal run folder (see lapseg.training.trainer) plus
                           test_per_image.csv, test_metrics.json and test_overlays/
      cv_summary.csv/.md   per fold: best validation loss and its epoch, test metrics; mean, std
      cv_boxplot.png       per-image test recall / precision / Dice over all folds

Fold assignment lives in :mod:`lapseg.training.folds`, test metrics in
:mod:`lapseg.training.cv_evaluate` and the summary table in :mod:`lapseg.training.cv_summary`;
their public names are importable from here as well.

Running the same call again resumes: finished folds are skipped, an interrupted fold continues
from its ``last.pt``.
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lapseg.config import LapsegConfig, dump_config
from lapseg.data.split import write_split
from lapseg.errors import LapsegInputError
from lapseg.io.files import write_csv, write_json, write_text
from lapseg.models.checkpoint import load_checkpoint
from lapseg.report.plots import save_boxplots
from lapseg.training.cv_evaluate import evaluate_test_images
from lapseg.training.cv_summary import (
    SUMMARY_COLUMNS,
    TEST_METRICS,
    best_validation_loss,
    format_cv_markdown,
    summarize_folds,
)
from lapseg.training.folds import (
    groups_from_pattern,
    holdout_as_validation,
    make_folds,
    make_timelapse_folds,
)


@dataclass(frozen=True)
class FoldResult:
    """One fold's run folder and its summary row (keys :data:`SUMMARY_COLUMNS`)."""

    fold: int
    run_dir: Path
    row: dict[str, Any]
    per_image: list[dict[str, Any]]


@dataclass(frozen=True)
class CVResult:
    """A finished cross-validation: per-fold results and their mean / std across folds."""

    out_dir: Path
    folds: list[FoldResult]
    mean: dict[str, float]
    std: dict[str, float]


# --------------------------------------------------------------------------- one fold


def fold_status(run_dir: Path) -> str:
    """``"done"`` (run.json written and last.pt finished), ``"partial"`` (last.pt to resume
    from) or ``"new"`` (nothing usable)."""
    last = run_dir / "last.pt"
    if not last.is_file():
        return "new"
    finished = bool(load_checkpoint(last).get("finished"))
    return "done" if finished and (run_dir / "run.json").is_file() else "partial"


def _fold_row(
    k: int, run_dir: Path, split: Mapping[str, list[str]], per_image: list[dict[str, Any]]
) -> dict[str, Any]:
    state = load_checkpoint(run_dir / "last.pt")
    loss, loss_epoch = best_validation_loss(state.get("history", []))
    row: dict[str, Any] = {
        "fold": k,
        "n_train": len(split["train"]),
        "n_val": len(split["val"]),
        "n_test": len(split["test"]),
        "best_val_loss": loss,
        "best_val_loss_epoch": loss_epoch,
        "best_epoch": int(state.get("best_epoch", -1)),
    }
    for metric in TEST_METRICS:
        values = [r[metric] for r in per_image]
        row[f"test_{metric}"] = float(np.mean(values)) if values else math.nan
    return row


def _train_fold(
    config: LapsegConfig, data_root: str | Path, run_dir: Path, *, progress: bool
) -> None:
    from lapseg.training.trainer import fit

    status = fold_status(run_dir)
    if status == "done":
        return
    if status == "partial":
        fit(config, data_root, run_dir, resume=True, progress=progress)
        return
    if run_dir.exists():  # interrupted before its first epoch: only set-up files, start again
        shutil.rmtree(run_dir)
    fit(config, data_root, run_dir, progress=progress)


# --------------------------------------------------------------------------- the whole CV


@dataclass(frozen=True)
class FoldPlan:
    """The folds of a dataset and how they were made (the ``folds.json`` record)."""

    folds: list[dict[str, list[str]]]
    record: dict[str, Any]


def _timelapse_folds(
    config: LapsegConfig, sequences: Sequence[Any], n_folds: int, val_fraction: float
) -> tuple[list[dict[str, list[str]]], dict[str, Any]]:
    temporal = config.temporal
    frames = {s.name: [(t, s.sample_name(t)) for t in s.annotated] for s in sequences}
    n_sequences = sum(1 for f in frames.values() if f)
    by_sequence = temporal.split == "sequence" and n_sequences >= n_folds
    mode = "sequence" if by_sequence else "time_blocks"
    if temporal.gap < temporal.context:
        raise LapsegInputError(
            f"temporal.gap={temporal.gap} must be >= temporal.context={temporal.context} for "
            "time-lapse cross-validation: otherwise test inputs contain training frames"
        )
    folds = make_timelapse_folds(
        frames,
        n_folds,
        mode=mode,
        gap=temporal.gap,
        seed=config.train.seed,
        val_fraction=val_fraction,
    )
    return folds, {"split_by": mode, "gap": temporal.gap}


def plan_folds(
    config: LapsegConfig,
    data_root: str | Path,
    n_folds: int,
    *,
    groups: Mapping[str, str] | None = None,
    external_test: bool = False,
) -> FoldPlan:
    """The folds :func:`run_cross_validation` trains (see the module docstring).

    ``external_test``: seed 004's protocol, the held-out fold of each run is its validation set
    (``data.val_fraction`` is not used) and its ``test`` list is empty.
    """
    from lapseg.data.sources import discover_dataset

    _, sources = discover_dataset(config, data_root)
    val_fraction = 0.0 if external_test else config.data.val_fraction
    record: dict[str, Any] = {
        "n_folds": n_folds,
        "seed": config.train.seed,
        "val_fraction": val_fraction,
        "grouped": groups is not None,
    }
    if sources.is_timelapse:
        if groups is not None:
            raise LapsegInputError(
                "time-lapse folds follow the sequences (or time blocks) by themselves; "
                "--group-pattern is for still images"
            )
        folds, how = _timelapse_folds(config, sources.sequences, n_folds, val_fraction)
        record.update(how)
    else:
        names = [s.name for s in sources.samples]
        folds = make_folds(
            names, n_folds, groups=groups, seed=config.train.seed, val_fraction=val_fraction
        )
    if external_test:
        folds = holdout_as_validation(folds)
        record["protocol"] = "held-out fold validates, external test set"
    return FoldPlan(folds=folds, record={**record, "folds": folds})


def validation_fold_split(
    config: LapsegConfig, data_root: str | Path, n_folds: int, fold: int
) -> dict[str, list[str]]:
    """Fold ``fold`` (0-based) of ``lapseg cv --test-data``: the other folds train, this one
    validates (seed 004 tuned its hyperparameters on the split of its fourth model)."""
    if isinstance(fold, bool) or not isinstance(fold, int) or not 0 <= fold < n_folds:
        raise LapsegInputError(f"fold must be an integer in [0, {n_folds}), got {fold!r}")
    return plan_folds(config, data_root, n_folds, external_test=True).folds[fold]


def _check_folds_file(path: Path, payload: dict[str, Any]) -> None:
    if not path.is_file():
        write_json(path, payload)
        return
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise LapsegInputError(f"cannot read folds.json ({error})", path=path) from None
    if stored != payload:
        raise LapsegInputError(
            "this folder holds a cross-validation with other folds (different data, number of "
            "folds, seed, validation fraction, gap or test set); use a new output folder",
            path=path,
        )


@dataclass(frozen=True)
class _TestSet:
    """Where a fold's test samples are, how to read them, and their names."""

    root: str | Path
    config: LapsegConfig
    names: list[str]


def _external_test_set(config: LapsegConfig, test_data: str | Path | None) -> _TestSet | None:
    """How to read the external test set, and its annotated sample names (None without one)."""
    if test_data is None:
        return None
    from lapseg.data.sources import discover_dataset

    # an annotated-frames list names the training sequences: the test set uses its masks
    test_config = config.replace(data=config.data.replace(annotated_frames=None))
    _, sources = discover_dataset(test_config, test_data)
    if sources.is_timelapse:
        names = [s.sample_name(t) for s in sources.sequences for t in s.annotated]
    else:
        names = [s.name for s in sources.samples]
    return _TestSet(root=test_data, config=test_config, names=names)


def _fold_test_metrics(
    run_dir: Path, names: Sequence[str], data_root: str | Path, config: LapsegConfig, k: int
) -> list[dict[str, Any]]:
    """The fold's per-image test metrics (computed once, then read from test_metrics.json)."""
    metrics_path = run_dir / "test_metrics.json"
    if metrics_path.is_file():
        return list(json.loads(metrics_path.read_text(encoding="utf-8"))["per_image"])
    per_image = evaluate_test_images(
        run_dir, names, data_root, config, overlay_dir=run_dir / "test_overlays"
    )
    write_csv(
        run_dir / "test_per_image.csv",
        per_image,
        columns=["name", *TEST_METRICS],
        float_format=".4f",
    )
    write_json(metrics_path, {"fold": k, "per_image": per_image})
    return per_image


def run_cross_validation(
    config: LapsegConfig,
    data_root: str | Path,
    out_dir: str | Path,
    *,
    n_folds: int = 5,
    groups: Mapping[str, str] | None = None,
    test_data: str | Path | None = None,
    progress: bool = True,
) -> CVResult:
    """Train and test one model per fold; write the fold runs and the CV summary.

    Parameters
    ----------
    config : LapsegConfig
        Base configuration of every fold; ``data.split_file`` is replaced per fold, the seed
        ``train.seed`` also seeds the fold assignment, ``data.val_fraction`` sets the
        validation share of the non-test samples (not used with ``test_data``).
    data_root : str or Path
        Dataset folder (any layout; time-lapse layouts get leak-free folds).
    out_dir : str or Path
        Output folder; calling again with the same arguments resumes an interrupted CV.
    n_folds : int, optional
        Number of folds (>= 2).
    groups : mapping of str to str, optional
        Group of each still-image sample name; no group is split between folds.
    test_data : str or Path, optional
        An external test set (same layout rules as ``data_root``): seed 004's protocol, where
        each fold's held-out part validates its run and every run is tested on this set.
    progress : bool, optional
        Show the training progress bars.

    Returns
    -------
    CVResult
    """
    out_dir = Path(out_dir)
    external = _external_test_set(config, test_data)
    plan = plan_folds(config, data_root, n_folds, groups=groups, external_test=external is not None)
    record = plan.record if external is None else {**plan.record, "external_test": external.names}
    out_dir.mkdir(parents=True, exist_ok=True)
    _check_folds_file(out_dir / "folds.json", record)
    if not (out_dir / "config.yaml").is_file():
        write_text(out_dir / "config.yaml", dump_config(config))

    results = []
    for k, split in enumerate(plan.folds):
        split_path = write_split(out_dir / "splits" / f"fold{k}.json", split)
        fold_config = config.replace(data=config.data.replace(split_file=str(split_path)))
        run_dir = out_dir / f"fold{k}"
        _train_fold(fold_config, data_root, run_dir, progress=progress)
        test = external or _TestSet(root=data_root, config=fold_config, names=split["test"])
        per_image = _fold_test_metrics(run_dir, test.names, test.root, test.config, k)
        row = _fold_row(k, run_dir, {**split, "test": test.names}, per_image)
        results.append(FoldResult(fold=k, run_dir=run_dir, row=row, per_image=per_image))

    rows = [r.row for r in results]
    mean, std = summarize_folds(rows)
    table = [*rows, {"fold": "mean", **mean}, {"fold": "std", **std}]
    write_csv(out_dir / "cv_summary.csv", table, columns=SUMMARY_COLUMNS, float_format=".4f")
    tested_on = (
        "the fold's held-out images"
        if external is None
        else "the external test images (each fold's held-out part is its validation set)"
    )
    write_text(out_dir / "cv_summary.md", format_cv_markdown(rows, mean, std, tested_on=tested_on))
    all_images = [{**img, "fold": r.fold} for r in results for img in r.per_image]
    save_boxplots(all_images, ["recall", "precision", "dice"], out_dir / "cv_boxplot.png")
    return CVResult(out_dir=out_dir, folds=results, mean=mean, std=std)


__all__ = [
    "CVResult",
    "FoldPlan",
    "FoldResult",
    "best_validation_loss",
    "evaluate_test_images",
    "fold_status",
    "format_cv_markdown",
    "groups_from_pattern",
    "make_folds",
    "make_timelapse_folds",
    "plan_folds",
    "run_cross_validation",
    "summarize_folds",
    "validation_fold_split",
]
