"""Sliding-window tiling maths: tile start positions and the Gaussian blend window.

Pure numpy helpers with no torch and no model: :mod:`lapseg.inference.sliding_window` builds on
them. The rules follow nnU-Net v2 (``compute_steps_for_sliding_window`` and
``compute_gaussian``), with one addition: tile starts can be aligned to a multiple of the
network's pooling factor so that every tile's pooling grid lines up with the whole image's.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from lapseg.errors import LapsegInputError

__all__ = ["gaussian_window", "tile_grid", "tile_starts"]


def _check_int(name: str, value: int, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise LapsegInputError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _check_overlap(overlap: float) -> None:
    if not 0.0 <= float(overlap) < 1.0:
        raise LapsegInputError(f"overlap must be in [0, 1), got {overlap!r}")


def _aligned_starts(size: int, tile: int, steps: int, align: int) -> list[int]:
    """``steps`` starts spread evenly over ``[0, size - tile]``, rounded to multiples of align."""
    last = size - tile
    if steps <= 1:
        return [0]
    units = last // align
    starts = [round(i * units / (steps - 1)) * align for i in range(steps)]
    return sorted(set(starts))


def tile_starts(size: int, tile: int, overlap: float, *, align: int = 1) -> list[int]:
    """Start positions of overlapping tiles covering ``[0, size)`` along one axis.

    The number of tiles follows nnU-Net: ``ceil((size - tile) / (tile * (1 - overlap))) + 1``;
    the starts are spread evenly from ``0`` to ``size - tile`` and rounded, so the first tile
    begins at 0, the last one ends exactly at ``size`` and consecutive tiles overlap by at least
    ``overlap * tile`` pixels (up to ``align - 1`` less when ``align > 1``).

    Parameters
    ----------
    size : int
        Length of the axis to cover. When ``align > 1``, the caller pads the image so that
        ``size - tile`` is a multiple of ``align`` (e.g. size and tile both multiples of it).
    tile : int
        Tile length along the axis.
    overlap : float
        Wanted fraction of ``tile`` shared by neighbouring tiles, in ``[0, 1)``.
    align : int, optional
        Every start is a multiple of ``align`` (a network's ``size_multiple``: its pooling grids
        then coincide in every tile and in the whole image). Must not exceed ``tile``.

    Returns
    -------
    list of int
        Increasing starts; ``[0]`` when ``size <= tile`` (the caller pads up to one tile).

    Raises
    ------
    LapsegInputError
        If an argument is out of range, or ``size - tile`` is not a multiple of ``align``.

    Examples
    --------
    >>> tile_starts(100, 40, 0.5)
    [0, 20, 40, 60]
    >>> tile_starts(96, 32, 0.25, align=16)
    [0, 16, 48, 64]
    """
    _check_int("size", size, minimum=1)
    _check_int("tile", tile, minimum=1)
    _check_int("align", align, minimum=1)
    _check_overlap(overlap)
    if size <= tile:
        return [0]
    if align > tile:
        raise LapsegInputError(f"tile ({tile}) must be at least align ({align})")
    if (size - tile) % align:
        raise LapsegInputError(
            f"size - tile ({size} - {tile}) must be a multiple of align ({align}); "
            "pad the image first"
        )
    target_step = tile * (1.0 - float(overlap))
    steps = math.ceil((size - tile) / target_step) + 1
    starts = _aligned_starts(size, tile, steps, align)
    # Rounding to multiples of align can open a gap wider than a tile: add tiles until covered.
    # (With steps = (size - tile) / align + 1 the gaps are exactly align <= tile, so this ends.)
    while max(b - a for a, b in itertools.pairwise(starts)) > tile:
        steps += 1
        starts = _aligned_starts(size, tile, steps, align)
    return starts


def gaussian_window(tile_yx: tuple[int, int], *, sigma_scale: float = 1.0 / 8) -> np.ndarray:
    """nnU-Net's Gaussian importance map for blending overlapping tiles.

    A sampled Gaussian centred on pixel ``(h // 2, w // 2)`` with standard deviation
    ``sigma_scale * tile`` per axis, truncated at 4 sigma like ``scipy.ndimage.gaussian_filter``
    of a delta (nnU-Net's construction), normalised to a maximum of 1. Pixels the truncation set
    to zero get the smallest nonzero weight instead, so every pixel of a tile counts and the
    blend never divides by zero.

    Parameters
    ----------
    tile_yx : (int, int)
        Tile height and width.
    sigma_scale : float, optional
        Standard deviation as a fraction of the tile size (nnU-Net: 1/8).

    Returns
    -------
    window : (h, w) ndarray of float32
        Weights in ``(0, 1]``; the maximum 1 is at the centre.
    """
    if len(tile_yx) != 2:
        raise LapsegInputError(f"tile_yx must be (height, width), got {tile_yx!r}")
    for value in tile_yx:
        _check_int("tile size", value, minimum=1)
    if not float(sigma_scale) > 0.0:
        raise LapsegInputError(f"sigma_scale must be > 0, got {sigma_scale!r}")
    profiles = []
    for length in tile_yx:
        sigma = float(sigma_scale) * length
        offsets = np.arange(length, dtype=np.float64) - length // 2
        profile = np.exp(-0.5 * (offsets / sigma) ** 2)
        profile[np.abs(offsets) > int(4.0 * sigma + 0.5)] = 0.0  # scipy's truncation radius
        profiles.append(profile)
    window = np.outer(profiles[0], profiles[1])
    window /= window.max()
    window = window.astype(np.float32)
    zero = window == 0
    if zero.any():
        window[zero] = window[~zero].min()
    return window


def tile_grid(
    shape_yx: tuple[int, int], tile_yx: tuple[int, int], overlap: float, *, align: int = 1
) -> list[tuple[slice, slice]]:
    """All tiles of a 2-D image as ``(rows, cols)`` slices, row-major.

    Parameters
    ----------
    shape_yx : (int, int)
        Image height and width (already padded: see :func:`tile_starts`).
    tile_yx : (int, int)
        Tile height and width; an axis shorter than the tile gets one tile of the full length
        of the tile (the slice then reaches past the image: the caller pads).
    overlap : float
        Fraction of the tile shared by neighbours, in ``[0, 1)``.
    align : int, optional
        Tile starts are multiples of ``align``.

    Returns
    -------
    list of (slice, slice)
        ``image[..., rows, cols]`` is a tile.
    """
    if len(shape_yx) != 2 or len(tile_yx) != 2:
        raise LapsegInputError(
            f"shape_yx and tile_yx must both be (height, width), got {shape_yx!r}, {tile_yx!r}"
        )
    rows = tile_starts(shape_yx[0], tile_yx[0], overlap, align=align)
    cols = tile_starts(shape_yx[1], tile_yx[1], overlap, align=align)
    return [
        (slice(y, y + tile_yx[0]), slice(x, x + tile_yx[1]))
        for y, x in itertools.product(rows, cols)
    ]
