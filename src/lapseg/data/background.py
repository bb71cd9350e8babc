"""Per-sequence background: the temporal median (000, section 6.4, eq. 3).

``I_bg(x, y) = median over t of I(x, y, t)``: whatever does not move (debris, the rim of a
microwell, uneven illumination) is in the background image and is removed by subtracting it from
every frame; moving cells are in the median only where they stay put for more than half the
sequence.

:func:`temporal_median` reads the sequence one frame at a time and keeps only a band of rows of
every frame, so a long sequence is never held in memory (let alone twice); the result can be
cached as ``.npy`` in a folder (the run folder), keyed by the sequence's files, their sizes and
modification times.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from lapseg.errors import LapsegInputError
from lapseg.io.files import atomic_output
from lapseg.io.sequences import SequenceSource, frame_reader

DEFAULT_CHUNK_BYTES = 256 * 1024**2
"""Memory for one band of rows across all frames when ``chunk_rows`` is not given."""


def median_of_frames(frames: np.ndarray, *, chunk_rows: int | None = None) -> np.ndarray:
    """Temporal median of an in-memory ``(T, Y, X)`` stack, band of rows by band of rows.

    Parameters
    ----------
    frames : (T, Y, X) ndarray
    chunk_rows : int, optional
        Rows per band (all rows at once when None).

    Returns
    -------
    background : (Y, X) float32 ndarray
    """
    frames = np.asarray(frames)
    if frames.ndim != 3 or frames.shape[0] == 0:
        raise LapsegInputError(f"frames must be a non-empty (T, Y, X) stack, got {frames.shape}")
    rows = frames.shape[1] if chunk_rows is None else _check_chunk_rows(chunk_rows)
    out = np.empty(frames.shape[1:], dtype=np.float32)
    for y0 in range(0, frames.shape[1], rows):
        out[y0 : y0 + rows] = np.median(frames[:, y0 : y0 + rows], axis=0)
    return out


def _check_chunk_rows(chunk_rows: int) -> int:
    if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, int) or chunk_rows < 1:
        raise LapsegInputError(f"chunk_rows must be a positive integer, got {chunk_rows!r}")
    return chunk_rows


def cache_key(source: SequenceSource, *, extra: str = "") -> str:
    """A hex digest of the sequence's files (paths, sizes, mtimes), z-slice and ``extra``."""
    entries = []
    for path in source.files():
        stat = Path(path).stat()
        entries.append([str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns])
    payload = json.dumps([entries, source.z_index, source.stack_axes, extra])
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:24]


def temporal_median(
    source: SequenceSource,
    *,
    grid: Callable[[np.ndarray], np.ndarray] | None = None,
    chunk_rows: int | None = None,
    cache_dir: str | Path | None = None,
    grid_key: str = "",
) -> np.ndarray:
    """The median over time of every pixel of a sequence (000, eq. 3).

    Each pass reads every frame once and keeps ``chunk_rows`` rows of it, so memory holds one
    frame plus a ``(T, chunk_rows, X)`` band.

    Parameters
    ----------
    source : SequenceSource
    grid : callable, optional
        Maps each ``(Y, X)`` frame to the common grid first (crop/pad or resize).
    chunk_rows : int, optional
        Rows per band; by default as many as fit in :data:`DEFAULT_CHUNK_BYTES` (a single pass
        for typical sequences).
    cache_dir : str or Path, optional
        Folder for ``background-<key>.npy``; reused when the files have not changed.
    grid_key : str
        Describes ``grid`` in the cache key (e.g. ``"crop_or_pad=[1024, 1024]"``).

    Returns
    -------
    background : (Y, X) float32 ndarray
    """
    if chunk_rows is not None:
        _check_chunk_rows(chunk_rows)
    cache_file = None
    if cache_dir is not None:
        cache_file = Path(cache_dir) / f"background-{cache_key(source, extra=grid_key)}.npy"
        if cache_file.is_file():
            return np.load(cache_file)

    read = frame_reader(source)

    def frame(t: int) -> np.ndarray:
        image = read(t)
        return grid(image) if grid is not None else image

    first = frame(0)
    n_t, (height, width) = source.n_frames, first.shape
    rows = chunk_rows or max(1, DEFAULT_CHUNK_BYTES // (4 * n_t * width))
    background = np.empty((height, width), dtype=np.float32)
    for y0 in range(0, height, rows):
        y1 = min(height, y0 + rows)
        band = np.empty((n_t, y1 - y0, width), dtype=np.float32)
        for t in range(n_t):
            image = first if t == 0 else frame(t)
            if image.shape != first.shape:
                raise LapsegInputError(
                    f"frame size {image.shape} differs from the first frame {first.shape}; "
                    "set data.crop_or_pad (or data.resize) to a common size",
                    path=source.frame_path(t),
                )
            band[t] = image[y0:y1]
        background[y0:y1] = np.median(band, axis=0)
    if cache_file is not None:
        with atomic_output(cache_file) as tmp, open(tmp, "wb") as handle:
            np.save(handle, background)
    return background


def subtract_background(frame: np.ndarray, background: np.ndarray) -> np.ndarray:
    """``frame - background`` as float32 (a new array).

    Parameters
    ----------
    frame : (Y, X) or (T, Y, X) ndarray
    background : (Y, X) ndarray
    """
    frame = np.asarray(frame)
    if frame.shape[-2:] != np.shape(background):
        raise LapsegInputError(
            f"frame shape {frame.shape[-2:]} differs from the background's {np.shape(background)}"
        )
    return frame.astype(np.float32) - np.asarray(background, dtype=np.float32)
