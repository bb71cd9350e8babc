"""The frames of a sequence as a model sees them, read on demand (any length of movie).

:class:`LazyFrames` maps frame ``t`` of a :class:`~lapseg.io.sequences.SequenceSource` onto the
model's grid (``data.crop_or_pad`` / ``data.resize``) with the sequence's temporal median removed
when the model was trained so, reading frames lazily and keeping only the last few; training
samples and predictions both use it, so the frames never have to fit in memory at once.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import numpy as np

from lapseg.config import DataConfig, LapsegConfig
from lapseg.data.background import subtract_background, temporal_median
from lapseg.data.geometry import center_crop_or_pad, resize_to
from lapseg.data.temporal import context_indices
from lapseg.errors import LapsegInputError
from lapseg.io.sequences import SequenceSource, frame_reader

__all__ = ["LazyFrames", "frame_grid"]


def frame_grid(data: DataConfig) -> tuple[Callable[[np.ndarray], np.ndarray] | None, str]:
    """The map of a ``(Y, X)`` frame onto the common grid, and a text describing it."""
    if data.crop_or_pad is not None:
        size = data.crop_or_pad
        return (
            lambda f: center_crop_or_pad(f, size, mode="reflect")[0],
            f"crop_or_pad={list(size)}",
        )
    if data.resize is not None:
        size = data.resize
        return (lambda f: resize_to(f, size, order=1), f"resize={list(size)}")
    return None, ""


class LazyFrames:
    """The frames of one sequence as a model saw them in training, read on demand.

    ``frames[t]`` is frame ``t`` as ``(Y, X)`` float32 on the model's grid with the background
    removed; the last ``keep`` frames are cached (a sliding window over the context).
    """

    def __init__(
        self,
        source: SequenceSource,
        config: LapsegConfig,
        *,
        cache_dir: str | Path | None = None,
        keep: int = 16,
    ) -> None:
        self.source = source
        self._read = frame_reader(source)
        self._grid, grid_key = frame_grid(config.data)
        self._background = None
        if config.temporal.background == "median":
            self._background = temporal_median(
                source, grid=self._grid, cache_dir=cache_dir, grid_key=grid_key
            )
        self._keep = keep
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._shapes: dict[int, tuple[int, int]] = {}
        self._first_shape: tuple[int, ...] | None = None

    def __len__(self) -> int:
        return self.source.n_frames

    def __getitem__(self, t: int) -> np.ndarray:
        if t in self._cache:
            self._cache.move_to_end(t)
            return self._cache[t]
        raw = self._read(t)
        self._shapes[t] = (int(raw.shape[0]), int(raw.shape[1]))
        frame = self._grid(raw) if self._grid is not None else raw
        if self._first_shape is None:
            self._first_shape = frame.shape
        elif frame.shape != self._first_shape:
            raise LapsegInputError(
                f"frame size {frame.shape} differs from the sequence's first frame "
                f"{self._first_shape}; set data.crop_or_pad (or data.resize) to a common size",
                path=self.source.frame_path(t),
            )
        if self._background is not None:
            frame = subtract_background(frame, self._background)
        frame = np.asarray(frame, dtype=np.float32)
        self._cache[t] = frame
        while len(self._cache) > self._keep:
            self._cache.popitem(last=False)
        return frame

    def shape(self, t: int) -> tuple[int, int]:
        """Original ``(Y, X)`` shape of frame ``t`` (read if needed)."""
        if t not in self._shapes:
            self[t]
        return self._shapes[t]

    def context(self, t: int, k: int, mode: str) -> np.ndarray:
        """Frames ``t-k .. t+k`` stacked as ``(2k+1, Y, X)`` channels."""
        return np.stack([self[i] for i in context_indices(t, len(self), k, mode)])
