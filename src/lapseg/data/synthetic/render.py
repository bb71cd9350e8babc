"""Rendering: cells to labels and intensities, debris, illumination and camera noise.

- :func:`render_labels` turns cells into a label partition (overlaps go to the nearer centre);
- :func:`render_cells` paints cytoplasm, texture, a darker nucleus, contact lines and a halo;
- :func:`debris_map` draws small, dark, sharp specks and fibres that are *not* cells;
- :func:`illumination_field` and :func:`add_noise` degrade the image like a real microscope.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import ndimage as ndi
from skimage.draw import polygon as draw_polygon

from lapseg.data.synthetic.shapes import Cell, cell_distance, random_cell

__all__ = [
    "BACKGROUND_LEVEL",
    "DEBRIS_LEVEL",
    "add_noise",
    "debris_map",
    "illumination_field",
    "render_cells",
    "render_labels",
]

BACKGROUND_LEVEL = 0.3
"""Background intensity before illumination and noise (images live in [0, 1])."""
DEBRIS_LEVEL = 0.04
"""Intensity of fully opaque debris: darker than background and cells."""


def _window(cell: Cell, shape: tuple[int, int], margin: float) -> tuple[slice, slice]:
    reach = cell.extent + margin
    (cy, cx), (height, width) = cell.center, shape
    y0, y1 = max(0, math.floor(cy - reach)), min(height, math.ceil(cy + reach) + 1)
    x0, x1 = max(0, math.floor(cx - reach)), min(width, math.ceil(cx + reach) + 1)
    return slice(y0, y1), slice(x0, x1)


def render_labels(
    cells: Sequence[Cell], shape: tuple[int, int], *, halo_width: float = 8.0
) -> tuple[np.ndarray, np.ndarray]:
    """Rasterise cells into an instance partition.

    A pixel inside several cells goes to the cell with the smallest normalised distance (the
    "nearer" centre, scaled by each cell's size), so overlapping cells share a boundary.

    Returns
    -------
    labels : (Y, X) int32 ndarray
        0 for background, ``i + 1`` for ``cells[i]``. A cell hidden entirely by others has no
        pixel; :func:`synthetic_sample` drops such cells so that labels stay consecutive.
    outside : (Y, X) float32 ndarray
        Distance in pixels to the nearest cell boundary for background pixels, up to
        ``halo_width`` (``inf`` beyond), 0 inside cells.
    """
    labels = np.zeros(shape, dtype=np.int32)
    best = np.full(shape, np.inf)
    outside = np.full(shape, np.inf, dtype=np.float32)
    for index, cell in enumerate(cells, start=1):
        win = _window(cell, shape, halo_width)
        yy, xx = np.ogrid[win[0], win[1]]
        normalized, out = cell_distance(cell, yy.astype(float), xx.astype(float))
        owner = (normalized < 1.0) & (normalized < best[win])
        labels[win][owner] = index
        best[win] = np.where(owner, normalized, best[win])
        outside[win] = np.minimum(outside[win], out)
    outside[labels > 0] = 0.0
    return labels, outside


def render_cells(
    cells: Sequence[Cell],
    labels: np.ndarray,
    outside: np.ndarray,
    *,
    rng: np.random.Generator | int | None = None,
) -> np.ndarray:
    """Paint cells: bright textured cytoplasm, a darker nucleus, dark contact lines, a halo.

    Parameters
    ----------
    cells : sequence of Cell
        The cells behind ``labels`` (``labels == i + 1`` is ``cells[i]``, as from
        :func:`render_labels` when no cell was dropped).
    labels : (Y, X) int ndarray
    outside : (Y, X) float ndarray
        Distance to the nearest cell for background pixels.
    rng : Generator, int or None

    Returns
    -------
    image : (Y, X) float32 ndarray
        Noise-free, unblurred intensities in [0, 1].
    """
    rng = np.random.default_rng(rng)
    shape = labels.shape
    levels = np.concatenate([[BACKGROUND_LEVEL], rng.uniform(0.45, 0.8, len(cells))])
    texture = ndi.gaussian_filter(rng.standard_normal(shape), 1.5)
    texture *= 0.07 / max(float(texture.std()), 1e-6)
    inside = labels > 0
    image = levels[np.clip(labels, 0, len(cells))] + np.where(inside, texture, 0.0)
    for index, cell in enumerate(cells, start=1):
        shift = rng.uniform(0.0, 0.25 * cell.radius) * np.exp(1j * rng.uniform(0, 2 * np.pi))
        nucleus = random_cell(
            (cell.center[0] + shift.imag, cell.center[1] + shift.real),
            radius=(0.3 * cell.radius, 0.42 * cell.radius),
            roughness=0.05,
            rng=rng,
        )
        win = _window(nucleus, shape, 1.0)
        yy, xx = np.ogrid[win[0], win[1]]
        normalized, _ = cell_distance(nucleus, yy.astype(float), xx.astype(float))
        contrast = rng.uniform(0.3, 0.5) * (levels[index] - BACKGROUND_LEVEL)  # stays above bg
        depth = contrast * np.clip((1.0 - normalized) / 0.3, 0.0, 1.0)
        image[win] -= np.where(labels[win] == index, depth, 0.0)
    contact = np.zeros(shape, dtype=bool)
    for axis in (0, 1):
        a, b = np.moveaxis(labels, axis, 0)[:-1], np.moveaxis(labels, axis, 0)[1:]
        edge = (a != b) & (a > 0) & (b > 0)
        np.moveaxis(contact, axis, 0)[:-1] |= edge
        np.moveaxis(contact, axis, 0)[1:] |= edge
    image[contact] -= 0.15
    image += np.where(inside, 0.0, 0.08 * np.exp(-outside / 2.0))
    return np.clip(image, 0.0, 1.0).astype(np.float32)


def debris_map(
    shape: tuple[int, int],
    *,
    n: int,
    exclude: np.ndarray | None = None,
    rng: np.random.Generator | int | None = None,
) -> np.ndarray:
    """Draw ``n`` debris pieces: small irregular specks and thin curved fibres.

    Parameters
    ----------
    shape : (int, int)
    n : int
        Number of pieces (about two thirds specks, one third fibres).
    exclude : (Y, X) bool ndarray, optional
        Pixels debris must not cover (cells); a 3-pixel band around them is kept clear too.
    rng : Generator, int or None

    Returns
    -------
    opacity : (Y, X) float32 ndarray
        0 where there is no debris, else the piece's opacity in [0.7, 0.95].
    """
    rng = np.random.default_rng(rng)
    height, width = shape
    opacity = np.zeros(shape, dtype=np.float32)
    for _ in range(n):
        piece = np.zeros(shape, dtype=bool)
        cy, cx = rng.uniform(0, height - 1), rng.uniform(0, width - 1)
        if rng.random() < 0.65:
            k = int(rng.integers(5, 10))
            angles = np.sort(rng.uniform(0, 2 * np.pi, k))
            radii = rng.uniform(1.5, 4.5) * rng.uniform(0.5, 1.0, k)
            rows, cols = draw_polygon(
                cy + radii * np.sin(angles), cx + radii * np.cos(angles), shape
            )
            piece[rows, cols] = True
            piece[min(round(cy), height - 1), min(round(cx), width - 1)] = True
        else:
            steps = int(rng.uniform(24, 90))  # half-pixel steps: 12 to 45 px long
            heading = rng.uniform(0, 2 * np.pi) + np.cumsum(rng.normal(0.0, 0.08, steps))
            ys = np.round(cy + np.cumsum(0.5 * np.sin(heading))).astype(int)
            xs = np.round(cx + np.cumsum(0.5 * np.cos(heading))).astype(int)
            keep = (ys >= 0) & (ys < height) & (xs >= 0) & (xs < width)
            piece[ys[keep], xs[keep]] = True
            if rng.random() < 0.5:
                piece = ndi.binary_dilation(piece, structure=ndi.generate_binary_structure(2, 1))
        opacity[piece] = rng.uniform(0.7, 0.95)
    if exclude is not None:
        opacity[ndi.binary_dilation(exclude, iterations=3)] = 0.0
    return opacity


def illumination_field(
    shape: tuple[int, int], *, strength: float, rng: np.random.Generator | int | None = None
) -> np.ndarray:
    """Smooth multiplicative illumination in ``[1 - strength, 1 + strength]``.

    A random 4 x 4 grid upsampled with a cubic spline: varies over about a third of the image.

    Returns
    -------
    field : (Y, X) float32 ndarray
    """
    rng = np.random.default_rng(rng)
    grid = rng.uniform(-1.0, 1.0, (4, 4))
    smooth = ndi.zoom(grid, (shape[0] / 4, shape[1] / 4), order=3, mode="nearest")
    smooth = smooth[: shape[0], : shape[1]]
    smooth = smooth - smooth.mean()
    smooth /= max(float(np.abs(smooth).max()), 1e-6)
    return (1.0 + strength * smooth).astype(np.float32)


def add_noise(
    image: np.ndarray, *, std: float, rng: np.random.Generator | int | None = None
) -> np.ndarray:
    """Add camera-like noise: read noise (``std / 2``) plus shot noise (``std * sqrt(image)``).

    Parameters
    ----------
    image : (Y, X) float ndarray
        Intensities in about [0, 1].
    std : float
    rng : Generator, int or None

    Returns
    -------
    noisy : (Y, X) float32 ndarray
        Clipped to [0, 1].
    """
    rng = np.random.default_rng(rng)
    sigma = std * np.sqrt(0.25 + np.clip(image, 0.0, None))
    return np.clip(image + sigma * rng.standard_normal(image.shape), 0.0, 1.0).astype(np.float32)
