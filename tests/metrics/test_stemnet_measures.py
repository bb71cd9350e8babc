"""StemNet's Table 3 measures: per image with its code's rules, then averaged over images."""

from __future__ import annotations

import numpy as np
import pytest

from lapseg.metrics.pixel import STEMNET_KEYS, MetricAccumulator, stemnet_measures


def _cm(tn: int, fp: int, fn: int, tp: int) -> np.ndarray:
    return np.array([[tn, fp], [fn, tp]])


# (tn, fp, fn, tp) -> the values train_and_eval.py computes (hand-computed)
CASES = [
    # an ordinary image: 100 px, 10 cell pixels, 8 found, 2 false white
    (
        (88, 2, 2, 8),
        {
            "error_rate": 4.0,  # 100 - 100 * 96 / 100
            "precision": 0.8,
            "recall": 0.8,
            "f1": 0.8,
            "accuracy": 0.96,
            "white_pixel_accuracy": 0.8,
            "false_white": 0.02,
            "false_white_pixels": 2.0,
        },
    ),
    # no cells, none predicted: precision 0, recall 0, F1 0 (its rules), white accuracy 1
    (
        (100, 0, 0, 0),
        {
            "error_rate": 0.0,
            "precision": 0.0,
            "recall": 0.0,
            "f1": 0.0,
            "accuracy": 1.0,
            "white_pixel_accuracy": 1.0,
            "false_white": 0.0,
            "false_white_pixels": 0.0,
        },
    ),
    # no cells, 5 false white pixels
    (
        (95, 5, 0, 0),
        {
            "error_rate": 5.0,
            "precision": 0.0,
            "recall": 0.0,
            "f1": 0.0,
            "accuracy": 0.95,
            "white_pixel_accuracy": 1.0,
            "false_white": 0.05,
            "false_white_pixels": 5.0,
        },
    ),
    # cells, nothing predicted: precision 0 (no predicted white), F1 0, white accuracy 0
    (
        (90, 0, 10, 0),
        {
            "error_rate": 10.0,
            "precision": 0.0,
            "recall": 0.0,
            "f1": 0.0,
            "accuracy": 0.9,
            "white_pixel_accuracy": 0.0,
            "false_white": 0.0,
            "false_white_pixels": 0.0,
        },
    ),
    # precision 1/3, recall 1/2 -> F1 2 * (1/6) / (5/6) = 0.4
    (
        (6, 2, 1, 1),
        {
            "error_rate": 30.0,
            "precision": 1 / 3,
            "recall": 0.5,
            "f1": 0.4,
            "accuracy": 0.7,
            "white_pixel_accuracy": 0.5,
            "false_white": 0.2,
            "false_white_pixels": 2.0,
        },
    ),
]


@pytest.mark.parametrize(("counts", "expected"), CASES)
def test_per_image_rules(counts: tuple[int, int, int, int], expected: dict[str, float]) -> None:
    measures = stemnet_measures(_cm(*counts))
    assert set(measures) == set(STEMNET_KEYS)
    assert measures == pytest.approx(expected)


def test_images_count_once_not_pixels() -> None:
    """Table 3 averages the per-image values: an image without cells pulls F1 to its mean."""
    acc = MetricAccumulator()
    truth = np.zeros((10, 10), bool)
    truth[:2, :5] = True  # 10 cell pixels
    pred = truth.copy()
    acc.update(truth, pred)  # perfect: F1 1, error 0 %
    acc.update(np.zeros((2, 2), bool), np.zeros((2, 2), bool))  # no cells: F1 0 by the rules
    means = acc.stemnet_means()
    assert means["f1"] == pytest.approx(0.5)
    assert means["white_pixel_accuracy"] == pytest.approx(1.0)
    assert means["error_rate"] == pytest.approx(0.0)
    assert acc.pooled()["f1"] == pytest.approx(1.0)  # pooled: the empty image adds nothing


def test_multiclass_accumulator_is_refused() -> None:
    acc = MetricAccumulator(num_classes=3)
    acc.update(np.zeros((2, 2), int), np.zeros((2, 2), int))
    with pytest.raises(ValueError, match="two classes"):
        acc.stemnet_means()
    with pytest.raises(ValueError, match="no image"):
        MetricAccumulator().stemnet_means()
