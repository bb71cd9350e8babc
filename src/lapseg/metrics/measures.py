"""Pixel measures of one confusion matrix: binary, StemNet's per-image rules, multi-class.

Conventions for empty classes (``0 / 0``) are documented in :func:`binary_metrics`; no measure
is ever NaN and no warning is raised. :mod:`lapseg.metrics.pixel` builds the confusion matrices
and summarises datasets (and re-exports these functions).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "BINARY_METRIC_KEYS",
    "STEMNET_KEYS",
    "binary_metrics",
    "multiclass_metrics",
    "stemnet_measures",
]


BINARY_METRIC_KEYS: tuple[str, ...] = (
    "accuracy",
    "precision",
    "recall",
    "specificity",
    "f1",
    "dice",
    "iou",
    "error_rate",
    "false_white",
    "white_pixel_accuracy",
    "cohen_kappa",
    "tp",
    "fp",
    "fn",
    "tn",
)
"""Keys of the dictionary returned by :func:`binary_metrics`, in a stable order."""


def _ratio(num: float, den: float, *, empty: float) -> float:
    """``num / den``, or ``empty`` when ``den == 0``."""
    return float(num) / float(den) if den else empty


def _check_cm(cm: np.ndarray, *, square_of: int | None = None) -> np.ndarray:
    cm = np.asarray(cm)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1] or cm.shape[0] < 2:
        raise ValueError(f"confusion matrix must be square (K, K) with K >= 2, got {cm.shape}")
    if square_of is not None and cm.shape[0] != square_of:
        raise ValueError(f"expected a {square_of}x{square_of} confusion matrix, got {cm.shape}")
    if not np.issubdtype(cm.dtype, np.integer) or (cm < 0).any():
        raise ValueError("confusion matrix must hold non-negative integer counts")
    if cm.sum() == 0:
        raise ValueError("confusion matrix is empty (no pixels counted)")
    return cm.astype(np.int64)


def _kappa(cm: np.ndarray) -> float:
    """Cohen's kappa of a (K, K) confusion matrix; 1.0 when chance agreement is already 1."""
    n = float(cm.sum())
    observed = float(np.trace(cm)) / n
    rows = cm.sum(axis=1).astype(np.float64)
    cols = cm.sum(axis=0).astype(np.float64)
    expected = float(rows @ cols) / (n * n)
    if expected >= 1.0:  # both truth and prediction are one and the same single class
        return 1.0
    return (observed - expected) / (1.0 - expected)


def binary_metrics(cm: np.ndarray) -> dict[str, float]:
    """All binary pixel metrics from a 2x2 confusion matrix (class 1 = foreground).

    Parameters
    ----------
    cm : (2, 2) ndarray of int
        Confusion matrix from :func:`confusion_matrix` (rows = truth, columns = prediction), so
        ``tn, fp, fn, tp = cm.ravel()``.

    Returns
    -------
    metrics : dict of str to float
        Keys :data:`BINARY_METRIC_KEYS`: ``accuracy = (tp + tn) / n``,
        ``precision = tp / (tp + fp)``, ``recall = tp / (tp + fn)`` (also returned as
        ``white_pixel_accuracy``, seed 000), ``specificity = tn / (tn + fp)``,
        ``f1 = dice = 2 tp / (2 tp + fp + fn)``, ``iou = tp / (tp + fp + fn)``,
        ``error_rate = 1 - accuracy``, ``false_white = fp / n``, ``cohen_kappa`` and the raw
        counts ``tp, fp, fn, tn`` (as ``int``).

    Notes
    -----
    Conventions when a ratio is ``0 / 0`` (no NaN, no warning):

    * truth and prediction both have **no foreground** (``tp = fp = fn = 0``): precision,
      recall, f1, dice and iou are ``1.0`` (a perfect answer to an empty image);
    * only one side is empty: the undefined ratio is ``0.0`` (prediction empty but truth not:
      precision ``0.0``; truth empty but prediction not: recall ``0.0``); f1, dice and iou are
      then ``0.0`` by their formulas;
    * the same rule for the background: specificity is ``1.0`` when neither truth nor
      prediction has background pixels and ``0.0`` when only the truth has none;
    * ``cohen_kappa`` is ``1.0`` when truth and prediction are both entirely one same class
      (chance agreement 1).

    Raises
    ------
    ValueError
        If ``cm`` is not a 2x2 matrix of non-negative integer counts with at least one pixel.
    """
    cm = _check_cm(cm, square_of=2)
    tn, fp, fn, tp = (int(v) for v in cm.ravel())
    n = tn + fp + fn + tp
    no_fg = tp + fp + fn == 0
    no_bg = tn + fp + fn == 0
    accuracy = (tp + tn) / n
    recall = _ratio(tp, tp + fn, empty=1.0 if no_fg else 0.0)
    dice = _ratio(2 * tp, 2 * tp + fp + fn, empty=1.0)
    return {
        "accuracy": accuracy,
        "precision": _ratio(tp, tp + fp, empty=1.0 if no_fg else 0.0),
        "recall": recall,
        "specificity": _ratio(tn, tn + fp, empty=1.0 if no_bg else 0.0),
        "f1": dice,
        "dice": dice,
        "iou": _ratio(tp, tp + fp + fn, empty=1.0),
        "error_rate": (fp + fn) / n,
        "false_white": fp / n,
        "white_pixel_accuracy": recall,
        "cohen_kappa": _kappa(cm),
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
    }


STEMNET_KEYS: tuple[str, ...] = (
    "error_rate",
    "f1",
    "false_white",
    "white_pixel_accuracy",
    "precision",
    "recall",
    "accuracy",
    "false_white_pixels",
)
"""Keys of :func:`stemnet_measures`: Table 3's four measures first, then the others its code
prints."""


def stemnet_measures(cm: np.ndarray) -> dict[str, float]:
    """One image's measures as StemNet's evaluation code computes them (class 1 = cells).

    Parameters
    ----------
    cm : (2, 2) ndarray of int
        The image's confusion matrix (rows = truth, columns = prediction).

    Returns
    -------
    measures : dict of str to float
        Keys :data:`STEMNET_KEYS`:

        * ``error_rate``: misclassified pixels in **percent**, ``100 (fp + fn) / n``;
        * ``precision``: ``tp / (tp + fp)``, **0** when no pixel is predicted white;
        * ``recall``: ``tp / (tp + fn)``, **0** when the image has no white pixel;
        * ``f1``: ``2 P R / (P + R)``, **0** when precision or recall is 0 (so an image without
          cells scores F1 = 0 however it is predicted);
        * ``accuracy``: ``(tp + tn) / n``;
        * ``white_pixel_accuracy``: white pixels predicted white over white pixels, **1** when
          the image has no white pixel;
        * ``false_white``: pixels wrongly predicted white as a fraction of the image,
          ``fp / n`` (Table 3's scale), and ``false_white_pixels``: their count ``fp`` (what
          the code prints).

    Examples
    --------
    >>> m = stemnet_measures(np.array([[6, 1], [0, 0]]))  # no cells; one false white pixel
    >>> m["recall"], m["f1"], m["white_pixel_accuracy"], m["false_white_pixels"]
    (0.0, 0.0, 1.0, 1.0)
    """
    cm = _check_cm(cm, square_of=2)
    tn, fp, fn, tp = (int(v) for v in cm.ravel())
    n = tn + fp + fn + tp
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision and recall else 0.0
    return {
        "error_rate": 100.0 * (fp + fn) / n,
        "f1": f1,
        "false_white": fp / n,
        "white_pixel_accuracy": tp / (tp + fn) if tp + fn else 1.0,
        "precision": precision,
        "recall": recall,
        "accuracy": (tp + tn) / n,
        "false_white_pixels": float(fp),
    }


def multiclass_metrics(cm: np.ndarray) -> dict[str, Any]:
    """Per-class and macro-averaged metrics from a (K, K) confusion matrix.

    Each class ``k`` is scored one-vs-rest with the same empty-class conventions as
    :func:`binary_metrics` (``1.0`` when class ``k`` is absent from truth and prediction).

    Parameters
    ----------
    cm : (K, K) ndarray of int
        Confusion matrix (rows = truth, columns = prediction), class 0 = background.

    Returns
    -------
    metrics : dict
        ``precision_per_class``, ``recall_per_class``, ``f1_per_class``, ``iou_per_class``:
        lists of ``K`` floats (index = class, background included); ``precision``, ``recall``,
        ``f1``, ``dice`` (= ``f1``), ``iou``: unweighted (macro) means over the foreground
        classes ``1 .. K-1``; ``accuracy`` (fraction of pixels with the right class),
        ``error_rate`` (``1 - accuracy``) and ``cohen_kappa`` (multi-class kappa).

    Raises
    ------
    ValueError
        If ``cm`` is not a square matrix of non-negative integer counts with at least one pixel.
    """
    cm = _check_cm(cm)
    n = int(cm.sum())
    tp = np.diag(cm)
    fp = cm.sum(axis=0) - tp
    fn = cm.sum(axis=1) - tp
    per: dict[str, list[float]] = {"precision": [], "recall": [], "f1": [], "iou": []}
    for k in range(cm.shape[0]):
        t, f_p, f_n = int(tp[k]), int(fp[k]), int(fn[k])
        absent = t + f_p + f_n == 0
        per["precision"].append(_ratio(t, t + f_p, empty=1.0 if absent else 0.0))
        per["recall"].append(_ratio(t, t + f_n, empty=1.0 if absent else 0.0))
        per["f1"].append(_ratio(2 * t, 2 * t + f_p + f_n, empty=1.0))
        per["iou"].append(_ratio(t, t + f_p + f_n, empty=1.0))
    accuracy = float(np.trace(cm)) / n
    out: dict[str, Any] = {"accuracy": accuracy, "error_rate": 1.0 - accuracy}
    for key in ("precision", "recall", "f1", "iou"):
        out[key] = float(np.mean(per[key][1:]))
    out["dice"] = out["f1"]
    out["cohen_kappa"] = _kappa(cm)
    for key, values in per.items():
        out[f"{key}_per_class"] = values
    return out
