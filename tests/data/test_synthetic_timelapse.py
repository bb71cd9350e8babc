"""Synthetic time-lapse: moving labelled cells, static look-alikes; temporal context must help."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lapseg.config import load_config
from lapseg.data.synthetic_timelapse import (
    TimelapseConfig,
    synthetic_sequence,
    write_synthetic_timelapse,
)
from lapseg.errors import LapsegInputError
from lapseg.io.sequences import discover_sequences, read_frame_mask

SMALL = TimelapseConfig(shape=(64, 64), n_frames=12, radius=(5.0, 8.0), dtype="float32")


def test_cells_move_and_decoys_stay():
    seq = synthetic_sequence(SMALL, rng=3)
    assert seq.frames.shape == (12, 64, 64) and seq.labels.shape == (12, 64, 64)
    assert seq.frames.dtype == np.float32 and 0.0 <= seq.frames.min() <= seq.frames.max() <= 1.0
    # every labelled cell moves: its pixels at t = 0 and t = 4 overlap only partly
    overlap = ((seq.labels[0] > 0) & (seq.labels[4] > 0)).sum() / (seq.labels[0] > 0).sum()
    assert overlap < 0.7
    # static pixels never moved: away from moving cells they only vary by noise and illumination
    never_cell = (seq.labels > 0).sum(axis=0) == 0
    still = seq.static & never_cell
    assert still.sum() > 50
    temporal_std = seq.frames.std(axis=0)
    assert temporal_std[still].mean() < 0.5 * temporal_std[(seq.labels > 0).any(axis=0)].mean()
    # the decoys are not in the masks
    assert (seq.labels[:, seq.static & never_cell] == 0).all()


def test_reproducible_and_written_layout(tmp_path: Path):
    a = synthetic_sequence(SMALL, rng=7)
    b = synthetic_sequence(SMALL, rng=7)
    np.testing.assert_array_equal(a.frames, b.frames)
    names = write_synthetic_timelapse(
        tmp_path / "tl", n_sequences=2, config=SMALL, annotate_every=3, rng=0
    )
    assert names == ["seq00", "seq01"]
    sources = discover_sequences(tmp_path / "tl")
    assert [s.n_frames for s in sources] == [12, 12]
    assert sources[0].annotated == [0, 3, 6, 9]
    assert read_frame_mask(sources[0], 3).max() >= 1


def test_bad_inputs(tmp_path: Path):
    with pytest.raises(LapsegInputError, match="shape"):
        TimelapseConfig(shape=(16, 16))
    with pytest.raises(LapsegInputError, match="n_frames"):
        TimelapseConfig(n_frames=0)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(LapsegInputError, match="not empty"):
        write_synthetic_timelapse(tmp_path / "full", n_sequences=1, config=SMALL)


@pytest.mark.slow
def test_context_k2_beats_k0_at_equal_budget(tmp_path: Path):
    """Network5 (k = 2) vs Network1 (k = 0): same data, split, seed, epochs and patches."""
    from lapseg.training.compare import compare_runs
    from lapseg.training.trainer import fit

    write_synthetic_timelapse(tmp_path / "data", n_sequences=4, config=SMALL, rng=11)
    common = [
        "data.layout=sequences",
        "data.task=binary",  # StemNet's cell / background networks
        "data.val_fraction=0.25",
        "model.base_features=8",
        "model.depth=2",
        "train.epochs=25",
        "train.patch_size=[48, 48]",
        "train.patches_per_epoch=32",
        "train.batch_size=8",
        "train.lr=3e-3",
        "train.tensorboard=false",
        "predict.tile_size=[64, 64]",
    ]
    runs = []
    for k in (0, 2):
        config = load_config(None, [*common, f"temporal.context={k}"])
        runs.append(fit(config, tmp_path / "data", tmp_path / f"k{k}", progress=False).run_dir)
    k0, k2 = compare_runs(runs, tmp_path / "data")  # the held-out validation sequence
    assert k0["n_frames"] == k2["n_frames"] == 12
    assert k2["f1"] - k0["f1"] >= 0.05, (k0["f1"], k2["f1"])
    assert k2["false_white"] < k0["false_white"]
