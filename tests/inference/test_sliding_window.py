"""Tests for lapseg.inference.sliding_window with tiny toy networks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lapseg.errors import LapsegInputError
from lapseg.inference.sliding_window import _source_index, predict_sliding_window
from lapseg.inference.tiling import gaussian_window, tile_grid

BLENDS = ["gaussian", "constant", "crop"]


def _valid_net(in_ch: int = 2, out_ch: int = 3) -> nn.Module:
    """Two 3x3 'valid' convolutions: output_margin 2, no pooling."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(in_ch, 4, 3), nn.ReLU(), nn.Conv2d(4, out_ch, 3)).eval()


class _SameNet(nn.Module):
    """'Same'-padded net with one pooling level (size_multiple 2), a skip and two outputs."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.down = nn.Conv2d(1, 4, 3, padding=1)
        self.low = nn.Conv2d(4, 4, 3, padding=1)
        self.head = nn.Conv2d(4, 2, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = torch.relu(self.down(x))
        low = torch.relu(self.low(F.max_pool2d(skip, 2)))
        return self.head(F.interpolate(low, scale_factor=2) + skip)


def _crop_net(margin: int) -> nn.Module:
    """Identity that loses ``margin`` pixels per side, like a 'valid' network."""

    class Crop(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x[:, :, margin : x.shape[2] - margin, margin : x.shape[3] - margin]

    return Crop()


@pytest.mark.parametrize("blend", BLENDS)
def test_valid_net_tiled_equals_whole_image(blend: str) -> None:
    net = _valid_net()
    image = torch.randn(2, 97, 131, generator=torch.Generator().manual_seed(0))
    padded = np.pad(image.numpy(), ((0, 0), (2, 2), (2, 2)), mode="reflect")
    with torch.inference_mode():
        whole = net(torch.from_numpy(padded)[None])[0]
        tiled = predict_sliding_window(
            net, image, tile_size=(32, 32), output_margin=2, blend=blend, batch_size=3
        )
    assert tiled.shape == (3, 97, 131)
    assert tiled.dtype == torch.float32
    torch.testing.assert_close(tiled, whole, rtol=0, atol=1e-5)


@pytest.mark.parametrize("blend", BLENDS)
def test_single_tile_equals_direct_call(blend: str) -> None:
    net = _SameNet().eval()
    with torch.inference_mode():
        for shape in [(1, 24, 40), (1, 32, 32)]:  # smaller than the tile, exactly one tile
            image = torch.randn(*shape, generator=torch.Generator().manual_seed(2))
            direct = net(image[None])[0]
            tiled = predict_sliding_window(
                net, image, tile_size=(32, 64), size_multiple=2, blend=blend
            )
            torch.testing.assert_close(tiled, direct, rtol=0, atol=1e-6)


def test_same_net_crop_blend_exact_with_enough_overlap() -> None:
    net = _SameNet().eval()
    image = torch.randn(1, 96, 130, generator=torch.Generator().manual_seed(3))
    options = {"tile_size": (32, 32), "size_multiple": 2, "blend": "crop"}
    with torch.inference_mode():
        whole = net(image[None])[0]
        tiled = predict_sliding_window(net, image, overlap=0.5, **options)
        seams = predict_sliding_window(net, image, overlap=0.0, **options)
    torch.testing.assert_close(tiled, whole, rtol=0, atol=1e-5)
    # without overlap the zero padding at the tile edges shows at the seams
    assert (seams - whole).abs().max() > 1e-3


def test_same_net_needs_aligned_tiles() -> None:
    # 98 rows, tile 32, overlap 0.5: unaligned starts 0, 13, 26, ... break the pooling grid
    net = _SameNet().eval()
    image = torch.randn(1, 98, 64, generator=torch.Generator().manual_seed(4))
    with torch.inference_mode():
        whole = net(image[None])[0]
        aligned = predict_sliding_window(
            net, image, tile_size=(32, 32), overlap=0.5, size_multiple=2, blend="crop"
        )
        unaligned = predict_sliding_window(
            net, image, tile_size=(32, 32), overlap=0.5, size_multiple=1, blend="crop"
        )
    torch.testing.assert_close(aligned, whole, rtol=0, atol=1e-5)
    assert (unaligned - whole).abs().max() > 1e-3


@pytest.mark.parametrize("blend", ["gaussian", "constant"])
def test_average_blends_match_naive_reference(blend: str) -> None:
    """Weighted average of per-tile predictions, written out with numpy (m = 0, no padding)."""
    net = _SameNet().eval()
    image = torch.randn(1, 64, 80, generator=torch.Generator().manual_seed(5))
    grid = tile_grid((64, 80), (32, 32), 0.25, align=2)
    window = gaussian_window((32, 32)) if blend == "gaussian" else np.ones((32, 32), np.float32)
    total = np.zeros((2, 64, 80))
    weight = np.zeros((64, 80))
    with torch.inference_mode():
        for rows, cols in grid:
            out = net(image[None, :, rows, cols])[0].numpy()
            total[:, rows, cols] += out * window
            weight[rows, cols] += window
        tiled = predict_sliding_window(
            net, image, tile_size=(32, 32), overlap=0.25, size_multiple=2, blend=blend
        )
    np.testing.assert_allclose(tiled.numpy(), total / weight, rtol=0, atol=1e-5)


@pytest.mark.parametrize("pad_mode", ["reflect", "symmetric", "edge"])
@pytest.mark.parametrize("blend", BLENDS)
@pytest.mark.parametrize(("shape", "margin", "multiple"), [((2, 45, 70), 3, 4), ((1, 3, 5), 6, 8)])
def test_identity_predictor_returns_image(
    pad_mode: str, blend: str, shape: tuple[int, ...], margin: int, multiple: int
) -> None:
    image = torch.randn(*shape, generator=torch.Generator().manual_seed(6))
    result = predict_sliding_window(
        _crop_net(margin),
        image,
        tile_size=(24, 32),
        overlap=0.3,
        blend=blend,
        size_multiple=multiple,
        output_margin=margin,
        pad_mode=pad_mode,
    )
    torch.testing.assert_close(result, image, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("mode", ["reflect", "symmetric", "edge"])
@pytest.mark.parametrize("size", [1, 2, 5])
def test_source_index_matches_numpy_pad_for_any_pad(mode: str, size: int) -> None:
    values = np.arange(size) * 10
    expected = np.pad(values, (13, 17), mode=mode)
    index = _source_index(-13, size + 30, size, mode)
    np.testing.assert_array_equal(values[index], expected)


def test_progress_and_batches() -> None:
    calls: list[tuple[int, int]] = []
    sizes: list[int] = []

    def predictor(batch: torch.Tensor) -> torch.Tensor:
        sizes.append(batch.shape[0])
        return batch[:, :1] * 2

    image = torch.ones(1, 70, 50)
    result = predict_sliding_window(
        predictor,
        image,
        tile_size=(32, 32),
        overlap=0.25,
        batch_size=4,
        progress=lambda done, total: calls.append((done, total)),
    )
    # rows: ceil(38 / 24) + 1 = 3 tiles, cols: ceil(18 / 24) + 1 = 2 tiles -> 6 tiles
    assert sizes == [4, 2]
    assert calls == [(4, 6), (6, 6)]
    torch.testing.assert_close(result, torch.full((1, 70, 50), 2.0))


def test_float64_image_gives_float32_without_grad() -> None:
    net = _valid_net(1, 1).double()
    image = torch.randn(1, 40, 40, dtype=torch.float64)
    result = predict_sliding_window(net, image, tile_size=(16, 16), output_margin=2)
    assert result.dtype == torch.float32
    assert result.device == image.device
    assert not result.requires_grad


@pytest.mark.parametrize(
    ("image", "kwargs"),
    [
        (np.zeros((1, 32, 32), np.float32), {}),
        (torch.zeros(32, 32), {}),
        (torch.zeros(1, 32, 32, dtype=torch.int32), {}),
        (torch.zeros(1, 0, 32), {}),
        (torch.zeros(1, 32, 32), {"tile_size": (30, 32), "size_multiple": 4}),
        (torch.zeros(1, 32, 32), {"tile_size": (32,)}),
        (torch.zeros(1, 32, 32), {"tile_size": (4, 4), "output_margin": 2}),
        (torch.zeros(1, 32, 32), {"overlap": 1.0}),
        (torch.zeros(1, 32, 32), {"blend": "max"}),
        (torch.zeros(1, 32, 32), {"pad_mode": "constant"}),
        (torch.zeros(1, 32, 32), {"batch_size": 0}),
        (torch.zeros(1, 32, 32), {"output_margin": -1}),
        (torch.zeros(1, 32, 32), {"progress": "tqdm"}),
        # output tile 16 - 2 * 6 = 4 cannot be aligned to 8 on a 64-px image
        (torch.zeros(1, 64, 64), {"tile_size": (16, 16), "output_margin": 6, "size_multiple": 8}),
    ],
)
def test_bad_input(image: object, kwargs: dict) -> None:
    with pytest.raises(LapsegInputError):
        predict_sliding_window(lambda x: x, image, **{"tile_size": (16, 16), **kwargs})


def test_tile_size_error_suggests_a_fix() -> None:
    with pytest.raises(LapsegInputError, match=r"use \(32, 32\)"):
        predict_sliding_window(
            lambda x: x, torch.zeros(1, 8, 8), tile_size=(30, 32), size_multiple=4
        )


def test_wrong_output_margin_is_reported() -> None:
    with pytest.raises(LapsegInputError, match="output_margin"):
        predict_sliding_window(_valid_net(1, 1), torch.zeros(1, 40, 40), tile_size=(16, 16))


def test_numpy_integer_tile_size_is_accepted() -> None:
    image = torch.randn(1, 20, 20)
    result = predict_sliding_window(lambda x: x, image, tile_size=tuple(np.array([16, 16])))
    torch.testing.assert_close(result, image)


def test_changing_channel_count_is_reported() -> None:
    calls = iter(range(100))

    def predictor(batch: torch.Tensor) -> torch.Tensor:
        return batch.repeat(1, 1 + next(calls), 1, 1)

    with pytest.raises(LapsegInputError, match="channels"):
        predict_sliding_window(predictor, torch.zeros(1, 64, 64), tile_size=(16, 16), batch_size=2)
