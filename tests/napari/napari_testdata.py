"""Data of the napari plugin tests: a 96x96 image, a 4-frame movie and tiny trained models.

A helper module rather than a ``conftest.py``: a second ``conftest`` module would replace the
root one that other tests import (``from conftest import write_pairs``). The trained models are
made once per session (:func:`trained_model`) whichever test module asks first.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lapseg.data.synthetic import SyntheticConfig, synthetic_image
from lapseg.io.files import write_csv, write_json
from lapseg.io.images import write_tiff
from lapseg.napari.layers import label_frames, layer_frames
from lapseg.napari.train import train_model, training_config, write_training_data
from lapseg.tracking import moving_discs

TINY = [
    "model.base_features=4",
    "model.depth=2",
    "train.epochs=4",
    "train.patch_size=[48,48]",
    "train.patches_per_epoch=32",
    "train.batch_size=4",
    "train.lr=0.01",
    "train.tensorboard=false",
    "predict.tile_size=[64,64]",
    "train.deterministic=true",
]
"""Settings of a tiny model that still finds the discs of :func:`movie` (about a second)."""


def movie() -> tuple[np.ndarray, np.ndarray]:
    """A (4, 96, 96) float32 movie of four moving discs (one divides) and its track labels."""
    truth = moving_discs(n_frames=4, grid=(2, 2), rng=0)
    noise = np.random.default_rng(0).standard_normal(truth.labels.shape).astype(np.float32)
    return (truth.labels > 0).astype(np.float32) + 0.2 * noise, truth.labels.astype(np.uint16)


def image() -> tuple[np.ndarray, np.ndarray]:
    """A 96x96 synthetic cell image and its instance labels."""
    config = SyntheticConfig(shape=(96, 96), n_cells=(3, 6), radius=(7.0, 12.0), n_debris=(1, 2))
    picture, labels = synthetic_image(config, rng=1)
    return picture, labels.astype(np.uint16)


def train_on_movie(root: Path, settings: list[str]) -> Path:
    """A tiny model trained on :func:`movie` through the plugin's own path; its run folder."""
    pixels, labels = movie()
    frames = layer_frames(pixels, "TYX")
    data = write_training_data(frames, label_frames(labels, "TYX", frames), root / "data")
    config, _ = training_config(data, minutes=None, settings=[*TINY, *settings])
    return train_model(config, data, root / "run").run_dir


MODELS = {
    "instances": [],
    "binary": ["data.task=binary"],
    "temporal": ["temporal.context=1"],  # frames t-1, t, t+1 as channels
}
_trained: dict[str, Path] = {}


def trained_model(kind: str, factory: pytest.TempPathFactory) -> Path:
    """Run folder of a tiny model of ``kind`` (:data:`MODELS`), trained once per session."""
    if kind not in _trained or not _trained[kind].is_dir():
        _trained[kind] = train_on_movie(factory.mktemp(kind), MODELS[kind])
    return _trained[kind]


def write_movie_output(folder: Path) -> Path:
    """A small prediction folder of a movie as ``lapseg predict`` writes it (two tracks, one
    the daughter of the other)."""
    labels = np.zeros((3, 16, 16), np.uint16)
    labels[:, 2:6, 2:6] = 1
    labels[2, 10:14, 2:6] = 2
    write_tiff(folder / "labels.tif", labels, axes="TYX")
    write_tiff(folder / "probabilities.tif", labels.astype(np.float32) / 2, axes="TYX")
    rows = [{"track_id": 1, "t": t, "y": 3.5, "x": 3.5} for t in range(3)]
    write_csv(folder / "tracks_napari.csv", [*rows, {"track_id": 2, "t": 2, "y": 11.5, "x": 3.5}])
    write_json(folder / "tracks_graph.json", {"2": [1]})
    return folder
