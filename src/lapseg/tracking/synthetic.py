"""Synthetic tracking ground truth: discs that move and divide, never touching.

Each cell lives in its own square tile of a grid and moves a fixed number of pixels per frame in
its own direction, bouncing off the tile's inner border; the first ``n_divisions`` cells divide
at ``divide_at``: the mother track ends and two smaller daughters, side by side across the
mother's centre, move on together from the next frame. Centroids of different tiles stay more
than ``2.2 * radius`` apart while a cell moves ``step < radius`` and a daughter lies
``0.9 * radius`` from its mother's path, so a tracker linking within the default distance (the
median diameter) must recover every track exactly. :func:`scramble_labels` turns the result into
what a segmentation gives: labels drawn independently in each frame.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from skimage.draw import disk

from lapseg.errors import LapsegInputError
from lapseg.tracking.linking import Tracks

__all__ = ["moving_discs", "scramble_labels"]


def _bounce(start: float, velocity: float, n_frames: int, low: float, high: float) -> NDArray:
    """Positions of a point moving at ``velocity`` from ``start``, reflected into [low, high]."""
    span = high - low
    raw = start - low + velocity * np.arange(n_frames)
    folded = np.mod(raw, 2 * span)
    return low + np.where(folded > span, 2 * span - folded, folded)


def moving_discs(
    *,
    n_frames: int = 8,
    grid: tuple[int, int] = (2, 2),
    radius: float = 6.0,
    step: float = 3.0,
    n_divisions: int = 1,
    divide_at: int | None = None,
    rng: np.random.Generator | int | None = None,
) -> Tracks:
    """A ground-truth tracking of discs moving ``step`` pixels a frame, some dividing.

    Parameters
    ----------
    n_frames : int, optional
        Number of frames T (>= 2).
    grid : (int, int), optional
        Tiles (rows, columns): one cell each; a tile is ``8 * radius`` pixels wide.
    radius : float, optional
        Disc radius (daughters: 0.7 x radius).
    step : float, optional
        Displacement per frame, pixels (< radius, so linking is unambiguous).
    n_divisions : int, optional
        Number of cells that divide.
    divide_at : int, optional
        First frame of the daughters (default ``n_frames // 2``), in 1..T-1.
    rng : Generator, int or None, optional
        Random directions and start positions (``np.random.default_rng(rng)``).

    Returns
    -------
    Tracks
        ``labels`` : (T, 8 r rows, 8 r columns) uint16, ``table`` : (N, 4) ``L B E P``.
    """
    rows_, cols_ = grid
    n_cells = rows_ * cols_
    divide_at = n_frames // 2 if divide_at is None else divide_at
    if n_frames < 2 or not 1 <= divide_at < n_frames:
        raise LapsegInputError(
            f"need n_frames >= 2 and 1 <= divide_at < n_frames, got {n_frames}, {divide_at}"
        )
    if not 0 <= n_divisions <= n_cells or not 0 < step < radius:
        raise LapsegInputError(f"need 0 <= n_divisions <= {n_cells} cells and 0 < step < radius")
    generator = np.random.default_rng(rng)
    tile = int(np.ceil(8 * radius))
    labels = np.zeros((n_frames, rows_ * tile, cols_ * tile), dtype=np.uint16)
    table: list[list[int]] = []
    margin = 2 * radius
    for cell in range(n_cells):
        top, left = (cell // cols_) * tile, (cell % cols_) * tile
        angle = generator.uniform(0, 2 * np.pi)
        start = generator.uniform(margin, tile - margin, size=2)
        ys = top + _bounce(start[0], step * np.sin(angle), n_frames, margin, tile - margin)
        xs = left + _bounce(start[1], step * np.cos(angle), n_frames, margin, tile - margin)
        label = len(table) + 1
        if cell < n_divisions:
            table.append([label, 0, divide_at - 1, 0])
            axis = generator.uniform(0, np.pi)
            offset = 0.9 * radius * np.array([np.sin(axis), np.cos(axis)])
            table.append([label + 1, divide_at, n_frames - 1, label])
            table.append([label + 2, divide_at, n_frames - 1, label])
        else:
            table.append([label, 0, n_frames - 1, 0])
        for t in range(n_frames):
            centre = np.array([ys[t], xs[t]])
            if cell < n_divisions and t >= divide_at:
                for daughter, sign in ((label + 1, 1), (label + 2, -1)):
                    rr, cc = disk(
                        tuple(centre + sign * offset), 0.7 * radius, shape=labels.shape[1:]
                    )
                    labels[t, rr, cc] = daughter
            else:
                rr, cc = disk((ys[t], xs[t]), radius, shape=labels.shape[1:])
                labels[t, rr, cc] = label
    return Tracks(labels=labels, table=np.array(table, dtype=np.int64))


def scramble_labels(
    labels: NDArray[np.integer], *, rng: np.random.Generator | int | None = None
) -> NDArray[np.uint16]:
    """Give the objects of each frame new labels, drawn independently per frame (as a segmentation).

    Parameters
    ----------
    labels : (T, Y, X) ndarray of int
    rng : Generator, int or None, optional

    Returns
    -------
    (T, Y, X) ndarray of uint16
        Frame ``t``'s objects get a random permutation of 1..n_t.
    """
    stack = np.asarray(labels)
    generator = np.random.default_rng(rng)
    out = np.zeros(stack.shape, dtype=np.uint16)
    for t, frame in enumerate(stack):
        ids, index = np.unique(frame, return_inverse=True)
        new = np.zeros(ids.size, dtype=np.uint16)
        foreground = ids != 0
        new[foreground] = generator.permutation(int(foreground.sum())) + 1
        out[t] = new[index].reshape(frame.shape)
    return out
