from __future__ import annotations

import json

import numpy as np
import pytest

from lapseg.data.normalization import (
    NORMALIZATION_MODES,
    NormalizationStats,
    apply_normalization,
    fit_normalization,
    percentile_normalize,
    percentile_range,
)
from lapseg.errors import LapsegInputError


def test_percentile_normalize_known_values() -> None:
    # 0..100 in one channel: p10 = 10, p90 = 90 (linear interpolation)
    image = np.arange(101, dtype=np.uint16).reshape(1, 1, 101)
    out = percentile_normalize(image, low=10, high=90)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out[0, 0, [0, 10, 50, 90, 100]], [-0.125, 0.0, 0.5, 1.0, 1.125])


def test_percentile_normalize_per_channel_and_constant() -> None:
    image = np.stack([np.arange(101.0), np.full(101, 7.0), np.arange(101.0) * 3]).reshape(3, 1, 101)
    out = percentile_normalize(image, low=0, high=100)
    np.testing.assert_allclose(out[0, 0], np.arange(101) / 100, atol=1e-6)
    np.testing.assert_array_equal(out[1], 0.0)  # constant channel: zeros, no NaN
    np.testing.assert_allclose(out[2], out[0], atol=1e-6)
    assert image[1, 0, 0] == 7.0  # input untouched


def test_percentile_normalize_sparse_image_does_not_explode() -> None:
    image = np.zeros((1, 10, 100), np.float32)
    image[0, 0, 0] = 50.0  # percentiles 1 and 99.8 are both 0
    out = percentile_normalize(image)
    assert np.isfinite(out).all()
    assert out.max() == pytest.approx(1.0)


def test_fit_meanstd_matches_concatenated_reference() -> None:
    rng = np.random.default_rng(0)
    images = [rng.normal(5, 2, size=(2, 4 + i, 6)).astype(np.float32) for i in range(3)]
    stats = fit_normalization(iter(images), mode="meanstd")
    flat = np.concatenate([im.reshape(2, -1) for im in images], axis=1).astype(np.float64)
    np.testing.assert_allclose(stats.mean, flat.mean(axis=1), rtol=1e-10)
    np.testing.assert_allclose(stats.std, flat.std(axis=1), rtol=1e-10)


def test_percentile_meanstd_fitted_on_train_applied_identically() -> None:
    rng = np.random.default_rng(1)
    train = [rng.integers(0, 4000, size=(1, 8, 8)).astype(np.uint16) for _ in range(3)]
    stats = fit_normalization(train, mode="percentile+meanstd", low=2, high=98)
    normed = [percentile_normalize(im, low=2, high=98) for im in train]
    flat = np.concatenate([n.ravel() for n in normed]).astype(np.float64)
    assert stats.mean == pytest.approx((flat.mean(),))
    assert stats.std == pytest.approx((flat.std(),))
    # the train set after apply has mean 0 and std 1
    applied = np.concatenate([apply_normalization(im, stats).ravel() for im in train])
    assert applied.mean() == pytest.approx(0.0, abs=1e-5)
    assert applied.std() == pytest.approx(1.0, abs=1e-5)
    # a new image is transformed with the stored numbers, not its own statistics
    new = rng.integers(0, 4000, size=(1, 8, 8)).astype(np.uint16)
    expected = (percentile_normalize(new, low=2, high=98) - stats.mean[0]) / stats.std[0]
    np.testing.assert_allclose(apply_normalization(new, stats), expected, rtol=1e-5)


def test_modes_percentile_and_none() -> None:
    image = np.arange(12, dtype=np.uint8).reshape(1, 3, 4)
    stats = fit_normalization([image], mode="none")
    out = apply_normalization(image, stats)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, image)
    stats = fit_normalization([image], mode="percentile", low=0, high=100)
    np.testing.assert_allclose(apply_normalization(image, stats)[0].ravel(), np.arange(12) / 11)
    assert set(NORMALIZATION_MODES) == {
        "percentile",
        "percentile+meanstd",
        "meanstd",
        "mean-only",
        "mean-image",
        "none",
    }


def test_stats_dict_round_trip_is_plain_json() -> None:
    stats = NormalizationStats(mode="meanstd", mean=(1.5, 2.0), std=(0.5, 3.0))
    data = json.loads(json.dumps(stats.to_dict()))
    assert NormalizationStats.from_dict(data) == stats


def test_stats_validation() -> None:
    with pytest.raises(LapsegInputError, match="unknown normalisation mode 'zscore'"):
        NormalizationStats(mode="zscore")
    with pytest.raises(LapsegInputError, match="low < high"):
        NormalizationStats(mode="percentile", low_percentile=99, high_percentile=1)
    with pytest.raises(LapsegInputError, match="needs mean and std"):
        NormalizationStats(mode="meanstd")
    with pytest.raises(LapsegInputError, match="std positive"):
        NormalizationStats(mode="meanstd", mean=(0.0,), std=(0.0,))
    with pytest.raises(LapsegInputError, match="unknown normalisation key"):
        NormalizationStats.from_dict({"mode": "none", "lo": 1})


def test_channel_mismatch_and_bad_inputs() -> None:
    stats = NormalizationStats(mode="meanstd", mean=(0.0, 0.0), std=(1.0, 1.0))
    with pytest.raises(LapsegInputError, match="1 channel"):
        apply_normalization(np.zeros((1, 2, 2)), stats)
    with pytest.raises(LapsegInputError, match="zero training images"):
        fit_normalization([], mode="meanstd")
    with pytest.raises(LapsegInputError, match="training image 1 has 2 channels"):
        fit_normalization([np.zeros((1, 2, 2)), np.zeros((2, 2, 2))], mode="meanstd")
    with pytest.raises(LapsegInputError, match=r"\(C, Y, X\)"):
        percentile_normalize(np.zeros((2, 2)))


def test_reference_pixels_set_the_percentiles_so_blocks_of_one_image_scale_alike():
    rng = np.random.default_rng(0)
    whole = rng.uniform(0, 1000, size=(2, 64, 64)).astype(np.float32)
    dark_block = whole[:, :16, :16] * 0.1  # a block unlike the whole image
    alone = percentile_normalize(dark_block, low=1, high=99)
    shared = percentile_normalize(dark_block, low=1, high=99, reference=whole)
    p_low, p_high = np.percentile(whole[0], [1, 99])
    np.testing.assert_allclose(shared[0], (dark_block[0] - p_low) / (p_high - p_low), rtol=1e-5)
    assert alone.max() > 0.9 and shared.max() < 0.2  # alone stretches the block to [0, 1]
    stats = NormalizationStats(mode="percentile", low_percentile=1, high_percentile=99)
    np.testing.assert_array_equal(apply_normalization(dark_block, stats, reference=whole), shared)
    with pytest.raises(LapsegInputError, match="reference has 1 channel"):
        percentile_normalize(dark_block, reference=whole[:1])


def test_percentile_range_constant_and_sparse_channels_never_give_nan():
    image = np.zeros((2, 10, 10), np.float32)
    image[1, 0, 0] = 50.0  # sparse: every percentile below 99.8 is 0
    ranges = percentile_range(image, low=1, high=98)
    np.testing.assert_array_equal(ranges, [[0.0, 1.0], [0.0, 50.0]])
