"""Tests for lapseg.losses.class_weights with hand-computed tables and independent references."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from sklearn.utils.class_weight import compute_class_weight

from lapseg.errors import LapsegInputError
from lapseg.losses.class_weights import (
    class_pixel_counts,
    inverse_frequency_weights,
    median_frequency_weights,
    total_ratio_weights,
)

MASKS = [
    np.array([[0, 0], [0, 1]]),  # counts (3, 1)
    np.array([[1, 1], [0, 0]]),  # counts (2, 2)
    np.array([[0, 0], [0, 0]]),  # counts (4, 0)
]


def _stemnet_reference(masks: list[np.ndarray]) -> tuple[float, float]:
    """Seed 000's get_freq_median for boolean masks (image size instead of 1024 * 1024)."""
    freq_med_vec = []
    max_white = 0
    max_black = 0
    for mask in masks:
        n_white = mask.sum(axis=1).sum(axis=0)
        n_black = mask.size - n_white
        freq_med_vec.append(n_white)
        freq_med_vec.append(n_black)
        max_white += n_white
        max_black += n_black
    freq_med = np.median(np.array(freq_med_vec))
    return freq_med / max_white, freq_med / max_black  # (weight_ones, weight_zeros)


def test_counts_from_a_generator() -> None:
    counts = class_pixel_counts((m for m in MASKS), num_classes=2)
    assert counts.dtype == np.int64
    np.testing.assert_array_equal(counts, [[3, 1], [2, 2], [4, 0]])
    three = class_pixel_counts(MASKS, num_classes=3)
    np.testing.assert_array_equal(three[:, 2], [0, 0, 0])


def test_counts_accept_bool_masks() -> None:
    counts = class_pixel_counts([np.array([[True, False, False]])], num_classes=2)
    np.testing.assert_array_equal(counts, [[2, 1]])


def test_stemnet_median_frequency_hand_values() -> None:
    counts = class_pixel_counts(MASKS, num_classes=2)
    # median of (3, 1, 2, 2, 4, 0) = 2; totals (9, 3)
    np.testing.assert_allclose(median_frequency_weights(counts), [2 / 9, 2 / 3])


def test_stemnet_matches_seed_code_on_random_masks() -> None:
    rng = np.random.default_rng(0)
    masks = [rng.random((8, 9)) < p for p in (0.1, 0.3, 0.05, 0.2, 0.5)]
    weight_ones, weight_zeros = _stemnet_reference(masks)
    got = median_frequency_weights(class_pixel_counts(masks, num_classes=2))
    np.testing.assert_allclose(got, [weight_zeros, weight_ones])


def test_eigen_median_frequency_hand_values() -> None:
    counts = class_pixel_counts(MASKS, num_classes=2)
    # freq_0 = 9 / 12 (present in all images), freq_1 = 3 / 8 (present in two images)
    freq = np.array([9 / 12, 3 / 8])
    expected = np.median(freq) / freq
    np.testing.assert_allclose(median_frequency_weights(counts, definition="eigen"), expected)


def test_total_ratio_matches_seed_get_weight() -> None:
    counts = class_pixel_counts(MASKS, num_classes=2)
    # seed 000: weight_ones = max_black / max_white = 9 / 3 for the minority; majority 1
    np.testing.assert_allclose(total_ratio_weights(counts), [1.0, 3.0])
    np.testing.assert_allclose(total_ratio_weights([[1, 5, 10]]), [10.0, 2.0, 1.0])


def test_inverse_frequency_is_sklearn_balanced_rescaled_to_mean_one() -> None:
    rng = np.random.default_rng(1)
    masks = [rng.integers(0, 4, size=(6, 7)) ** 2 % 4 for _ in range(3)]  # uneven classes
    counts = class_pixel_counts(masks, num_classes=4)
    got = inverse_frequency_weights(counts)
    labels = np.concatenate([m.ravel() for m in masks])
    present = np.unique(labels)
    reference = compute_class_weight("balanced", classes=present, y=labels)
    np.testing.assert_allclose(got[present], reference / reference.mean())
    assert got[present].mean() == pytest.approx(1.0)
    np.testing.assert_allclose(inverse_frequency_weights([[9, 3]]), [0.5, 1.5])


@pytest.mark.parametrize(
    "rule",
    [
        median_frequency_weights,
        lambda c: median_frequency_weights(c, definition="eigen"),
        total_ratio_weights,
        inverse_frequency_weights,
    ],
)
def test_absent_class_gets_weight_zero(rule: Callable[..., np.ndarray]) -> None:
    counts = class_pixel_counts(MASKS, num_classes=3)
    weights = rule(counts)
    assert weights.shape == (3,)
    assert weights[2] == 0.0
    assert np.all(np.isfinite(weights)) and np.all(weights[:2] > 0)


def test_input_counts_not_mutated() -> None:
    counts = np.array([[3, 1], [2, 2]])
    before = counts.copy()
    median_frequency_weights(counts, definition="eigen")
    inverse_frequency_weights(counts)
    np.testing.assert_array_equal(counts, before)


@pytest.mark.parametrize(
    ("masks", "num_classes", "match"),
    [
        ([np.array([[0, 2]])], 2, r"mask #0: class values must lie in \[0, 2\)"),
        ([np.zeros((2, 2), int), np.array([[-1, 0]])], 2, "mask #1"),
        ([np.zeros((2, 2, 2), int)], 2, r"\(Y, X\) mask"),
        ([np.zeros((2, 2))], 2, "integer class indices"),
        ([], 2, "no masks"),
        ([np.zeros((2, 2), int)], 1, "num_classes"),
    ],
)
def test_bad_masks_raise_input_error(masks: list, num_classes: int, match: str) -> None:
    with pytest.raises(LapsegInputError, match=match):
        class_pixel_counts(masks, num_classes=num_classes)


@pytest.mark.parametrize(
    ("counts", "match"),
    [
        ([3, 1], "n_images, K"),
        ([[0, 0], [0, 0]], "all zero"),
        ([[1, -1]], ">= 0"),
        ([[1.0, np.nan]], "finite"),
    ],
)
def test_bad_counts_raise_input_error(counts: list, match: str) -> None:
    for rule in (median_frequency_weights, total_ratio_weights, inverse_frequency_weights):
        with pytest.raises(LapsegInputError, match=match):
            rule(counts)


def test_unknown_definition_raises() -> None:
    with pytest.raises(LapsegInputError, match="stemnet"):
        median_frequency_weights([[1, 2]], definition="median")  # type: ignore[arg-type]
