"""The Train widget's live learning curve, drawn on a matplotlib figure (no Qt here).

The widget redraws after every epoch from the history rows that
:func:`lapseg.training.trainer.fit` passes to its ``on_epoch_end`` hook (the rows of the run's
``history.csv``): losses on the left axis, a few validation measures (:data:`MEASURES`: Dice,
SEG, AP@0.5) on the right; every column stays in ``history.csv`` and the run's ``curves.png``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from matplotlib.figure import Figure

__all__ = ["MEASURES", "curve_series", "draw_learning_curves"]

MEASURES: tuple[str, ...] = ("val_dice", "val_seg", "val_ap50")
"""Validation columns drawn (when present): foreground Dice, and SEG and AP@0.5 of instances."""

Series = dict[str, tuple[list[float], list[float]]]


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def curve_series(
    history: Sequence[Mapping[str, Any]], *, measures: Sequence[str] = MEASURES
) -> tuple[Series, Series]:
    """Losses and validation measures per epoch: ``({name: (epochs, values)}, {...})``.

    Columns ending in ``_loss`` are losses; ``measures`` name the measures. Missing or
    non-finite values are left out (validation may run every few epochs).

    >>> losses, measures = curve_series([
    ...     {"epoch": 1, "train_loss": 0.9, "lr": 0.1},
    ...     {"epoch": 2, "train_loss": 0.5, "val_loss": 0.6, "val_dice": 0.7},
    ... ])
    >>> losses
    {'train_loss': ([1.0, 2.0], [0.9, 0.5]), 'val_loss': ([2.0], [0.6])}
    >>> measures
    {'val_dice': ([2.0], [0.7])}
    """
    losses: Series = {}
    shown: Series = {}
    for i, row in enumerate(history):
        epoch = float(row.get("epoch", i + 1))
        for key, value in row.items():
            if not _finite(value):
                continue
            if key.endswith("_loss"):
                target = losses
            elif key in measures:
                target = shown
            else:
                continue
            epochs, values = target.setdefault(key, ([], []))
            epochs.append(epoch)
            values.append(float(value))
    return losses, shown


def draw_learning_curves(figure: Figure, history: Sequence[Mapping[str, Any]]) -> None:
    """Clear ``figure`` and draw the curves of ``history`` (nothing yet: an empty frame)."""
    figure.clear()
    axes = figure.add_subplot(1, 1, 1)
    axes.set_xlabel("epoch")
    axes.set_ylabel("loss")
    losses, measures = curve_series(history)
    if not losses and not measures:
        axes.set_title("learning curve: waiting for the first epoch", fontsize=9)
        return
    colours = (f"C{i}" for i in range(10))  # one cycle over both axes: no repeated colour
    for name, (epochs, values) in losses.items():
        axes.plot(epochs, values, marker=".", label=name, color=next(colours))
    handles, labels = axes.get_legend_handles_labels()
    if measures:
        right = axes.twinx()
        right.set_ylabel("validation")
        right.set_ylim(0.0, 1.0)
        for name, (epochs, values) in measures.items():
            right.plot(epochs, values, marker=".", linestyle="--", label=name, color=next(colours))
        more_handles, more_labels = right.get_legend_handles_labels()
        handles, labels = handles + more_handles, labels + more_labels
    axes.legend(handles, labels, fontsize=7, loc="upper right")
    axes.set_title(f"epoch {history[-1].get('epoch', len(history))}", fontsize=9)
    figure.tight_layout()
