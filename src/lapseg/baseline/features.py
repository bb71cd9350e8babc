"""Per-pixel features for the random-forest baseline, as ilastik computes them.

For every channel and every scale ``sigma`` (ilastik's defaults: 0.7, 1.0, 1.6, 3.5, 5.0, 10.0):

=========================== ================================================================
feature                     definition
=========================== ================================================================
``gauss``                   Gaussian smoothing
``gradmag``                 Gaussian gradient magnitude
``log``                     Laplacian of Gaussian
``dog``                     difference of Gaussians ``G(sigma) - G(0.66 sigma)``
``hessian_eig1/2``          eigenvalues of the Hessian of Gaussian, largest first
``structure_eig1/2``        eigenvalues of the structure tensor (gradients at ``sigma``,
                            products smoothed at ``sigma / 2``), largest first
=========================== ================================================================

plus, once per channel, the Sobel edge magnitude of the unsmoothed image (the edge enhancement
of seed 001). All filters use :mod:`scipy.ndimage` with ``mode="reflect"`` and kernels truncated
at :data:`TRUNCATE` standard deviations, so a feature at a pixel depends only on pixels within
:func:`feature_halo` of it: features computed tile by tile with that halo equal the features of
the whole image, which keeps memory bounded on large images (:func:`iter_feature_tiles`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np
from scipy import ndimage as ndi

from lapseg.config import DEFAULT_SIGMAS
from lapseg.errors import LapsegInputError

__all__ = [
    "DEFAULT_SIGMAS",
    "PER_SCALE_FEATURES",
    "TRUNCATE",
    "compute_features",
    "feature_halo",
    "feature_names",
    "iter_feature_tiles",
]

TRUNCATE: float = 3.0
"""Gaussian kernels are cut at this many standard deviations."""

PER_SCALE_FEATURES: tuple[str, ...] = (
    "gauss",
    "gradmag",
    "log",
    "dog",
    "hessian_eig1",
    "hessian_eig2",
    "structure_eig1",
    "structure_eig2",
)
"""Feature names computed at every scale, in output order."""

_DOG_RATIO = 0.66  # ilastik's ratio of the inner Gaussian of the difference of Gaussians
_STRUCTURE_OUTER = 0.5  # outer (smoothing) scale of the structure tensor, relative to sigma


def _radius(sigma: float) -> int:
    """Kernel radius scipy uses for ``sigma`` and :data:`TRUNCATE`."""
    return int(TRUNCATE * float(sigma) + 0.5)


def check_sigmas(sigmas: Sequence[float]) -> tuple[float, ...]:
    """Validated scales as a tuple of positive finite floats (at least one)."""
    try:
        values = tuple(float(s) for s in sigmas)
    except (TypeError, ValueError):
        raise LapsegInputError(f"feature sigmas must be numbers, got {sigmas!r}") from None
    if not values or not all(math.isfinite(s) and s > 0 for s in values):
        raise LapsegInputError(f"feature sigmas must be positive numbers, got {list(sigmas)}")
    return values


def feature_halo(sigmas: Sequence[float] = DEFAULT_SIGMAS) -> int:
    """Pixels of context a feature needs on each side (the tile halo).

    The deepest filter chain is the structure tensor: a Gaussian derivative at ``sigma`` then
    smoothing at ``sigma / 2``; Sobel needs 1 pixel.
    """
    values = check_sigmas(sigmas)
    return max(max(_radius(s) + _radius(_STRUCTURE_OUTER * s) for s in values), 1)


def feature_names(n_channels: int, sigmas: Sequence[float] = DEFAULT_SIGMAS) -> list[str]:
    """Names of the rows of :func:`compute_features`, e.g. ``"c0_gauss_s1.6"``."""
    values = check_sigmas(sigmas)
    names: list[str] = []
    for c in range(n_channels):
        names.extend(f"c{c}_{f}_s{s:g}" for s in values for f in PER_SCALE_FEATURES)
        names.append(f"c{c}_sobel")
    return names


def _eig2x2(a: np.ndarray, b: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (largest first) of the symmetric matrices ``[[a, b], [b, d]]``."""
    half_trace = (a + d) / 2
    root = np.sqrt(((a - d) / 2) ** 2 + b**2)
    return half_trace + root, half_trace - root


def _channel_features(channel: np.ndarray, sigmas: tuple[float, ...]) -> list[np.ndarray]:
    kw = {"mode": "reflect", "truncate": TRUNCATE, "output": np.float32}
    out: list[np.ndarray] = []
    for s in sigmas:
        gauss = ndi.gaussian_filter(channel, s, **kw)
        out.append(gauss)
        out.append(ndi.gaussian_gradient_magnitude(channel, s, **kw))
        out.append(ndi.gaussian_laplace(channel, s, **kw))
        out.append(gauss - ndi.gaussian_filter(channel, _DOG_RATIO * s, **kw))
        hrr = ndi.gaussian_filter(channel, s, order=(2, 0), **kw)
        hrc = ndi.gaussian_filter(channel, s, order=(1, 1), **kw)
        hcc = ndi.gaussian_filter(channel, s, order=(0, 2), **kw)
        out.extend(_eig2x2(hrr, hrc, hcc))
        gr = ndi.gaussian_filter(channel, s, order=(1, 0), **kw)
        gc = ndi.gaussian_filter(channel, s, order=(0, 1), **kw)
        outer = _STRUCTURE_OUTER * s
        arr = ndi.gaussian_filter(gr * gr, outer, **kw)
        arc = ndi.gaussian_filter(gr * gc, outer, **kw)
        acc = ndi.gaussian_filter(gc * gc, outer, **kw)
        out.extend(_eig2x2(arr, arc, acc))
    sobel_r = ndi.sobel(channel, axis=0, mode="reflect", output=np.float32)
    sobel_c = ndi.sobel(channel, axis=1, mode="reflect", output=np.float32)
    out.append(np.hypot(sobel_r, sobel_c))
    return out


def _check_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3:
        raise LapsegInputError(f"image must be (C, Y, X), got shape {image.shape}")
    if image.size == 0:
        raise LapsegInputError(f"image is empty (shape {image.shape})")
    if not np.issubdtype(image.dtype, np.number) or np.issubdtype(image.dtype, np.complexfloating):
        raise LapsegInputError(f"image must hold real numbers, got dtype {image.dtype}")
    return image


def compute_features(image: np.ndarray, *, sigmas: Sequence[float] = DEFAULT_SIGMAS) -> np.ndarray:
    """All features of a whole image.

    Parameters
    ----------
    image : (C, Y, X) ndarray
        Normalised image (any real dtype; computed in float32).
    sigmas : sequence of float, optional
        Feature scales in pixels.

    Returns
    -------
    features : (F, Y, X) ndarray of float32
        ``F = C * (8 * len(sigmas) + 1)`` rows, named by :func:`feature_names`.

    Raises
    ------
    LapsegInputError
        If the image is not a non-empty real ``(C, Y, X)`` array or a sigma is not positive.
    """
    image = _check_image(image)
    values = check_sigmas(sigmas)
    rows: list[np.ndarray] = []
    for channel in image:
        rows.extend(_channel_features(np.asarray(channel, dtype=np.float32), values))
    return np.stack(rows)


def _starts(size: int, tile: int) -> range:
    return range(0, size, tile)


def iter_feature_tiles(
    image: np.ndarray, *, sigmas: Sequence[float] = DEFAULT_SIGMAS, tile: int = 512
) -> Iterator[tuple[slice, slice, np.ndarray]]:
    """Features tile by tile, each computed with a :func:`feature_halo` of context.

    Only one tile's features (plus its halo) are in memory at a time; the values equal the
    matching region of :func:`compute_features` on the whole image.

    Parameters
    ----------
    image : (C, Y, X) ndarray
        Normalised image.
    sigmas : sequence of float, optional
        Feature scales.
    tile : int, optional
        Tile edge in pixels (the last row/column of tiles may be smaller).

    Yields
    ------
    rows, cols : slice
        Region of the image the tile covers.
    features : (F, tile_y, tile_x) ndarray of float32
    """
    image = _check_image(image)
    values = check_sigmas(sigmas)
    if isinstance(tile, bool) or not isinstance(tile, int | np.integer) or tile < 1:
        raise LapsegInputError(f"tile must be a positive integer, got {tile!r}")
    halo = feature_halo(values)
    height, width = image.shape[-2:]
    for y0 in _starts(height, tile):
        for x0 in _starts(width, tile):
            y1, x1 = min(y0 + tile, height), min(x0 + tile, width)
            wy0, wx0 = max(y0 - halo, 0), max(x0 - halo, 0)
            wy1, wx1 = min(y1 + halo, height), min(x1 + halo, width)
            window = compute_features(image[:, wy0:wy1, wx0:wx1], sigmas=values)
            inner = window[:, y0 - wy0 : y1 - wy0, x0 - wx0 : x1 - wx0]
            yield slice(y0, y1), slice(x0, x1), np.ascontiguousarray(inner)
