"""Instances with no flags: train detects label masks, predict writes labels and honours
``--set postprocess.*``, and the validation measure is what ``evaluate --instances`` reports."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile

from lapseg.cli import main
from lapseg.inference.predict import load_model, model_instances, predict_probabilities
from lapseg.models.checkpoint import load_checkpoint
from lapseg.training.validation import instance_scores

pytestmark = pytest.mark.slow


def _predict(run: Path, images: Path, out: Path, *extra: str) -> None:
    args = ["predict", "--model", run, "--input", images, "--output", out, "--no-progress"]
    assert main([str(a) for a in [*args, *extra]]) == 0


def test_label_masks_train_an_instance_model_with_tuned_postprocessing(instance_run):
    run, _ = instance_run
    checkpoint = load_checkpoint(run / "best.pt")
    config = checkpoint["config"]
    assert config["data"]["task"] == "instances"
    assert config["data"]["target"] == "three_class"
    assert config["model"]["out_channels"] == 3
    assert config["loss"]["border_weights"] is True  # auto: on for instance masks
    summary = json.loads((run / "run.json").read_text())
    assert summary["task"]["task"] == "instances"
    tuning = summary["postprocess_tuning"]
    assert tuning["value"] >= tuning["value_with_defaults"]
    log = (run / "log.txt").read_text()
    assert "task instances" in log and "weighted by the border weight map" in log


def test_predict_writes_labels_and_postprocess_settings_change_them(instance_run, tmp_path):
    run, data = instance_run
    _predict(run, data / "images", tmp_path / "default")
    _predict(run, data / "images", tmp_path / "strict", "--set", "postprocess.min_size=100000")
    _predict(
        run, data / "images", tmp_path / "tight", "--set", "postprocess.foreground_threshold=0.95"
    )
    default = tifffile.imread(tmp_path / "default" / "labels" / "img0.tif")
    assert default.max() >= 2
    assert tifffile.imread(tmp_path / "strict" / "labels" / "img0.tif").max() == 0
    tight = tifffile.imread(tmp_path / "tight" / "labels" / "img0.tif")
    assert 0 < (tight > 0).sum() < (default > 0).sum()


def test_validation_measure_equals_evaluate_instances(instance_run, tmp_path, capsys):
    run, data = instance_run
    names = [f"img{i}.tif" for i in range(3)]
    images, truth = tmp_path / "images", tmp_path / "truth"
    images.mkdir()
    truth.mkdir()
    for name in names:
        (images / name).symlink_to(data / "images" / name)
        (truth / name).symlink_to(data / "masks" / name)
    _predict(run, images, tmp_path / "pred")
    report_run = tmp_path / "report-run"
    report_run.mkdir()
    for name in ("config.yaml", "split.json", "run.json", "history.csv", "best.pt"):
        (report_run / name).symlink_to(run / name)
    args = ["evaluate", "--instances", "--pred", tmp_path / "pred", "--truth", truth]
    extra = ["--out", tmp_path / "eval", "--run", report_run, "--images", images]
    assert main([str(a) for a in [*args, *extra]]) == 0
    printed = capsys.readouterr().out
    assert "instances_summary.json" in printed and "report:" in printed
    report = (report_run / "report.html").read_text()
    assert "SEG" in report and "img0" in report
    summary = json.loads((tmp_path / "eval" / "instances_summary.json").read_text())
    at_half = next(r for r in summary["matching"] if r["threshold"] == 0.5)
    # what training validates with (lapseg.training.validation.instance_scores)
    loaded = load_model(run)
    truths, predictions = [], []
    for name in names:
        image = tifffile.imread(data / "images" / name)[None]
        predictions.append(model_instances(loaded, predict_probabilities([loaded], image)))
        truths.append(tifffile.imread(data / "masks" / name))
    scores = instance_scores(truths, predictions)
    assert scores["seg"] == pytest.approx(summary["seg"]["seg"], abs=1e-9)
    assert scores["ap50"] == pytest.approx(at_half["ap"], abs=1e-9)
    for name, labels in zip(names, predictions, strict=True):
        np.testing.assert_array_equal(tifffile.imread(tmp_path / "pred" / "labels" / name), labels)
