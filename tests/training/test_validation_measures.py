"""What validation records: the cell IoU of 3-class models (interior + boundary together, the
measure the curriculum and early stopping watch) and the per-image cell measures."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from lapseg.config import load_config
from lapseg.losses import create_loss
from lapseg.metrics.pixel import MetricAccumulator
from lapseg.training.validation import ValidationSet, validate


class ClassPainter(nn.Module):
    """Logits that predict, at every pixel, the class index held in the input image."""

    def __init__(self, classes: int) -> None:
        super().__init__()
        self.classes = classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        index = x[:, 0].round().long().clamp(0, self.classes - 1)
        return 20.0 * nn.functional.one_hot(index, self.classes).permute(0, 3, 1, 2).float()


def _tiles(predicted: np.ndarray, target: np.ndarray, labels: np.ndarray) -> ValidationSet:
    return ValidationSet([predicted[None].astype(np.float32)], [target], [labels])


def test_three_class_val_iou_is_the_cell_iou_not_a_class_mean() -> None:
    target = np.zeros((16, 16), np.int64)
    target[2:8, 2:8] = 1  # interior
    target[8, 2:8] = 2  # boundary
    labels = (target > 0).astype(np.int32)
    predicted = (target > 0).astype(np.int64)  # every cell pixel as interior
    config = load_config(
        None,
        [
            "data.task=instances",
            "data.target=three_class",
            "model.out_channels=3",
            "predict.tile_size=[16, 16]",
        ],
    )
    row = validate(
        ClassPainter(3),
        _tiles(predicted, target, labels),
        create_loss("ce"),
        config,
        device=torch.device("cpu"),
    )
    assert row["val_iou"] == pytest.approx(1.0)  # the cells are found exactly
    # whereas the mean of interior and boundary IoUs would be (6*6/(6*7) + 0) / 2
    assert row["val_f1"] == pytest.approx(1.0) and row["val_error_rate"] == 0.0


def test_binary_validation_records_the_per_tile_cell_measures() -> None:
    target = np.zeros((16, 16), np.int64)
    target[:4, :4] = 1
    predicted = np.zeros((16, 16), np.int64)
    predicted[:4, :2] = 1
    predicted[15, 15] = 1  # one false white pixel
    config = load_config(
        None,
        ["data.task=binary", "model.out_channels=2", "predict.tile_size=[16, 16]"],
    )
    row = validate(
        ClassPainter(2),
        _tiles(predicted, target, target.astype(np.int32)),
        create_loss("ce"),
        config,
        device=torch.device("cpu"),
    )
    reference = MetricAccumulator()
    reference.update(target, predicted)
    expected = reference.stemnet_means()
    for key in ("error_rate", "f1", "false_white", "white_pixel_accuracy", "precision", "recall"):
        assert row[f"val_{key}"] == pytest.approx(expected[key]), key
    assert row["val_error_rate"] == pytest.approx(100 * 9 / 256)
