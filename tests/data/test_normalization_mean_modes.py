"""The lecture's (003) mean-subtraction modes: ``mean-only`` (per-channel mean, VGG) and
``mean-image`` (AlexNet's mean image), fitted on training images and stored with the model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lapseg.config import NORMALIZATION_MODES as CONFIG_MODES
from lapseg.config import NormalizationConfig
from lapseg.data.normalization import (
    NORMALIZATION_MODES,
    NormalizationStats,
    apply_normalization,
    fit_normalization,
)
from lapseg.data.timelapse import sequence_stats
from lapseg.errors import LapsegInputError
from lapseg.models.checkpoint import load_checkpoint, save_checkpoint


def _images(n: int = 4, shape: tuple[int, int, int] = (2, 5, 6), seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    return [rng.normal(100 * (i + 1), 10 * (i + 1), shape).astype(np.float32) for i in range(n)]


def test_the_config_offers_the_same_modes() -> None:
    assert CONFIG_MODES == NORMALIZATION_MODES
    assert {"mean-only", "mean-image"} <= set(NORMALIZATION_MODES)
    assert NormalizationConfig(mode="mean-image").mode == "mean-image"


def test_mean_only_centres_without_scaling() -> None:
    images = _images()
    stats = fit_normalization(images, mode="mean-only")
    stacked = np.stack(images)
    np.testing.assert_allclose(stats.mean, stacked.mean(axis=(0, 2, 3)), rtol=1e-6)
    assert stats.std == (1.0, 1.0) and stats.mean_image is None
    out = np.stack([apply_normalization(im, stats) for im in images])
    np.testing.assert_allclose(out.mean(axis=(0, 2, 3)), 0.0, atol=1e-3)
    np.testing.assert_allclose(out.std(axis=(0, 2, 3)), stacked.std(axis=(0, 2, 3)), rtol=1e-5)


def test_mean_image_is_the_pixelwise_training_mean() -> None:
    images = _images()
    stats = fit_normalization(images, mode="mean-image")
    assert stats.mean_image is not None and stats.mean_image.shape == (2, 5, 6)
    np.testing.assert_allclose(stats.mean_image, np.mean(images, axis=0), rtol=1e-6)
    assert stats.num_channels == 2 and not stats.mean_image.flags.writeable
    out = np.mean([apply_normalization(im, stats) for im in images], axis=0)
    np.testing.assert_allclose(out, 0.0, atol=1e-3)  # every pixel centred on the training set
    original = images[0].copy()
    apply_normalization(images[0], stats)
    assert np.array_equal(images[0], original)  # the input is never changed


def test_mean_image_refuses_images_of_other_sizes() -> None:
    with pytest.raises(LapsegInputError, match="training images of one size"):
        fit_normalization([*_images(2), *_images(1, (2, 5, 7))], mode="mean-image")
    stats = fit_normalization(_images(2), mode="mean-image")
    with pytest.raises(LapsegInputError, match="differs from the mean image"):
        apply_normalization(np.zeros((2, 6, 6), np.float32), stats)
    with pytest.raises(LapsegInputError, match="channel"):
        apply_normalization(np.zeros((1, 5, 6), np.float32), stats)


@pytest.mark.parametrize("mode", ["mean-only", "mean-image"])
def test_modes_round_trip_through_a_checkpoint(tmp_path: Path, mode: str) -> None:
    stats = fit_normalization(_images(), mode=mode)
    path = save_checkpoint(tmp_path / "best.pt", {"normalization": stats.to_dict()})
    loaded = NormalizationStats.from_dict(load_checkpoint(path)["normalization"])  # weights_only
    assert loaded == stats
    image = _images(1, seed=3)[0]
    assert np.array_equal(apply_normalization(image, loaded), apply_normalization(image, stats))


def test_equality_sees_the_mean_image() -> None:
    a = fit_normalization(_images(seed=0), mode="mean-image")
    b = fit_normalization(_images(seed=1), mode="mean-image")
    assert a == a and a != b
    assert "mean_image" not in fit_normalization(_images(), mode="meanstd").to_dict()


def test_bad_mean_image_settings_are_refused() -> None:
    with pytest.raises(LapsegInputError, match="needs its mean image"):
        NormalizationStats(mode="mean-image")
    with pytest.raises(LapsegInputError, match="takes no mean image"):
        NormalizationStats(mode="none", mean_image=np.zeros((1, 2, 2)))
    with pytest.raises(LapsegInputError, match=r"finite \(C, Y, X\)"):
        NormalizationStats.from_dict({"mode": "mean-image", "mean_image": [[1.0, 2.0]]})
    with pytest.raises(LapsegInputError, match="needs mean and std"):
        NormalizationStats(mode="mean-only")


def test_time_lapse_context_repeats_the_mean_image() -> None:
    frames = [im[:1] for im in _images()]
    stats = sequence_stats(fit_normalization(frames, mode="mean-image"), 5)
    assert stats.mean_image is not None and stats.mean_image.shape == (5, 5, 6)
    stacked = np.repeat(frames[0], 5, axis=0)
    expected = np.repeat(
        apply_normalization(frames[0], fit_normalization(frames, mode="mean-image")), 5, axis=0
    )
    np.testing.assert_allclose(apply_normalization(stacked, stats), expected)
