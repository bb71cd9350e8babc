"""From probability maps to instance label images (uint16, 0 = background).

Three routes, all pure functions of a whole-image probability map:

- :func:`instances_from_three_class` for networks trained on the 3-class target of
  :mod:`lapseg.data.targets` (background, interior, boundary): the connected components of the
  interior class are the seeds; they grow into the foreground by a watershed on
  ``1 - P(foreground)`` (scikit-image), so touching cells are split where the network sees a
  boundary.
- :func:`instances_from_distance` for networks trained on the ``distance`` target (background
  and foreground classes, then the regressed cell and neighbour distance): seeds are the
  components of ``cell - neighbour`` distance above a threshold; they grow down the cell
  distance into the foreground (KIT-Sch-GE's post-processing).
- :func:`instances_from_binary` for foreground/background networks: connected components, or
  optionally a distance-transform watershed (a classical way to split touching round cells).

Tiling: lapseg blends the tiles' outputs into one probability map of the whole image before any
of this runs (:func:`lapseg.inference.sliding_window.predict_sliding_window`), so instances are
never cut or duplicated at tile borders and no label stitching is needed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import ndimage
from skimage.feature import peak_local_max
from skimage.segmentation import watershed

from lapseg.config import PostprocessConfig
from lapseg.errors import LapsegInputError
from lapseg.inference.label_cleanup import (
    check_count,
    fill_label_holes,
    finish_labels,
    remove_border_objects,
    remove_small_objects,
)

__all__ = [
    "fill_label_holes",
    "instances_from_binary",
    "instances_from_distance",
    "instances_from_probabilities",
    "instances_from_three_class",
    "remove_border_objects",
    "remove_small_objects",
]

_CROSS = ndimage.generate_binary_structure(2, 1)  # 4-connectivity
_SQUARE = ndimage.generate_binary_structure(2, 2)  # 8-connectivity


# --------------------------------------------------------------------------- checks


def _check_threshold(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 < value < 1.0:
        raise LapsegInputError(f"{name} must be a number in (0, 1), got {value!r}")
    return float(value)


def _check_probabilities(prob: ArrayLike, ndim: int, what: str) -> NDArray[np.floating]:
    array = np.asarray(prob)
    if array.ndim != ndim or array.size == 0:
        raise LapsegInputError(f"{what}, got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.floating):
        raise LapsegInputError(f"probabilities must be floating point, got dtype {array.dtype}")
    if not np.all(np.isfinite(array)):
        raise LapsegInputError("probabilities hold NaN or infinite values")
    return array


# --------------------------------------------------------------------------- the routes


def _grow_seeds(
    seed_mask: NDArray[np.bool_],
    landscape: NDArray[np.floating],
    foreground: NDArray[np.bool_],
    *,
    min_seed_size: int,
) -> NDArray[np.integer]:
    """The 4-connected components of ``seed_mask`` (those of ``min_seed_size`` pixels and
    more) grown by a watershed of ``landscape`` (low first) within ``foreground`` and the seeds;
    foreground no seed reaches stays background."""
    seeds, _ = ndimage.label(seed_mask, structure=_CROSS)
    if min_seed_size > 0:
        seeds = remove_small_objects(seeds, min_size=min_seed_size)
    return watershed(landscape, markers=seeds, mask=foreground | (seeds > 0))


def instances_from_three_class(
    prob: ArrayLike,
    *,
    interior_threshold: float = 0.5,
    foreground_threshold: float = 0.5,
    min_size: int = 16,
    min_seed_size: int = 0,
    fill_holes: bool = True,
    remove_border: bool = False,
) -> NDArray[np.uint16]:
    """Instances from background / interior / boundary probabilities.

    Parameters
    ----------
    prob : (3, Y, X) float ndarray
        Class probabilities (softmax) in the order of :mod:`lapseg.data.targets`: background,
        interior, boundary.
    interior_threshold : float, optional
        Seeds are the 4-connected components of ``prob[1] > interior_threshold``.
    foreground_threshold : float, optional
        Cells are the pixels with ``1 - prob[0] > foreground_threshold``; seeds grow into them.
    min_size : int, optional
        Objects with fewer pixels are removed (after hole filling).
    min_seed_size : int, optional
        Seeds with fewer pixels are ignored (guards against specks of interior probability
        splitting a cell).
    fill_holes : bool, optional
        Fill background enclosed by one object
        (:func:`~lapseg.inference.label_cleanup.fill_label_holes`).
    remove_border : bool, optional
        Drop objects that touch the image border.

    Returns
    -------
    labels : (Y, X) uint16 ndarray
        0 = background, objects labelled ``1..N`` sequentially.

    Notes
    -----
    The watershed floods ``1 - P(foreground)`` from the seeds within the foreground (and the
    seeds themselves), so each foreground pixel joins the seed it is reached from along the
    most confident path; foreground regions without any seed are dropped (no interior: not a
    confident cell).
    """
    array = _check_probabilities(prob, 3, "prob must be (3, Y, X) class probabilities")
    if array.shape[0] != 3:
        raise LapsegInputError(
            f"prob must have 3 channels (background, interior, boundary), got {array.shape[0]}"
        )
    interior_threshold = _check_threshold("interior_threshold", interior_threshold)
    foreground_threshold = _check_threshold("foreground_threshold", foreground_threshold)
    min_size = check_count("min_size", min_size, 0)
    min_seed_size = check_count("min_seed_size", min_seed_size, 0)
    foreground_prob = 1.0 - array[0]
    labels = _grow_seeds(
        array[1] > interior_threshold,
        1.0 - foreground_prob,
        foreground_prob > foreground_threshold,
        min_seed_size=min_seed_size,
    )
    return finish_labels(
        labels, min_size=min_size, fill_holes=fill_holes, remove_border=remove_border
    )


def instances_from_distance(
    prob: ArrayLike,
    *,
    seed_threshold: float = 0.5,
    foreground_threshold: float = 0.5,
    min_size: int = 16,
    min_seed_size: int = 0,
    fill_holes: bool = True,
    remove_border: bool = False,
) -> NDArray[np.uint16]:
    """Instances from background / foreground probabilities and cell / neighbour distances.

    Parameters
    ----------
    prob : (4, Y, X) float ndarray
        Softmax background and foreground probabilities, then the regressed (sigmoid) cell
        distance and neighbour distance of :func:`lapseg.data.targets.distance_maps`.
    seed_threshold : float, optional
        Seeds are the 4-connected components of ``prob[2] - prob[3] > seed_threshold``: deep
        inside a cell and away from its neighbours (``postprocess.interior_threshold``).
    foreground_threshold : float, optional
        Cells are the pixels with ``1 - prob[0] > foreground_threshold``; seeds grow into them.
    min_size, min_seed_size, fill_holes, remove_border
        As in :func:`instances_from_three_class`.

    Returns
    -------
    labels : (Y, X) uint16 ndarray
        0 = background, objects labelled ``1..N`` sequentially.

    Notes
    -----
    The watershed floods the negated cell distance from the seeds within the foreground (and
    the seeds themselves), so touching cells split where the predicted distance to the outline
    is lowest; foreground regions without any seed are dropped.
    """
    array = _check_probabilities(prob, 3, "prob must be (4, Y, X) probabilities and distances")
    if array.shape[0] != 4:
        raise LapsegInputError(
            "prob must have 4 channels (background, foreground, cell distance, neighbour "
            f"distance), got {array.shape[0]}"
        )
    seed_threshold = _check_threshold("seed_threshold", seed_threshold)
    foreground_threshold = _check_threshold("foreground_threshold", foreground_threshold)
    min_size = check_count("min_size", min_size, 0)
    min_seed_size = check_count("min_seed_size", min_seed_size, 0)
    labels = _grow_seeds(
        array[2] - array[3] > seed_threshold,
        -array[2],
        1.0 - array[0] > foreground_threshold,
        min_seed_size=min_seed_size,
    )
    return finish_labels(
        labels, min_size=min_size, fill_holes=fill_holes, remove_border=remove_border
    )


def _distance_watershed(foreground: NDArray[np.bool_], min_distance: int) -> NDArray[np.int32]:
    """Split touching round objects: watershed of the negated distance transform."""
    components, n_components = ndimage.label(foreground, structure=_CROSS)
    if n_components == 0:
        return components.astype(np.int32)
    dist = ndimage.distance_transform_edt(foreground)
    peaks = peak_local_max(dist, min_distance=min_distance, labels=components, exclude_border=False)
    # a ridge of equal distances gives several peaks: one marker per flat local-maximum region
    plateau = foreground & (dist == ndimage.maximum_filter(dist, size=3))
    plateau_labels, _ = ndimage.label(plateau, structure=_SQUARE)
    hit = np.zeros(int(plateau_labels.max()) + 1, dtype=bool)
    hit[plateau_labels[tuple(peaks.T)]] = True
    hit[0] = False
    markers = np.where(hit[plateau_labels], plateau_labels, 0)
    labels = watershed(-dist, markers=markers, mask=foreground).astype(np.int32)
    leftover = foreground & (labels == 0)  # a component without a peak keeps its own label
    if leftover.any():
        extra, _ = ndimage.label(leftover, structure=_CROSS)
        labels = np.where(extra > 0, extra + labels.max(), labels).astype(np.int32)
    return labels


def instances_from_binary(
    prob: ArrayLike,
    *,
    threshold: float = 0.5,
    watershed: bool = False,
    min_distance: int = 7,
    min_size: int = 16,
    fill_holes: bool = True,
    remove_border: bool = False,
) -> NDArray[np.uint16]:
    """Instances from a foreground probability map (the binary-model baseline).

    Parameters
    ----------
    prob : (Y, X) float ndarray
        Foreground probability.
    threshold : float, optional
        Foreground is ``prob > threshold``.
    watershed : bool, optional
        False: 4-connected components of the foreground (touching cells merge). True: split
        them by a watershed of the negated Euclidean distance transform, seeded at its local
        maxima at least ``min_distance`` pixels apart.
    min_distance : int, optional
        Minimum seed distance in pixels (about the radius of the smallest cells).
    min_size, fill_holes, remove_border
        As in :func:`instances_from_three_class`.

    Returns
    -------
    labels : (Y, X) uint16 ndarray
        0 = background, objects labelled ``1..N`` sequentially.
    """
    array = _check_probabilities(prob, 2, "prob must be a (Y, X) foreground probability map")
    threshold = _check_threshold("threshold", threshold)
    min_distance = check_count("min_distance", min_distance, 1)
    min_size = check_count("min_size", min_size, 0)
    foreground = array > threshold
    if watershed:
        labels = _distance_watershed(foreground, min_distance)
    else:
        labels, _ = ndimage.label(foreground, structure=_CROSS)
    return finish_labels(
        labels, min_size=min_size, fill_holes=fill_holes, remove_border=remove_border
    )


def instances_from_probabilities(
    prob: ArrayLike,
    config: PostprocessConfig,
    *,
    threshold: float = 0.5,
    object_area: float | None = None,
) -> NDArray[np.uint16]:
    """Instances from a model's ``(K, Y, X)`` probabilities, by the number of channels.

    Parameters
    ----------
    prob : (K, Y, X) float ndarray
        ``K == 3``: background / interior / boundary (:func:`instances_from_three_class`).
        ``K == 4``: background / foreground / cell distance / neighbour distance
        (:func:`instances_from_distance`, ``interior_threshold`` as the seed threshold).
        ``K == 1`` (sigmoid foreground) or ``K == 2`` (softmax background / foreground):
        :func:`instances_from_binary` on the foreground channel.
    config : PostprocessConfig
        ``remove_border: auto`` (not yet decided by training, see
        :func:`lapseg.data.tasks.border_convention`) keeps border objects.
    threshold : float, optional
        Foreground threshold of binary models (the run's fixed, Otsu or tuned threshold).
    object_area : float, optional
        Median object area (pixels) of the training masks; with the config's fractions it
        raises ``min_size`` and ``min_seed_size`` to the scale of the objects.

    Returns
    -------
    labels : (Y, X) uint16 ndarray
    """
    array = _check_probabilities(prob, 3, "prob must be (K, Y, X) class probabilities")
    min_size, min_seed_size = config.min_size, config.min_seed_size
    if object_area is not None and object_area > 0:
        min_size = max(min_size, int(config.min_size_fraction * object_area))
        min_seed_size = max(min_seed_size, int(config.min_seed_fraction * object_area))
    common: dict[str, Any] = {
        "min_size": min_size,
        "fill_holes": config.fill_holes,
        "remove_border": config.remove_border is True,
    }
    if array.shape[0] == 3:
        return instances_from_three_class(
            array,
            interior_threshold=config.interior_threshold,
            foreground_threshold=config.foreground_threshold,
            min_seed_size=min_seed_size,
            **common,
        )
    if array.shape[0] == 4:
        return instances_from_distance(
            array,
            seed_threshold=config.interior_threshold,
            foreground_threshold=config.foreground_threshold,
            min_seed_size=min_seed_size,
            **common,
        )
    if array.shape[0] in (1, 2):
        return instances_from_binary(
            array[-1],
            threshold=threshold,
            watershed=config.watershed,
            min_distance=config.min_distance,
            **common,
        )
    raise LapsegInputError(
        f"instances need 1, 2 (foreground), 3 (background, interior, boundary) or 4 "
        f"(background, foreground, cell and neighbour distance) probability channels, got "
        f"{array.shape[0]}"
    )
