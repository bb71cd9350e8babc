"""The U-Net border weight map (Ronneberger, Fischer & Brox 2015).

    w(x) = w_c(x) + w0 * exp(-(d1(x) + d2(x))^2 / (2 sigma^2))

``w_c`` balances the class frequencies, ``d1`` and ``d2`` are the Euclidean distances from
pixel ``x`` to the nearest and the second-nearest cell (instance). As in the paper's
implementations the border term is added on background pixels only, so the thin background
gaps separating touching cells get a large weight.

The distances are computed cell by cell with ``scipy.ndimage.distance_transform_edt`` on a
window around each cell's bounding box, padded by the radius beyond which the border term is
negligible (below ``_NEGLIGIBLE``); the result differs from the exact formula by less than that.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import ndimage

from lapseg.errors import LapsegInputError

__all__ = ["border_weight_map", "class_balance_map"]

_NEGLIGIBLE = 1e-4  # border terms below this absolute value are dropped


def _check_labels(labels: ArrayLike) -> NDArray[np.integer]:
    array = np.asarray(labels)
    if array.ndim != 2:
        raise LapsegInputError(f"labels must be a (Y, X) instance image, got shape {array.shape}")
    if array.dtype == bool:
        return array.astype(np.uint8)
    if not np.issubdtype(array.dtype, np.integer):
        raise LapsegInputError(f"labels must be an integer instance image, got dtype {array.dtype}")
    if array.size and array.min() < 0:
        raise LapsegInputError("labels must be >= 0 (0 is background), got negative values")
    return array


def class_balance_map(
    labels: ArrayLike, *, class_weights: str | tuple[float, float] | None = "balanced"
) -> NDArray[np.float32]:
    """The class-balancing term ``w_c`` of the border weight map.

    Parameters
    ----------
    labels : (Y, X) integer ndarray
        Instance (or binary) image, 0 = background.
    class_weights : "balanced", None or (w_background, w_foreground)
        ``"balanced"``: inverse class frequency in this image, normalised so that the majority
        class has weight 1 (the minority class gets ``n_majority / n_minority``). ``None``:
        ones. A pair: those two weights.

    Returns
    -------
    w_c : (Y, X) float32 ndarray
    """
    fg = _check_labels(labels) > 0
    if class_weights is None:
        w_bg, w_fg = 1.0, 1.0
    elif isinstance(class_weights, str):
        if class_weights != "balanced":
            raise LapsegInputError(
                f"class_weights must be 'balanced', None or a (background, foreground) pair, "
                f"got {class_weights!r}"
            )
        n_fg = int(fg.sum())
        n_bg = fg.size - n_fg
        n_max = max(n_fg, n_bg)
        w_bg = n_max / n_bg if n_bg else 1.0
        w_fg = n_max / n_fg if n_fg else 1.0
    else:
        pair = tuple(class_weights)
        if len(pair) != 2 or not all(
            isinstance(v, int | float) and 0 <= v < math.inf for v in pair
        ):
            raise LapsegInputError(
                f"class_weights must be a (background, foreground) pair of finite numbers >= 0, "
                f"got {class_weights!r}"
            )
        w_bg, w_fg = float(pair[0]), float(pair[1])
    return np.where(fg, np.float32(w_fg), np.float32(w_bg)).astype(np.float32)


def _nearest_two_distances(
    labels: NDArray[np.integer], radius: float
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Distances to the nearest and second-nearest cell, exact where <= ``radius``, else inf."""
    d1 = np.full(labels.shape, np.inf)
    d2 = np.full(labels.shape, np.inf)
    pad = math.ceil(radius)
    if labels.max() > 4 * labels.size:  # huge label values: find_objects would waste memory
        _, inverse = np.unique(labels, return_inverse=True)
        labels = inverse.reshape(labels.shape)
    for index, box in enumerate(ndimage.find_objects(labels)):
        if box is None:
            continue
        window = tuple(
            slice(max(s.start - pad, 0), min(s.stop + pad, n))
            for s, n in zip(box, labels.shape, strict=True)
        )
        outside = labels[window] != index + 1
        dist = ndimage.distance_transform_edt(outside)
        dist[dist > radius] = np.inf
        near1, near2 = d1[window], d2[window]  # views: updated in place
        np.minimum(near2, np.maximum(near1, dist), out=near2)
        np.minimum(near1, dist, out=near1)
    return d1, d2


def border_weight_map(
    labels: ArrayLike,
    *,
    w0: float = 10.0,
    sigma: float = 5.0,
    class_weights: str | tuple[float, float] | None = "balanced",
) -> NDArray[np.float32]:
    """U-Net loss weight map emphasising the background gaps between neighbouring cells.

    Parameters
    ----------
    labels : (Y, X) integer ndarray
        Instance image: 0 = background, each cell a distinct positive label.
    w0 : float
        Amplitude of the border term (the paper uses 10).
    sigma : float
        Width of the border term in pixels (the paper uses about 5).
    class_weights : "balanced", None or (w_background, w_foreground)
        The class-balancing term ``w_c``, see :func:`class_balance_map`.

    Returns
    -------
    weights : (Y, X) float32 ndarray
        ``w_c + w0 * exp(-(d1 + d2)^2 / (2 sigma^2))`` on background pixels, ``w_c`` on cell
        pixels; the border term is absent when the image holds fewer than 2 cells.

    Notes
    -----
    Distances are measured between pixel centres, so a background pixel touching a cell has
    ``d1 = 1``. Runs in well under a second for about a hundred cells on a 1024 x 1024 image.
    """
    array = _check_labels(labels)
    if not (isinstance(w0, int | float) and 0 <= w0 < math.inf):
        raise LapsegInputError(f"w0 must be a finite number >= 0, got {w0!r}")
    if not (isinstance(sigma, int | float) and 0 < sigma < math.inf):
        raise LapsegInputError(f"sigma must be a finite number > 0, got {sigma!r}")
    weights = class_balance_map(array, class_weights=class_weights)
    if w0 == 0 or np.unique(array[array > 0]).size < 2:
        return weights
    # w0 * exp(-(d1 + d2)^2 / (2 sigma^2)) < _NEGLIGIBLE once d1 + d2 > radius, and d2 <= d1 + d2
    radius = sigma * math.sqrt(2.0 * math.log(max(w0 / _NEGLIGIBLE, 1.0 + 1e-12)))
    d1, d2 = _nearest_two_distances(array, radius)
    total = d1 + d2
    border = (array == 0) & (total <= radius)
    weights[border] += (w0 * np.exp(-(total[border] ** 2) / (2.0 * sigma**2))).astype(np.float32)
    return weights
