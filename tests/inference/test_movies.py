"""Movies in, stacks and tracks out: frame-by-frame equality, metadata, exact tracks, CTC layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from torch import nn

from lapseg.config import load_config
from lapseg.data.normalization import NormalizationStats
from lapseg.data.targets import three_class_target
from lapseg.errors import LapsegInputError
from lapseg.inference.apply import predict_path
from lapseg.inference.movies import MovieOutputs, predict_movie
from lapseg.inference.predict import LoadedModel, model_mask, predict_probabilities
from lapseg.io.ctc import read_ctc_result
from lapseg.io.images import write_tiff_stack
from lapseg.io.movies import discover_movies
from lapseg.metrics.tracking import tracking_scores
from lapseg.models.registry import create_model
from lapseg.tracking import moving_discs


def oracle_model() -> LoadedModel:
    """A '3-class model' whose input already is its answer: pixel value = class index."""

    def predictor(tiles: torch.Tensor) -> torch.Tensor:
        classes = tiles[:, 0].round().long().clamp(0, 2)
        return 20.0 * nn.functional.one_hot(classes, 3).permute(0, 3, 1, 2).float() - 10.0

    config = load_config(
        None,
        [
            "data.task=instances",
            "data.target=three_class",
            "postprocess.min_size=0",
            "postprocess.min_size_fraction=0",
            "postprocess.min_seed_fraction=0",
        ],
    )
    config = config.replace(model=config.model.replace(out_channels=3))
    return LoadedModel(
        model=nn.Identity(),
        config=config,
        stats=NormalizationStats("none"),
        threshold=0.5,
        path=Path("oracle"),
        device=torch.device("cpu"),
        predictor=predictor,
    )


def movie_of(labels: np.ndarray) -> np.ndarray:
    """Encode a label stack as the oracle's input: the 3-class target of every frame."""
    return np.stack([three_class_target(frame, boundary_width=1) for frame in labels]).astype(
        np.uint8
    )


def test_tracks_of_moving_and_dividing_cells_are_recovered_exactly(tmp_path: Path) -> None:
    truth = moving_discs(n_frames=8, grid=(2, 2), radius=7.0, step=2.0, n_divisions=1, rng=3)
    path = write_tiff_stack(
        tmp_path / "cells.tif",
        iter(movie_of(truth.labels)),
        shape=truth.labels.shape,
        dtype=np.uint8,
        axes="TYX",
        pixel_size=(0.65, 0.65),
    )
    (movie,) = discover_movies(path)
    result = predict_movie([oracle_model()], movie, tmp_path / "out")
    assert result.n_tracks == truth.table.shape[0]
    labels = tifffile.imread(result.files["labels"])
    table = np.loadtxt(result.files["res_track"], dtype=np.int64, ndmin=2)
    scores = tracking_scores(truth.labels, truth.table, labels, table)
    assert scores.tra == pytest.approx(1.0) and scores.det == pytest.approx(1.0)
    with tifffile.TiffFile(result.files["labels"]) as tif:  # axes and pixel size kept
        assert tif.series[0].axes == "TYX"
        assert 'PhysicalSizeX="0.65"' in (tif.ome_metadata or "")
    rows = (result.files["tracks"]).read_text().splitlines()
    assert rows[0] == "track_id,frame,y,x,area,parent"
    assert len(rows) - 1 == sum(np.unique(f[f > 0]).size for f in truth.labels)  # one per object
    assert not list((tmp_path / "out" / "cells").glob(".*"))


def test_ctc_input_gets_the_ctc_result_layout(tmp_path: Path) -> None:
    truth = moving_discs(n_frames=5, grid=(1, 2), radius=6.0, step=2.0, n_divisions=0, rng=1)
    sequence = tmp_path / "ctc" / "01"
    sequence.mkdir(parents=True)
    for t, frame in enumerate(movie_of(truth.labels)):
        tifffile.imwrite(sequence / f"t{t:03d}.tif", frame)
    summary = predict_path([oracle_model()], tmp_path / "ctc", tmp_path / "out")
    (result,) = summary.movies
    assert result.name == "01" and result.files["ctc"] == tmp_path / "out" / "01_RES"
    labels, table = read_ctc_result(tmp_path / "out" / "01_RES")
    assert tracking_scores(truth.labels, truth.table, labels, table).tra == pytest.approx(1.0)


def test_a_2d_model_on_a_movie_equals_the_model_on_each_frame(tmp_path: Path) -> None:
    config = load_config(
        None,
        [
            "data.task=binary",
            "model.base_features=4",
            "model.depth=2",
            "model.in_channels=2",
            "model.out_channels=1",
        ],
    )
    torch.manual_seed(0)
    model = create_model(config.model).eval()
    loaded = LoadedModel(
        model=model,
        config=config,
        stats=NormalizationStats("percentile"),
        threshold=0.5,
        path=Path("net"),
        device=torch.device("cpu"),
        predictor=model,
    )
    frames = np.random.default_rng(0).integers(0, 1000, (4, 2, 40, 48)).astype(np.uint16)
    path = write_tiff_stack(
        tmp_path / "m.tif", iter(frames), shape=frames.shape, dtype=np.uint16, axes="TCYX"
    )
    result = predict_movie([loaded], discover_movies(path)[0], tmp_path / "out")
    masks = tifffile.imread(result.files["masks"])
    assert masks.shape == (4, 40, 48) and "labels" not in result.files
    with torch.inference_mode():
        for t in range(4):
            expected = model_mask(loaded, predict_probabilities([loaded], frames[t]))
            np.testing.assert_array_equal(masks[t], expected)


def test_bad_movies_are_one_line_errors(tmp_path: Path) -> None:
    tifffile.imwrite(
        tmp_path / "unknown.tif", np.zeros((3, 8, 8), np.uint8), photometric="minisblack"
    )
    with pytest.raises(LapsegInputError, match="pass --axes"):
        discover_movies(tmp_path / "unknown.tif")
    single = tmp_path / "single" / "frames"
    single.mkdir(parents=True)
    tifffile.imwrite(single / "t0.tif", np.zeros((8, 8), np.uint8))
    (movie,) = discover_movies(tmp_path / "single")
    with pytest.raises(LapsegInputError, match="2 or more time points"):
        predict_movie([oracle_model()], movie, tmp_path / "out", outputs=MovieOutputs(track=True))
    assert not (tmp_path / "out").exists()
    mixed = tmp_path / "mixed" / "frames"
    mixed.mkdir(parents=True)
    tifffile.imwrite(mixed / "t0.tif", np.zeros((8, 8), np.uint8))
    tifffile.imwrite(mixed / "t1.tif", np.zeros((8, 9), np.uint8))
    with pytest.raises(LapsegInputError, match="one size"):
        predict_movie([oracle_model()], discover_movies(tmp_path / "mixed")[0], tmp_path / "o2")


@pytest.mark.parametrize("compress", [False, True])
def test_a_time_depth_stack_is_one_movie_per_z_slice(tmp_path: Path, compress: bool) -> None:
    """(T, Z, Y, X): each z-slice is tracked over time, as training reads such stacks."""
    slices = [moving_discs(n_frames=5, grid=(1, 2), radius=6.0, step=2.0, n_divisions=0, rng=z)
              for z in range(3)]  # fmt: skip
    stack = np.stack([movie_of(s.labels) for s in slices], axis=1)  # (T, Z, Y, X)
    path = tmp_path / "volume.tif"
    tifffile.imwrite(
        path,
        stack,
        photometric="minisblack",
        metadata={"axes": "TZYX"},
        compression="zlib" if compress else None,
    )
    movies = discover_movies(path)
    assert [m.name for m in movies] == ["volume/z00", "volume/z01", "volume/z02"]
    summary = predict_path([oracle_model()], path, tmp_path / "out")
    assert len(summary.movies) == 3
    for z, truth in enumerate(slices):
        labels = tifffile.imread(tmp_path / "out" / "volume" / f"z{z:02d}" / "labels.tif")
        assert labels.shape == truth.labels.shape
        table = np.loadtxt(
            tmp_path / "out" / "volume" / f"z{z:02d}" / "res_track.txt", dtype=np.int64, ndmin=2
        )
        scores = tracking_scores(truth.labels, truth.table, labels, table)
        assert scores.tra == pytest.approx(1.0)
