"""Tests for lapseg.report.plots: files exist, are real PNGs, overlay colours are right."""

from __future__ import annotations

import math

import imageio.v3 as iio
import numpy as np
import pytest

from lapseg.report.plots import (
    PRED_COLOUR,
    TRUTH_COLOUR,
    overlay_rgb,
    save_boxplots,
    save_learning_curves,
    save_overlay,
)


def _check_png(path):
    assert path.exists()
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = iio.imread(path)
    assert pixels.shape[0] > 100
    assert pixels.shape[1] > 100
    assert pixels.std() > 0  # something was drawn
    assert not list(path.parent.glob(".*"))  # no temporary file left
    return pixels


def test_save_boxplots(tmp_path):
    rows = [{"dice": 0.8 + 0.01 * i, "iou": 0.7 - 0.02 * i, "name": f"i{i}"} for i in range(6)]
    rows[2]["iou"] = math.nan  # tolerated
    out = save_boxplots(rows, ["dice", "iou"], tmp_path / "box.png")
    assert out == tmp_path / "box.png"
    _check_png(out)


def test_save_boxplots_bad_input(tmp_path):
    with pytest.raises(ValueError, match="available: dice"):
        save_boxplots([{"dice": 1.0}], ["f1"], tmp_path / "b.png")
    with pytest.raises(ValueError, match="empty"):
        save_boxplots([], ["dice"], tmp_path / "b.png")
    assert not (tmp_path / "b.png").exists()


def test_save_learning_curves_with_stages_and_gaps(tmp_path):
    history = [
        {"epoch": e, "train_loss": 1 / e, "val_loss": 1.2 / e, "val_dice": 0.1 * e, "stage": 0}
        for e in range(1, 8)
    ]
    for row in history[4:]:
        row["stage"] = 1
    history[3]["val_loss"] = math.nan
    del history[5]["val_dice"]
    _check_png(save_learning_curves(history, tmp_path / "curves.png"))


def test_save_learning_curves_single_epoch_no_stage(tmp_path):
    _check_png(save_learning_curves([{"train_loss": 0.5}], tmp_path / "one.png"))


def test_save_learning_curves_nothing_to_plot(tmp_path):
    with pytest.raises(ValueError, match="no finite values"):
        save_learning_curves([{"lr": 0.1}], tmp_path / "c.png")
    with pytest.raises(ValueError, match="empty"):
        save_learning_curves([], tmp_path / "c.png")


def test_overlay_colours_at_known_contour(tmp_path):
    image = np.linspace(0.0, 1.0, 20 * 30).reshape(20, 30)
    truth = np.zeros((20, 30), np.uint8)
    truth[5:15, 5:15] = 1
    pred = np.zeros((20, 30), bool)
    pred[4:12, 18:26] = True
    path = save_overlay(image, truth, pred, tmp_path / "overlay.png")
    rgb = iio.imread(path)
    assert rgb.shape == (20, 30, 3)  # 1:1 pixels
    assert tuple(rgb[5, 10]) == TRUTH_COLOUR  # top edge of the truth square
    assert tuple(rgb[14, 5]) == TRUTH_COLOUR
    assert tuple(rgb[4, 20]) == PRED_COLOUR  # top edge of the predicted square
    assert tuple(rgb[11, 25]) == PRED_COLOUR
    centre = rgb[10, 10]
    assert centre[0] == centre[1] == centre[2]  # inside: grey, untouched
    assert tuple(rgb[0, 0]) == (0, 0, 0)  # darkest pixel after the percentile stretch
    assert tuple(rgb[19, 29]) == (255, 255, 255)


def test_overlay_without_truth_and_bad_shapes():
    pred = np.zeros((8, 8), np.int32)
    pred[2:6, 2:6] = 3
    rgb = overlay_rgb(np.zeros((8, 8)), None, pred)
    assert tuple(rgb[2, 3]) == PRED_COLOUR
    assert not (rgb == np.array(TRUTH_COLOUR, np.uint8)).all(axis=-1).any()
    with pytest.raises(ValueError, match="truth shape"):
        overlay_rgb(np.zeros((8, 8)), np.zeros((4, 4)), pred)
    with pytest.raises(ValueError, match=r"\(Y, X\)"):
        overlay_rgb(np.zeros((1, 8, 8)), None, pred)
