"""Class weights for the cross-entropy from the pixel frequencies of training masks.

Workflow: ``counts = class_pixel_counts(masks, num_classes=K)`` streams over the training masks
once (only the ``(n_images, K)`` table is kept), then one of the weighting rules turns the table
into a ``(K,)`` float64 weight vector for :func:`lapseg.losses.functional.cross_entropy`.

Classes without any pixel in the training set get weight 0 under every rule: they never occur
as a target, so their weight has no effect on the loss, and a finite value keeps configs
serialisable. A table without any pixel at all is an error.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from lapseg.errors import LapsegInputError

__all__ = [
    "class_pixel_counts",
    "inverse_frequency_weights",
    "median_frequency_weights",
    "total_ratio_weights",
]


def class_pixel_counts(masks: Iterable[ArrayLike], *, num_classes: int) -> NDArray[np.int64]:
    """Count the pixels of each class in each mask.

    Parameters
    ----------
    masks : iterable of (Y, X) integer or bool ndarray
        Target masks with values in ``[0, num_classes)``; consumed once (a generator that
        reads files one by one is fine).
    num_classes : int
        Number of classes K (2 for a binary foreground / background mask).

    Returns
    -------
    counts : (n_images, K) int64 ndarray
        ``counts[i, k]`` is the number of pixels of class ``k`` in mask ``i``.

    Raises
    ------
    LapsegInputError
        A mask that is not 2-D or not integer, holds values outside ``[0, K)``, or no masks.
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, int | np.integer):
        raise LapsegInputError(f"num_classes must be an integer >= 2, got {num_classes!r}")
    if num_classes < 2:
        raise LapsegInputError(f"num_classes must be >= 2, got {num_classes}")
    rows: list[NDArray[np.int64]] = []
    for index, mask in enumerate(masks):
        mask = np.asarray(mask)
        where = f"mask #{index}"
        if mask.ndim != 2:
            raise LapsegInputError(f"{where}: expected a (Y, X) mask, got shape {mask.shape}")
        if mask.dtype == bool:
            mask = mask.astype(np.uint8)
        if not np.issubdtype(mask.dtype, np.integer):
            raise LapsegInputError(f"{where}: expected integer class indices, got {mask.dtype}")
        if mask.size and (mask.min() < 0 or mask.max() >= num_classes):
            raise LapsegInputError(
                f"{where}: class values must lie in [0, {num_classes}), "
                f"got values in [{mask.min()}, {mask.max()}]"
            )
        rows.append(np.bincount(mask.ravel(), minlength=num_classes).astype(np.int64))
    if not rows:
        raise LapsegInputError("no masks given: cannot compute class pixel counts")
    return np.stack(rows)


def _check_counts(counts: ArrayLike) -> NDArray[np.float64]:
    """Validate an (n_images, K) count table; return it as float64."""
    array = np.asarray(counts)
    if array.ndim != 2 or array.shape[0] < 1 or array.shape[1] < 2:
        raise LapsegInputError(
            f"class counts must be an (n_images, K) table with K >= 2, got shape {array.shape}"
        )
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        raise LapsegInputError(f"class counts must be numbers, got dtype {array.dtype}")
    if not np.all(np.isfinite(array)) or np.any(array < 0):
        raise LapsegInputError("class counts must be finite and >= 0")
    if array.sum() == 0:
        raise LapsegInputError("class counts are all zero: the masks hold no pixels")
    return array.astype(np.float64)


def _ratio_or_zero(
    numerator: float | NDArray[np.float64], denominator: NDArray[np.float64]
) -> NDArray[np.float64]:
    """``numerator / denominator`` with 0 where the denominator is 0."""
    numerator = np.broadcast_to(np.asarray(numerator, dtype=np.float64), denominator.shape)
    out = np.zeros(denominator.shape, dtype=np.float64)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def median_frequency_weights(
    counts: ArrayLike, *, definition: Literal["stemnet", "eigen"] = "stemnet"
) -> NDArray[np.float64]:
    """Median-frequency class balancing.

    Parameters
    ----------
    counts : (n_images, K) array
        Per-image class pixel counts from :func:`class_pixel_counts`.
    definition : {"stemnet", "eigen"}
        ``"stemnet"`` (seed 000's ``get_freq_median``, generalised to K classes):
        ``freq_med`` is the median of *all* per-image class counts (every image contributes
        one count per class, zeros included) and ``weight_k = freq_med / total_k``, with
        ``total_k`` the class's pixel count over the training set. The weights are therefore
        tiny numbers (counts over totals); only their ratios matter for a normalised loss.

        ``"eigen"`` (Eigen & Fergus 2015): ``freq_k = total_k / P_k`` with ``P_k`` the number of
        pixels of the images in which class ``k`` occurs, and
        ``weight_k = median_k(freq_k) / freq_k`` (median over the classes that occur).

    Returns
    -------
    weights : (K,) float64 ndarray
        0 for classes that never occur.
    """
    table = _check_counts(counts)
    totals = table.sum(axis=0)
    if definition == "stemnet":
        return _ratio_or_zero(float(np.median(table)), totals)
    if definition == "eigen":
        image_pixels = table.sum(axis=1, keepdims=True)
        present_pixels = np.where(table > 0, image_pixels, 0.0).sum(axis=0)
        freq = _ratio_or_zero(totals, present_pixels)
        return _ratio_or_zero(float(np.median(freq[totals > 0])), freq)
    raise LapsegInputError(
        f"unknown median-frequency definition {definition!r}; valid: 'stemnet', 'eigen'"
    )


def total_ratio_weights(counts: ArrayLike) -> NDArray[np.float64]:
    """Largest class total over each class total (seed 000's ``get_weight``).

    For two classes the minority class gets ``total_majority / total_minority`` and the
    majority class 1; for K classes ``weight_k = max_j total_j / total_k``.

    Parameters
    ----------
    counts : (n_images, K) array
        Per-image class pixel counts from :func:`class_pixel_counts`.

    Returns
    -------
    weights : (K,) float64 ndarray
        >= 1 for occurring classes, 0 for classes that never occur.
    """
    totals = _check_counts(counts).sum(axis=0)
    return _ratio_or_zero(float(totals.max()), totals)


def inverse_frequency_weights(counts: ArrayLike) -> NDArray[np.float64]:
    """Inverse class frequency, normalised to average 1 over the occurring classes.

    ``weight_k = c / total_k`` with ``c`` chosen so that the mean weight over the classes that
    occur is 1.

    Parameters
    ----------
    counts : (n_images, K) array
        Per-image class pixel counts from :func:`class_pixel_counts`.

    Returns
    -------
    weights : (K,) float64 ndarray
        0 for classes that never occur.
    """
    totals = _check_counts(counts).sum(axis=0)
    inverse = _ratio_or_zero(1.0, totals)
    return inverse / inverse[totals > 0].mean()
