"""Tests for lapseg.metrics.evaluate on tiny mask folders written with tifffile / imageio."""

from __future__ import annotations

import csv
import json

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile

from lapseg.errors import LapsegInputError
from lapseg.io.images import read_mask
from lapseg.metrics.evaluate import (
    EvaluationResult,
    evaluate_folders,
    format_metrics_table,
    pair_predictions,
)
from lapseg.metrics.pairing import pair_frames
from lapseg.metrics.pixel import binary_metrics, confusion_matrix
from lapseg.report.plots import save_evaluation_boxplots


def _masks(seed: int, shape=(12, 16)):
    rng = np.random.default_rng(seed)
    truth = (rng.random(shape) < 0.3).astype(np.uint8)
    pred = np.where(rng.random(shape) < 0.8, truth, 1 - truth).astype(np.uint8)
    return truth, pred


@pytest.fixture
def folders(tmp_path):
    """3 truth PNGs (0/255) and 4 TIFF predictions (labels), one without truth."""
    truth_dir, pred_dir = tmp_path / "truth", tmp_path / "pred"
    truth_dir.mkdir()
    (pred_dir / "masks").mkdir(parents=True)
    (pred_dir / "probabilities").mkdir()
    pairs = {}
    for i, stem in enumerate(["img10", "img2", "img1"]):
        truth, pred = _masks(i)
        iio.imwrite(truth_dir / f"{stem}.png", truth * 255)
        tifffile.imwrite(pred_dir / "masks" / f"{stem}.tif", pred * (i + 1))  # labels, not 0/1
        pairs[stem] = (truth, pred)
    tifffile.imwrite(pred_dir / "masks" / "extra.tif", np.zeros((12, 16), np.uint8))
    return pred_dir, truth_dir, pairs


def test_pair_predictions_natural_order_and_masks_subfolder(folders):
    pred_dir, truth_dir, _ = folders
    pairs = pair_predictions(pred_dir, truth_dir)
    assert [p.name for p in pairs] == ["img1", "img2", "img10"]
    assert pairs[0].truth == "img1.png" and pairs[0].prediction.startswith("img1.")
    np.testing.assert_array_equal(
        pairs[0].read_prediction(), read_mask(next((pred_dir / "masks").glob("img1.*")))
    )


def test_ctc_names_pair_with_frames_and_stacks(tmp_path):
    """man_seg006 (gold truth) pairs with t006.tif, mask006.tif and frame 6 of a stack."""
    truth = tmp_path / "truth"
    truth.mkdir()
    mask = np.zeros((8, 8), np.uint16)
    mask[2:5, 2:5] = 1
    tifffile.imwrite(truth / "man_seg006.tif", mask)
    frames = tmp_path / "frames"
    frames.mkdir()
    for t in (5, 6, 7):
        tifffile.imwrite(frames / f"t{t:03d}.tif", mask * (t == 6))
    (pair,), unmatched = pair_frames(frames, truth)
    assert (pair.name, pair.prediction, unmatched) == ("man_seg006", "t006.tif", 2)
    stack = np.stack([mask * (t == 6) for t in range(9)])
    tifffile.imwrite(tmp_path / "movie.tif", stack, metadata={"axes": "TYX"})
    (pair,), unmatched = pair_frames(tmp_path / "movie.tif", truth)
    assert pair.prediction == "movie.tif[6]" and unmatched == 8
    np.testing.assert_array_equal(pair.read_prediction(), mask)
    assert evaluate_folders(tmp_path / "movie.tif", truth).pooled["dice"] == 1.0


def test_evaluate_folders_matches_in_memory_metrics(folders, tmp_path):
    pred_dir, truth_dir, pairs = folders
    out = tmp_path / "eval"
    result = evaluate_folders(pred_dir, truth_dir, out_dir=out)
    assert isinstance(result, EvaluationResult)
    assert result.n_images == 3
    assert result.unmatched_predictions == 1
    names = [row["name"] for row in result.per_image]
    assert names == ["img1", "img2", "img10"]
    expected = {s: binary_metrics(confusion_matrix(t, p)) for s, (t, p) in pairs.items()}
    for row in result.per_image:
        assert row["dice"] == pytest.approx(expected[row["name"]]["dice"])
        assert row["tp"] == expected[row["name"]]["tp"]
    total = sum(confusion_matrix(t, p) for t, p in pairs.values())
    assert result.pooled["iou"] == pytest.approx(binary_metrics(total)["iou"])
    dices = [m["dice"] for m in expected.values()]
    assert result.mean["dice"] == pytest.approx(np.mean(dices))
    assert result.std["dice"] == pytest.approx(np.std(dices))

    with open(out / "per_image.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["name"] for r in rows] == names
    for row, mem in zip(rows, result.per_image, strict=True):
        assert float(row["dice"]) == mem["dice"]
        assert float(row["false_white"]) == mem["false_white"]
        assert int(row["fn"]) == mem["fn"]

    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["pooled"] == result.pooled
    assert summary["mean"] == result.mean
    assert summary["std"] == result.std
    assert summary["n_images"] == 3
    assert summary["unmatched_predictions"] == 1
    assert "pooled" in summary["definitions"]
    assert "mean" in summary["definitions"]

    box = iio.imread(save_evaluation_boxplots(result, out))
    assert box.shape[0] > 100
    assert box.shape[1] > 100
    assert not list(out.glob(".*"))  # no temporary files left


def test_evaluate_folders_multiclass(tmp_path):
    truth_dir, pred_dir = tmp_path / "t", tmp_path / "p"
    truth_dir.mkdir()
    pred_dir.mkdir()
    truth = np.array([[0, 1, 2, 2], [0, 1, 1, 2]], np.uint8)
    pred = np.array([[0, 1, 2, 1], [0, 0, 1, 2]], np.uint8)
    tifffile.imwrite(truth_dir / "a.tif", truth)
    tifffile.imwrite(pred_dir / "a.tif", pred)
    result = evaluate_folders(pred_dir, truth_dir, num_classes=3, out_dir=tmp_path / "o")
    # class 1: tp 2, fp 1, fn 1 -> f1 2/3; class 2: tp 2, fp 0, fn 1 -> f1 0.8
    assert result.pooled["f1_per_class"][1:] == pytest.approx([2 / 3, 0.8])
    assert result.pooled["f1"] == pytest.approx((2 / 3 + 0.8) / 2)
    assert result.pooled["accuracy"] == pytest.approx(6 / 8)
    header = (tmp_path / "o" / "per_image.csv").read_text(encoding="utf-8").splitlines()[0]
    assert "f1_class2" in header.split(",")


def test_evaluate_multiclass_value_out_of_range(tmp_path):
    truth_dir, pred_dir = tmp_path / "t", tmp_path / "p"
    truth_dir.mkdir()
    pred_dir.mkdir()
    tifffile.imwrite(truth_dir / "a.tif", np.array([[0, 1], [2, 0]], np.uint8))
    tifffile.imwrite(pred_dir / "a.tif", np.array([[0, 5], [2, 0]], np.uint8))
    with pytest.raises(LapsegInputError, match=r"a\.tif.*\[0, 3\)"):
        evaluate_folders(pred_dir, truth_dir, num_classes=3)


def test_format_metrics_table(folders):
    pred_dir, truth_dir, _ = folders
    result = evaluate_folders(pred_dir, truth_dir)
    table = format_metrics_table(result)
    lines = table.splitlines()
    assert lines[0].startswith("3 image(s) evaluated, 1 prediction(s)")
    dice_line = next(line for line in lines if line.startswith("dice"))
    assert f"{result.pooled['dice']:.4f}" in dice_line
    assert f"{result.mean['dice']:.4f} ± {result.std['dice']:.4f}" in dice_line


# --- bad input ------------------------------------------------------------------------------


def test_missing_prediction_names_the_file(folders):
    pred_dir, truth_dir, _ = folders
    (pred_dir / "masks" / "img2.tif").unlink()
    with pytest.raises(LapsegInputError, match=r"img2\.png"):
        evaluate_folders(pred_dir, truth_dir)


def test_shape_mismatch_names_both_files(folders):
    pred_dir, truth_dir, _ = folders
    tifffile.imwrite(pred_dir / "masks" / "img2.tif", np.zeros((5, 5), np.uint8))
    with pytest.raises(LapsegInputError) as info:
        evaluate_folders(pred_dir, truth_dir)
    message = str(info.value)
    assert "img2.tif" in message
    assert "img2.png" in message
    assert "(5, 5)" in message
    assert "(12, 16)" in message


def test_missing_and_empty_folders(tmp_path, folders):
    pred_dir, truth_dir, _ = folders
    with pytest.raises(LapsegInputError, match="nowhere"):
        evaluate_folders(tmp_path / "nowhere", truth_dir)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(LapsegInputError, match="empty"):
        evaluate_folders(pred_dir, empty)
    with pytest.raises(LapsegInputError, match="empty"):
        pair_predictions(empty, truth_dir)


def test_bad_num_classes(folders):
    pred_dir, truth_dir, _ = folders
    with pytest.raises(LapsegInputError, match="num_classes"):
        evaluate_folders(pred_dir, truth_dir, num_classes=1)
