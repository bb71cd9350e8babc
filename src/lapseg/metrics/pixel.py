"""Pixel-wise segmentation metrics computed from a confusion matrix.

Every measure the seed documents report is derived from one confusion matrix: accuracy,
precision, recall (= sensitivity = the "white pixel accuracy" of seed 000), specificity, F1
(= Dice), IoU (= Jaccard), error rate (``1 - accuracy``), "false white" (false-positive pixels as
a fraction of all pixels, seed 000 Table 3) and Cohen's kappa.

Two ways to summarise a dataset, both offered by :class:`MetricAccumulator`:

* **pooled**: the confusion matrices of all images are summed first and the metrics computed
  once, so every *pixel* of the dataset counts once (large images weigh more);
* **mean per image**: the metrics are computed per image and then averaged, so every *image*
  counts once (this is what seed 004 reports, with boxplots over test images).

Conventions for empty classes (``0 / 0``) are documented in :func:`binary_metrics`; no metric is
ever NaN and no warning is raised.

:func:`stemnet_measures` scores one image the way StemNet's evaluation code does (its own rules
for images without cells, error rate in percent); :meth:`MetricAccumulator.stemnet_means`
averages them over the images, as its Table 3 and learning curves report them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lapseg.metrics.measures import (
    BINARY_METRIC_KEYS,
    STEMNET_KEYS,
    binary_metrics,
    multiclass_metrics,
    stemnet_measures,
)

__all__ = [
    "BINARY_METRIC_KEYS",
    "STEMNET_KEYS",
    "MetricAccumulator",
    "binary_metrics",
    "confusion_matrix",
    "multiclass_metrics",
    "stemnet_measures",
]


def confusion_matrix(
    truth: np.ndarray,
    pred: np.ndarray,
    *,
    num_classes: int = 2,
    valid_mask: np.ndarray | None = None,
) -> np.ndarray:
    """Count pixels per (true class, predicted class) pair.

    Parameters
    ----------
    truth : (...) ndarray of int or bool
        True class index of every pixel, in ``[0, num_classes)``.
    pred : (...) ndarray of int or bool
        Predicted class index of every pixel, same shape as ``truth``.
    num_classes : int, optional
        Number of classes ``K`` (at least 2).
    valid_mask : (...) ndarray of bool, optional
        Pixels to count; pixels where it is ``False`` are ignored (e.g. padding).

    Returns
    -------
    cm : (K, K) ndarray of int64
        ``cm[i, j]`` is the number of pixels of true class ``i`` predicted as class ``j``
        (rows = truth, columns = prediction, as in scikit-learn).

    Raises
    ------
    ValueError
        If shapes differ, the arrays are not integer or boolean, a value lies outside
        ``[0, num_classes)``, or ``num_classes < 2``.
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, int | np.integer):
        raise ValueError(f"num_classes must be an integer, got {num_classes!r}")
    if num_classes < 2:
        raise ValueError(f"num_classes must be at least 2, got {num_classes}")
    truth = np.asarray(truth)
    pred = np.asarray(pred)
    if truth.shape != pred.shape:
        raise ValueError(f"truth shape {truth.shape} differs from prediction shape {pred.shape}")
    for name, arr in (("truth", truth), ("pred", pred)):
        if arr.dtype != bool and not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"{name} must hold integer class indices, got dtype {arr.dtype}")
    if valid_mask is not None:
        valid_mask = np.asarray(valid_mask)
        if valid_mask.shape != truth.shape:
            raise ValueError(
                f"valid_mask shape {valid_mask.shape} differs from truth shape {truth.shape}"
            )
        if valid_mask.dtype != bool:
            raise ValueError(f"valid_mask must be boolean, got dtype {valid_mask.dtype}")
        truth = truth[valid_mask]
        pred = pred[valid_mask]
    t = truth.ravel().astype(np.int64)
    p = pred.ravel().astype(np.int64)
    for name, flat in (("truth", t), ("pred", p)):
        if flat.size and (flat.min() < 0 or flat.max() >= num_classes):
            raise ValueError(
                f"{name} values must lie in [0, {num_classes}), "
                f"found range [{flat.min()}, {flat.max()}]"
            )
    counts = np.bincount(t * num_classes + p, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes).astype(np.int64)


class MetricAccumulator:
    """Collect confusion matrices image by image and summarise them two ways.

    Parameters
    ----------
    num_classes : int, optional
        Number of classes ``K``; 2 gives :func:`binary_metrics`, more gives
        :func:`multiclass_metrics`.

    Examples
    --------
    >>> acc = MetricAccumulator()
    >>> cm = acc.update(np.array([[0, 1]]), np.array([[0, 1]]))
    >>> acc.pooled()["dice"]
    1.0
    """

    def __init__(self, num_classes: int = 2) -> None:
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
        self.num_classes = num_classes
        self._matrices: list[np.ndarray] = []

    def __len__(self) -> int:
        return len(self._matrices)

    def _metrics(self, cm: np.ndarray) -> dict[str, Any]:
        return binary_metrics(cm) if self.num_classes == 2 else multiclass_metrics(cm)

    def update(
        self, truth: np.ndarray, pred: np.ndarray, *, valid_mask: np.ndarray | None = None
    ) -> np.ndarray:
        """Add one image; returns its ``(K, K)`` confusion matrix.

        Parameters
        ----------
        truth, pred : (Y, X) ndarray of int or bool
            Class indices in ``[0, K)`` (see :func:`confusion_matrix`).
        valid_mask : (Y, X) ndarray of bool, optional
            Pixels to count.
        """
        cm = confusion_matrix(truth, pred, num_classes=self.num_classes, valid_mask=valid_mask)
        self._matrices.append(cm)
        return cm

    def _require_images(self) -> None:
        if not self._matrices:
            raise ValueError("no image was added to the accumulator")

    @property
    def confusion(self) -> np.ndarray:
        """``(K, K)`` int64 sum of all per-image confusion matrices."""
        self._require_images()
        return np.asarray(np.sum(self._matrices, axis=0, dtype=np.int64))

    def pooled(self) -> dict[str, Any]:
        """Metrics of the summed confusion matrix: every pixel of the dataset counts once."""
        return self._metrics(self.confusion)

    def per_image(self) -> list[dict[str, Any]]:
        """Metrics of each image separately, in the order they were added."""
        self._require_images()
        return [self._metrics(cm) for cm in self._matrices]

    def stemnet_means(self) -> dict[str, float]:
        """:func:`stemnet_measures` of every image, averaged: every image counts once (binary).

        Raises
        ------
        ValueError
            With more than two classes, or before any image was added.
        """
        if self.num_classes != 2:
            raise ValueError("StemNet's measures are for two classes (background, cells)")
        self._require_images()
        rows = [stemnet_measures(cm) for cm in self._matrices]
        return {key: float(np.mean([row[key] for row in rows])) for key in STEMNET_KEYS}

    def mean_per_image(self) -> dict[str, dict[str, Any]]:
        """Average of the per-image metrics: every image counts once (seed 004 style).

        Returns
        -------
        summary : dict
            ``{"mean": {...}, "std": {...}}`` with one entry per metric key; list-valued
            metrics (per class) are averaged element-wise. ``std`` is the population standard
            deviation (``ddof=0``), so a single image gives 0.
        """
        rows = self.per_image()
        mean: dict[str, Any] = {}
        std: dict[str, Any] = {}
        for key in rows[0]:
            values = np.asarray([row[key] for row in rows], dtype=np.float64)
            m = values.mean(axis=0)
            s = values.std(axis=0)
            mean[key] = m.tolist() if m.ndim else float(m)
            std[key] = s.tolist() if s.ndim else float(s)
        return {"mean": mean, "std": std}
