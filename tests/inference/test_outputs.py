"""Tests for lapseg.inference.outputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.filters import threshold_otsu
from sklearn.metrics import f1_score

from lapseg.errors import LapsegInputError
from lapseg.inference.outputs import (
    argmax_classes,
    probabilities_from_logits,
    threshold_probabilities,
    tune_threshold,
)


def test_probabilities_from_logits_sigmoid_for_one_channel() -> None:
    logits = torch.tensor([[[0.0, np.log(3.0)], [-np.log(3.0), 100.0]]], dtype=torch.float32)
    expected = torch.tensor([[[0.5, 0.75], [0.25, 1.0]]])
    torch.testing.assert_close(probabilities_from_logits(logits), expected)


def test_probabilities_from_logits_softmax_over_classes() -> None:
    logits = torch.zeros(3, 1, 2)
    logits[1, 0, 0] = np.log(2.0)  # pixel 0: weights 1, 2, 1 -> 1/4, 1/2, 1/4
    prob = probabilities_from_logits(logits)
    torch.testing.assert_close(prob[:, 0, 0], torch.tensor([0.25, 0.5, 0.25]))
    torch.testing.assert_close(prob[:, 0, 1], torch.full((3,), 1 / 3))
    torch.testing.assert_close(prob.sum(0), torch.ones(1, 2))


def test_probabilities_from_logits_regressed_channels_go_through_a_sigmoid() -> None:
    logits = torch.zeros(4, 1, 2)
    logits[1, 0, 0] = np.log(3.0)  # classes 1 : 3 -> 1/4, 3/4
    logits[2, 0, 0] = np.log(3.0)  # sigmoid 3/4, not part of the softmax
    logits[3, 0, 1] = -np.log(3.0)  # sigmoid 1/4
    prob = probabilities_from_logits(logits, regressed=2)
    torch.testing.assert_close(prob[:, 0, 0], torch.tensor([0.25, 0.75, 0.75, 0.5]))
    torch.testing.assert_close(prob[:, 0, 1], torch.tensor([0.5, 0.5, 0.5, 0.25]))
    with pytest.raises(LapsegInputError, match="regressed"):
        probabilities_from_logits(torch.zeros(3, 2, 2), regressed=2)


@pytest.mark.parametrize(
    "logits", [torch.zeros(4, 4), torch.zeros(1, 4, 4, dtype=torch.long), np.zeros((1, 4, 4))]
)
def test_probabilities_from_logits_bad_input(logits: object) -> None:
    with pytest.raises(LapsegInputError):
        probabilities_from_logits(logits)


def test_fixed_threshold_is_strict() -> None:
    prob = np.array([[0.2, 0.5], [0.51, 1.0]])
    mask = threshold_probabilities(prob)
    assert mask.dtype == np.uint8
    np.testing.assert_array_equal(mask, [[0, 0], [1, 1]])
    np.testing.assert_array_equal(threshold_probabilities(prob, threshold=0.1), [[1, 1], [1, 1]])


def test_otsu_threshold_matches_skimage() -> None:
    rng = np.random.default_rng(0)
    prob = np.clip(np.concatenate([rng.normal(0.2, 0.05, 300), rng.normal(0.7, 0.05, 100)]), 0, 1)
    prob = prob.reshape(20, 20)
    mask = threshold_probabilities(prob, method="otsu")
    np.testing.assert_array_equal(mask, (prob > threshold_otsu(prob)).astype(np.uint8))
    assert mask.sum() == 100  # the two modes are well apart


def test_otsu_on_constant_map_uses_half() -> None:
    np.testing.assert_array_equal(
        threshold_probabilities(np.full((3, 3), 0.7), method="otsu"), np.ones((3, 3))
    )
    np.testing.assert_array_equal(
        threshold_probabilities(np.full((3, 3), 0.3), method="otsu"), np.zeros((3, 3))
    )


@pytest.mark.parametrize(
    ("prob", "kwargs"),
    [
        (np.zeros((2, 3, 3)), {}),
        (np.zeros((3, 3), np.uint8), {}),
        (np.full((3, 3), np.nan), {}),
        (np.zeros((3, 3)), {"method": "triangle"}),
        (np.zeros((3, 3)), {"threshold": float("nan")}),
    ],
)
def test_threshold_probabilities_bad_input(prob: np.ndarray, kwargs: dict) -> None:
    with pytest.raises(LapsegInputError):
        threshold_probabilities(prob, **kwargs)


def test_tune_threshold_hand_computed() -> None:
    prob = np.array([[0.1, 0.4, 0.6, 0.9]])
    truth = np.array([[0, 1, 1, 1]])
    # t=0.05: TP3 FP1 -> 6/7; t=0.3: TP3 -> 1; t=0.5: TP2 FN1 -> 4/5; t=0.7: TP1 FN2 -> 1/2
    threshold, dice = tune_threshold([prob], [truth], candidates=[0.7, 0.05, 0.3, 0.5])
    assert threshold == 0.3
    assert dice == pytest.approx(1.0)
    threshold, dice = tune_threshold([prob], [truth], candidates=[0.5, 0.05])
    assert threshold == 0.05
    assert dice == pytest.approx(6 / 7)


def test_tune_threshold_matches_brute_force_pooled_dice() -> None:
    rng = np.random.default_rng(1)
    truths = [rng.random((12, 15)) < 0.3, (rng.random((9, 20)) < 0.5).astype(np.int32) * 7]
    probs = [np.clip(t * 0.4 + rng.random(t.shape) * 0.6, 0, 1) for t in truths]
    candidates = np.linspace(0.05, 0.95, 19)
    flat_truth = np.concatenate([(t != 0).ravel() for t in truths])
    flat_prob = np.concatenate([p.ravel() for p in probs])
    scores = [f1_score(flat_truth, flat_prob > c) for c in candidates]
    best = int(np.argmax(scores))
    threshold, dice = tune_threshold(probs, truths)
    assert threshold == pytest.approx(candidates[best])
    assert dice == pytest.approx(scores[best])


def test_tune_threshold_empty_truth_and_prediction_scores_one() -> None:
    threshold, dice = tune_threshold([np.zeros((4, 4))], [np.zeros((4, 4))], candidates=[0.5])
    assert (threshold, dice) == (0.5, 1.0)


@pytest.mark.parametrize(
    ("probs", "truths", "kwargs"),
    [
        ([], [], {}),
        ([np.zeros((3, 3))], [], {}),
        ([np.zeros((3, 3))], [np.zeros((3, 4))], {}),
        ([np.zeros((3, 3))], [np.zeros((3, 3))], {"candidates": []}),
        ([np.zeros((3, 3))], [np.zeros((3, 3))], {"candidates": [0.5, np.inf]}),
        ([np.zeros(9)], [np.zeros(9)], {}),
    ],
)
def test_tune_threshold_bad_input(probs: list, truths: list, kwargs: dict) -> None:
    with pytest.raises(LapsegInputError):
        tune_threshold(probs, truths, **kwargs)


def test_argmax_classes_numpy_and_torch() -> None:
    prob = np.array([[[0.1, 0.5]], [[0.7, 0.5]], [[0.2, 0.0]]])  # ties go to the lower class
    np.testing.assert_array_equal(argmax_classes(prob), [[1, 0]])
    assert argmax_classes(prob).dtype == np.uint8
    np.testing.assert_array_equal(argmax_classes(torch.from_numpy(prob)), [[1, 0]])
    many = np.zeros((300, 1, 2))
    many[299, 0, 1] = 1.0
    result = argmax_classes(many)
    assert result.dtype == np.uint16
    np.testing.assert_array_equal(result, [[0, 299]])


@pytest.mark.parametrize("prob", [np.zeros((3, 3)), torch.zeros(0, 2, 2)])
def test_argmax_classes_bad_input(prob: object) -> None:
    with pytest.raises(LapsegInputError):
        argmax_classes(prob)
