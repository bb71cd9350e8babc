"""``lapseg reproduce 001`` (U-Net vs forest on (T, Z, Y, X) stacks, Table 1) and
``lapseg reproduce 003`` (the lecture's checks) on tiny synthetic data."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import tifffile

from conftest import write_pairs
from lapseg.data.synthetic import SyntheticConfig
from lapseg.data.synthetic_stacks import write_tube_stacks
from lapseg.errors import LapsegInputError
from lapseg.models.blocks import UPSAMPLING_MODES
from lapseg.reproduce import reproduce
from lapseg.reproduce.seed001 import METHODS

TINY = [
    "model.base_features=4",
    "model.depth=2",
    "train.epochs=1",
    "train.batch_size=4",
    "train.device=cpu",
    "train.tensorboard=false",
]
FOREST = ["baseline.n_estimators=5", "baseline.n_pixels_per_image=300", "baseline.sigmas=[1.0]"]


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def test_reproduce_001_writes_table_1(tmp_path: Path) -> None:
    data = write_tube_stacks(tmp_path / "data", shape=(3, 4, 21, 27), rng=0)
    out = tmp_path / "out"
    written = reproduce(
        "001", data, out, progress=False, overrides=[*TINY, *FOREST, "baseline.n_jobs=1"]
    )
    assert [p.name for p in written] == ["table1.md", "table1.csv", "examples.png"]
    rows = _rows(out / "table1.csv")
    assert [r["method"] for r in rows[:3]] == list(METHODS)
    assert rows[3]["method"].startswith("report") and float(rows[3]["sensitivity"]) == 81.14
    for row in rows:
        assert {"accuracy", "specificity", "sensitivity", "n_frames"} <= set(row)
        assert 0 <= float(row["accuracy"]) <= 100
    assert all(r["n_frames"] == "3" for r in rows[:3])  # one z-slice of four, three times
    test = next(out.glob("predictions/forest/masks/pancreas/z*/t002.tif"))
    for method in METHODS:  # per-frame files paired with the mask stack by lapseg evaluate
        assert (
            out
            / "predictions"
            / method
            / "masks"
            / test.relative_to(out / "predictions" / "forest" / "masks")
        ).is_file()
        assert (out / "evaluation" / method / "summary.json").is_file()
    assert (out / "unet" / "best.pt").is_file() and (out / "forest" / "forest.skops").is_file()


def test_reproduce_001_needs_time_depth_stacks(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "masks").mkdir(parents=True)
    movie = np.zeros((4, 16, 16), np.uint8)
    tifffile.imwrite(data / "movie.tif", movie, photometric="minisblack", metadata={"axes": "TYX"})
    tifffile.imwrite(
        data / "masks" / "movie.tif", movie, photometric="minisblack", metadata={"axes": "TYX"}
    )
    with pytest.raises(LapsegInputError, match=r"seed 001 reads \(T, Z, Y, X\) stacks"):
        reproduce("001", data, tmp_path / "out", progress=False, overrides=["data.axes=TYX"])
    assert not (tmp_path / "out").exists()  # refused before anything is written


def test_reproduce_003_writes_the_lecture_checks(tmp_path: Path) -> None:
    shape = SyntheticConfig(shape=(32, 48), n_cells=(2, 3), radius=(5.0, 8.0), n_debris=(0, 1))
    data = write_pairs(tmp_path / "data", 5, seed=0, config=shape)
    out = tmp_path / "out"
    settings = [*TINY, "train.epochs=2", "train.patch_size=[32,32]", "train.patches_per_epoch=4"]
    written = reproduce("003", data, out, progress=False, overrides=settings)
    assert [p.name for p in written] == [
        f"{name}.{ext}"
        for name in ("normalization", "upsampling", "training")
        for ext in ("md", "csv")
    ]
    norm = _rows(out / "normalization.csv")
    assert [(r["mode"], r["statistic"]) for r in norm] == [
        ("meanstd", "mean"),
        ("meanstd", "std"),
        ("mean-only", "mean"),
        ("mean-image", "pixel average of mean image"),
    ]
    # the lecture's rule: stored statistics are the training split's, not the whole dataset's
    assert all(r["stored == training split"] == "True" for r in norm)
    assert all(r["stored != whole dataset"] == "True" for r in norm)
    up = _rows(out / "upsampling.csv")
    assert [r["upsampling"] for r in up] == list(UPSAMPLING_MODES)
    assert float(up[-1]["max |initial - bilinear| (learned filters)"]) < 1e-5
    training = _rows(out / "training.csv")
    assert [r["training"] for r in training] == ["patches", "full-image"]
    assert "loss.keep_probability=0.5" in training[1]["settings"]
    assert "train.patch_size=[32,48]" in training[1]["settings"]  # whole images, user's patch not
