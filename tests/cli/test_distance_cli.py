"""``data.target=distance`` end to end: train, tune, predict labels, override the seeds at
prediction time, export, and refuse what bioimage.io cannot express."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile

from lapseg.cli import main
from lapseg.config import load_config
from lapseg.inference.predict import load_model, predict_probabilities
from lapseg.models.checkpoint import load_checkpoint

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def distance_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A small distance model on 9 synthetic label images (about 15 s), and its data."""
    from conftest import TINY_TRAINING, write_pairs
    from lapseg.training.trainer import fit

    root = tmp_path_factory.mktemp("distance-run")
    data = write_pairs(root / "data", 9, seed=5)
    overrides = [*TINY_TRAINING, "train.epochs=40", "data.target=distance"]
    fit(load_config(None, overrides), data, root / "run", progress=False)
    return root / "run", data


def _predict(run: Path, images: Path, out: Path, *extra: str) -> None:
    args = ["predict", "--model", run, "--input", images, "--output", out, "--no-progress"]
    assert main([str(a) for a in [*args, *extra]]) == 0


def test_training_records_the_target_and_tunes_the_seeds(distance_run):
    run, _ = distance_run
    config = load_checkpoint(run / "best.pt")["config"]
    assert config["data"]["target"] == "distance"
    assert config["model"]["out_channels"] == 4
    assert config["loss"]["border_weights"] is False
    summary = json.loads((run / "run.json").read_text())
    tuning = summary["postprocess_tuning"]
    assert tuning["settings_tried"] == "49 of 49"
    assert tuning["value"] >= tuning["value_with_defaults"]
    assert tuning["value"] > 0.3  # SEG/AP mean on the validation split: it learnt the cells
    assert "distance target with 4 output channel(s)" in (run / "log.txt").read_text()


def test_probabilities_are_classes_then_distances(distance_run):
    run, data = distance_run
    image = tifffile.imread(data / "images" / "img4.tif")[None].astype(np.float32)
    prob = predict_probabilities([load_model(run)], image)
    assert prob.shape == (4, *image.shape[1:])
    np.testing.assert_allclose(prob[0] + prob[1], 1.0, atol=1e-5)
    assert prob.min() >= 0.0 and prob.max() <= 1.0
    truth = tifffile.imread(data / "masks" / "img4.tif")
    # the cell distance is higher on the cells than off them
    assert prob[2][truth > 0].mean() > prob[2][truth == 0].mean() + 0.2


def test_predict_writes_labels_and_seed_settings_change_them(distance_run, tmp_path):
    run, data = distance_run
    _predict(run, data / "images", tmp_path / "default")
    _predict(
        run, data / "images", tmp_path / "no-seeds", "--set", "postprocess.interior_threshold=0.99"
    )
    _predict(
        run, data / "images", tmp_path / "tight", "--set", "postprocess.foreground_threshold=0.95"
    )
    default = tifffile.imread(tmp_path / "default" / "labels" / "img0.tif")
    assert default.max() >= 2
    assert tifffile.imread(tmp_path / "no-seeds" / "labels" / "img0.tif").max() == 0
    tight = tifffile.imread(tmp_path / "tight" / "labels" / "img0.tif")
    assert (tight > 0).sum() < (default > 0).sum()


def test_onnx_export_predicts_the_same_and_bioimageio_says_why_not(distance_run, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    from lapseg.inference.exported import load_exported_model

    run, data = distance_run
    onnx_file = tmp_path / "m.onnx"
    assert main(["export", str(run), "--format", "onnx", "--out", str(onnx_file)]) == 0
    image = tifffile.imread(data / "images" / "img3.tif")[None].astype(np.float32)
    expected = predict_probabilities([load_model(run)], image)
    got = predict_probabilities([load_exported_model(onnx_file)], image)
    np.testing.assert_allclose(got, expected, atol=2e-3)
    capsys.readouterr()
    zip_file = tmp_path / "m.zip"
    args = ["export", str(run), "--format", "bioimageio", "--out", str(zip_file)]
    assert main([*args, "--sample-image", str(data / "images" / "img3.tif")]) == 2
    err = capsys.readouterr().err.strip()
    assert "data.target=distance" in err and len(err.splitlines()) == 1
    assert not zip_file.exists()
