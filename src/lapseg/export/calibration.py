"""Calibration tiles for INT8 quantisation: exactly the tiles the run's sliding window feeds the
network, from prepared training samples (:func:`calibration_batches`) or a folder of raw images
(:func:`folder_calibration_batches`). :mod:`lapseg.export.quantize` uses and re-exports them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from lapseg.config import LapsegConfig
from lapseg.errors import LapsegInputError
from lapseg.inference.engines import predict_logits
from lapseg.inference.predict import LoadedModel, predict_probabilities
from lapseg.io.discovery import discover_images
from lapseg.io.images import read_image

__all__ = [
    "CALIBRATION_TILES",
    "TileRecorder",
    "calibration_batches",
    "folder_calibration_batches",
    "spread_indices",
]

CALIBRATION_TILES = 64
"""Default number of calibration tiles (spread over the images)."""


def spread_indices(n: int, k: int) -> list[int]:
    """At most ``k`` indices evenly spread over ``range(n)`` (first and last included)."""
    if n <= k:
        return list(range(n))
    return [round(i * (n - 1) / (k - 1)) for i in range(k)] if k > 1 else [0]


class TileRecorder:
    """A predictor that keeps the tiles it is given and returns zero logits: put in place of a
    model's predictor, it collects exactly the tiles prediction would feed the network.

    ``outputs`` and ``margin`` give the logits' shape ``(B, outputs, h - 2 margin, ...)``.
    """

    def __init__(self, *, outputs: int, margin: int) -> None:
        self.outputs, self.margin = outputs, margin
        self.tiles: list[np.ndarray] = []

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        self.tiles.extend(batch.cpu().numpy().astype(np.float32))
        b, _, h, w = batch.shape
        return torch.zeros(b, self.outputs, h - 2 * self.margin, w - 2 * self.margin)


def _batches(tiles: Sequence[np.ndarray], batch_size: int) -> list[np.ndarray]:
    """Consecutive tiles of one shape stacked into batches of at most ``batch_size``."""
    batches: list[np.ndarray] = []
    for tile in tiles:
        last = batches[-1] if batches else None
        if last is not None and len(last) < batch_size and last.shape[1:] == tile.shape:
            batches[-1] = np.concatenate([last, tile[None]])
        else:
            batches.append(tile[None])
    return batches


def _record(
    runs: Sequence[Callable[[TileRecorder], object]],
    *,
    outputs: int,
    margin: int,
    batch_size: int,
    max_tiles: int,
) -> list[np.ndarray]:
    """Batches of at most ``max_tiles`` tiles, spread over the tiles each run records."""
    per_run = -(-max_tiles // max(len(runs), 1))
    chosen: list[np.ndarray] = []
    for run in runs:
        recorder = TileRecorder(outputs=outputs, margin=margin)
        run(recorder)
        chosen.extend(recorder.tiles[i] for i in spread_indices(len(recorder.tiles), per_run))
    return _batches([chosen[i] for i in spread_indices(len(chosen), max_tiles)], batch_size)


@torch.inference_mode()
def calibration_batches(
    images: Sequence[np.ndarray],
    network: torch.nn.Module,
    config: LapsegConfig,
    *,
    max_tiles: int = CALIBRATION_TILES,
) -> list[np.ndarray]:
    """Tiles ``(B, C, h, w)`` float32 that the run's sliding window feeds the network.

    Parameters
    ----------
    images : sequence of (C, Y, X) ndarray
        Normalised images on the network's grid (prepared training samples).
    network : nn.Module
        Gives ``size_multiple`` and ``output_margin``; it is not run.
    config : LapsegConfig
        ``predict`` (tile size, overlap, batch size) and ``model.outputs``.
    max_tiles : int
        At most this many tiles, spread evenly over every image's tiles.
    """

    def run(image: np.ndarray) -> Callable[[TileRecorder], object]:
        tensor = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))
        return lambda recorder: predict_logits(network, tensor, config.predict, predictor=recorder)

    return _record(
        [run(image) for image in images],
        outputs=config.model.outputs,
        margin=int(getattr(network, "output_margin", 0)),
        batch_size=config.predict.batch_size,
        max_tiles=max_tiles,
    )


def folder_calibration_batches(
    folder: Path, loaded: LoadedModel, *, max_tiles: int = CALIBRATION_TILES
) -> tuple[list[np.ndarray], int]:
    """Calibration batches from a folder of raw images and the number of images used.

    Each image goes through :func:`lapseg.inference.predict.predict_probabilities` with a
    :class:`TileRecorder` in place of the network: channels, scale, normalisation and tiles are
    exactly what ``lapseg predict`` would feed ``loaded``'s network.
    """
    if not folder.is_dir():
        raise LapsegInputError("calibration data must be a folder of images", path=folder)
    paths = discover_images(folder)
    if not paths:
        raise LapsegInputError("no image in the calibration folder", path=folder)
    chosen = [paths[i] for i in spread_indices(len(paths), max_tiles)]
    axes = loaded.config.data.axes

    def run(path: Path) -> Callable[[TileRecorder], object]:
        def predict(recorder: TileRecorder) -> object:
            image = read_image(path, axes=axes)
            recording = loaded.with_predictor(recorder)
            return predict_probabilities([recording], image.array, pixel_size=image.pixel_size)

        return predict

    batches = _record(
        [run(path) for path in chosen],
        outputs=loaded.config.model.outputs,
        margin=int(getattr(loaded.model, "output_margin", 0)),
        batch_size=loaded.config.predict.batch_size,
        max_tiles=max_tiles,
    )
    return batches, len(chosen)
