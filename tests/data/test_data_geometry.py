from __future__ import annotations

import numpy as np
import pytest

from lapseg.data.geometry import (
    CropPad,
    center_crop_or_pad,
    crop_to_shape,
    extract_patch,
    pad_to_at_least,
    pad_to_multiple,
    resize_to,
    sample_patch_origin,
    undo_center_crop_or_pad,
)
from lapseg.errors import LapsegInputError


def test_pad_to_multiple_odd_sizes_round_trip() -> None:
    image = np.random.default_rng(0).random((2, 1022, 1023)).astype(np.float32)
    padded, pads = pad_to_multiple(image, 16)
    assert padded.shape == (2, 1024, 1024)
    assert pads == ((0, 2), (0, 1))
    np.testing.assert_array_equal(crop_to_shape(padded, (1022, 1023), pads), image)
    # reflect: the row after the last one mirrors the second to last
    np.testing.assert_array_equal(padded[:, 1022, :1023], image[:, 1020])


def test_pad_to_multiple_no_pad_returns_copy() -> None:
    image = np.zeros((4, 8), np.uint8)
    padded, pads = pad_to_multiple(image, 4)
    assert pads == ((0, 0), (0, 0))
    assert padded is not image and not np.shares_memory(padded, image)


def test_pad_falls_back_to_symmetric_for_large_pads() -> None:
    image = np.array([[1, 2]], np.uint8)  # a 1-row image cannot be reflected
    padded, pads = pad_to_at_least(image, (3, 5))
    assert pads == ((0, 2), (0, 3))
    np.testing.assert_array_equal(padded, [[1, 2, 2, 1, 1]] * 3)


def test_center_crop_or_pad_inverse() -> None:
    image = np.arange(5 * 8, dtype=np.int32).reshape(5, 8)
    out, crop_pad = center_crop_or_pad(image, (8, 5), mode="constant")
    assert out.shape == (8, 5)
    assert crop_pad == CropPad(
        original_yx=(5, 8), size_yx=(8, 5), pad_before_yx=(1, 0), crop_before_yx=(0, 1)
    )
    np.testing.assert_array_equal(out[1:6], image[:, 1:6])
    back = undo_center_crop_or_pad(out, crop_pad, fill=-1)
    assert back.shape == image.shape
    np.testing.assert_array_equal(back[:, 1:6], image[:, 1:6])
    assert (back[:, [0, 6, 7]] == -1).all()


def test_center_crop_or_pad_channels_and_prediction_layout() -> None:
    image = np.ones((3, 7, 7), np.float32)
    out, crop_pad = center_crop_or_pad(image, (4, 10))
    assert out.shape == (3, 4, 10)
    prediction = np.ones((2, 4, 10), np.float32)  # e.g. 2 class scores
    assert undo_center_crop_or_pad(prediction, crop_pad).shape == (2, 7, 7)


def test_resize_to_masks_keep_labels_and_images_float() -> None:
    mask = np.array([[0, 3], [7, 7]], np.uint16)
    up = resize_to(mask, (4, 4), order=0)
    assert up.dtype == np.uint16
    np.testing.assert_array_equal(up, np.kron(mask, np.ones((2, 2), np.uint16)))
    np.testing.assert_array_equal(resize_to(up, (2, 2), order=0), mask)
    image = np.stack([np.full((6, 6), 1.0), np.full((6, 6), 5.0)])
    small = resize_to(image, (3, 2), order=1)
    assert small.dtype == np.float32 and small.shape == (2, 3, 2)
    np.testing.assert_allclose(small[0], 1.0)
    np.testing.assert_allclose(small[1], 5.0)  # channels are not mixed


def test_sample_patch_origin_foreground_always_included() -> None:
    mask = np.zeros((50, 60), np.uint8)
    mask[40, 3] = 1
    rng = np.random.default_rng(0)
    for _ in range(50):
        y0, x0 = sample_patch_origin(mask, (8, 8), foreground_probability=1.0, rng=rng)
        patch = extract_patch(mask, (y0, x0), (8, 8))
        assert patch.shape == (8, 8) and patch.sum() == 1


def test_sample_patch_origin_uniform_range_and_determinism() -> None:
    mask = np.zeros((10, 12), np.uint8)
    origins = {
        sample_patch_origin(mask, (4, 5), foreground_probability=0.5, rng=seed)
        for seed in range(200)
    }
    assert all(0 <= y <= 6 and 0 <= x <= 7 for y, x in origins)
    assert len(origins) > 20
    first = sample_patch_origin(mask, (4, 5), foreground_probability=0.5, rng=7)
    assert sample_patch_origin(mask, (4, 5), foreground_probability=0.5, rng=7) == first


def test_geometry_bad_inputs() -> None:
    with pytest.raises(LapsegInputError, match="smaller than the patch"):
        sample_patch_origin(np.zeros((4, 4)), (8, 8), foreground_probability=0.0, rng=0)
    with pytest.raises(LapsegInputError, match="does not fit"):
        extract_patch(np.zeros((4, 4)), (2, 2), (3, 3))
    with pytest.raises(LapsegInputError, match="does not match"):
        crop_to_shape(np.zeros((5, 5)), (4, 4), ((0, 2), (0, 1)))
    with pytest.raises(LapsegInputError, match="positive integers"):
        pad_to_multiple(np.zeros((4, 4)), 0)
    with pytest.raises(LapsegInputError, match="order"):
        resize_to(np.zeros((4, 4)), (2, 2), order=7)
    with pytest.raises(LapsegInputError, match=r"\(Y, X\) or \(C, Y, X\)"):
        pad_to_multiple(np.zeros((1, 1, 4, 4)), 2)
