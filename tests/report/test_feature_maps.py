"""Tests of U-Net feature-map capture (forward hooks)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from lapseg.config import UNetConfig
from lapseg.errors import LapsegInputError
from lapseg.models.unet import UNet
from lapseg.report.feature_maps import capture_feature_maps, crop_to_valid, save_feature_maps


def _model(**kw: object) -> UNet:
    torch.manual_seed(0)
    return UNet(UNetConfig(depth=2, base_features=4, **kw))  # type: ignore[arg-type]


def test_one_map_per_level_with_expected_shapes() -> None:
    model = _model()
    image = np.random.default_rng(0).random((1, 32, 40)).astype(np.float32)
    maps = capture_feature_maps(model, image)
    assert [m.name for m in maps] == [
        "encoder 0",
        "encoder 1",
        "encoder 2",
        "decoder 1",
        "decoder 0",
    ]
    assert [m.array.shape for m in maps] == [(32, 40), (16, 20), (8, 10), (16, 20), (32, 40)]
    assert [m.n_channels for m in maps] == [4, 8, 16, 8, 4]
    # hooks are removed and the training mode is restored
    assert all(not block._forward_hooks for block in [*model.encoder, *model.decoder])
    assert model.training


def test_first_level_map_equals_manual_forward() -> None:
    model = _model().eval()
    image = np.random.default_rng(1).random((1, 16, 16)).astype(np.float32)
    maps = capture_feature_maps(model, image, channel=2)
    with torch.inference_mode():
        expected = model.encoder[0](torch.from_numpy(image)[None])[0, 2].numpy()
    np.testing.assert_allclose(maps[0].array, expected, atol=1e-6)
    assert maps[0].channel == 2
    # channel beyond a level's count is clipped
    assert capture_feature_maps(model, image, channel=99)[0].channel == 3


def test_default_channel_has_largest_spread() -> None:
    model = _model()
    image = np.random.default_rng(2).random((1, 16, 16)).astype(np.float32)
    chosen = capture_feature_maps(model, image)[0]
    for c in range(4):
        other = capture_feature_maps(model, image, channel=c)[0]
        assert chosen.array.std() >= other.array.std() - 1e-7


def test_crop_to_valid_and_figure(tmp_path: Path) -> None:
    model = _model()
    image = np.zeros((1, 30, 53), np.float32)
    crop = crop_to_valid(model, image, max_size=40)
    assert crop.shape == (1, 28, 40)
    valid = _model(padding="valid")
    crop = crop_to_valid(valid, np.zeros((1, 100, 100), np.float32))
    assert valid.valid_input_size(crop.shape[-1]) == crop.shape[-1]
    maps = capture_feature_maps(model, crop_to_valid(model, image))
    path = save_feature_maps(maps, tmp_path / "maps.png", image=image[0])
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_input() -> None:
    with pytest.raises(LapsegInputError, match="too small"):
        crop_to_valid(_model(padding="valid"), np.zeros((1, 10, 10)))
    with pytest.raises(LapsegInputError, match="C, Y, X"):
        capture_feature_maps(_model(), np.zeros((16, 16), np.float32))
    with pytest.raises(LapsegInputError, match="UNet"):
        capture_feature_maps(torch.nn.Conv2d(1, 1, 1), np.zeros((1, 16, 16)))  # type: ignore[arg-type]
