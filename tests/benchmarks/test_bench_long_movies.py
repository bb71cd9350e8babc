"""The long-movie memory benchmark's logic, on a small movie (the benchmark itself is not a test)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from bench_long_movies import measure, predict, train, write_movie


def test_movie_writer_gives_a_tyx_stack(tmp_path: Path) -> None:
    root = write_movie(tmp_path / "m", n_frames=5, size=48)
    with tifffile.TiffFile(root / "images" / "movie.tif") as tif:
        assert tif.series[0].shape == (5, 48, 48)
    masks = tifffile.imread(root / "masks" / "movie.tif")
    assert masks.shape == (5, 48, 48) and all(np.unique(m).size > 1 for m in masks)


@pytest.mark.slow
def test_train_then_predict_writes_every_frame(tmp_path: Path) -> None:
    trained = train(n_frames=12, size=64, steps=16, workdir=tmp_path, cache_mib=8)
    assert trained["train_s"] > 0 and trained["train_peak_rss_mib"] > 0
    predicted = predict(n_frames=12, workdir=tmp_path)
    assert predicted["predict_s_per_frame"] > 0 and predicted["tracks"] >= 1
    assert predicted["predict_peak_rss_mib"] > 0
    labels = tifffile.imread(tmp_path / "pred" / "movie" / "labels.tif")
    assert labels.shape == (12, 64, 64) and labels.max() >= 1


@pytest.mark.slow
def test_measure_runs_each_stage_in_its_own_process() -> None:
    result = measure(n_frames=12, size=48, steps=16, cache_mib=8)
    assert result["frames"] == 12 and result["sample_cache_mib"] == 8
    assert set(result) >= {"train_peak_rss_mib", "predict_peak_rss_mib", "predict_s_per_frame"}
    assert result["tracks"] >= 1
