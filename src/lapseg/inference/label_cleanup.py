"""Clean-up of instance label images: hole filling, size and border filters, and the
sequential uint16 relabelling every post-processing route ends with (:func:`finish_labels`)."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import ndimage
from skimage.segmentation import relabel_sequential

from lapseg.errors import LapsegInputError

__all__ = ["fill_label_holes", "finish_labels", "remove_border_objects", "remove_small_objects"]

_MAX_LABEL = int(np.iinfo(np.uint16).max)


def check_count(name: str, value: int, minimum: int) -> int:
    """``value`` as an int, or a one-line error unless it is an integer >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise LapsegInputError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_labels(labels: ArrayLike) -> NDArray[np.integer]:
    array = np.asarray(labels)
    if array.ndim != 2 or not np.issubdtype(array.dtype, np.integer):
        raise LapsegInputError(
            f"labels must be a (Y, X) integer image, got shape {array.shape}, dtype {array.dtype}"
        )
    if array.size and array.min() < 0:
        raise LapsegInputError("labels must be >= 0 (0 is background)")
    return array


def fill_label_holes(labels: ArrayLike) -> NDArray[np.integer]:
    """Fill background regions enclosed by a single object with that object's label.

    Parameters
    ----------
    labels : (Y, X) integer ndarray
        Instance image, 0 = background.

    Returns
    -------
    filled : (Y, X) ndarray
        A copy with the same dtype. Background enclosed jointly by several objects (the gap
        between three touching cells) stays background; other objects are never overwritten.
    """
    array = _check_labels(labels)
    out = array.copy()
    for index, box in enumerate(ndimage.find_objects(array), start=1):
        if box is None:
            continue
        window = array[box]
        holes = ndimage.binary_fill_holes(window == index) & (window == 0)
        out[box][holes] = index
    return out


def remove_small_objects(labels: ArrayLike, *, min_size: int) -> NDArray[np.integer]:
    """A copy of ``labels`` without the objects of fewer than ``min_size`` pixels."""
    array = _check_labels(labels)
    min_size = check_count("min_size", min_size, 0)
    sizes = np.bincount(array.ravel())
    small = sizes < min_size
    small[0] = False
    return np.where(small[array], 0, array).astype(array.dtype)


def remove_border_objects(labels: ArrayLike) -> NDArray[np.integer]:
    """A copy of ``labels`` without the objects touching the image border."""
    array = _check_labels(labels)
    edge = np.concatenate([array[0], array[-1], array[:, 0], array[:, -1]])
    touching = np.zeros(int(array.max(initial=0)) + 1, dtype=bool)
    touching[edge] = True
    touching[0] = False
    return np.where(touching[array], 0, array).astype(array.dtype)


def finish_labels(
    labels: NDArray[np.integer], *, min_size: int, fill_holes: bool, remove_border: bool
) -> NDArray[np.uint16]:
    """Hole filling, size filter, border filter, sequential relabelling to uint16."""
    if fill_holes:
        labels = fill_label_holes(labels)
    if min_size > 0:
        labels = remove_small_objects(labels, min_size=min_size)
    if remove_border:
        labels = remove_border_objects(labels)
    relabelled, _, _ = relabel_sequential(labels)
    if relabelled.max(initial=0) > _MAX_LABEL:
        raise LapsegInputError(
            f"{int(relabelled.max())} objects do not fit in a uint16 label image; "
            "raise min_size or split the image"
        )
    return relabelled.astype(np.uint16)
