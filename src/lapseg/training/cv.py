"""K-fold cross-validation: one training run per fold, held-out test metrics, a summary table.

``run_cross_validation`` reproduces the protocol of seed 004 (Tables 5.1-5.4): the samples are
split into ``k`` folds; fold ``i`` is the test set of run ``i``, a seeded fraction of the other
samples is its validation set (model selection, early stopping) and the rest is trained on.
Each run's best checkpoint then predicts its test images and recall, precision and Dice are
computed per image and averaged. Output folder::

    out_dir/
      config.yaml          the base configuration
      folds.json           the fold assignment (train / val / test names per fold)
      splits/foldK.json    the split file given to fold K's run (data.split_file)
      foldK/               a normal run folder (see lapseg.training.trainer) plus
                           test_per_image.csv and test_metrics.json
      cv_summary.csv/.md   per fold: best validation loss and its epoch, test metrics; mean, std
      cv_boxplot.png       per-image test recall / precision / Dice over all folds

Fold assignment lives in :mod:`lapseg.training.folds` and the summary table in
:mod:`lapseg.training.cv_summary`; their public names are importable from here as well.

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
from lapseg.data.masks import mask_to_target
from lapseg.data.split import write_split
from lapseg.errors import LapsegInputError
from lapseg.io.files import write_csv, write_json, write_text
from lapseg.metrics.pixel import MetricAccumulator
from lapseg.models.checkpoint import load_checkpoint
from lapseg.report.plots import save_boxplots
from lapseg.training.cv_summary import (
    SUMMARY_COLUMNS,
    TEST_METRICS,
    best_validation_loss,
    format_cv_markdown,
    summarize_folds,
)
from lapseg.training.folds import groups_from_pattern, make_folds


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


def evaluate_test_images(
    run_dir: Path, names: Sequence[str], data_root: str | Path, config: LapsegConfig
) -> list[dict[str, Any]]:
    """Predict the named test samples with ``run_dir/best.pt``; per-image metrics rows."""
    from lapseg.data.dataset import read_raw_sample
    from lapseg.data.sources import discover_samples
    from lapseg.inference.predict import load_model, model_mask, predict_probabilities

    loaded = load_model(run_dir, device=config.train.device)
    by_name = {s.name: s for s in discover_samples(data_root, loaded.config)}
    semantic = loaded.config.data.task == "semantic"
    num_classes = loaded.config.model.outputs if semantic else 2  # else: foreground metrics
    rows = []
    for name in names:
        image, mask = read_raw_sample(by_name[name], loaded.config)
        prob = predict_probabilities([loaded], image)
        pred = model_mask(loaded, prob)
        if num_classes == 2:
            pred = (pred > 0).astype(np.int64)
        kind = loaded.config.data.mask_kind if semantic else "binary"
        target = mask_to_target(mask, kind=kind, num_classes=num_classes)
        accumulator = MetricAccumulator(num_classes=num_classes)
        accumulator.update(target, pred)
        metrics = accumulator.pooled()
        rows.append({"name": name, **{m: float(metrics[m]) for m in TEST_METRICS}})
    return rows


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


def _sample_names(config: LapsegConfig, data_root: str | Path) -> list[str]:
    from lapseg.data.sources import discover_dataset

    sources_layout: str = config.data.layout
    if sources_layout not in ("sequences", "ctc"):
        _, sources = discover_dataset(config, data_root)
        sources_layout = sources.layout
    if sources_layout in ("sequences", "ctc"):
        raise LapsegInputError(
            f"cross-validation supports still-image layouts; the {sources_layout} layout is not "
            "supported yet (group frames by sequence with --group-pattern instead)"
        )
    return [s.name for s in sources.samples]


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
            "folds, seed or validation fraction); use a new output folder",
            path=path,
        )


def run_cross_validation(
    config: LapsegConfig,
    data_root: str | Path,
    out_dir: str | Path,
    *,
    n_folds: int = 5,
    groups: Mapping[str, str] | None = None,
    progress: bool = True,
) -> CVResult:
    """Train and test one model per fold; write the fold runs and the CV summary.

    Parameters
    ----------
    config : LapsegConfig
        Base configuration of every fold; ``data.split_file`` is replaced per fold, the seed
        ``train.seed`` also seeds the fold assignment, ``data.val_fraction`` sets the
        validation share of the non-test samples.
    data_root : str or Path
        Dataset folder (a still-image layout).
    out_dir : str or Path
        Output folder; calling again with the same arguments resumes an interrupted CV.
    n_folds : int, optional
        Number of folds (>= 2).
    groups : mapping of str to str, optional
        Group of each sample name; no group is split between folds (time-lapse sequences).
    progress : bool, optional
        Show the training progress bars.

    Returns
    -------
    CVResult
    """
    out_dir = Path(out_dir)
    names = _sample_names(config, data_root)
    seed = config.train.seed
    folds = make_folds(
        names, n_folds, groups=groups, seed=seed, val_fraction=config.data.val_fraction
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    _check_folds_file(
        out_dir / "folds.json",
        {
            "n_folds": n_folds,
            "seed": seed,
            "val_fraction": config.data.val_fraction,
            "grouped": groups is not None,
            "folds": folds,
        },
    )
    if not (out_dir / "config.yaml").is_file():
        write_text(out_dir / "config.yaml", dump_config(config))

    results = []
    for k, split in enumerate(folds):
        split_path = write_split(out_dir / "splits" / f"fold{k}.json", split)
        fold_config = config.replace(data=config.data.replace(split_file=str(split_path)))
        run_dir = out_dir / f"fold{k}"
        _train_fold(fold_config, data_root, run_dir, progress=progress)
        metrics_path = run_dir / "test_metrics.json"
        if metrics_path.is_file():
            per_image = json.loads(metrics_path.read_text(encoding="utf-8"))["per_image"]
        else:
            per_image = evaluate_test_images(run_dir, split["test"], data_root, fold_config)
            write_csv(
                run_dir / "test_per_image.csv",
                per_image,
                columns=["name", *TEST_METRICS],
                float_format=".4f",
            )
            write_json(metrics_path, {"fold": k, "per_image": per_image})
        row = _fold_row(k, run_dir, split, per_image)
        results.append(FoldResult(fold=k, run_dir=run_dir, row=row, per_image=per_image))

    rows = [r.row for r in results]
    mean, std = summarize_folds(rows)
    table = [*rows, {"fold": "mean", **mean}, {"fold": "std", **std}]
    write_csv(out_dir / "cv_summary.csv", table, columns=SUMMARY_COLUMNS, float_format=".4f")
    write_text(out_dir / "cv_summary.md", format_cv_markdown(rows, mean, std))
    all_images = [{**img, "fold": r.fold} for r in results for img in r.per_image]
    save_boxplots(all_images, ["recall", "precision", "dice"], out_dir / "cv_boxplot.png")
    return CVResult(out_dir=out_dir, folds=results, mean=mean, std=std)


__all__ = [
    "CVResult",
    "FoldResult",
    "best_validation_loss",
    "evaluate_test_images",
    "fold_status",
    "format_cv_markdown",
    "groups_from_pattern",
    "make_folds",
    "run_cross_validation",
    "summarize_folds",
]
