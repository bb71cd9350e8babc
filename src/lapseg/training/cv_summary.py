"""The cross-validation summary: per-fold columns, their mean and std, a seed-004-style table.

Pure functions of the fold rows that :func:`lapseg.training.cv.run_cross_validation` collects;
the CSV and Markdown files are written there.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from lapseg.io.files import format_cell

__all__ = [
    "SUMMARY_COLUMNS",
    "TEST_METRICS",
    "best_validation_loss",
    "format_cv_markdown",
    "summarize_folds",
]

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
    rows: Sequence[Mapping[str, Any]],
    mean: Mapping[str, float],
    std: Mapping[str, float],
    *,
    tested_on: str = "the fold's held-out images",
) -> str:
    """Seed-004-style table: one column per fold plus mean and std, one row per quantity;
    ``tested_on`` says in the note below it which images the test metrics average over."""
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
        f"\nTest metrics are computed per image and averaged over {tested_on}; "
        "Mean and Std (ddof=1) are taken across folds.\n"
    )
    return "\n".join(lines) + "\n" + note
