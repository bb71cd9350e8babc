"""``lapseg evaluate`` pairs per-frame predictions with (T, Z, Y, X) mask stacks (seed 001)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from lapseg.data.synthetic_stacks import write_tube_stacks
from lapseg.errors import LapsegInputError
from lapseg.io.sequences import discover_sequences, read_frame_mask
from lapseg.metrics.evaluate import evaluate_folders
from lapseg.metrics.pairing import pair_frames

SHAPE = (3, 2, 12, 16)  # T, Z, Y, X


@pytest.fixture
def stacks(tmp_path: Path) -> Path:
    return write_tube_stacks(tmp_path / "data", shape=SHAPE, rng=0)


def _write_predictions(data: Path, out: Path, *, flip: set[str] = frozenset()) -> list[str]:
    """Per-frame masks as the sequences layout names its samples (``pancreas/z01/t002``)."""
    names = []
    for source in discover_sequences(data, axes="TZYX"):
        for t in range(source.n_frames):
            name = source.sample_name(t)
            mask = read_frame_mask(source, t).astype(np.uint8) * 255
            if name in flip:
                mask = 255 - mask
            path = out / "masks" / f"{name}.tif"
            path.parent.mkdir(parents=True, exist_ok=True)
            tifffile.imwrite(path, mask)
            names.append(name)
    return names


def test_each_plane_pairs_with_its_frame_file(stacks: Path, tmp_path: Path) -> None:
    names = _write_predictions(stacks, tmp_path / "pred")
    pairs, unmatched = pair_frames(tmp_path / "pred", stacks / "masks")
    assert unmatched == 0
    assert (
        [p.name for p in pairs]
        == sorted(names)
        == [f"pancreas/z{z:02d}/t{t:03d}" for z in range(2) for t in range(3)]
    )
    volume = tifffile.imread(stacks / "masks" / "pancreas.tif")
    for pair in pairs:
        z, t = int(pair.name[10:12]), int(pair.name[-3:])
        assert pair.truth == f"pancreas.tif[t={t}, z={z}]"
        assert np.array_equal(pair.read_truth(), volume[t, z])
        assert np.array_equal(pair.read_prediction() > 0, volume[t, z] > 0)
    # the stack file itself, or the folder above the prediction folder's masks/, work alike
    assert len(pair_frames(tmp_path / "pred" / "masks", stacks / "masks" / "pancreas.tif")[0]) == 6


def test_depth_first_stacks_pair_the_same(tmp_path: Path, stacks: Path) -> None:
    volume = tifffile.imread(stacks / "masks" / "pancreas.tif")
    (tmp_path / "zt").mkdir()
    tifffile.imwrite(
        tmp_path / "zt" / "pancreas.tif",
        np.swapaxes(volume, 0, 1),
        photometric="minisblack",
        metadata={"axes": "ZTYX"},
    )
    _write_predictions(stacks, tmp_path / "pred")
    pairs, _ = pair_frames(tmp_path / "pred", tmp_path / "zt")
    assert all(np.array_equal(p.read_truth(), p.read_prediction() > 0) for p in pairs)


def test_evaluate_only_the_test_frames(stacks: Path, tmp_path: Path) -> None:
    wrong = "pancreas/z01/t002"
    _write_predictions(stacks, tmp_path / "pred", flip={wrong})
    everything = evaluate_folders(tmp_path / "pred", stacks / "masks")
    assert everything.n_images == 6 and everything.pooled["accuracy"] < 1.0
    test = ["pancreas/z00/t001", "pancreas/z01/t000"]
    result = evaluate_folders(
        tmp_path / "pred", stacks / "masks", only=test, out_dir=tmp_path / "e"
    )
    assert result.n_images == 2 and result.unmatched_predictions == 4
    assert result.pooled["accuracy"] == result.pooled["specificity"] == 1.0
    assert [row["name"] for row in result.per_image] == sorted(test)
    assert (tmp_path / "e" / "per_image.csv").is_file()
    alone = evaluate_folders(tmp_path / "pred", stacks / "masks", only=[wrong])
    assert alone.pooled["recall"] == 0.0


def test_missing_frames_are_named(stacks: Path, tmp_path: Path) -> None:
    _write_predictions(stacks, tmp_path / "pred")
    (tmp_path / "pred" / "masks" / "pancreas" / "z01" / "t001.tif").unlink()
    with pytest.raises(LapsegInputError, match=r"1 ground-truth image\(s\) have no prediction"):
        pair_frames(tmp_path / "pred", stacks / "masks")
    with pytest.raises(LapsegInputError, match="not in the ground truth: pancreas/z09/t000"):
        pair_frames(tmp_path / "pred", stacks / "masks", only=["pancreas/z09/t000"])
