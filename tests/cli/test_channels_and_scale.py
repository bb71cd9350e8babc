"""Multi-channel images (``--channels``) and pixel-size rescaling (``--scale``, ``--no-rescale``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
import yaml
from skimage.transform import resize

from lapseg.cli import main
from lapseg.data.channels import parse_channels, select_channels
from lapseg.errors import LapsegInputError
from lapseg.inference.predict import image_zoom, load_model, predict_probabilities
from lapseg.io.images import write_tiff
from lapseg.models.checkpoint import load_checkpoint

TINY = [
    "--set", "model.base_features=4", "--set", "model.depth=2", "--set", "train.epochs=2",
    "--set", "train.patch_size=[48, 48]", "--set", "train.patches_per_epoch=8",
    "--set", "train.batch_size=4", "--set", "train.tensorboard=false",
    "--set", "predict.tile_size=[64, 64]", "--set", "data.task=binary",
]  # fmt: skip


def cli(*args: object) -> int:
    return main([str(a) for a in args])


def two_channel_dataset(root: Path) -> Path:
    """Images (2, 96, 96): channel 0 the cells, channel 1 noise; binary masks."""
    from conftest import write_pairs

    data = write_pairs(root / "single", 4, seed=2)
    rng = np.random.default_rng(0)
    for image_file in sorted((data / "images").iterdir()):
        cells = tifffile.imread(image_file)
        noise = rng.integers(0, 255, cells.shape).astype(cells.dtype)
        tifffile.imwrite(
            image_file, np.stack([cells, noise]), photometric="minisblack", metadata={"axes": "CYX"}
        )
    return data


def test_select_and_parse_channels() -> None:
    image = np.arange(3 * 4, dtype=np.uint16).reshape(3, 2, 2)
    np.testing.assert_array_equal(select_channels(image, (2, 0)), image[[2, 0]])
    assert select_channels(image, None) is image
    np.testing.assert_allclose(select_channels(image, "mean")[0], image.mean(axis=0))
    with pytest.raises(LapsegInputError, match=r"channel 3 was asked for.*3 channel"):
        select_channels(image, (3,))
    assert parse_channels("1,0") == (1, 0)
    with pytest.raises(LapsegInputError, match="0-based indices"):
        parse_channels("first")


@pytest.mark.slow
def test_channels_at_training_and_prediction(tmp_path: Path, capsys) -> None:
    data = two_channel_dataset(tmp_path)
    # all channels: model.in_channels follows the images, and says so
    assert cli("train", "--data", data, "--out", tmp_path / "both", "--no-progress", *TINY) == 0
    assert "the images have 2 channel(s): model.in_channels=2" in capsys.readouterr().out
    assert load_checkpoint(tmp_path / "both" / "best.pt")["config"]["model"]["in_channels"] == 2
    # one channel picked: stored, and prediction picks it from 2-channel images by itself
    run = tmp_path / "first"
    assert (
        cli("train", "--data", data, "--out", run, "--channels", "0", "--no-progress", *TINY) == 0
    )
    config = load_checkpoint(run / "best.pt")["config"]
    assert config["data"]["channels"] == [0] and config["model"]["in_channels"] == 1
    assert (
        cli("predict", "--model", run, "--input", data / "images", "--output", tmp_path / "p") == 0
    )
    # a 1-channel image for that model: the error names --channels
    single = tmp_path / "single.tif"
    tifffile.imwrite(single, tifffile.imread(data / "images" / "img0.tif")[0])
    capsys.readouterr()
    args = ["predict", "--model", tmp_path / "both", "--input", single, "--output", tmp_path / "q"]
    assert cli(*args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--channels" in err and "expects 2" in err
    # --channels adapts the 1-channel model to the other channel order
    swapped = tmp_path / "swapped.tif"
    image = tifffile.imread(data / "images" / "img0.tif")
    tifffile.imwrite(swapped, image[::-1], photometric="minisblack", metadata={"axes": "CYX"})
    out = tmp_path / "r"
    assert (
        cli("predict", "--model", run, "--input", swapped, "--output", out, "--channels", "1") == 0
    )
    np.testing.assert_array_equal(
        tifffile.imread(out / "probabilities" / "swapped.tif"),
        tifffile.imread(tmp_path / "p" / "probabilities" / "img0.tif"),
    )


@pytest.mark.slow
def test_rescaling_round_trip(tmp_path: Path, capsys) -> None:
    """An image at half the training pixel size (objects twice as large in pixels) is predicted
    at the training scale: its probabilities, shrunk back, equal those of the image itself."""
    from conftest import write_pairs

    data = write_pairs(tmp_path / "data", 4, seed=4)
    for image_file in (data / "images").iterdir():  # pixel size 0.5 um in the metadata
        write_tiff(image_file, tifffile.imread(image_file), axes="YX", pixel_size=(0.5, 0.5))
    run = tmp_path / "run"
    assert cli("train", "--data", data, "--out", run, "--no-progress", *TINY) == 0
    assert "training pixel size 0.5 x 0.5 um" in capsys.readouterr().out
    loaded = load_model(run)
    assert loaded.config.data.pixel_size == (0.5, 0.5)
    image = tifffile.imread(data / "images" / "img0.tif").astype(np.float32)
    large = resize(image, (192, 192), order=1, preserve_range=True).astype(np.float32)
    assert image_zoom(loaded, (0.25, 0.25))[0] == pytest.approx(0.5)
    native = predict_probabilities([loaded], image[None])[0]
    zoomed = predict_probabilities([loaded], large[None], pixel_size=(0.25, 0.25))[0]
    assert zoomed.shape == (192, 192)
    back = resize(zoomed, (96, 96), order=1, anti_aliasing=True)
    assert np.abs(back - native).mean() < 0.03  # interpolation only
    unscaled = predict_probabilities(
        [loaded],
        large[None],
        pixel_size=(0.25, 0.25),
        predict=loaded.config.predict.replace(rescale=False),
    )[0]
    assert (
        np.abs(resize(unscaled, (96, 96), order=1) - native).mean() > np.abs(back - native).mean()
    )
    # the CLI says what it did, and --scale / --no-rescale override the rule
    write_tiff(tmp_path / "large.tif", large, axes="YX", pixel_size=(0.25, 0.25))
    out = tmp_path / "pred"
    assert cli("predict", "--model", run, "--input", tmp_path / "large.tif", "--output", out) == 0
    assert "zoomed by 0.5" in capsys.readouterr().out
    assert cli("predict", "--model", run, "--input", tmp_path / "large.tif", "--output",
               tmp_path / "pred2", "--no-rescale") == 0  # fmt: skip
    assert "zoomed" not in capsys.readouterr().out
    stored = yaml.safe_load((run / "config.yaml").read_text())
    assert stored["data"]["pixel_size"] == [0.5, 0.5]
