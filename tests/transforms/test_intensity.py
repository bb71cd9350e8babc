"""Intensity transforms against hand-computed values and scipy."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from lapseg.config import AUGMENTATION_PRESETS
from lapseg.transforms.intensity import (
    add_gaussian_noise,
    adjust_brightness,
    adjust_contrast,
    adjust_gamma,
    gaussian_blur,
    random_intensity,
)


def test_brightness_and_contrast() -> None:
    image = np.array([[[0.0, 1.0], [2.0, 5.0]], [[1.0, 1.0], [1.0, 1.0]]], dtype=np.float32)
    np.testing.assert_allclose(adjust_brightness(image, 0.5), image + 0.5)
    out = adjust_contrast(image, 2.0)  # channel means 2 and 1
    np.testing.assert_allclose(out[0], [[-2.0, 0.0], [2.0, 8.0]])
    np.testing.assert_allclose(out[1], image[1])
    assert out.dtype == np.float32


def test_gamma_in_each_channel_range() -> None:
    image = np.array([[[0.0, 0.5, 1.0]], [[2.0, 4.0, 6.0]], [[3.0, 3.0, 3.0]]], dtype=np.float32)
    out = adjust_gamma(image, 2.0)
    np.testing.assert_allclose(out[0], [[0.0, 0.25, 1.0]])
    np.testing.assert_allclose(out[1], [[2.0, 3.0, 6.0]])  # (0.5 ** 2) * 4 + 2
    np.testing.assert_allclose(out[2], image[2])  # constant channel unchanged


def test_noise_statistics() -> None:
    image = np.zeros((2, 200, 200), dtype=np.float32)
    out = add_gaussian_noise(image, 0.1, rng=np.random.default_rng(0))
    assert out.std() == pytest.approx(0.1, rel=0.02)
    assert not np.array_equal(out[0], out[1])  # independent per channel


def test_blur_matches_scipy_per_channel() -> None:
    image = np.random.default_rng(0).random((2, 20, 30)).astype(np.float32)
    out = gaussian_blur(image, 1.5)
    for c in range(2):
        expected = ndimage.gaussian_filter(image[c], 1.5, mode="mirror")
        np.testing.assert_allclose(out[c], expected, rtol=1e-5, atol=1e-6)


def test_random_intensity_is_a_no_op_at_probability_zero() -> None:
    image = np.ones((1, 4, 4), dtype=np.float32)
    assert random_intensity(image, AUGMENTATION_PRESETS["none"], np.random.default_rng(0)) is image
