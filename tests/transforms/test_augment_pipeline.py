"""augment_sample: alignment, label preservation, determinism, channels, probability 0."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from lapseg.config import (
    AUGMENTATION_PRESETS,
    AugmentationConfig,
    CropConfig,
    ElasticConfig,
    FlipConfig,
    GridElasticConfig,
    QuadrantMirrorConfig,
    Rot90Config,
    RotationConfig,
    ScaleConfig,
    TranslationConfig,
    config_for_stage,
)
from lapseg.transforms.pipeline import augment_sample, augment_sample_with_maps

NONE = AUGMENTATION_PRESETS["none"]
EVERY_GEOMETRIC = NONE.replace(
    flip=FlipConfig(0.5),
    rot90=Rot90Config(0.75),
    rotation=RotationConfig(1.0, degrees=(-180.0, 180.0)),
    scale=ScaleConfig(1.0, factor=(0.7, 1.4)),
    translation=TranslationConfig(1.0),
    crop=CropConfig(0.5, fraction=(0.5, 0.9)),
    elastic=ElasticConfig(1.0, alpha=(0.0, 60.0)),
    grid_elastic=GridElasticConfig(1.0),
    quadrant_mirror=QuadrantMirrorConfig(0.3),
)
EVERYTHING = AUGMENTATION_PRESETS["default"].replace(
    **{name: getattr(EVERY_GEOMETRIC, name) for name in ("rotation", "scale", "elastic", "crop")},
)


def blobs(shape: tuple[int, int] = (64, 64), seed: int = 0) -> np.ndarray:
    """A binary-valued float image of smooth blobs."""
    noise = np.random.default_rng(seed).random(shape)
    return (ndimage.gaussian_filter(noise, 3.0) > 0.5).astype(np.float32)


@pytest.mark.parametrize("seed", range(6))
def test_target_stays_registered_with_the_image(seed: int) -> None:
    image = blobs(seed=seed)
    target = image.astype(np.int64)
    out_image, out_target, _ = augment_sample(
        image[None], target, None, EVERY_GEOMETRIC, rng=seed, stage=None
    )
    mismatch = out_target != (out_image[0] > 0.5)
    assert mismatch.mean() < 0.02  # only interpolation pixels on edges
    # every mismatch lies on a boundary of the transformed mask
    boundary = ndimage.binary_dilation(out_target > 0) & ~ndimage.binary_erosion(out_target > 0)
    assert (mismatch & ~ndimage.binary_dilation(boundary)).sum() == 0


def test_labels_stay_labels_and_binary_stays_binary() -> None:
    labels = np.zeros((48, 48), dtype=np.int32)
    labels[5:20, 5:20], labels[25:40, 10:30], labels[10:30, 32:45] = 3, 7, 12
    image = labels[None].astype(np.float32)
    binary = (labels > 0).astype(np.uint8)
    for seed in range(10):
        _, out, _ = augment_sample(image, labels, None, EVERY_GEOMETRIC, rng=seed, stage=None)
        assert set(np.unique(out)) <= {0, 3, 7, 12} and out.dtype == np.int32
        _, out_bin, _ = augment_sample(image, binary, None, EVERY_GEOMETRIC, rng=seed, stage=None)
        assert set(np.unique(out_bin)) <= {0, 1} and out_bin.dtype == np.uint8


def test_same_seed_same_result_other_seed_other_result() -> None:
    image = blobs()[None]
    target = image[0].astype(np.int64)
    first = augment_sample(image, target, None, EVERYTHING, rng=7, stage=None)
    again = augment_sample(image, target, None, EVERYTHING, rng=7, stage=None)
    other = augment_sample(image, target, None, EVERYTHING, rng=8, stage=None)
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])
    assert not np.array_equal(first[0], other[0])


def test_every_channel_and_the_weights_get_the_same_geometry() -> None:
    base = blobs() + 0.25 * np.random.default_rng(1).random((64, 64)).astype(np.float32)
    image = np.stack([base, 2.0 * base, base - 1.0])  # e.g. three temporal frames
    weights = 3.0 * base + 1.0
    target = (base > 0.5).astype(np.int64)
    for seed in range(5):
        out, _, out_w = augment_sample(
            image, target, weights, EVERY_GEOMETRIC, rng=seed, stage=None
        )
        np.testing.assert_allclose(out[1], 2.0 * out[0], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(out[2], out[0] - 1.0, atol=1e-5)
        assert out_w is not None
        np.testing.assert_allclose(out_w, 3.0 * out[0] + 1.0, rtol=1e-5, atol=1e-5)


def test_intensity_transforms_touch_the_image_only_and_all_channels_alike() -> None:
    image = np.repeat(blobs()[None], 3, axis=0)
    target = image[0].astype(np.int64)
    weights = np.ones((64, 64), dtype=np.float32)
    for seed in range(5):
        out, out_t, out_w = augment_sample(
            image, target, weights, AUGMENTATION_PRESETS["default"], rng=seed
        )
        np.testing.assert_array_equal(out[0], out[1])
        np.testing.assert_array_equal(out[0], out[2])
        assert out_w is not None
        np.testing.assert_allclose(out_w, 1.0, atol=1e-6)  # float32 interpolation
        assert set(np.unique(out_t)) <= {0, 1}


def test_probability_zero_returns_the_input_unchanged() -> None:
    rng = np.random.default_rng(0)
    image = rng.random((2, 17, 23), dtype=np.float32)
    target = rng.integers(0, 5, size=(17, 23))
    weights = rng.random((17, 23))
    out, out_t, out_w = augment_sample(image, target, weights, NONE, rng=1)
    assert out.dtype == image.dtype and out_t.dtype == target.dtype
    np.testing.assert_array_equal(out, image)
    np.testing.assert_array_equal(out_t, target)
    np.testing.assert_array_equal(out_w, weights)  # type: ignore[arg-type]
    assert out is not image


def test_inputs_are_never_modified() -> None:
    image = blobs()[None]
    target = image[0].astype(np.int64)
    copies = image.copy(), target.copy()
    for seed in range(3):
        augment_sample(image, target, None, EVERYTHING, rng=seed, stage=None)
    np.testing.assert_array_equal(image, copies[0])
    np.testing.assert_array_equal(target, copies[1])


def test_output_shape_equals_input_shape_for_rectangles() -> None:
    image = np.random.default_rng(0).random((2, 24, 40)).astype(np.float32)
    target = (image[0] > 0.5).astype(np.int64)
    for seed in range(5):
        out, out_t, _ = augment_sample(image, target, None, EVERYTHING, rng=seed, stage=None)
        assert out.shape == image.shape and out_t.shape == target.shape
        assert out.dtype == np.float32


def test_stage_selects_the_curriculum_transforms() -> None:
    seed002 = AUGMENTATION_PRESETS["seed002"]
    image = blobs()[None]
    target = image[0].astype(np.int64)
    for seed in range(3):
        staged = augment_sample(image, target, None, seed002, rng=seed, stage=0)
        plain = augment_sample(image, target, None, config_for_stage(seed002, 0), rng=seed)
        np.testing.assert_array_equal(staged[0], plain[0])
    final = augment_sample(image, target, None, seed002, rng=0, stage=1)
    assert not np.array_equal(final[0], augment_sample(image, target, None, seed002, rng=0)[0])


def test_bad_inputs() -> None:
    image = np.zeros((1, 8, 8), dtype=np.float32)
    target = np.zeros((8, 8), dtype=np.int64)
    config = AugmentationConfig()
    with pytest.raises(ValueError, match=r"\(C, Y, X\)"):
        augment_sample(image[0], target, None, config)
    with pytest.raises(ValueError, match="target shape"):
        augment_sample(image, target[:6], None, config)
    with pytest.raises(ValueError, match="weights shape"):
        augment_sample(image, target, np.ones((4, 4)), config)
    with pytest.raises(ValueError, match="floating point"):
        augment_sample(image.astype(np.uint8), target, None, config)
    with pytest.raises(ValueError, match="integer labels"):
        augment_sample(image, target.astype(np.float32), None, config)
    with pytest.raises(ValueError, match="stage"):
        augment_sample(image, target, None, config, stage=1)


@pytest.mark.parametrize("seed", range(3))
def test_maps_get_the_geometry_of_the_weights_and_change_nothing_else(seed: int) -> None:
    image = blobs(seed=seed)[None]
    target = (image[0] > 0.5).astype(np.int64)
    weights = ndimage.gaussian_filter(image[0], 2.0)
    maps = np.stack([weights, 1 - weights])
    out_image, out_target, out_weights = augment_sample(
        image, target, weights, EVERYTHING, rng=seed, stage=None
    )
    image2, target2, weights2, out_maps = augment_sample_with_maps(
        image, target, weights, maps, EVERYTHING, rng=seed, stage=None
    )
    np.testing.assert_array_equal(image2, out_image)
    np.testing.assert_array_equal(target2, out_target)
    np.testing.assert_array_equal(weights2, out_weights)
    assert out_maps is not None and out_maps.shape == maps.shape
    # linear interpolation like the weights: the same values wherever the weights moved
    np.testing.assert_allclose(out_maps[0], out_weights, atol=1e-6)
    np.testing.assert_allclose(out_maps[1], 1 - out_maps[0], atol=1e-5)
    with pytest.raises(ValueError, match="maps shape"):
        augment_sample_with_maps(image, target, None, maps[0], EVERYTHING, rng=seed)
