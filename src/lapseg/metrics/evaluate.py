"""Evaluate a folder of predicted masks against a folder of ground-truth masks.

Files are paired by exact stem (``img_01.tif`` with ``img_01.png``). When the prediction folder
holds a ``masks/`` subfolder (the layout ``lapseg predict`` writes: ``OUT/masks/<stem>.tif`` and
``OUT/probabilities/<stem>.tif``), the masks are read from there.

Outputs of :func:`evaluate_folders` when ``out_dir`` is given:

* ``per_image.csv``: one row per image (``name`` then every scalar metric; per-class lists of
  the multi-class case become ``<metric>_class<k>`` columns);
* ``summary.json``: ``pooled``, ``mean``, ``std``, ``n_images``, ``unmatched_predictions``,
  ``num_classes`` and ``definitions`` (what pooled and per-image mean mean);

:func:`lapseg.report.plots.save_evaluation_boxplots` draws ``boxplots.png`` beside them (one box
per main metric over the images, :data:`BOX_METRICS`).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lapseg.errors import LapsegInputError
from lapseg.io.files import write_csv, write_json
from lapseg.metrics.pairing import FramePair, pair_frames
from lapseg.metrics.pixel import MetricAccumulator

BOX_METRICS: tuple[str, ...] = ("dice", "iou", "precision", "recall", "accuracy", "specificity")
"""Metrics drawn in ``boxplots.png`` (those present in the result)."""

TABLE_METRICS: tuple[str, ...] = (
    "accuracy",
    "precision",
    "recall",
    "specificity",
    "dice",
    "iou",
    "error_rate",
    "false_white",
    "cohen_kappa",
)
"""Metrics printed by :func:`format_metrics_table` (those present in the result)."""

DEFINITIONS: dict[str, str] = {
    "pooled": (
        "metrics of the confusion matrix summed over all images: every pixel of the dataset "
        "counts once, so large images weigh more"
    ),
    "mean": "metrics computed per image, then averaged: every image counts once",
    "std": "population standard deviation (ddof=0) of the per-image metrics",
    "dice": "equals f1 = 2 tp / (2 tp + fp + fn); iou = tp / (tp + fp + fn)",
    "false_white": "false-positive pixels as a fraction of all pixels",
    "empty": (
        "when truth and prediction have no foreground, precision, recall, dice and iou are 1"
    ),
}
"""The ``definitions`` entry of ``summary.json``."""

_MASK_SUBFOLDER = "masks"


@dataclass(frozen=True)
class EvaluationResult:
    """Metrics of one prediction folder against its ground truth.

    Attributes
    ----------
    per_image : list of dict
        One dictionary per image, ``"name"`` (the shared stem) first, then its metrics.
    pooled : dict
        Metrics of the summed confusion matrix (every pixel counts once).
    mean, std : dict
        Mean and population standard deviation of the per-image metrics (every image counts
        once).
    n_images : int
        Number of evaluated image pairs.
    unmatched_predictions : int
        Predictions without a ground-truth file, skipped.
    num_classes : int
        Number of classes (2 = binary, any nonzero pixel is foreground).
    """

    per_image: list[dict[str, Any]]
    pooled: dict[str, Any]
    mean: dict[str, Any]
    std: dict[str, Any]
    n_images: int
    unmatched_predictions: int
    num_classes: int = 2


def pair_predictions(pred_dir: str | Path, truth_dir: str | Path) -> list[FramePair]:
    """Pair predicted and ground-truth frames (:func:`lapseg.metrics.pairing.pair_frames`)."""
    return pair_frames(pred_dir, truth_dir, prefer="masks")[0]


def _class_mask(mask: np.ndarray, num_classes: int, path: str) -> np.ndarray:
    if num_classes == 2:
        return mask != 0
    if mask.min() < 0 or mask.max() >= num_classes:
        raise LapsegInputError(
            f"mask values must be class indices in [0, {num_classes}), "
            f"found range [{mask.min()}, {mask.max()}]",
            path=path,
        )
    return mask


def evaluate_folders(
    pred_dir: str | Path,
    truth_dir: str | Path,
    *,
    num_classes: int = 2,
    out_dir: str | Path | None = None,
    only: Collection[str] | None = None,
) -> EvaluationResult:
    """Pixel metrics of every predicted mask against its ground truth.

    Parameters
    ----------
    pred_dir, truth_dir : str or Path
        Folders paired by :func:`pair_predictions`.
    num_classes : int, optional
        2 (binary): any nonzero pixel is foreground in both masks (0/255 masks and label
        images both work). More: mask values are class indices in ``[0, num_classes)``.
    out_dir : str or Path, optional
        If given, write ``per_image.csv`` and ``summary.json`` there (see the module
        docstring); the folder is created if needed.
    only : collection of str, optional
        Evaluate only these ground-truth frames (names as in ``per_image.csv``, e.g. a run's
        test split); default: every ground-truth frame.

    Returns
    -------
    result : EvaluationResult

    Raises
    ------
    LapsegInputError
        For the pairing errors of :func:`pair_predictions`, a prediction whose shape differs
        from its ground truth (both files and shapes are named), or, with more than 2
        classes, a mask value outside ``[0, num_classes)``.
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise LapsegInputError(f"num_classes must be an integer >= 2, got {num_classes!r}")
    pairs, unmatched = pair_frames(pred_dir, truth_dir, prefer="masks", only=only)
    accumulator = MetricAccumulator(num_classes)
    for pair in pairs:
        truth, pred = pair.read_truth(), pair.read_prediction()
        if truth.shape != pred.shape:
            raise LapsegInputError(
                f"prediction shape {pred.shape} differs from ground truth {pair.truth} "
                f"shape {truth.shape}",
                path=pair.prediction,
            )
        accumulator.update(
            _class_mask(truth, num_classes, pair.truth),
            _class_mask(pred, num_classes, pair.prediction),
        )
    per_image = [
        {"name": pair.name, **metrics}
        for pair, metrics in zip(pairs, accumulator.per_image(), strict=True)
    ]
    summary = accumulator.mean_per_image()
    result = EvaluationResult(
        per_image=per_image,
        pooled=accumulator.pooled(),
        mean=summary["mean"],
        std=summary["std"],
        n_images=len(pairs),
        unmatched_predictions=unmatched,
        num_classes=num_classes,
    )
    if out_dir is not None:
        write_evaluation(result, out_dir)
    return result


def _flatten(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """Scalars unchanged; a per-class list ``f1_per_class`` becomes ``f1_class0``, ..."""
    flat: dict[str, Any] = {}
    for key, value in metrics.items():
        if isinstance(value, list | tuple):
            base = key.removesuffix("_per_class")
            flat.update({f"{base}_class{k}": v for k, v in enumerate(value)})
        else:
            flat[key] = value
    return flat


def write_evaluation(result: EvaluationResult, out_dir: str | Path) -> dict[str, Path]:
    """Write ``per_image.csv`` and ``summary.json`` into ``out_dir`` (atomically).

    Returns
    -------
    paths : dict of str to Path
        ``{"per_image": ..., "summary": ...}``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "per_image": out_dir / "per_image.csv",
        "summary": out_dir / "summary.json",
    }
    rows = [_flatten(row) for row in result.per_image]
    write_csv(paths["per_image"], rows, float_format=None)
    summary = {
        "n_images": result.n_images,
        "unmatched_predictions": result.unmatched_predictions,
        "num_classes": result.num_classes,
        "pooled": result.pooled,
        "mean": result.mean,
        "std": result.std,
        "definitions": DEFINITIONS,
    }
    write_json(paths["summary"], summary)
    return paths


def _fmt(value: float) -> str:
    return f"{value:.3e}" if value != 0 and abs(value) < 0.01 else f"{value:.4f}"


def format_metrics_table(result: EvaluationResult) -> str:
    """Plain-text table: metric | pooled | mean ± std per image.

    Parameters
    ----------
    result : EvaluationResult

    Returns
    -------
    table : str
        Lines without trailing newline, e.g. ``dice   0.8123   0.8010 ± 0.0521``; the first
        line says how many images were evaluated and how many predictions were skipped.
    """
    keys = [k for k in TABLE_METRICS if k in result.pooled]
    rows = [("metric", "pooled", "mean ± std (per image)")]
    for key in keys:
        pooled = _fmt(float(result.pooled[key]))
        spread = f"{_fmt(float(result.mean[key]))} ± {_fmt(float(result.std[key]))}"
        rows.append((key, pooled, spread))
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    lines = [
        f"{result.n_images} image(s) evaluated, "
        f"{result.unmatched_predictions} prediction(s) without ground truth skipped"
    ]
    for name, pooled, spread in rows:
        lines.append(f"{name:<{widths[0]}}  {pooled:>{widths[1]}}  {spread}")
    return "\n".join(lines)
