"""Tests for lapseg.metrics.pixel against hand-computed values and scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from lapseg.metrics.pixel import (
    BINARY_METRIC_KEYS,
    MetricAccumulator,
    binary_metrics,
    confusion_matrix,
    multiclass_metrics,
)


def _random_pair(seed: int, num_classes: int, shape: tuple[int, int] = (17, 23)):
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, num_classes, size=shape)
    # correlated prediction: keep the truth on ~70 % of pixels
    noise = rng.integers(0, num_classes, size=shape)
    pred = np.where(rng.random(shape) < 0.7, truth, noise)
    return truth, pred


# --- confusion matrix -----------------------------------------------------------------------


def test_confusion_matrix_hand_computed():
    truth = np.array([[0, 0, 1], [1, 1, 0]])
    pred = np.array([[0, 1, 1], [0, 1, 0]])
    cm = confusion_matrix(truth, pred)
    # tn = 2 (pixels 0, 5), fp = 1 (pixel 1), fn = 1 (pixel 3), tp = 2 (pixels 2, 4)
    np.testing.assert_array_equal(cm, [[2, 1], [1, 2]])
    assert cm.dtype == np.int64


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("num_classes", [2, 4])
def test_confusion_matrix_matches_sklearn(seed, num_classes):
    truth, pred = _random_pair(seed, num_classes)
    expected = skm.confusion_matrix(truth.ravel(), pred.ravel(), labels=range(num_classes))
    np.testing.assert_array_equal(confusion_matrix(truth, pred, num_classes=num_classes), expected)


def test_confusion_matrix_valid_mask_and_bool_inputs():
    truth = np.array([[True, False], [True, True]])
    pred = np.array([[True, True], [False, True]])
    valid = np.array([[True, False], [True, True]])
    cm = confusion_matrix(truth, pred, valid_mask=valid)
    np.testing.assert_array_equal(cm, [[0, 0], [1, 2]])
    assert cm.sum() == 3


def test_confusion_matrix_does_not_mutate_input():
    truth, pred = _random_pair(3, 2)
    t0, p0 = truth.copy(), pred.copy()
    confusion_matrix(truth, pred)
    np.testing.assert_array_equal(truth, t0)
    np.testing.assert_array_equal(pred, p0)


@pytest.mark.parametrize(
    ("truth", "pred", "kwargs", "match"),
    [
        (np.array([0, 2]), np.array([0, 1]), {}, "truth values must lie in"),
        (np.array([0, 1]), np.array([-1, 1]), {}, "pred values must lie in"),
        (np.array([0, 1]), np.array([0, 1, 1]), {}, "shape"),
        (np.array([0.0, 1.0]), np.array([0, 1]), {}, "integer"),
        (np.array([0, 1]), np.array([0, 1]), {"num_classes": 1}, "at least 2"),
        (np.array([0, 1]), np.array([0, 1]), {"valid_mask": np.array([1, 0])}, "boolean"),
        (np.array([0, 1]), np.array([0, 1]), {"valid_mask": np.array([True])}, "valid_mask"),
    ],
)
def test_confusion_matrix_bad_input(truth, pred, kwargs, match):
    with pytest.raises(ValueError, match=match):
        confusion_matrix(truth, pred, **kwargs)


# --- binary metrics -------------------------------------------------------------------------


def test_binary_metrics_hand_computed():
    # tn=5, fp=1, fn=2, tp=2 (n=10)
    m = binary_metrics(np.array([[5, 1], [2, 2]]))
    assert tuple(m) == BINARY_METRIC_KEYS
    assert m["accuracy"] == pytest.approx(0.7)
    assert m["precision"] == pytest.approx(2 / 3)
    assert m["recall"] == pytest.approx(0.5)
    assert m["white_pixel_accuracy"] == pytest.approx(0.5)
    assert m["specificity"] == pytest.approx(5 / 6)
    assert m["f1"] == pytest.approx(4 / 7)
    assert m["dice"] == pytest.approx(4 / 7)
    assert m["iou"] == pytest.approx(0.4)
    assert m["error_rate"] == pytest.approx(0.3)
    assert m["false_white"] == pytest.approx(0.1)
    # po = 0.7, pe = (6*7 + 4*3) / 100 = 0.54 -> kappa = 0.16 / 0.46
    assert m["cohen_kappa"] == pytest.approx(0.16 / 0.46)
    assert (m["tp"], m["fp"], m["fn"], m["tn"]) == (2, 1, 2, 5)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_binary_metrics_match_sklearn(seed):
    truth, pred = _random_pair(seed, 2)
    t, p = truth.ravel(), pred.ravel()
    m = binary_metrics(confusion_matrix(truth, pred))
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(t, p))
    assert m["error_rate"] == pytest.approx(1 - skm.accuracy_score(t, p))
    assert m["precision"] == pytest.approx(skm.precision_score(t, p))
    assert m["recall"] == pytest.approx(skm.recall_score(t, p))
    assert m["specificity"] == pytest.approx(skm.recall_score(t, p, pos_label=0))
    assert m["f1"] == pytest.approx(skm.f1_score(t, p))
    assert m["iou"] == pytest.approx(skm.jaccard_score(t, p))
    assert m["cohen_kappa"] == pytest.approx(skm.cohen_kappa_score(t, p))
    assert m["false_white"] == pytest.approx(np.mean((t == 0) & (p == 1)))


def test_binary_metrics_both_empty_foreground_is_perfect():
    m = binary_metrics(np.array([[12, 0], [0, 0]]))
    for key in ("precision", "recall", "f1", "dice", "iou", "specificity", "accuracy"):
        assert m[key] == 1.0, key
    assert m["cohen_kappa"] == 1.0
    assert m["error_rate"] == 0.0
    assert m["false_white"] == 0.0
    assert all(np.isfinite(v) for v in m.values())


def test_binary_metrics_one_side_empty_is_zero():
    pred_empty = binary_metrics(np.array([[8, 0], [2, 0]]))  # truth has foreground, pred not
    assert pred_empty["precision"] == 0.0
    assert pred_empty["recall"] == 0.0
    assert pred_empty["dice"] == 0.0
    assert pred_empty["iou"] == 0.0
    truth_empty = binary_metrics(np.array([[8, 2], [0, 0]]))  # false positives only
    assert truth_empty["precision"] == 0.0
    assert truth_empty["recall"] == 0.0
    assert truth_empty["dice"] == 0.0
    assert truth_empty["false_white"] == pytest.approx(0.2)
    # all pixels foreground in truth and prediction: specificity 1 by convention
    all_fg = binary_metrics(np.array([[0, 0], [0, 7]]))
    assert all_fg["specificity"] == 1.0
    assert all_fg["dice"] == 1.0
    assert binary_metrics(np.array([[0, 0], [3, 4]]))["specificity"] == 0.0


@pytest.mark.parametrize(
    "cm", [np.zeros((2, 2), dtype=int), np.eye(3, dtype=int), np.array([[1.0, 0], [0, 1]])]
)
def test_binary_metrics_bad_input(cm):
    with pytest.raises(ValueError):
        binary_metrics(cm)


# --- multi-class ----------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_multiclass_metrics_match_sklearn(seed):
    K = 4
    truth, pred = _random_pair(seed, K)
    t, p = truth.ravel(), pred.ravel()
    m = multiclass_metrics(confusion_matrix(truth, pred, num_classes=K))
    labels = list(range(K))
    fg = labels[1:]
    np.testing.assert_allclose(
        m["precision_per_class"], skm.precision_score(t, p, labels=labels, average=None)
    )
    np.testing.assert_allclose(
        m["recall_per_class"], skm.recall_score(t, p, labels=labels, average=None)
    )
    np.testing.assert_allclose(m["f1_per_class"], skm.f1_score(t, p, labels=labels, average=None))
    np.testing.assert_allclose(
        m["iou_per_class"], skm.jaccard_score(t, p, labels=labels, average=None)
    )
    assert m["precision"] == pytest.approx(skm.precision_score(t, p, labels=fg, average="macro"))
    assert m["recall"] == pytest.approx(skm.recall_score(t, p, labels=fg, average="macro"))
    assert m["f1"] == pytest.approx(skm.f1_score(t, p, labels=fg, average="macro"))
    assert m["dice"] == m["f1"]
    assert m["iou"] == pytest.approx(skm.jaccard_score(t, p, labels=fg, average="macro"))
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(t, p))
    assert m["cohen_kappa"] == pytest.approx(skm.cohen_kappa_score(t, p))


def test_multiclass_with_two_classes_equals_binary():
    truth, pred = _random_pair(5, 2)
    cm = confusion_matrix(truth, pred)
    b, m = binary_metrics(cm), multiclass_metrics(cm)
    for key in ("precision", "recall", "f1", "iou", "accuracy", "cohen_kappa"):
        assert m[key] == pytest.approx(b[key])


def test_multiclass_absent_class_convention():
    # class 2 never occurs in truth or prediction -> its scores are 1.0
    cm = np.array([[3, 1, 0], [0, 2, 0], [0, 0, 0]])
    m = multiclass_metrics(cm)
    assert m["f1_per_class"][2] == 1.0
    assert m["iou_per_class"][2] == 1.0
    assert m["f1"] == pytest.approx((0.8 + 1.0) / 2)


# --- accumulator ----------------------------------------------------------------------------


def test_pooled_differs_from_mean_per_image():
    # image A: 2x2, perfect on its 1 foreground pixel -> dice 1.0
    a_truth = np.array([[1, 0], [0, 0]])
    a_pred = a_truth.copy()
    # image B: 1x10, truth 8 foreground, prediction finds 4 of them -> tp 4, fn 4, dice 2/3
    b_truth = np.array([[1] * 8 + [0] * 2])
    b_pred = np.array([[1] * 4 + [0] * 6])
    acc = MetricAccumulator()
    acc.update(a_truth, a_pred)
    acc.update(b_truth, b_pred)
    assert len(acc) == 2
    per = acc.per_image()
    assert per[0]["dice"] == 1.0
    assert per[1]["dice"] == pytest.approx(2 / 3)
    summary = acc.mean_per_image()
    assert summary["mean"]["dice"] == pytest.approx(5 / 6)  # every image counts once
    assert summary["std"]["dice"] == pytest.approx(1 / 6)  # population std
    # pooled: tp 5, fn 4, fp 0 -> dice 10 / 14, every pixel counts once
    assert acc.pooled()["dice"] == pytest.approx(10 / 14)
    np.testing.assert_array_equal(acc.confusion, [[5, 0], [4, 5]])


def test_accumulator_multiclass_mean_of_lists():
    acc = MetricAccumulator(num_classes=3)
    acc.update(np.array([0, 1, 2]), np.array([0, 1, 2]))
    acc.update(np.array([0, 1, 2]), np.array([0, 2, 1]))
    summary = acc.mean_per_image()
    np.testing.assert_allclose(summary["mean"]["f1_per_class"], [1.0, 0.5, 0.5])
    assert summary["mean"]["accuracy"] == pytest.approx(2 / 3)


def test_accumulator_empty_and_bad_num_classes():
    with pytest.raises(ValueError, match="no image"):
        MetricAccumulator().pooled()
    with pytest.raises(ValueError):
        MetricAccumulator(num_classes=1)
