"""Tests for lapseg.data.targets: 3-class target and its weight map."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from lapseg.data.targets import (
    BACKGROUND,
    BOUNDARY,
    INTERIOR,
    three_class_target,
    three_class_weight_map,
)
from lapseg.data.weightmap import border_weight_map
from lapseg.errors import LapsegInputError


def _reference_target(labels: np.ndarray, width: int) -> np.ndarray:
    """Brute force: a cell pixel is boundary if any other-label pixel lies within ``width``."""
    out = np.where(labels > 0, INTERIOR, BACKGROUND).astype(np.uint8)
    height, wide = labels.shape
    for y, x in zip(*np.nonzero(labels), strict=True):
        for dy in range(-width, width + 1):
            for dx in range(-width, width + 1):
                if dy * dy + dx * dx > width * width:
                    continue
                yy = min(max(y + dy, 0), height - 1)  # outside = nearest pixel inside
                xx = min(max(x + dx, 0), wide - 1)
                if labels[yy, xx] != labels[y, x]:
                    out[y, x] = BOUNDARY
    return out


def test_two_touching_squares_by_hand():
    labels = np.zeros((6, 10), dtype=np.uint16)
    labels[1:5, 1:5] = 1
    labels[1:5, 5:9] = 2
    target = three_class_target(labels, boundary_width=1)
    expected = np.zeros((6, 10), dtype=np.uint8)
    expected[1:5, 1:9] = BOUNDARY
    expected[2:4, 2:4] = INTERIOR
    expected[2:4, 6:8] = INTERIOR
    np.testing.assert_array_equal(target, expected)
    assert target.dtype == np.uint8


@pytest.mark.parametrize("width", [1, 2, 3])
def test_matches_brute_force_reference(width):
    rng = np.random.default_rng(width)
    labels = np.zeros((24, 28), dtype=np.int32)
    for k in range(1, 6):
        y, x = rng.integers(0, 20, size=2)
        labels[y : y + rng.integers(4, 10), x : x + rng.integers(4, 10)] = k  # overlaps: touching
    labels[0:5, 20:28] = 7  # a cell cut by the image border
    target = three_class_target(labels, boundary_width=width)
    np.testing.assert_array_equal(target, _reference_target(labels, width))


def test_interiors_of_touching_cells_never_touch_and_input_unchanged():
    labels = np.zeros((20, 20), dtype=np.uint8)
    labels[2:18, 2:10] = 3
    labels[2:18, 10:18] = 5
    copy = labels.copy()
    target = three_class_target(labels, boundary_width=2)
    np.testing.assert_array_equal(labels, copy)
    interior_components = ndimage.label(target == INTERIOR)[1]
    assert interior_components == 2
    assert np.all(target[labels == 0] == BACKGROUND)
    # 2 boundary pixels per side between the cells
    np.testing.assert_array_equal(target[10, 6:14], [1, 1, 2, 2, 2, 2, 1, 1])


def test_image_border_is_not_a_boundary():
    labels = np.ones((8, 8), dtype=np.uint8)
    assert np.all(three_class_target(labels, boundary_width=2) == INTERIOR)


@pytest.mark.parametrize(
    ("labels", "width"),
    [
        (np.zeros((4, 4, 2), np.uint8), 1),
        (np.zeros((4, 4), np.float32), 1),
        (-np.ones((4, 4), np.int32), 1),
        (np.zeros((4, 4), np.uint8), 0),
        (np.zeros((4, 4), np.uint8), 1.5),
        (np.zeros((4, 4), np.uint8), True),
    ],
)
def test_bad_input(labels, width):
    with pytest.raises(LapsegInputError):
        three_class_target(labels, boundary_width=width)


def test_weight_map_balance_and_border_term():
    labels = np.zeros((30, 40), dtype=np.uint16)
    labels[5:25, 5:20] = 1
    labels[5:25, 20:35] = 2
    target = three_class_target(labels, boundary_width=2)
    counts = np.bincount(target.ravel(), minlength=3)
    plain = three_class_weight_map(labels, boundary_width=2, w0=0.0)
    for k in range(3):
        np.testing.assert_allclose(plain[target == k], counts.max() / counts[k], rtol=1e-6)
    weights = three_class_weight_map(labels, boundary_width=2, w0=10.0, sigma=5.0)
    border = weights - plain
    np.testing.assert_array_equal(border[target == INTERIOR], 0.0)
    interiors = np.where(target == INTERIOR, labels, 0)
    expected = border_weight_map(interiors, w0=10.0, sigma=5.0, class_weights=None) - 1.0
    np.testing.assert_allclose(border, expected, atol=1e-5)
    # the boundary pixels between the two cells weigh more than those at the outer edge
    assert border[15, 19] > border[15, 6] + 1.0
    assert weights.dtype == np.float32


def test_weight_map_unbalanced_and_bad_options():
    labels = np.zeros((10, 10), dtype=np.uint8)
    labels[2:8, 2:8] = 1
    np.testing.assert_array_equal(
        three_class_weight_map(labels, class_weights=None), np.ones((10, 10))
    )  # one cell: no border term
    with pytest.raises(LapsegInputError):
        three_class_weight_map(labels, class_weights="median")
    with pytest.raises(LapsegInputError):
        three_class_weight_map(labels, sigma=0.0)
    with pytest.raises(LapsegInputError):
        three_class_weight_map(labels, w0=-1.0)
