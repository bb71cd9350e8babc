"""Figures for evaluation and training reports, written as PNG files.

Matplotlib is used through the object API (:class:`matplotlib.figure.Figure` with an explicit
:class:`~matplotlib.backends.backend_agg.FigureCanvasAgg`), never through ``pyplot``, so no
global backend or figure state is touched and the functions are safe in headless jobs and
threads. Every file is written atomically.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import imageio.v3 as iio
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from skimage.segmentation import find_boundaries

from lapseg.io.files import atomic_output
from lapseg.metrics.evaluate import BOX_METRICS, EvaluationResult

TRUTH_COLOUR = (255, 255, 0)
"""RGB colour of the ground-truth contour in overlays (yellow, seed 004 Fig. 5.5)."""
PRED_COLOUR = (255, 0, 0)
"""RGB colour of the predicted contour in overlays (red, seed 004 Fig. 5.5)."""


def _save_figure(fig: Figure, path: str | Path, *, dpi: int = 100) -> Path:
    path = Path(path)
    FigureCanvasAgg(fig)  # attaches the Agg canvas to this figure only
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    return path


def _as_float(value: Any) -> float:
    """A metric value as float; missing, ``None`` or non-numeric values become NaN."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def save_boxplots(
    per_image: Sequence[Mapping[str, Any]], metrics: Sequence[str], path: str | Path
) -> Path:
    """One box per metric over images, with every image drawn as a point (seed 004 Fig. 5.3).

    Parameters
    ----------
    per_image : sequence of dict
        One dictionary of metric values per image (e.g. ``EvaluationResult.per_image``).
    metrics : sequence of str
        Metric keys to draw, left to right. NaN values are left out of their box.
    path : str or Path
        Output PNG file.

    Returns
    -------
    path : Path
        The written file.

    Raises
    ------
    ValueError
        If ``per_image`` or ``metrics`` is empty, or a metric is missing from every image.
    """
    if not per_image:
        raise ValueError("per_image is empty: nothing to plot")
    if not metrics:
        raise ValueError("metrics is empty: name at least one metric to plot")
    data = []
    for key in metrics:
        if all(key not in row for row in per_image):
            available = sorted({k for row in per_image for k in row})
            raise ValueError(f"metric {key!r} not found; available: {', '.join(available)}")
        values = np.array([_as_float(row.get(key)) for row in per_image])
        data.append(values[np.isfinite(values)])

    fig = Figure(figsize=(1.3 * len(metrics) + 1.5, 4.0))
    ax = fig.add_subplot()
    positions = np.arange(1, len(metrics) + 1)
    nonempty = [i for i, d in enumerate(data) if d.size]
    if nonempty:
        ax.boxplot(
            [data[i] for i in nonempty],
            positions=positions[nonempty],
            widths=0.5,
            showfliers=False,  # every point is drawn below, outliers included
        )
    for pos, values in zip(positions, data, strict=True):
        # deterministic spread so points do not hide each other (no randomness needed)
        offsets = np.linspace(-0.12, 0.12, values.size) if values.size > 1 else np.zeros(1)
        ax.scatter(pos + offsets[: values.size], values, s=14, alpha=0.7, color="tab:blue")
    ax.set_xticks(positions)
    ax.set_xticklabels(list(metrics))
    ax.set_xlim(0.4, len(metrics) + 0.6)
    ax.set_ylabel("value per image")
    ax.set_title(f"{len(per_image)} images")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return _save_figure(fig, path)


def _series(history: Sequence[Mapping[str, Any]], key: str) -> np.ndarray:
    return np.array([_as_float(row.get(key)) for row in history])


def save_learning_curves(
    history: Sequence[Mapping[str, Any]],
    path: str | Path,
    *,
    loss_keys: Sequence[str] = ("train_loss", "val_loss"),
    metric_keys: Sequence[str] = ("val_dice",),
    stage_key: str = "stage",
) -> Path:
    """Loss (left panel) and metrics (right panel) per epoch, with curriculum stage changes.

    Parameters
    ----------
    history : sequence of dict
        One row per epoch (as in ``history.csv``); the x axis is the ``"epoch"`` value when
        present, else ``1, 2, ...``. Keys missing from a row and NaN values are gaps.
    path : str or Path
        Output PNG file.
    loss_keys, metric_keys : sequence of str, optional
        Columns drawn in the loss and metric panels; a column absent from every row (or all
        NaN) is skipped, and a panel with nothing to draw is left out.
    stage_key : str, optional
        Column holding the curriculum stage; a dashed vertical line marks each change.

    Returns
    -------
    path : Path
        The written file.

    Raises
    ------
    ValueError
        If ``history`` is empty or none of the requested columns holds a finite value.
    """
    if not history:
        raise ValueError("history is empty: nothing to plot")
    if all("epoch" in row for row in history):
        x = _series(history, "epoch")
    else:
        x = np.arange(1, len(history) + 1, dtype=np.float64)

    panels = []
    for title, keys in (("loss", loss_keys), ("metric", metric_keys)):
        lines = [(k, _series(history, k)) for k in keys]
        lines = [(k, y) for k, y in lines if np.isfinite(y).any()]
        if lines:
            panels.append((title, lines))
    if not panels:
        wanted = ", ".join([*loss_keys, *metric_keys])
        raise ValueError(f"history has no finite values for any of: {wanted}")

    stages = [row.get(stage_key) for row in history]
    changes = [
        (x[i - 1] + x[i]) / 2.0
        for i in range(1, len(stages))
        if stages[i] is not None and stages[i - 1] is not None and stages[i] != stages[i - 1]
    ]

    fig = Figure(figsize=(5.0 * len(panels), 4.0))
    for index, (title, lines) in enumerate(panels, start=1):
        ax = fig.add_subplot(1, len(panels), index)
        for key, y in lines:
            ax.plot(x, y, marker="o", markersize=3, label=key)
        for position in changes:
            ax.axvline(position, linestyle="--", color="grey", linewidth=1)
        ax.set_xlabel("epoch")
        ax.set_ylabel(title)
        ax.grid(alpha=0.3)
        ax.legend()
    if changes:
        fig.suptitle(f"dashed lines: change of {stage_key!r}", fontsize=9)
    fig.tight_layout()
    return _save_figure(fig, path)


def _to_grey_uint8(image: np.ndarray) -> np.ndarray:
    """Stretch the 0.5-99.5 percentile range of ``image`` to 0-255 (NaN -> 0)."""
    finite = image[np.isfinite(image)]
    if finite.size == 0:
        return np.zeros(image.shape, dtype=np.uint8)
    lo, hi = np.percentile(finite, (0.5, 99.5))
    if hi <= lo:
        hi = lo + 1.0
    scaled = np.clip((np.nan_to_num(image, nan=lo) - lo) / (hi - lo), 0.0, 1.0)
    return np.round(scaled * 255.0).astype(np.uint8)


def overlay_rgb(image: np.ndarray, truth: np.ndarray | None, pred: np.ndarray) -> np.ndarray:
    """Grey image with the truth contour in yellow and the prediction contour in red.

    Parameters
    ----------
    image : (Y, X) ndarray of float
        Intensity image, contrast-stretched to its 0.5-99.5 percentiles.
    truth : (Y, X) ndarray of int or bool, or None
        Ground-truth mask (binary or labels); ``None`` draws the prediction only.
    pred : (Y, X) ndarray of int or bool
        Predicted mask (binary or labels).

    Returns
    -------
    rgb : (Y, X, 3) ndarray of uint8
        Contours are the inner boundaries of each labelled region
        (:func:`skimage.segmentation.find_boundaries`, ``mode="inner"``); the prediction is
        drawn on top where both contours meet.

    Raises
    ------
    ValueError
        If an array is not 2-D or the shapes differ.
    """
    image = np.asarray(image, dtype=np.float64)
    pred = np.asarray(pred)
    if image.ndim != 2:
        raise ValueError(f"image must be (Y, X), got shape {image.shape}")
    masks = [("pred", pred)] if truth is None else [("truth", np.asarray(truth)), ("pred", pred)]
    for name, mask in masks:
        if mask.shape != image.shape:
            raise ValueError(f"{name} shape {mask.shape} differs from image shape {image.shape}")
    rgb = np.repeat(_to_grey_uint8(image)[..., None], 3, axis=-1)
    for name, mask in masks:
        labels = mask.astype(np.int64) if mask.dtype == bool else mask
        edges = find_boundaries(labels, mode="inner")
        rgb[edges] = TRUTH_COLOUR if name == "truth" else PRED_COLOUR
    return rgb


def save_overlay(
    image: np.ndarray, truth: np.ndarray | None, pred: np.ndarray, path: str | Path
) -> Path:
    """Write :func:`overlay_rgb` as a PNG at the image's own resolution (1 pixel = 1 pixel).

    Parameters
    ----------
    image : (Y, X) ndarray of float
        Intensity image.
    truth : (Y, X) ndarray of int or bool, or None
        Ground-truth mask, contour drawn in yellow.
    pred : (Y, X) ndarray of int or bool
        Predicted mask, contour drawn in red.
    path : str or Path
        Output file (PNG).

    Returns
    -------
    path : Path
        The written file.
    """
    rgb = overlay_rgb(image, truth, pred)
    path = Path(path)
    with atomic_output(path) as tmp:
        iio.imwrite(tmp, rgb, extension=".png")
    return path


def grey_rgb(image: np.ndarray) -> np.ndarray:
    """A ``(Y, X)`` intensity image as grey ``(Y, X, 3)`` uint8, 0.5-99.5 percentile stretch."""
    grey = _to_grey_uint8(np.asarray(image, dtype=np.float64))
    return np.repeat(grey[..., None], 3, axis=-1)


def heatmap_rgb(probability: np.ndarray, *, cmap: str = "magma") -> np.ndarray:
    """A ``(Y, X)`` probability map in [0, 1] as ``(Y, X, 3)`` uint8 through a colour map.

    Values are clipped to [0, 1] (not stretched), so the colours of different images compare;
    NaN is drawn as 0.
    """
    from matplotlib import colormaps

    values = np.clip(np.nan_to_num(np.asarray(probability, dtype=np.float64), nan=0.0), 0, 1)
    rgba = colormaps[cmap](values, bytes=True)
    return np.ascontiguousarray(rgba[..., :3])


def save_evaluation_boxplots(result: EvaluationResult, out_dir: str | Path) -> Path:
    """``out_dir/boxplots.png``: one box per main metric (:data:`BOX_METRICS`) over the images
    of an evaluation (:func:`lapseg.metrics.evaluate.evaluate_folders`)."""
    metrics = [m for m in BOX_METRICS if m in result.mean]
    return save_boxplots(result.per_image, metrics, Path(out_dir) / "boxplots.png")
