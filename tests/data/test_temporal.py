"""Temporal context indices and stacking at both sequence ends, and identical augmentation."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from lapseg.config import (
    AugmentationConfig,
    BrightnessConfig,
    ContrastConfig,
    ElasticConfig,
    FlipConfig,
    GammaConfig,
    Rot90Config,
    RotationConfig,
    ScaleConfig,
    TemporalConfig,
)
from lapseg.data.temporal import context_indices, stack_context
from lapseg.errors import LapsegInputError
from lapseg.transforms.pipeline import augment_sample


@pytest.mark.parametrize(
    ("t", "mode", "expected"),
    [
        (0, "replicate", [0, 0, 0, 1, 2]),
        (1, "replicate", [0, 0, 1, 2, 3]),
        (5, "replicate", [3, 4, 5, 6, 6]),
        (6, "replicate", [4, 5, 6, 6, 6]),
        (0, "reflect", [2, 1, 0, 1, 2]),
        (1, "reflect", [1, 0, 1, 2, 3]),
        (6, "reflect", [4, 5, 6, 5, 4]),
        (3, "reflect", [1, 2, 3, 4, 5]),
    ],
)
def test_context_indices_at_both_ends(t: int, mode: str, expected: list[int]):
    assert context_indices(t, 7, 2, mode) == expected


def test_context_longer_than_sequence():
    assert context_indices(0, 2, 3, "reflect") == [1, 0, 1, 0, 1, 0, 1]
    assert context_indices(0, 1, 2, "reflect") == [0, 0, 0, 0, 0]
    assert context_indices(1, 2, 0, "replicate") == [1]


def test_stack_context_values_and_no_mutation():
    frames = np.arange(4)[:, None, None] * np.ones((4, 3, 2))
    before = frames.copy()
    stacked = stack_context(frames, 0, 2, "replicate")
    assert stacked.shape == (5, 3, 2)
    np.testing.assert_array_equal(stacked[:, 0, 0], [0, 0, 0, 1, 2])
    np.testing.assert_array_equal(stack_context(frames, 3, 1, "reflect")[:, 1, 1], [2, 3, 2])
    stacked[:] = -1
    np.testing.assert_array_equal(frames, before)


def test_augmentation_moves_every_frame_the_same_way():
    """The training augmentation gives every stacked frame the same geometric transform."""
    rng = np.random.default_rng(0)
    base = ndi.gaussian_filter(rng.random((24, 20)), 2).astype(np.float32)
    frames = np.stack([(t + 1) * base for t in range(5)])  # frame t = (t + 1) x frame 0
    target = (base > np.median(base)).astype(np.int64)
    config = AugmentationConfig(
        flip=FlipConfig(1.0),
        rot90=Rot90Config(1.0),
        rotation=RotationConfig(1.0),
        scale=ScaleConfig(1.0),
        elastic=ElasticConfig(1.0),
        brightness=BrightnessConfig(0.0),
        contrast=ContrastConfig(0.0),
        gamma=GammaConfig(0.0),
    )
    changed = 0
    for seed in range(6):
        image, moved, _ = augment_sample(frames, target, None, config, rng=seed, stage=None)
        for t in range(5):  # interpolation is linear: the ratio survives only if all moved alike
            np.testing.assert_allclose(image[t], (t + 1) * image[0], rtol=1e-4, atol=1e-5)
        changed += not np.allclose(image[0], frames[0])
        assert moved.shape == target.shape
    assert changed == 6


def test_bad_inputs():
    with pytest.raises(LapsegInputError, match="outside the sequence"):
        context_indices(7, 7, 2)
    with pytest.raises(LapsegInputError, match="edge mode"):
        context_indices(0, 7, 2, "wrap")
    with pytest.raises(LapsegInputError, match="must be >= 0"):
        context_indices(0, 7, -1)
    with pytest.raises(LapsegInputError, match=r"\(T, Y, X\)"):
        stack_context(np.zeros((3, 3)), 0, 1)
    with pytest.raises(LapsegInputError, match=r"temporal\.edge_mode"):
        TemporalConfig(edge_mode="wrap")
