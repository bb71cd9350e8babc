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

Running the same call again resumes: finished folds are skipped, an interrupted fold continues
from its ``last.pt``.
"""

from __future__ import annotations

import json
import math
import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.model_selection import GroupKFold, KFold

from lapseg.config import LapsegConfig, dump_config
from lapseg.data.masks import mask_to_target
from lapseg.data.split import write_split
from lapseg.errors import LapsegInputError
from lapseg.io.discovery import natural_sort_key
from lapseg.io.files import format_cell, write_csv, write_json, write_text
from lapseg.metrics.pixel import MetricAccumulator
from lapseg.models.checkpoint import load_checkpoint
from lapseg.report.plots import save_boxplots

TEST_METRICS: tuple[str, ...] = ("recall", "precision", "dice", "iou")
"""Per-image test metrics averaged per fold (seed 004 reports the first three)."""

SUMMARY_COLUMNS: tuple[str, ...] = (
    "fold",
    "n_train",
    "n_val",
    "n_test",
    "best_val_loss",
    "best_val_loss_epoch",
    "best_epoch",
    *(f"test_{m}" for m in TEST_METRICS),
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


# --------------------------------------------------------------------------- fold assignment


def _pick_validation(
    names: Sequence[str],
    groups: Mapping[str, str] | None,
    val_fraction: float,
    rng: np.random.Generator,
) -> set[str]:
    """A seeded ``val_fraction`` of ``names`` (whole groups when grouped); at least one unit
    when the fraction is positive, and at least one unit left for training."""
    if val_fraction <= 0:
        return set()
    keys = sorted({groups[n] for n in names} if groups else set(names), key=natural_sort_key)
    if len(keys) < 2:
        raise LapsegInputError(
            "too few samples (or groups) outside the test fold to hold out a validation set; "
            "use fewer folds or data.val_fraction=0"
        )
    order = [keys[i] for i in rng.permutation(len(keys))]
    target = max(1, round(val_fraction * len(names)))
    chosen: list[str] = []
    count = 0
    for key in order[:-1]:  # the last unit always stays in training
        if count >= target:
            break
        chosen.append(key)
        count += sum(1 for n in names if (groups[n] if groups else n) == key)
    picked = set(chosen)
    return {n for n in names if (groups[n] if groups else n) in picked}


def make_folds(
    names: Sequence[str],
    n_folds: int,
    *,
    groups: Mapping[str, str] | None = None,
    seed: int = 0,
    val_fraction: float = 0.2,
) -> list[dict[str, list[str]]]:
    """Deterministic k-fold assignment with a validation subset per fold.

    Parameters
    ----------
    names : sequence of str
        Unique sample names; their order does not matter (they are sorted naturally first).
    n_folds : int
        Number of folds ``k >= 2``; at most the number of samples (or groups).
    groups : mapping of str to str, optional
        Group of every sample (e.g. its time-lapse sequence): no group is split between two
        folds, nor between a fold's train and val subsets.
    seed : int, optional
        Same seed and names -> same folds.
    val_fraction : float, optional
        Fraction in ``[0, 1)`` of each fold's non-test samples held out for validation (at
        least one sample or group when positive).

    Returns
    -------
    list of dict
        ``k`` splits ``{"train": [...], "val": [...], "test": [...]}``, each disjoint and
        covering ``names``; the ``"test"`` subsets of the folds partition ``names``.
    """
    names = sorted(names, key=natural_sort_key)
    if len(set(names)) != len(names):
        raise LapsegInputError("sample names must be unique for cross-validation")
    if isinstance(n_folds, bool) or not isinstance(n_folds, int) or n_folds < 2:
        raise LapsegInputError(f"the number of folds must be an integer >= 2, got {n_folds!r}")
    if not 0.0 <= val_fraction < 1.0:
        raise LapsegInputError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if groups is not None:
        missing = [n for n in names if n not in groups]
        if missing:
            raise LapsegInputError(f"no group given for sample(s): {', '.join(missing[:5])}")
        units = len({groups[n] for n in names})
        what = "groups"
    else:
        units, what = len(names), "samples"
    if n_folds > units:
        raise LapsegInputError(f"cannot make {n_folds} folds from {units} {what}")
    positions = np.arange(len(names))
    if groups is None:
        splitter = KFold(n_splits=n_folds, shuffle=True, random_state=seed)
        parts = splitter.split(positions)
    else:
        labels = [groups[n] for n in names]
        splitter = GroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
        parts = splitter.split(positions, groups=labels)
    folds = []
    for k, (rest_idx, test_idx) in enumerate(parts):
        rest = [names[i] for i in rest_idx]
        rng = np.random.default_rng([seed, k])
        val = _pick_validation(rest, groups, val_fraction, rng)
        subsets = {
            "train": [n for n in rest if n not in val],
            "val": [n for n in rest if n in val],
            "test": [names[i] for i in test_idx],
        }
        folds.append({key: sorted(v, key=natural_sort_key) for key, v in subsets.items()})
    return folds


def groups_from_pattern(names: Sequence[str], pattern: str) -> dict[str, str]:
    r"""Group of each sample name: the first capture group of the regular expression
    ``pattern`` (searched in the name), e.g. ``r"^(.*)_t\d+$"`` for ``seqA_t003``."""
    try:
        regex = re.compile(pattern)
    except re.error as error:
        raise LapsegInputError(
            f"group pattern {pattern!r} is not a valid regex ({error})"
        ) from None
    if regex.groups < 1:
        raise LapsegInputError(f"group pattern {pattern!r} needs one (capture group)")
    groups = {}
    for name in names:
        match = regex.search(name)
        if match is None or match.group(1) is None:
            raise LapsegInputError(f"sample {name!r} does not match the group pattern {pattern!r}")
        groups[name] = match.group(1)
    return groups


# --------------------------------------------------------------------------- one fold


def fold_status(run_dir: Path) -> str:
    """``"done"`` (run.json written and last.pt finished), ``"partial"`` (last.pt to resume
    from) or ``"new"`` (nothing usable)."""
    last = run_dir / "last.pt"
    if not last.is_file():
        return "new"
    finished = bool(load_checkpoint(last).get("finished"))
    return "done" if finished and (run_dir / "run.json").is_file() else "partial"


def best_validation_loss(history: Sequence[Mapping[str, Any]]) -> tuple[float, int]:
    """Lowest ``val_loss`` of a run's history and its (1-based) epoch; ``(nan, -1)`` if none."""
    best, epoch = math.nan, -1
    for row in history:
        value = row.get("val_loss")
        if value is None or math.isnan(float(value)):
            continue
        if epoch < 0 or float(value) < best:
            best, epoch = float(value), int(row["epoch"])
    return best, epoch


def evaluate_test_images(
    run_dir: Path, names: Sequence[str], data_root: str | Path, config: LapsegConfig
) -> list[dict[str, Any]]:
    """Predict the named test samples with ``run_dir/best.pt``; per-image metrics rows."""
    from lapseg.data.dataset import read_raw_sample
    from lapseg.data.setup import discover_samples
    from lapseg.inference.predict import load_model, model_mask, predict_probabilities

    loaded = load_model(run_dir, device=config.train.device)
    by_name = {s.name: s for s in discover_samples(data_root, config)}
    num_classes = max(loaded.config.model.out_channels, 2)
    rows = []
    for name in names:
        image, mask = read_raw_sample(by_name[name], loaded.config)
        prob = predict_probabilities([loaded], image)
        pred = model_mask(loaded, prob)
        if num_classes == 2:
            pred = (pred > 0).astype(np.int64)
        target = mask_to_target(mask, kind=loaded.config.data.mask_kind, num_classes=num_classes)
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
    if config.data.layout in ("sequences", "ctc"):
        raise LapsegInputError(
            f"cross-validation supports still-image layouts; data.layout={config.data.layout!r} "
            "is not supported yet (group frames by sequence with the groups argument instead)"
        )
    from lapseg.data.setup import discover_samples

    return [s.name for s in discover_samples(data_root, config) if s.mask is not None]


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


def summarize_folds(rows: Sequence[Mapping[str, Any]]) -> tuple[dict[str, float], dict[str, float]]:
    """Mean and sample standard deviation (``ddof=1``; 0 for one fold) of the numeric summary
    columns across folds, NaN values left out."""
    mean: dict[str, float] = {}
    std: dict[str, float] = {}
    for column in SUMMARY_COLUMNS[4:]:
        if column in ("best_val_loss_epoch", "best_epoch"):
            continue
        values = np.array([float(r[column]) for r in rows], dtype=np.float64)
        values = values[np.isfinite(values)]
        mean[column] = float(values.mean()) if values.size else math.nan
        std[column] = float(values.std(ddof=1)) if values.size > 1 else 0.0
    return mean, std


def format_cv_markdown(
    rows: Sequence[Mapping[str, Any]], mean: Mapping[str, float], std: Mapping[str, float]
) -> str:
    """Seed-004-style table: one column per fold plus mean and std, one row per quantity."""
    labels = {
        "best_val_loss": "Lowest validation loss",
        "best_val_loss_epoch": "Lowest loss epoch",
        "best_epoch": "Selected epoch (train.monitor)",
        "test_recall": "Avg. recall (test)",
        "test_precision": "Avg. precision (test)",
        "test_dice": "Avg. Dice score (test)",
        "test_iou": "Avg. IoU (test)",
    }
    header = ["", *(f"Fold {r['fold']}" for r in rows), "Mean", "Std"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for key, label in labels.items():
        cells = [
            str(format_cell(r[key], ".4f") if isinstance(r[key], float) else r[key]) for r in rows
        ]
        extra = (
            [str(format_cell(mean[key], ".4f")), str(format_cell(std[key], ".4f"))]
            if key in mean
            else ["-", "-"]
        )
        lines.append("| " + " | ".join([label, *cells, *extra]) + " |")
    note = (
        "\nTest metrics are computed per image and averaged over the fold's held-out images; "
        "Mean and Std (ddof=1) are taken across folds.\n"
    )
    return "\n".join(lines) + "\n" + note


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
