"""Predict every frame of a time-lapse sequence with the temporal rule the model was trained with.

Each model's checkpoint holds its resolved configuration: ``temporal.context`` (k),
``temporal.edge_mode``, ``temporal.background`` and the fixed-size grid (``data.crop_or_pad`` /
``data.resize``). Frames are brought to that grid, the sequence's own temporal median is
subtracted when the model was trained so, frames ``t-k .. t+k`` are stacked, and the probability
map is mapped back to frame ``t``'s own pixel grid. Several models (an ensemble) may use
different k: each gets its own stack, and their probabilities are averaged.

Frames are read on demand and only the few around ``t`` are kept (:class:`LazyFrames`), so a
sequence of any length is never held in memory; the temporal median is computed band by band.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lapseg.config import LapsegConfig, PredictConfig
from lapseg.data.background import subtract_background, temporal_median
from lapseg.data.geometry import center_crop_or_pad, resize_to, undo_center_crop_or_pad
from lapseg.data.temporal import context_indices
from lapseg.data.timelapse import frame_grid
from lapseg.errors import LapsegInputError
from lapseg.inference.predict import LoadedModel, predict_probabilities
from lapseg.io.sequences import SequenceSource, frame_reader

__all__ = ["LazyFrames", "SequencePredictor", "map_to_frame"]


def _grid_key(config: LapsegConfig) -> tuple:
    data, temporal = config.data, config.temporal
    return (data.crop_or_pad, data.resize, temporal.background)


def map_to_frame(
    prob: np.ndarray, original_yx: tuple[int, int], config: LapsegConfig
) -> np.ndarray:
    """Undo the common-grid crop/pad or resize on a ``(K, Y', X')`` map for one frame."""
    data = config.data
    if data.crop_or_pad is not None:
        dummy = np.zeros((1, *original_yx), dtype=np.float32)
        _, crop_pad = center_crop_or_pad(dummy, data.crop_or_pad, mode="constant")
        return undo_center_crop_or_pad(prob, crop_pad, fill=0)
    if data.resize is not None:
        return resize_to(prob, original_yx, order=1)
    return prob


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


class SequencePredictor:
    """Frame-by-frame probabilities of one sequence for a list of models (an ensemble).

    Frames are read once per distinct preprocessing (grid and background) among the models.
    """

    def __init__(
        self,
        models: Sequence[LoadedModel],
        source: SequenceSource,
        *,
        predict: PredictConfig | None = None,
        cache_dir: str | Path | None = None,
    ) -> None:
        if not models:
            raise LapsegInputError("no model given")
        self.models = list(models)
        self.source = source
        self.predict = predict
        self._frames: dict[tuple, LazyFrames] = {}
        for loaded in self.models:
            key = _grid_key(loaded.config)
            if key not in self._frames:
                context = loaded.config.temporal.context
                self._frames[key] = LazyFrames(
                    source, loaded.config, cache_dir=cache_dir, keep=max(16, 4 * context + 2)
                )

    @property
    def n_frames(self) -> int:
        """Number of frames of the sequence."""
        return self.source.n_frames

    def frame_shape(self, t: int) -> tuple[int, int]:
        """Original ``(Y, X)`` shape of frame ``t``."""
        return next(iter(self._frames.values())).shape(t)

    def probabilities(self, t: int) -> np.ndarray:
        """``(K, Y, X)`` float32 probabilities of frame ``t`` on its own pixel grid."""
        maps = []
        for loaded in self.models:
            frames = self._frames[_grid_key(loaded.config)]
            temporal = loaded.config.temporal
            stacked = frames.context(t, temporal.context, temporal.edge_mode)
            prob = predict_probabilities([loaded], stacked, predict=self.predict)
            maps.append(map_to_frame(prob, frames.shape(t), loaded.config))
        if any(m.shape != maps[0].shape for m in maps):
            raise LapsegInputError("ensemble members predict different numbers of classes")
        return np.mean(maps, axis=0).astype(np.float32)
