"""Reading movies frame by frame (lapseg.io.movies)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from lapseg.io.movies import discover_movies, release_mapped_pages


def _file_backed_rss_mib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssFile:"):
            return int(line.split()[1]) // 1024
    raise AssertionError("no RssFile line")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_reading_a_mapped_movie_does_not_keep_its_pages(tmp_path: Path) -> None:
    """Frame after frame of a memory-mapped stack: the frames are right, and the pages read
    are released instead of piling up (the whole file is 64 MiB)."""
    path = tmp_path / "movie.tif"
    stack = np.arange(500, dtype=np.uint16)[:, None, None] * np.ones((1, 256, 256), np.uint16)
    tifffile.imwrite(path, stack, contiguous=True, metadata={"axes": "TYX"})
    (movie,) = discover_movies(path)
    before = _file_backed_rss_mib()
    with movie.open() as reader:
        for t in (0, 17, 499):
            assert int(reader.frame(t).array[0, 5, 5]) == t
        for t in range(movie.n_frames):
            reader.frame(t)
        assert _file_backed_rss_mib() - before < 16
    volume = tifffile.memmap(path, mode="r")
    total = sum(int(volume[t, 0, 0]) for t in range(0, 500, 50))
    assert total == sum(range(0, 500, 50))
    release_mapped_pages(volume[:, None])  # a view: the mapping is found through its base
    release_mapped_pages(np.zeros(3))  # not mapped: nothing to do
