"""Tests for lapseg.data.weightmap: hand-computed border weights and a brute-force reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage

from lapseg.data.weightmap import border_weight_map, class_balance_map
from lapseg.errors import LapsegInputError


def _two_squares(gap: int, shape: tuple[int, int] = (12, 16)) -> np.ndarray:
    labels = np.zeros(shape, dtype=np.int32)
    labels[2:6, 2:6] = 1
    labels[2:6, 6 + gap : 10 + gap] = 2
    return labels


def _brute_force(labels: np.ndarray, w0: float, sigma: float) -> np.ndarray:
    """Distances to every cell on the whole image, sorted per pixel."""
    cells = [c for c in np.unique(labels) if c > 0]
    dist = np.sort(np.stack([ndimage.distance_transform_edt(labels != c) for c in cells]), axis=0)
    border = w0 * np.exp(-((dist[0] + dist[1]) ** 2) / (2 * sigma**2))
    return class_balance_map(labels) + np.where(labels == 0, border, 0.0)


def test_one_pixel_gap_hand_value() -> None:
    labels = _two_squares(gap=1)
    weights = border_weight_map(labels, w0=10.0, sigma=5.0, class_weights=None)
    assert weights.dtype == np.float32 and weights.shape == labels.shape
    # gap column 6, rows 2..5: distance 1 to both cells
    np.testing.assert_allclose(weights[2:6, 6], 1 + 10 * math.exp(-((1 + 1) ** 2) / 50), rtol=1e-6)
    np.testing.assert_array_equal(weights[labels > 0], 1.0)  # cells: w_c only


def test_two_pixel_gap_hand_value() -> None:
    labels = _two_squares(gap=2)
    weights = border_weight_map(labels, w0=10.0, sigma=5.0, class_weights=None)
    # gap columns 6 and 7: distance 1 to the nearer cell and 2 to the other
    expected = 1 + 10 * math.exp(-((1 + 2) ** 2) / 50)
    np.testing.assert_allclose(weights[2:6, 6:8], expected, rtol=1e-6)


def test_far_pixel_has_class_weight_only() -> None:
    labels = _two_squares(gap=1, shape=(120, 120))
    weights = border_weight_map(labels, w0=10.0, sigma=5.0, class_weights=(0.5, 2.0))
    assert weights[-1, -1] == pytest.approx(0.5, abs=1e-3)
    np.testing.assert_array_equal(weights[labels > 0], 2.0)


def test_balanced_class_weights_hand_values() -> None:
    labels = np.zeros((4, 5), dtype=np.uint16)
    labels[:2, :2] = 3  # 4 foreground pixels, 16 background
    w_c = class_balance_map(labels)
    np.testing.assert_array_equal(w_c[labels > 0], 4.0)
    np.testing.assert_array_equal(w_c[labels == 0], 1.0)
    # a single cell: no border term, only the class weights
    np.testing.assert_array_equal(border_weight_map(labels), w_c)
    np.testing.assert_array_equal(border_weight_map(np.zeros((3, 3), int)), np.ones((3, 3)))


def test_matches_brute_force_on_random_labels() -> None:
    rng = np.random.default_rng(0)
    labels = np.zeros((48, 56), dtype=np.int32)
    for cell in range(1, 9):
        y, x = rng.integers(0, 44), rng.integers(0, 52)
        h, w = rng.integers(2, 8, size=2)
        labels[y : y + h, x : x + w] = cell  # later cells may overlap earlier ones
    got = border_weight_map(labels, w0=10.0, sigma=3.0)
    np.testing.assert_allclose(got, _brute_force(labels, 10.0, 3.0), atol=2e-4, rtol=1e-5)


def test_label_values_do_not_matter_and_input_not_mutated() -> None:
    labels = _two_squares(gap=1).astype(np.int64)
    relabelled = np.where(labels == 1, 7, np.where(labels == 2, 10**12, 0))
    before = relabelled.copy()
    np.testing.assert_allclose(border_weight_map(relabelled), border_weight_map(labels))
    np.testing.assert_array_equal(relabelled, before)


@pytest.mark.parametrize(
    ("labels", "kwargs", "match"),
    [
        (np.zeros((2, 3, 3), int), {}, r"\(Y, X\)"),
        (np.zeros((3, 3)), {}, "integer"),
        (np.array([[0, -1]]), {}, ">= 0"),
        (np.zeros((3, 3), int), {"sigma": 0.0}, "sigma"),
        (np.zeros((3, 3), int), {"w0": -1.0}, "w0"),
        (np.zeros((3, 3), int), {"class_weights": "inverse"}, "balanced"),
        (np.zeros((3, 3), int), {"class_weights": (1.0, 2.0, 3.0)}, "pair"),
        (np.zeros((3, 3), int), {"class_weights": (1.0, -2.0)}, "pair"),
    ],
)
def test_bad_input_raises_input_error(labels: np.ndarray, kwargs: dict, match: str) -> None:
    with pytest.raises(LapsegInputError, match=match):
        border_weight_map(labels, **kwargs)
