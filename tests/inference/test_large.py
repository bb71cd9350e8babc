"""``lapseg predict-large``: a trained model over an image cut into blocks (lapseg.inference.large)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import tifffile

from lapseg.cli import main
from lapseg.inference.large import default_halo, predict_large_image, reference_pixels
from lapseg.inference.predict import load_model, model_instances, predict_probabilities
from lapseg.io.zarr import PlaneView, read_ome_zarr
from lapseg.metrics.instance import match_instances


@pytest.fixture(scope="module")
def trained(instance_run: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory):
    """The shared instance run and a 3 x 3 mosaic (288 x 288) of its kind of image."""
    run, data = instance_run
    tiles = [tifffile.imread(data / "images" / f"img{i}.tif") for i in range(9)]
    mosaic = tmp_path_factory.mktemp("large") / "mosaic.tif"
    tifffile.imwrite(mosaic, np.block([tiles[0:3], tiles[3:6], tiles[6:9]]))
    return run, mosaic


def test_reference_pixels_reads_windows_from_corners_and_centre() -> None:
    plane = PlaneView(np.arange(64.0 * 64).reshape(64, 64), "YX")
    sample = reference_pixels(plane, per_side=3, window=8)
    assert sample.shape == (1, 72, 8)
    assert sample[0, 0, 0] == 0.0  # top-left window
    assert sample[0, -1, -1] == 64 * 64 - 1  # bottom-right window
    assert sample[0, 32, 0] == 28 * 64 + 28  # the middle window starts at (28, 28)


@pytest.mark.slow
def test_predict_large_matches_whole_image_prediction(
    trained: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run, mosaic = trained
    out = tmp_path / "labels.zarr"
    args = ["predict-large", "--model", run, "--input", mosaic, "--output", out]
    code = main([str(a) for a in [*args, "--block-size", "128", "--no-progress"]])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "halo" in printed and "9 blocks" in printed
    with read_ome_zarr(out / "labels" / "instances") as stored:
        labels = np.asarray(stored.array[...])[0]
    assert labels.shape == (288, 288)
    # the same model on the whole image in memory, normalised alike: the blocks change
    # (almost) nothing. Not exactly nothing: a block's sliding-window tiles sit elsewhere than
    # the whole image's, so a small model's probabilities differ a little where it is unsure
    # (tests/inference/test_blocks.py proves the stitching exact on fixed probabilities)
    loaded = load_model(run)
    image = tifffile.imread(mosaic)[None]
    reference = reference_pixels(PlaneView(image, "CYX"))
    whole = model_instances(loaded, predict_probabilities([loaded], image, reference=reference))
    assert whole.max() > 10
    (record,) = match_instances(whole, labels, thresholds=[0.5])
    assert record.f1 > 0.9 and record.mean_matched_iou > 0.9, record
    # running it again finds the finished store and predicts nothing
    assert main([str(a) for a in [*args, "--block-size", "128", "--no-progress"]]) == 0
    assert "0 predicted now" in capsys.readouterr().out


@pytest.mark.slow
def test_default_halo_follows_the_object_size(trained: tuple[Path, Path]) -> None:
    loaded = load_model(trained[0])
    assert loaded.object_area is not None
    halo, why = default_halo(loaded, loaded.config.predict)
    diameter = 3 * 2 * np.sqrt(loaded.object_area / np.pi)
    assert halo >= diameter + 16 and halo % 16 == 0
    assert "median training object" in why


@pytest.mark.slow
def test_predict_large_bad_input_is_one_line(
    trained: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run, mosaic = trained
    base = ["predict-large", "--model", str(run), "--no-progress"]
    assert main([*base, "--input", str(mosaic), "--output", str(mosaic)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "overwrite the input" in err
    assert main([*base, "--input", str(tmp_path / "nope.tif"), "--output", "x.zarr"]) == 2
    assert "not found" in capsys.readouterr().err
    assert main([*base, "--input", str(mosaic), "--output", str(tmp_path / "o"), "--t", "3"]) == 2
    assert "outside the image" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_border_removal_is_not_applied_block_by_block(
    trained: tuple[Path, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Each block would drop the objects cut by its own edges: block-wise prediction keeps
    border objects, and says so."""
    run, mosaic = trained
    loaded = load_model(run)
    with caplog.at_level(logging.INFO, logger="lapseg"):
        predict_large_image(
            [loaded.with_postprocess(remove_border=True)],
            mosaic,
            tmp_path / "a.zarr",
            block_size=128,
        )
    assert "objects touching the image border are kept" in caplog.text
    predict_large_image([loaded], mosaic, tmp_path / "b.zarr", block_size=128)
    stores = []
    for name in ("a.zarr", "b.zarr"):
        with read_ome_zarr(tmp_path / name / "labels" / "instances") as stored:
            stores.append(np.asarray(stored.array[...]))
    assert stores[0].max() > 10
    np.testing.assert_array_equal(stores[0], stores[1])
