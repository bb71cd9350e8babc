"""Tests for lapseg.inference.tiling (start positions and the Gaussian window)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from lapseg.errors import LapsegInputError
from lapseg.inference.tiling import gaussian_window, tile_grid, tile_starts


def _nnunet_steps(size: int, tile: int, step_size: float) -> list[int]:
    """Independent transcription of nnU-Net v2's compute_steps_for_sliding_window (one axis)."""
    target = tile * step_size
    num_steps = int(np.ceil((size - tile) / target)) + 1
    max_step = size - tile
    actual = max_step / (num_steps - 1) if num_steps > 1 else 99999999999
    return [int(np.round(actual * i)) for i in range(num_steps)]


def test_tile_starts_hand_computed() -> None:
    assert tile_starts(100, 40, 0.5) == [0, 20, 40, 60]
    # 2048 px, tile 256, overlap 0.25: ceil(1792 / 192) + 1 = 11 tiles, step 179.2
    starts = tile_starts(2048, 256, 0.25)
    assert len(starts) == 11
    assert starts[:3] == [0, 179, 358]
    assert starts[-1] == 2048 - 256


@pytest.mark.parametrize(
    ("size", "tile", "overlap"),
    [(97, 32, 0.25), (131, 32, 0.5), (500, 64, 0.0), (257, 256, 0.9), (1000, 7, 0.3)],
)
def test_tile_starts_match_nnunet(size: int, tile: int, overlap: float) -> None:
    assert tile_starts(size, tile, overlap) == _nnunet_steps(size, tile, 1 - overlap)


def test_tile_starts_single_tile_when_image_fits() -> None:
    assert tile_starts(32, 32, 0.5) == [0]
    assert tile_starts(5, 32, 0.5) == [0]


@pytest.mark.parametrize(
    ("size", "tile", "overlap", "align"),
    [(96, 32, 0.25, 16), (208, 64, 0.0, 16), (1024, 48, 0.5, 8), (100, 36, 0.1, 4), (40, 8, 0, 8)],
)
def test_aligned_starts_cover_and_line_up(size: int, tile: int, overlap: float, align: int) -> None:
    starts = tile_starts(size, tile, overlap, align=align)
    assert starts[0] == 0
    assert starts[-1] == size - tile
    assert all(s % align == 0 for s in starts)
    gaps = np.diff(starts)
    assert np.all(gaps > 0)
    assert np.all(gaps <= tile)  # no pixel is left uncovered
    covered = np.zeros(size, bool)
    for s in starts:
        covered[s : s + tile] = True
    assert covered.all()
    # overlap is kept up to the rounding to align
    assert np.all(tile - gaps >= math.floor(overlap * tile) - align)


def test_aligned_starts_hand_computed() -> None:
    # 4 tiles over 64 px of travel = 4 units of 16: round(0, 4/3, 8/3, 4) * 16
    assert tile_starts(96, 32, 0.25, align=16) == [0, 16, 48, 64]


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        ((0, 32, 0.25), {}),
        ((64, 0, 0.25), {}),
        ((64, 32, 1.0), {}),
        ((64, 32, -0.1), {}),
        ((64, 32, 0.25), {"align": 0}),
        ((70, 32, 0.25), {"align": 16}),  # size - tile not a multiple of align
        ((96, 8, 0.25), {"align": 16}),  # tile smaller than align
        ((64.0, 32, 0.25), {}),
    ],
)
def test_tile_starts_bad_input(args: tuple, kwargs: dict) -> None:
    with pytest.raises(LapsegInputError):
        tile_starts(*args, **kwargs)


@pytest.mark.parametrize("tile_yx", [(32, 32), (16, 40), (256, 256), (7, 9)])
def test_gaussian_window_matches_nnunet_construction(tile_yx: tuple[int, int]) -> None:
    # nnU-Net: gaussian_filter of a delta at the centre, / max, zeros -> smallest nonzero
    delta = np.zeros(tile_yx)
    delta[tuple(t // 2 for t in tile_yx)] = 1
    ref = gaussian_filter(delta, [t / 8 for t in tile_yx], 0, mode="constant", cval=0)
    ref = ref / ref.max()
    ref[ref == 0] = ref[ref != 0].min()
    window = gaussian_window(tile_yx)
    assert window.dtype == np.float32
    assert window.shape == tile_yx
    np.testing.assert_allclose(window, ref, rtol=1e-5, atol=1e-7)
    assert window.max() == pytest.approx(1.0)
    assert window[tuple(t // 2 for t in tile_yx)] == pytest.approx(1.0)
    assert window.min() > 0


def test_gaussian_window_truncated_pixels_get_smallest_nonzero_weight() -> None:
    window = gaussian_window((64, 64), sigma_scale=1 / 32)  # sigma 2, radius 8: most are cut
    centre_row = window[32]
    inside = centre_row[24:41]
    assert np.all(inside > centre_row[0])
    assert window[0, 0] == window.min() > 0
    assert np.sum(window == window.min()) > 64 * 64 - 17 * 17 - 1


@pytest.mark.parametrize(
    ("tile_yx", "kwargs"), [((32,), {}), ((0, 32), {}), ((32, 32), {"sigma_scale": 0.0})]
)
def test_gaussian_window_bad_input(tile_yx: tuple, kwargs: dict) -> None:
    with pytest.raises(LapsegInputError):
        gaussian_window(tile_yx, **kwargs)


def test_tile_grid_is_product_of_axis_starts() -> None:
    grid = tile_grid((100, 60), (40, 32), 0.5)
    rows = tile_starts(100, 40, 0.5)
    cols = tile_starts(60, 32, 0.5)
    assert len(grid) == len(rows) * len(cols)
    assert grid[0] == (slice(0, 40), slice(0, 32))
    assert grid[1] == (slice(0, 40), slice(cols[1], cols[1] + 32))
    assert grid[-1] == (slice(60, 100), slice(28, 60))
    covered = np.zeros((100, 60), int)
    for r, c in grid:
        covered[r, c] += 1
    assert covered.min() >= 1


def test_tile_grid_bad_input() -> None:
    with pytest.raises(LapsegInputError):
        tile_grid((100,), (40, 32), 0.5)
