"""Predict every frame of a time-lapse sequence with the temporal rule the model was trained with.

Each model's checkpoint holds its resolved configuration: ``temporal.context`` (k),
``temporal.edge_mode``, ``temporal.background`` and the fixed-size grid (``data.crop_or_pad`` /
``data.resize``). Frames are brought to that grid, the sequence's own temporal median is
subtracted when the model was trained so, frames ``t-k .. t+k`` are stacked, and the probability
map is mapped back to frame ``t``'s own pixel grid. Several models (an ensemble) may use
different k: each gets its own stack, and their probabilities are averaged.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from lapseg.config import LapsegConfig, PredictConfig
from lapseg.data.geometry import center_crop_or_pad, resize_to, undo_center_crop_or_pad
from lapseg.data.temporal import stack_context
from lapseg.data.timelapse import load_sequence
from lapseg.errors import LapsegInputError
from lapseg.inference.predict import LoadedModel, model_mask, predict_probabilities
from lapseg.io.images import write_tiff
from lapseg.io.sequences import SequenceSource


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


class SequencePredictor:
    """Frame-by-frame probabilities of one sequence for a list of models (an ensemble).

    Frames are loaded once per distinct preprocessing (grid and background) among the models.
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
        self._frames: dict[tuple, tuple[np.ndarray, list[tuple[int, int]]]] = {}
        for loaded in self.models:
            key = _grid_key(loaded.config)
            if key not in self._frames:
                self._frames[key] = load_sequence(
                    source,
                    data=loaded.config.data,
                    temporal=loaded.config.temporal,
                    cache_dir=cache_dir,
                )

    def frame_shape(self, t: int) -> tuple[int, int]:
        """Original ``(Y, X)`` shape of frame ``t``."""
        return next(iter(self._frames.values()))[1][t]

    def probabilities(self, t: int) -> np.ndarray:
        """``(K, Y, X)`` float32 probabilities of frame ``t`` on its own pixel grid."""
        maps = []
        for loaded in self.models:
            frames, shapes = self._frames[_grid_key(loaded.config)]
            temporal = loaded.config.temporal
            stacked = stack_context(frames, t, temporal.context, temporal.edge_mode)
            prob = predict_probabilities([loaded], stacked, predict=self.predict)
            maps.append(map_to_frame(prob, shapes[t], loaded.config))
        if any(m.shape != maps[0].shape for m in maps):
            raise LapsegInputError("ensemble members predict different numbers of classes")
        return np.mean(maps, axis=0).astype(np.float32)


def predict_sequence(
    models: Sequence[LoadedModel],
    source: SequenceSource,
    output_dir: str | Path,
    *,
    predict: PredictConfig | None = None,
    frames: Sequence[int] | None = None,
    cache_dir: str | Path | None = None,
    write_probabilities: bool = True,
    on_frame: Callable[[int, int], None] | None = None,
) -> list[Path]:
    """Write ``masks/<sequence>/<frame>.tif`` (and ``probabilities/...``) for every frame.

    Parameters
    ----------
    models : sequence of LoadedModel
        From :func:`lapseg.inference.predict.load_model`; their stored temporal settings apply.
    source : SequenceSource
        From :func:`lapseg.io.sequences.discover_sequences`.
    output_dir : str or Path
    predict : PredictConfig, optional
        Overrides the tiling/threshold settings stored in the first model.
    frames : sequence of int, optional
        Only these frame indices (all by default); context frames are still read.
    cache_dir : str or Path, optional
        Cache folder for the median background (default: ``output_dir/.cache``).
    write_probabilities : bool
        Also write the foreground probability (or class probabilities) per frame.
    on_frame : callable, optional
        ``on_frame(done, total)`` after each frame (progress bar).

    Returns
    -------
    masks : list of Path
        The written mask files, in frame order. Writes are atomic.
    """
    output_dir = Path(output_dir)
    predictor = SequencePredictor(
        models,
        source,
        predict=predict,
        cache_dir=cache_dir if cache_dir is not None else output_dir / ".cache",
    )
    wanted = list(range(source.n_frames)) if frames is None else list(frames)
    inputs = {Path(p).resolve() for p in source.files()}
    written = []
    for done, t in enumerate(wanted, start=1):
        prob = predictor.probabilities(t)
        mask = model_mask(models[0], prob, predict=predict)
        mask_path = output_dir / "masks" / source.name / f"{source.frame_names[t]}.tif"
        if mask_path.resolve() in inputs:
            raise LapsegInputError("output would overwrite an input frame", path=mask_path)
        if write_probabilities:
            prob_out = prob[0] if prob.shape[0] == 1 else prob
            write_tiff(
                output_dir / "probabilities" / source.name / f"{source.frame_names[t]}.tif",
                prob_out,
                axes="YX" if prob_out.ndim == 2 else "CYX",
            )
        write_tiff(mask_path, mask, axes="YX")
        written.append(mask_path)
        if on_frame is not None:
            on_frame(done, len(wanted))
    return written


def predict_sequences(
    models: Sequence[LoadedModel],
    sources: Sequence[SequenceSource],
    output_dir: str | Path,
    *,
    predict: PredictConfig | None = None,
    on_frame: Callable[[int, int], None] | None = None,
) -> dict[str, list[Path]]:
    """:func:`predict_sequence` for several sequences; returns masks per sequence name."""
    return {
        source.name: predict_sequence(
            models, source, output_dir, predict=predict, on_frame=on_frame
        )
        for source in sources
    }
