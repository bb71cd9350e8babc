"""Tests for lapseg.metrics.evaluate_instances on tiny label-image folders."""

from __future__ import annotations

import csv
import json

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile

from lapseg.errors import LapsegInputError
from lapseg.metrics.evaluate_instances import (
    InstanceEvaluation,
    evaluate_instance_folders,
    format_instance_table,
)


def _truth_a() -> np.ndarray:
    truth = np.zeros((8, 16), np.uint16)
    truth[:, 0:4] = 1
    truth[:, 4:8] = 2
    truth[:, 8:12] = 3
    return truth


@pytest.fixture
def folders(tmp_path):
    """Two truth label images and a ``lapseg predict``-style folder with ``labels/``."""
    truth_dir, pred_dir = tmp_path / "truth", tmp_path / "pred"
    truth_dir.mkdir()
    (pred_dir / "labels").mkdir(parents=True)
    (pred_dir / "masks").mkdir()
    truth_a = _truth_a()
    pred_a = truth_a * 5  # perfect, relabelled
    pred_a[:, 4:8] = 0  # cell 2 missed
    pred_a[0:4, 13:16] = 9  # a false positive
    truth_b = np.zeros((8, 16), np.uint8)
    truth_b[1:7, 1:7] = 40
    truth_b[1:7, 7:13] = 41
    pred_b = np.zeros((8, 16), np.uint8)
    pred_b[1:7, 1:13] = 1  # one prediction merging both cells (binary mask: {0, 1})
    tifffile.imwrite(truth_dir / "a.tif", truth_a)
    iio.imwrite(truth_dir / "b.png", truth_b)
    tifffile.imwrite(pred_dir / "labels" / "a.tif", pred_a)
    tifffile.imwrite(pred_dir / "labels" / "b.tif", pred_b)
    tifffile.imwrite(pred_dir / "labels" / "extra.tif", pred_b)
    tifffile.imwrite(pred_dir / "masks" / "a.tif", np.zeros((3, 3), np.uint8))  # not used
    return pred_dir, truth_dir


def test_evaluate_folders_by_hand(folders, tmp_path):
    pred_dir, truth_dir = folders
    out = tmp_path / "eval"
    result = evaluate_instance_folders(pred_dir, truth_dir, out_dir=out)
    assert isinstance(result, InstanceEvaluation)
    assert result.n_images == 2 and result.unmatched_predictions == 1
    # SEG: image a: 1, 0, 1 (3 objects); image b: the merge covers each cell fully (J = 0.5)
    assert result.seg["n_objects"] == 5
    assert result.seg["seg"] == pytest.approx((1 + 0 + 1 + 0.5 + 0.5) / 5)
    rec = result.at(0.5)
    # a: tp 2, fp 1, fn 1; b: the merge has IoU 0.5 with each cell: no match (fp 1, fn 2)
    assert (rec.tp, rec.fp, rec.fn) == (2, 2, 3)
    assert rec.ap == pytest.approx(2 / 7)
    assert rec.f1 == pytest.approx(4 / 9)
    assert result.split_merge == {"merges": 1, "merged_objects": 2, "splits": 0, "split_pieces": 0}
    assert result.ap_mean == pytest.approx(2 / 7)  # perfect matches stay matched at 0.95

    with open(out / "instances_per_image.csv", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["name"] for r in rows] == ["a", "b"]
    assert float(rows[0]["seg"]) == pytest.approx(2 / 3)
    assert int(rows[1]["merges"]) == 1
    assert float(rows[0]["ap@0.5"]) == pytest.approx(0.5)
    assert float(rows[0]["f1@0.5"]) == pytest.approx(2 / 3)
    assert "ap@0.95" in rows[0] and "ap_mean" in rows[0]
    summary = json.loads((out / "instances_summary.json").read_text(encoding="utf-8"))
    assert summary["seg"]["seg"] == pytest.approx(0.6)
    assert summary["n_images"] == 2
    assert [m["threshold"] for m in summary["matching"]][:2] == [0.5, 0.55]
    assert summary["matching"][0]["tp"] == 2
    assert "seg" in summary["definitions"]
    assert not list(out.glob(".*"))  # no temporary files left behind


def test_table_lists_seg_and_thresholds(folders):
    pred_dir, truth_dir = folders
    table = format_instance_table(evaluate_instance_folders(pred_dir, truth_dir))
    lines = table.splitlines()
    assert lines[0].startswith("2 image(s) evaluated, 1 prediction(s)")
    assert lines[1] == "SEG 0.6000 over 5 reference object(s)"
    assert "merges 1 (2 objects)" in lines[2]
    assert lines[3].split() == [
        "IoU",
        "TP",
        "FP",
        "FN",
        "precision",
        "recall",
        "F1",
        "AP",
        "mIoU",
        "PQ",
    ]
    assert lines[4].split()[:4] == ["0.50", "2", "2", "3"]
    assert len(lines) == 4 + 10


def test_empty_truth_gives_null_seg_in_json(tmp_path):
    truth_dir, pred_dir = tmp_path / "t", tmp_path / "p"
    truth_dir.mkdir()
    pred_dir.mkdir()
    tifffile.imwrite(truth_dir / "x.tif", np.zeros((4, 4), np.uint16))
    tifffile.imwrite(pred_dir / "x.tif", np.zeros((4, 4), np.uint16))
    result = evaluate_instance_folders(pred_dir, truth_dir, thresholds=[0.5], out_dir=tmp_path)
    summary = json.loads((tmp_path / "instances_summary.json").read_text(encoding="utf-8"))
    assert summary["seg"]["seg"] is None
    assert result.at(0.5).ap == 1.0
    assert "SEG n/a" in format_instance_table(result)
    with pytest.raises(LapsegInputError, match=r"0\.7"):
        result.at(0.7)


def test_bad_inputs(tmp_path, folders):
    pred_dir, truth_dir = folders
    with pytest.raises(LapsegInputError, match="not found"):
        evaluate_instance_folders(tmp_path / "missing", truth_dir)
    tifffile.imwrite(pred_dir / "labels" / "a.tif", np.zeros((4, 4), np.uint16))
    with pytest.raises(LapsegInputError, match="shape"):
        evaluate_instance_folders(pred_dir, truth_dir)
    (pred_dir / "labels" / "b.tif").unlink()
    with pytest.raises(LapsegInputError, match="no prediction"):
        evaluate_instance_folders(pred_dir, truth_dir)
    with pytest.raises(LapsegInputError):
        evaluate_instance_folders(truth_dir, truth_dir, thresholds=[1.5])
