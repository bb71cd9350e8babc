"""The random-forest baseline on seed 001's (T, Z, Y, X) stacks: ``lapseg train``'s split,
per-frame predictions that ``lapseg evaluate`` pairs with the mask stack."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lapseg.baseline.pipeline import predict_baseline, train_baseline
from lapseg.config import BaselineConfig, load_config
from lapseg.data.sources import discover_dataset
from lapseg.data.synthetic_stacks import write_tube_stacks
from lapseg.data.timelapse import sequence_split
from lapseg.errors import LapsegInputError
from lapseg.metrics.evaluate import evaluate_folders

FAST = BaselineConfig(n_estimators=5, n_pixels_per_image=300, sigmas=(1.0,), n_jobs=1)


@pytest.fixture
def stacks(tmp_path: Path) -> Path:
    return write_tube_stacks(tmp_path / "data", shape=(3, 4, 16, 20), rng=1)


def _config():
    return load_config(
        None,
        [
            "data.layout=sequences",
            "data.axes=TZYX",
            "data.val_fraction=0",
            "data.test_fraction=0.25",
        ],
    )


def test_forest_trains_on_lapseg_trains_split(stacks: Path, tmp_path: Path) -> None:
    config = _config()
    out = train_baseline(stacks, tmp_path / "forest", config, settings=FAST)
    split = json.loads((out / "split.json").read_text(encoding="utf-8"))
    resolved, sources = discover_dataset(config, stacks)
    assert split == sequence_split(sources.sequences, resolved)
    assert len(split["test"]) == 3 and len(split["train"]) == 9  # one z-slice of four to test
    assert {name.split("/")[1] for name in split["test"]} == {split["test"][0].split("/")[1]}
    run = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert run["n_train"] == 9 and run["n_test"] == 3


def test_predict_frames_of_a_stack_and_evaluate(stacks: Path, tmp_path: Path) -> None:
    out = train_baseline(stacks, tmp_path / "forest", _config(), settings=FAST)
    test = json.loads((out / "split.json").read_text(encoding="utf-8"))["test"]
    seen: list[Path] = []
    written = predict_baseline(
        out, [stacks], tmp_path / "pred", axes="TZYX", names=test, on_image=seen.append
    )
    assert len(written) == len(seen) == 3
    for name in test:
        assert (tmp_path / "pred" / "masks" / f"{name}.tif").is_file()
        assert (tmp_path / "pred" / "probabilities" / f"{name}.tif").is_file()
    result = evaluate_folders(tmp_path / "pred", stacks / "masks", only=test)
    assert result.n_images == 3
    assert result.pooled["accuracy"] > 0.9  # bright tubes on a dark background: easy
    # every frame without names
    assert (
        len(predict_baseline(out, [stacks / "pancreas.tif"], tmp_path / "all", axes="TZYX")) == 12
    )
    with pytest.raises(LapsegInputError, match="not in the input stacks"):
        predict_baseline(out, [stacks], tmp_path / "x", axes="TZYX", names=["pancreas/z07/t000"])
