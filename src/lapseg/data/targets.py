"""Training targets that let a network separate touching cells (seed 002's 3-class output).

From an instance label image (0 = background, one positive label per cell) :func:`three_class_target`
builds a 3-class target: 0 background, 1 cell interior, 2 cell boundary. The boundary is a band
of ``boundary_width`` pixels along the inside of every cell's outline, wherever the cell meets the
background or another cell, so two touching cells are separated by ``2 * boundary_width`` boundary
pixels and their interiors never touch. At prediction time the interiors become the seeds of the
instances (:mod:`lapseg.inference.instances`).

:func:`three_class_weight_map` is the U-Net border weight map adapted to that target: the border
term ``w0 * exp(-(d1 + d2)^2 / (2 sigma^2))`` is measured to the two nearest cell *interiors* and
added on every non-interior pixel, so the boundary pixels between close cells weigh most; the
class-balancing term balances the three classes.

:func:`distance_maps` builds the regression targets of the ``distance`` representation (cell
distance and neighbour distance, as in KIT-Sch-GE's Cell Tracking Challenge method): the network
learns the foreground as two classes plus these two maps, and instances grow from seeds where
the cell distance is high and the neighbour distance low.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import ndimage
from skimage.morphology import disk

from lapseg.data.weightmap import border_weight_map
from lapseg.errors import LapsegInputError

__all__ = [
    "BACKGROUND",
    "BOUNDARY",
    "INTERIOR",
    "REGRESSION_CHANNELS",
    "TARGET_KINDS",
    "cell_distance",
    "distance_maps",
    "neighbor_distance",
    "three_class_target",
    "three_class_weight_map",
]

BACKGROUND, INTERIOR, BOUNDARY = 0, 1, 2
"""Class indices of the 3-class target."""

TARGET_KINDS: tuple[str, ...] = ("binary", "three_class", "distance")
"""What the network learns: foreground/background, background/interior/boundary, or
background/foreground plus the cell and neighbour distances."""

REGRESSION_CHANNELS: dict[str, int] = {"distance": 2}
"""Output channels per target that regress maps in [0, 1] (read through a sigmoid, after the
softmax classes): the ``distance`` target's last two channels are the cell and neighbour
distance (:func:`distance_maps`)."""

NEIGHBOR_WINDOW = 30
"""Pixels around each cell's bounding box searched for other cells (neighbour distance)."""


def _check_labels(labels: ArrayLike) -> NDArray[np.integer]:
    array = np.asarray(labels)
    if array.ndim != 2:
        raise LapsegInputError(f"labels must be a (Y, X) instance image, got shape {array.shape}")
    if array.dtype == np.bool_:
        return array.astype(np.uint8)
    if not np.issubdtype(array.dtype, np.integer):
        raise LapsegInputError(f"labels must be an integer instance image, got dtype {array.dtype}")
    if array.size and array.min() < 0:
        raise LapsegInputError("labels must be >= 0 (0 is background), got negative values")
    return array


def _check_width(boundary_width: int) -> int:
    if (
        isinstance(boundary_width, bool)
        or not isinstance(boundary_width, int | np.integer)
        or boundary_width < 1
    ):
        raise LapsegInputError(f"boundary_width must be an integer >= 1, got {boundary_width!r}")
    return int(boundary_width)


def three_class_target(labels: ArrayLike, *, boundary_width: int = 2) -> NDArray[np.uint8]:
    """Background / interior / boundary classes from an instance label image.

    Parameters
    ----------
    labels : (Y, X) integer ndarray
        Instance image: 0 = background, each cell a distinct positive label (a bool mask is one
        cell, label 1).
    boundary_width : int, optional
        Thickness of the boundary band in pixels (>= 1). A pixel of cell ``l`` is boundary when
        a pixel of another label (another cell or the background) lies within Euclidean
        distance ``boundary_width`` of it (pixel centres; the 4-neighbours are at distance 1).

    Returns
    -------
    target : (Y, X) uint8 ndarray
        :data:`BACKGROUND` (0), :data:`INTERIOR` (1) or :data:`BOUNDARY` (2).

    Notes
    -----
    Outside the image counts as the same label as the nearest pixel inside, so a cell cut by
    the image border gets no boundary along the border. A cell thinner than about
    ``2 * boundary_width`` pixels has no interior and cannot seed an instance at prediction time;
    pick the width below the radius of the smallest cells.
    """
    array = _check_labels(labels)
    width = _check_width(boundary_width)
    target = np.zeros(array.shape, dtype=np.uint8)
    if array.size == 0:
        return target
    footprint = disk(width).astype(bool)  # x^2 + y^2 <= width^2
    # a different label within the footprint is either smaller (min filter) or larger (max filter)
    low = ndimage.minimum_filter(array, footprint=footprint, mode="nearest")
    high = ndimage.maximum_filter(array, footprint=footprint, mode="nearest")
    cell = array > 0
    target[cell] = INTERIOR
    target[cell & ((low != array) | (high != array))] = BOUNDARY
    return target


def three_class_weight_map(
    labels: ArrayLike,
    *,
    boundary_width: int = 2,
    w0: float = 10.0,
    sigma: float = 5.0,
    class_weights: str | None = "balanced",
) -> NDArray[np.float32]:
    """Loss weights for the 3-class target: class balance plus the U-Net border term.

    Parameters
    ----------
    labels : (Y, X) integer ndarray
        Instance image, 0 = background.
    boundary_width : int, optional
        As in :func:`three_class_target` (the weights must be built with the same width).
    w0, sigma : float, optional
        Amplitude and width (pixels) of the border term (the paper: 10 and about 5).
    class_weights : "balanced" or None, optional
        ``"balanced"``: each class present gets ``n_largest_class / n_class`` (the most frequent
        class weighs 1); ``None``: 1 everywhere (use it when the loss weights the classes
        itself).

    Returns
    -------
    weights : (Y, X) float32 ndarray
        ``w_c(class) + w0 * exp(-(d1 + d2)^2 / (2 sigma^2))`` where ``d1``, ``d2`` are the
        distances to the nearest and second-nearest cell interior; the border term is added on
        background and boundary pixels only, and only when at least two interiors exist.
    """
    array = _check_labels(labels)
    width = _check_width(boundary_width)
    target = three_class_target(array, boundary_width=width)
    if class_weights is None:
        weights = np.ones(array.shape, dtype=np.float32)
    elif class_weights == "balanced":
        counts = np.bincount(target.ravel(), minlength=3).astype(np.float64)
        present = counts > 0
        per_class = np.ones(3, dtype=np.float64)
        per_class[present] = counts.max() / counts[present]
        weights = per_class.astype(np.float32)[target]
    else:
        raise LapsegInputError(f"class_weights must be 'balanced' or None, got {class_weights!r}")
    if not (isinstance(w0, int | float) and 0 <= w0 < math.inf):
        raise LapsegInputError(f"w0 must be a finite number >= 0, got {w0!r}")
    if not (isinstance(sigma, int | float) and 0 < sigma < math.inf):
        raise LapsegInputError(f"sigma must be a finite number > 0, got {sigma!r}")
    interiors = np.where(target == INTERIOR, array, 0)
    # class_weights (0, 0): border_weight_map returns the border term alone (on non-interiors)
    border = border_weight_map(interiors, w0=w0, sigma=sigma, class_weights=(0.0, 0.0))
    return (weights + border).astype(np.float32)


def cell_distance(labels: ArrayLike) -> NDArray[np.float32]:
    """Distance to the cell's outline, normalised to 1 at each cell's deepest pixel.

    Parameters
    ----------
    labels : (Y, X) integer ndarray
        Instance image, 0 = background.

    Returns
    -------
    distance : (Y, X) float32 ndarray
        0 on the background; inside cell ``l`` the Euclidean distance to the nearest pixel not
        in ``l`` (other cells count as outside; the image border does not) divided by its
        maximum over ``l``, so in ``(0, 1]``.

    >>> cell_distance(np.pad(np.ones((3, 5), np.int32), 1))[1:4, 1:6]
    array([[0.5, 0.5, 0.5, 0.5, 0.5],
           [0.5, 1. , 1. , 1. , 0.5],
           [0.5, 0.5, 0.5, 0.5, 0.5]], dtype=float32)
    """
    array = _check_labels(labels)
    out = np.zeros(array.shape, np.float32)
    for index, box in enumerate(ndimage.find_objects(array), start=1):
        if box is None:
            continue
        box = tuple(slice(max(s.start - 1, 0), s.stop + 1) for s in box)
        cell = array[box] == index
        distance = ndimage.distance_transform_edt(cell)
        out[box][cell] = (distance / distance.max())[cell]
    return out


def neighbor_distance(labels: ArrayLike, *, window: int = NEIGHBOR_WINDOW) -> NDArray[np.float32]:
    """Closeness of each cell pixel to the nearest *other* cell (KIT-Sch-GE's neighbour distance).

    Parameters
    ----------
    labels : (Y, X) integer ndarray
        Instance image, 0 = background.
    window : int, optional
        Other cells are looked for within this margin around each cell's bounding box.

    Returns
    -------
    closeness : (Y, X) float32 ndarray
        Inside cell ``l``: ``(1 - d / d_max) ** 3`` clipped to [0, 1], with ``d`` the distance
        to the nearest pixel of another cell and ``d_max`` its maximum over ``l``: largest next to
        another cell, 0 at the cell's pixel farthest from any. 0 on the background and in cells
        with no other cell within the window.

    >>> labels = np.array([[1, 1, 1, 2]])
    >>> neighbor_distance(labels).round(3)
    array([[0.   , 0.037, 0.296, 0.   ]], dtype=float32)
    """
    array = _check_labels(labels)
    out = np.zeros(array.shape, np.float32)
    for index, box in enumerate(ndimage.find_objects(array), start=1):
        if box is None:
            continue
        box = tuple(slice(max(s.start - window, 0), s.stop + window) for s in box)
        crop = array[box]
        cell = crop == index
        others = (crop > 0) & ~cell
        if not others.any():
            continue
        distance = ndimage.distance_transform_edt(~others)
        d_max = max(float(distance[cell].max()), 1e-6)
        closeness = np.clip(1 - distance / d_max, 0, 1) ** 3
        out[box][cell] = np.maximum(out[box][cell], closeness[cell])
    return out


def distance_maps(labels: ArrayLike) -> NDArray[np.float32]:
    """The regression targets of the ``distance`` representation.

    Parameters
    ----------
    labels : (Y, X) integer ndarray
        Instance image, 0 = background.

    Returns
    -------
    maps : (2, Y, X) float32 ndarray
        :func:`cell_distance` and :func:`neighbor_distance`, both in [0, 1] and 0 on the
        background.
    """
    array = _check_labels(labels)
    return np.stack([cell_distance(array), neighbor_distance(array)])
