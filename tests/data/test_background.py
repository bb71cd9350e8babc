"""Temporal median background: known values, chunking, caching, subtraction."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from lapseg.data.background import median_of_frames, subtract_background, temporal_median
from lapseg.errors import LapsegInputError
from lapseg.io.sequences import discover_sequences


def _write(folder: Path, frames: np.ndarray) -> Path:
    (folder / "frames").mkdir(parents=True)
    for t, frame in enumerate(frames):
        tifffile.imwrite(folder / "frames" / f"t{t:02d}.tif", frame)
    return folder


def test_median_of_known_stack(tmp_path: Path):
    # pixel (0, 0) sees 5, 1, 3 -> median 3; a cell passes over pixel (1, 1) in one frame only
    frames = np.zeros((3, 4, 5), dtype=np.float32)
    frames[:, 0, 0] = [5, 1, 3]
    frames[:, :, 4] = 7.0  # static bright column (a microwell rim)
    frames[1, 1, 1] = 100.0
    expected = np.zeros((4, 5), dtype=np.float32)
    expected[0, 0] = 3
    expected[:, 4] = 7
    np.testing.assert_array_equal(median_of_frames(frames), expected)
    (source,) = discover_sequences(_write(tmp_path / "s", frames))
    np.testing.assert_array_equal(temporal_median(source), expected)
    cleaned = subtract_background(frames, expected)
    assert cleaned[1, 1, 1] == 100 and np.abs(cleaned[:, :, 4]).max() == 0


@pytest.mark.parametrize("chunk_rows", [1, 3, 7, 100])
def test_chunked_equals_unchunked_and_numpy(tmp_path: Path, chunk_rows: int):
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 1000, (6, 11, 9)).astype(np.uint16)
    (source,) = discover_sequences(_write(tmp_path / "s", frames))
    reference = np.median(frames.astype(np.float32), axis=0)
    np.testing.assert_array_equal(temporal_median(source, chunk_rows=chunk_rows), reference)
    np.testing.assert_array_equal(median_of_frames(frames, chunk_rows=chunk_rows), reference)


def test_cache_is_reused_and_invalidated(tmp_path: Path):
    frames = np.ones((3, 4, 4), dtype=np.uint16)
    folder = _write(tmp_path / "s", frames)
    (source,) = discover_sequences(folder)
    cache = tmp_path / "run"
    first = temporal_median(source, cache_dir=cache)
    files = list(cache.glob("background-*.npy"))
    assert len(files) == 1 and first.max() == 1
    np.save(files[0], np.full((4, 4), 42, np.float32))  # a cached value is used as is
    assert temporal_median(source, cache_dir=cache).max() == 42
    tifffile.imwrite(folder / "frames" / "t00.tif", np.full((4, 4), 9, np.uint16))
    tifffile.imwrite(folder / "frames" / "t01.tif", np.full((4, 4), 9, np.uint16))
    assert temporal_median(source, cache_dir=cache).max() == 9  # files changed: recomputed


def test_bad_inputs(tmp_path: Path):
    with pytest.raises(LapsegInputError, match="chunk_rows"):
        median_of_frames(np.zeros((2, 3, 3)), chunk_rows=0)
    with pytest.raises(LapsegInputError, match=r"\(T, Y, X\)"):
        median_of_frames(np.zeros((3, 3)))
    with pytest.raises(LapsegInputError, match="differs from the background"):
        subtract_background(np.zeros((3, 3)), np.zeros((4, 3)))
    frames = [np.zeros((4, 4), np.uint16), np.zeros((5, 4), np.uint16)]
    (source,) = discover_sequences(_write(tmp_path / "s", frames))
    with pytest.raises(LapsegInputError, match=r"t01.tif: frame size \(5, 4\) differs"):
        temporal_median(source)
