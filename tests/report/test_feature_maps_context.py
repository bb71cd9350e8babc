"""Feature-map pictures of models with temporal context (five frames in, one frame on disk)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lapseg.config import load_config
from lapseg.data.synthetic_timelapse import TimelapseConfig, write_synthetic_timelapse
from lapseg.errors import LapsegInputError
from lapseg.report.sections import feature_maps_view, with_context
from lapseg.training.trainer import fit


def test_with_context_repeats_the_frame() -> None:
    frame = np.arange(2 * 3 * 4).reshape(2, 3, 4)
    assert with_context(frame, 2) is frame
    stacked = with_context(frame, 10)
    assert stacked.shape == (10, 3, 4)
    np.testing.assert_array_equal(stacked[4:6], frame)
    with pytest.raises(LapsegInputError, match="takes 5 channel"):
        with_context(frame, 5)


def test_feature_maps_of_a_five_frame_model(tmp_path: Path) -> None:
    data = tmp_path / "data"
    write_synthetic_timelapse(
        data,
        n_sequences=2,
        config=TimelapseConfig(shape=(32, 32), n_frames=5, radius=(3.0, 5.0)),
        rng=0,
    )
    config = load_config(
        None,
        [
            "data.layout=sequences",
            "data.task=binary",
            "data.val_fraction=0.5",
            "temporal.context=2",
            "model.depth=2",
            "model.base_features=4",
            "train.epochs=1",
            "train.patch_size=[32, 32]",
            "train.patches_per_epoch=2",
            "train.batch_size=2",
            "train.tensorboard=false",
            "train.device=cpu",
            "predict.tile_size=[32, 32]",
        ],
    )
    run = fit(config, data, tmp_path / "run", progress=False).run_dir
    frame = data / "seq00" / "frames" / "t002.tif"
    view = feature_maps_view(run, frame)  # one frame on disk, five channels in
    assert view.crop_shape == (32, 32)
    assert view.uri.startswith("data:image/png")
