from __future__ import annotations

import numpy as np
import pytest
from skimage.measure import label

from lapseg.config import MASK_KINDS
from lapseg.data.masks import mask_to_target, to_binary, to_class_indices
from lapseg.errors import LapsegInputError
from lapseg.io.labels import to_instances


def test_to_binary_covers_common_encodings() -> None:
    for mask in (
        np.array([[0, 1], [1, 0]], np.uint8),
        np.array([[0, 255], [255, 0]], np.uint8),
        np.array([[0, 7], [300, 0]], np.uint16),
        np.array([[False, True], [True, False]]),
    ):
        out = to_binary(mask)
        assert out.dtype == np.uint8
        np.testing.assert_array_equal(out, [[0, 1], [1, 0]])


def test_to_binary_does_not_mutate() -> None:
    mask = np.array([[0, 255]], np.uint8)
    to_binary(mask)
    np.testing.assert_array_equal(mask, [[0, 255]])


def test_to_class_indices() -> None:
    np.testing.assert_array_equal(
        to_class_indices(np.array([[0, 255]], np.uint8), num_classes=2), [[0, 1]]
    )
    out = to_class_indices(np.array([[0, 1, 2]], np.uint8), num_classes=3)
    assert out.dtype == np.int64
    np.testing.assert_array_equal(out, [[0, 1, 2]])
    with pytest.raises(LapsegInputError, match=r"class value\(s\) 3, 5 but num_classes is 3"):
        to_class_indices(np.array([[0, 3, 5]], np.uint8), num_classes=3)
    with pytest.raises(LapsegInputError, match="255"):
        to_class_indices(np.array([[0, 255]], np.uint8), num_classes=3)


def test_to_instances_labels_binary_by_4_connectivity() -> None:
    mask = np.array(
        [
            [255, 0, 0, 0],
            [0, 255, 0, 255],
            [0, 255, 0, 255],
        ],
        np.uint8,
    )
    out = to_instances(mask)
    assert out.dtype == np.int32
    # diagonal neighbours are separate objects under connectivity 1
    assert out.max() == 3
    np.testing.assert_array_equal(out, label(mask > 0, connectivity=1))


def test_to_instances_relabels_sequentially_and_keeps_objects() -> None:
    mask = np.array([[0, 5, 5], [9, 0, 5], [9, 0, 9]], np.uint16)  # label 9 is not connected
    out = to_instances(mask)
    np.testing.assert_array_equal(out, [[0, 1, 1], [2, 0, 1], [2, 0, 2]])


def test_mask_to_target() -> None:
    instances = np.array([[0, 3], [4, 4]], np.uint16)
    for kind in ("binary", "instance"):
        out = mask_to_target(instances, kind=kind, num_classes=2)
        assert out.dtype == np.int64
        np.testing.assert_array_equal(out, [[0, 1], [1, 1]])
    classes = mask_to_target(np.array([[0, 2]], np.uint8), kind="classes", num_classes=3)
    np.testing.assert_array_equal(classes, [[0, 2]])
    assert set(MASK_KINDS) == {"binary", "instance", "classes"}


def test_mask_bad_inputs() -> None:
    with pytest.raises(LapsegInputError, match="unknown mask kind 'semantic'"):
        mask_to_target(np.zeros((2, 2), np.uint8), kind="semantic", num_classes=2)
    with pytest.raises(LapsegInputError, match="num_classes=3"):
        mask_to_target(np.zeros((2, 2), np.uint8), kind="binary", num_classes=3)
    with pytest.raises(LapsegInputError, match="2D"):
        to_binary(np.zeros((1, 2, 2), np.uint8))
    with pytest.raises(LapsegInputError, match="integers"):
        to_instances(np.zeros((2, 2), np.float32))
    with pytest.raises(LapsegInputError, match="negative"):
        to_instances(np.array([[0, -1]], np.int32))
