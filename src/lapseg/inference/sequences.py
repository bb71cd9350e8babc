"""Predict every frame of a time-lapse sequence with the temporal rule the model was trained with.

Each model's checkpoint holds its resolved configuration: ``temporal.context`` (k),
``temporal.edge_mode``, ``temporal.background`` and the fixed-size grid (``data.crop_or_pad`` /
``data.resize``). Frames are brought to that grid, the sequence's own temporal median is
subtracted when the model was trained so, frames ``t-k .. t+k`` are stacked, and the probability
map is mapped back to frame ``t``'s own pixel grid. Several models (an ensemble) may use
different k: each gets its own stack, and their probabilities are averaged.

Frames are read on demand and only the few around ``t`` are kept
(:class:`lapseg.data.frames.LazyFrames`), so a sequence of any length is never held in memory;
the temporal median is computed band by band.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lapseg.config import LapsegConfig, PredictConfig
from lapseg.data.frames import LazyFrames
from lapseg.data.geometry import center_crop_or_pad, resize_to, undo_center_crop_or_pad
from lapseg.errors import LapsegInputError
from lapseg.inference.predict import LoadedModel, predict_probabilities
from lapseg.io.sequences import SequenceSource

__all__ = ["SequencePredictor", "map_to_frame"]

log = logging.getLogger(__name__)


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


def _warn_short_median(config: LapsegConfig, source: SequenceSource) -> None:
    """Say so when a median-background model sees a much shorter movie than it trained on."""
    temporal = config.temporal
    trained = temporal.median_frames
    if temporal.background != "median" or trained is None or source.n_frames * 2 >= trained:
        return
    log.warning(
        "%s: the background subtracted (the temporal median) comes from only %d frame(s), the "
        "model's training medians from at least %d: cells that move little over %d frames stay "
        "in the median and are subtracted with it. Predict the whole movie (measured on PSC: "
        "15 frames SEG 0.53, the whole 161-frame movie 0.73)",
        source.name,
        source.n_frames,
        trained,
        source.n_frames,
    )


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
            _warn_short_median(loaded.config, source)
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
