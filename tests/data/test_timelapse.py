"""Time-lapse run data: leak-free splits, stacked samples, normalisation on training frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from lapseg.config import load_config
from lapseg.data.setup import prepare_run_data
from lapseg.data.timelapse import (
    check_split_leak_free,
    split_sequences,
    time_block_split,
)
from lapseg.errors import LapsegInputError
from lapseg.io.sequences import discover_sequences


def write_sequences(root: Path, n_sequences: int, n_frames: int, *, shape=(16, 16)) -> Path:
    """Frame t of sequence s is constant 100 * s + t; a square mask on every frame."""
    for s in range(n_sequences):
        folder = root / f"s{s}"
        (folder / "frames").mkdir(parents=True)
        (folder / "masks").mkdir()
        for t in range(n_frames):
            frame = np.full(shape, 100 * s + t, dtype=np.uint16)
            frame[4:8, 4:8] += 50
            tifffile.imwrite(folder / "frames" / f"t{t:02d}.tif", frame)
            mask = np.zeros(shape, np.uint8)
            mask[4:8, 4:8] = 1
            tifffile.imwrite(folder / "masks" / f"t{t:02d}.tif", mask)
    return root


def _sequence_of(name: str) -> str:
    return name.split("/")[0]


@pytest.mark.parametrize("seed", range(5))
def test_sequence_split_never_shares_a_sequence(tmp_path: Path, seed: int):
    root = write_sequences(tmp_path / "d", 5, 3, shape=(8, 8))
    config = load_config(
        None,
        [
            "data.layout=sequences",
            "data.val_fraction=0.2",
            "data.test_fraction=0.2",
            f"train.seed={seed}",
        ],
    )
    split = split_sequences(discover_sequences(root), config)
    owners = {}
    for key, names in split.items():
        for name in names:
            assert owners.setdefault(_sequence_of(name), key) == key
    assert sum(len(v) for v in split.values()) == 15
    assert {len({_sequence_of(n) for n in split[k]}) for k in ("val", "test")} == {1}


def test_time_blocks_are_separated_by_the_gap():
    blocks = time_block_split(range(30), val_fraction=0.2, test_fraction=0.1, gap=4)
    # 6 val + 3 test + 2 gaps of 4 -> 13 train; 13..16 and 23..26 are used by no subset
    assert blocks["train"] == list(range(13))
    assert blocks["val"] == list(range(17, 23))
    assert blocks["test"] == list(range(27, 30))
    blocks = time_block_split(range(40), val_fraction=0.25, test_fraction=0.0, gap=5)
    assert blocks["train"] == list(range(25)) and blocks["val"] == list(range(30, 40))
    with pytest.raises(LapsegInputError, match="none for training"):
        time_block_split(range(6), val_fraction=0.5, test_fraction=0.0, gap=5)


def test_time_blocks_of_a_sparsely_annotated_movie_always_validate():
    """3 of 20 frames annotated: one validation frame, the training frames gap frames before."""
    blocks = time_block_split([2, 5, 17], val_fraction=0.2, test_fraction=0.0, gap=5)
    assert blocks == {"train": [2, 5], "val": [17], "test": []}
    blocks = time_block_split([2, 5, 8], val_fraction=0.2, test_fraction=0.0, gap=5)
    assert blocks == {"train": [2], "val": [8], "test": []}  # 5 is too close to 8: unused
    with pytest.raises(LapsegInputError, match="too short"):
        time_block_split([4], val_fraction=0.2, test_fraction=0.0, gap=5)


def test_single_sequence_uses_time_blocks(tmp_path: Path):
    root = write_sequences(tmp_path / "d", 1, 20)
    config = load_config(
        None, ["data.layout=sequences", "data.val_fraction=0.25", "temporal.gap=3"]
    )
    split = split_sequences(discover_sequences(root), config)
    train = [int(n[-2:]) for n in split["train"]]
    val = [int(n[-2:]) for n in split["val"]]
    assert train == list(range(12)) and val == list(range(15, 20))
    assert min(val) - max(train) - 1 >= 3


def test_frame_random_split_is_refused(tmp_path: Path):
    sources = discover_sequences(write_sequences(tmp_path / "d", 1, 10))
    leaky = {"train": ["s0/t00", "s0/t02", "s0/t04"], "val": ["s0/t03"], "test": []}
    with pytest.raises(LapsegInputError, match="frame-random split leaks"):
        check_split_leak_free(leaky, sources, gap=2)
    check_split_leak_free({"train": ["s0/t00", "s0/t01"], "val": ["s0/t05"]}, sources, gap=3)


def test_prepared_samples_stack_context_and_fit_on_train(tmp_path: Path):
    root = write_sequences(tmp_path / "d", 3, 4)
    config = load_config(
        None,
        [
            "data.layout=sequences",
            "temporal.context=1",
            "normalization.mode=meanstd",
            "data.val_fraction=0.34",
        ],
    )
    assert config.model.in_channels == 3
    split = {"train": ["s0/t00", "s0/t01", "s0/t02", "s0/t03", "s2/t00"], "val": ["s1/t03"]}
    data = prepare_run_data(config, root, split=split)
    assert [s.name for s in data.train][:2] == ["s0/t00", "s0/t01"]
    sample = data.train[0]
    assert sample.image.shape == (3, 16, 16) and sample.target.max() == 1
    # mean/std fitted on the five training frames only, repeated for the three channels
    train_frames = [np.full((16, 16), v, float) for v in (0, 1, 2, 3, 200)]
    for frame in train_frames:
        frame[4:8, 4:8] += 50
    mean, std = np.mean(train_frames), np.std(train_frames)
    assert data.stats.mean == pytest.approx((mean,) * 3)
    assert data.stats.std == pytest.approx((std,) * 3)
    # replicate edge: channels of t00 are frames 0, 0, 1 of s0 (corner pixel raw 0, 0, 1)
    corner = sample.image[:, 0, 0] * std + mean
    np.testing.assert_allclose(corner, [0, 0, 1], atol=1e-3)
    val_corner = data.val[0].image[:, 0, 0] * std + mean  # s1/t03: frames 2, 3, 3
    np.testing.assert_allclose(val_corner, [102, 103, 103], atol=1e-2)


def test_median_background_and_crop_pad(tmp_path: Path):
    root = write_sequences(tmp_path / "d", 2, 5, shape=(14, 18))
    config = load_config(
        None,
        [
            "data.layout=sequences",
            "temporal.background=median",
            "normalization.mode=none",
            "data.crop_or_pad=[16, 16]",
            "data.val_fraction=0.5",
        ],
    )
    data = prepare_run_data(config, root, cache_dir=tmp_path / "run")
    sample = data.train[0]
    assert sample.image.shape == (1, 16, 16) and sample.target.shape == (16, 16)
    # frame t minus the median frame (t = 2): a constant t - 2 everywhere inside the image
    t = int(sample.name[-2:])
    np.testing.assert_allclose(sample.image[0, 1:-1, :], t - 2)
    assert len(list((tmp_path / "run").glob("background-*.npy"))) == 1  # frames read lazily
    assert data.val[0].image.shape == (1, 16, 16)  # the other sequence: read when needed
    assert len(list((tmp_path / "run").glob("background-*.npy"))) == 2


def test_bad_inputs(tmp_path: Path):
    root = write_sequences(tmp_path / "d", 2, 4)
    config = load_config(
        None,
        [
            "data.layout=sequences",
            "temporal.split=time_blocks",
            "temporal.context=2",
            "temporal.gap=1",
        ],
    )
    with pytest.raises(LapsegInputError, match=r"temporal\.gap=1 must be >= temporal\.context=2"):
        prepare_run_data(config, root)
    odd = tmp_path / "odd" / "s" / "frames"
    odd.mkdir(parents=True)
    tifffile.imwrite(odd / "t0.tif", np.zeros((8, 8), np.uint16))
    tifffile.imwrite(odd / "t1.tif", np.zeros((9, 8), np.uint16))
    (odd.parent / "masks").mkdir()
    tifffile.imwrite(odd.parent / "masks" / "t0.tif", np.ones((8, 8), np.uint8))
    config = load_config(None, ["data.layout=sequences", "data.val_fraction=0"])
    with pytest.raises(LapsegInputError, match=r"t1\.tif: frame size"):
        prepare_run_data(config, tmp_path / "odd")
