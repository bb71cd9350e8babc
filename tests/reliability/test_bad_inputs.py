"""Bad data and bad configuration across train / predict / evaluate / cv / search / export: one
line on stderr naming the file and the problem, exit code 2, no traceback, no output, inputs
untouched. Legitimate oddities (a constant image) exit 0."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from reliability_support import (
    assert_one_line_error,
    files_under,
    float_image,
    run,
    snapshot,
    tiny,
    train_tiny_model,
    write_dataset,
)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny trained binary run folder and its data folder."""
    return train_tiny_model(tmp_path_factory.mktemp("bad-inputs"))


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return write_dataset(tmp_path / "data")


def _train_fails(data: Path, tmp_path: Path, capsys, *fragments: str, extra=()) -> str:
    """``lapseg train`` on ``data`` fails with one line naming ``fragments``; no run folder,
    the data unchanged."""
    before = snapshot(data)
    code, _, err = run(
        ["train", "--data", data, "--out", tmp_path / "run", "--no-progress", *tiny(), *extra],
        capsys,
    )
    line = assert_one_line_error(code, err, *fragments)
    assert not (tmp_path / "run").exists()
    assert snapshot(data) == before
    return line


# --------------------------------------------------------------------------- train: data


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
def test_train_refuses_non_finite_image(data: Path, tmp_path: Path, capsys, value: float):
    float_image(data / "images" / "img1.tif", value)
    _train_fails(data, tmp_path, capsys, "img1.tif", "NaN or infinite")


def test_train_refuses_constant_image_whose_mask_has_objects(data: Path, tmp_path: Path, capsys):
    tifffile.imwrite(data / "images" / "img2.tif", np.full((96, 96), 7, np.uint16))
    _train_fails(data, tmp_path, capsys, "img2.tif", "constant", "foreground")


def test_train_accepts_constant_image_with_empty_mask(data: Path, tmp_path: Path, capsys):
    """A blank field of view annotated as empty is a legitimate background example: logged."""
    tifffile.imwrite(data / "images" / "img2.tif", np.zeros((96, 96), np.uint16))
    tifffile.imwrite(data / "masks" / "img2.tif", np.zeros((96, 96), np.uint16))
    empty_masks_train = tiny(1, "data.empty_masks=empty")  # not "unannotated"
    code, out, err = run(
        ["train", "--data", data, "--out", tmp_path / "run", "--no-progress", *empty_masks_train],
        capsys,
    )
    assert code == 0, err
    assert "img2.tif: constant image" in out
    assert "constant image" in (tmp_path / "run" / "log.txt").read_text()


def test_train_refuses_class_values_beyond_the_classes(data: Path, tmp_path: Path, capsys):
    tifffile.imwrite(data / "masks" / "img0.tif", np.full((96, 96), 1, np.uint8))
    mask = np.zeros((96, 96), np.uint8)
    mask[10:30, 10:30] = 3
    tifffile.imwrite(data / "masks" / "img1.tif", mask)
    for name in ("img2", "img3"):
        tifffile.imwrite(data / "masks" / f"{name}.tif", (mask > 0).astype(np.uint8))
    _train_fails(
        data,
        tmp_path,
        capsys,
        "img1.tif",
        "class value(s) 3",
        extra=["--set", "data.mask_kind=classes", "--set", "model.out_channels=2"],
    )


def test_train_refuses_binary_mask_with_an_ignore_value(tmp_path: Path, capsys):
    """Masks detected as binary (0/1) by the survey of 16 masks: one of the others also holding
    255 (often an 'ignore' label) is refused, not trained on as foreground."""
    data = write_dataset(tmp_path / "data", 18, seed=2)
    for i in range(18):
        labels = tifffile.imread(data / "masks" / f"img{i}.tif")
        tifffile.imwrite(data / "masks" / f"img{i}.tif", (labels > 0).astype(np.uint8))
    mask = tifffile.imread(data / "masks" / "img4.tif")  # the survey skips img4 and img13
    mask[:4] = 255
    tifffile.imwrite(data / "masks" / "img4.tif", mask)
    _train_fails(data, tmp_path, capsys, "img4.tif", "0, 1, 255", "binary")


@pytest.mark.parametrize(
    ("mask", "problem"),
    [
        (np.full((96, 96), np.nan, np.float32), "NaN or infinite"),
        (np.full((96, 96), 0.5, np.float32), "fractional"),
        (np.full((96, 96), -3, np.int32), "negative"),
    ],
    ids=["nan-mask", "fractional-mask", "negative-mask"],
)
def test_train_refuses_invalid_mask_values(
    data: Path, tmp_path: Path, capsys, mask: np.ndarray, problem: str
):
    tifffile.imwrite(data / "masks" / "img0.tif", mask)
    _train_fails(data, tmp_path, capsys, "img0.tif", problem)


def test_train_refuses_colour_mask(data: Path, tmp_path: Path, capsys):
    colour = np.zeros((96, 96, 3), np.uint8)
    colour[10:20, 10:20] = (255, 0, 0)
    tifffile.imwrite(data / "masks" / "img0.tif", colour, photometric="rgb")
    _train_fails(data, tmp_path, capsys, "img0.tif", "colour channels")


def test_train_refuses_all_empty_masks(data: Path, tmp_path: Path, capsys):
    for i in range(4):
        tifffile.imwrite(data / "masks" / f"img{i}.tif", np.zeros((96, 96), np.uint16))
    _train_fails(data, tmp_path, capsys, "all zero")


# --------------------------------------------------------------------------- configuration


def test_yaml_string_where_a_section_is_expected(data: Path, tmp_path: Path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text("augment: seed002\n")
    line = _train_fails(data, tmp_path, capsys, "c.yaml", "augment", extra=["--config", config])
    assert "mapping" in line


def test_yaml_unknown_key_lists_the_valid_ones(data: Path, tmp_path: Path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text("train:\n  lrr: 0.1\n")
    _train_fails(data, tmp_path, capsys, "c.yaml", "train.lrr", "lr", extra=["--config", config])


def test_yaml_that_is_not_a_mapping(data: Path, tmp_path: Path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text("- train\n- lr\n")
    _train_fails(data, tmp_path, capsys, "c.yaml", "mapping", extra=["--config", config])


def test_config_file_that_is_binary_garbage(data: Path, tmp_path: Path, capsys):
    config = tmp_path / "c.yaml"
    config.write_bytes(b"\xff\xfe\x00\x81garbage\x00")
    _train_fails(data, tmp_path, capsys, "c.yaml", extra=["--config", config])


def test_config_file_missing(data: Path, tmp_path: Path, capsys):
    _train_fails(data, tmp_path, capsys, "nope.yaml", extra=["--config", tmp_path / "nope.yaml"])


# --------------------------------------------------------------------------- predict


def _predict(trained: tuple[Path, Path], inputs: Path, output: Path, capsys, *extra: object):
    args = ["predict", "--model", trained[0], "--input", inputs, "--output", output]
    return run([*args, "--no-progress", *extra], capsys)


def test_predict_refuses_nan_image(trained, tmp_path: Path, capsys):
    inputs = tmp_path / "in"
    inputs.mkdir()
    tifffile.imwrite(inputs / "a.tif", np.full((64, 64), np.nan, np.float32))
    before = snapshot(inputs)
    code, _, err = _predict(trained, inputs, tmp_path / "out", capsys)
    assert_one_line_error(code, err, "a.tif", "NaN or infinite")
    assert files_under(tmp_path / "out") == []
    assert snapshot(inputs) == before


def test_predict_accepts_constant_image(trained, tmp_path: Path, capsys):
    """A blank image is legitimate at prediction time: an empty mask, exit 0."""
    inputs = tmp_path / "in"
    inputs.mkdir()
    tifffile.imwrite(inputs / "blank.tif", np.zeros((64, 64), np.uint16))
    code, _, err = _predict(trained, inputs, tmp_path / "out", capsys)
    assert code == 0, err
    assert tifffile.imread(tmp_path / "out" / "masks" / "blank.tif").shape == (64, 64)


def test_predict_input_folder_without_images(trained, tmp_path: Path, capsys):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "notes.txt").write_text("no images here")
    code, _, err = _predict(trained, tmp_path / "in", tmp_path / "out", capsys)
    assert_one_line_error(code, err, "in")
    assert files_under(tmp_path / "out") == []


def test_predict_image_with_wrong_channel_count(trained, tmp_path: Path, capsys):
    inputs = tmp_path / "in"
    inputs.mkdir()
    tifffile.imwrite(
        inputs / "rgb.tif", np.zeros((64, 64, 3), np.uint8) + 9, photometric="rgb"
    )  # the model sees one channel
    code, _, err = _predict(trained, inputs, tmp_path / "out", capsys)
    assert_one_line_error(code, err, "rgb.tif", "3 channel(s)", "--channels")
    assert files_under(tmp_path / "out") == []


def test_predict_refuses_settings_that_cannot_change(trained, tmp_path: Path, capsys):
    inputs = trained[1] / "images"
    code, _, err = _predict(trained, inputs, tmp_path / "out", capsys, "--set", "model.depth=3")
    assert_one_line_error(code, err, "model.depth", "prediction time")
    assert files_under(tmp_path / "out") == []


# --------------------------------------------------------------------------- evaluate


def test_evaluate_refuses_nan_prediction(trained, tmp_path: Path, capsys):
    pred = tmp_path / "pred"
    pred.mkdir()
    for i in range(4):
        tifffile.imwrite(pred / f"img{i}.tif", np.zeros((96, 96), np.uint8))
    tifffile.imwrite(pred / "img2.tif", np.full((96, 96), np.nan, np.float32))
    truth = trained[1] / "masks"
    before = snapshot(truth)
    code, _, err = run(
        ["evaluate", "--pred", pred, "--truth", truth, "--out", tmp_path / "eval"], capsys
    )
    assert_one_line_error(code, err, "img2.tif", "NaN or infinite")
    assert files_under(tmp_path / "eval") == []
    assert snapshot(truth) == before


def test_evaluate_refuses_shape_mismatch(trained, tmp_path: Path, capsys):
    pred = tmp_path / "pred"
    pred.mkdir()
    for i in range(4):
        tifffile.imwrite(pred / f"img{i}.tif", np.zeros((96, 96), np.uint8))
    tifffile.imwrite(pred / "img1.tif", np.zeros((50, 96), np.uint8))
    code, _, err = run(
        ["evaluate", "--pred", pred, "--truth", trained[1] / "masks", "--out", tmp_path / "e"],
        capsys,
    )
    assert_one_line_error(code, err, "img1.tif", "shape")
    assert files_under(tmp_path / "e") == []


# --------------------------------------------------------------------------- cv and search


def test_cv_refuses_more_folds_than_samples(data: Path, tmp_path: Path, capsys):
    code, _, err = run(
        ["cv", "--data", data, "--out", tmp_path / "cv", "--folds", "9", "--no-progress", *tiny()],
        capsys,
    )
    assert_one_line_error(code, err, "fold")
    assert files_under(tmp_path / "cv") == []


def test_cv_refuses_nan_image(data: Path, tmp_path: Path, capsys):
    float_image(data / "images" / "img0.tif", np.nan)
    code, _, err = run(
        ["cv", "--data", data, "--out", tmp_path / "cv", "--folds", "2", "--no-progress", *tiny()],
        capsys,
    )
    assert_one_line_error(code, err, "img0.tif", "NaN")
    assert not list((tmp_path / "cv").glob("fold*/*.pt"))


def test_search_refuses_unknown_key_before_training(data: Path, tmp_path: Path, capsys):
    pytest.importorskip("optuna")
    space = tmp_path / "space.yaml"
    space.write_text("train.lrr: {type: float, low: 0.001, high: 0.01}\n")
    code, _, err = run(
        ["search", "--data", data, "--space", space, "--trials", "1", "--out", tmp_path / "s"],
        capsys,
    )
    assert_one_line_error(code, err, "train.lrr")
    assert not (tmp_path / "s" / "trials").exists()


def test_search_space_that_is_not_a_mapping(data: Path, tmp_path: Path, capsys):
    pytest.importorskip("optuna")
    space = tmp_path / "space.yaml"
    space.write_text("just a string\n")
    code, _, err = run(
        ["search", "--data", data, "--space", space, "--trials", "1", "--out", tmp_path / "s"],
        capsys,
    )
    assert_one_line_error(code, err, "space.yaml", "mapping")


# --------------------------------------------------------------------------- export


def test_export_run_folder_without_checkpoint(tmp_path: Path, capsys):
    (tmp_path / "run").mkdir()
    code, _, err = run(
        ["export", tmp_path / "run", "--format", "onnx", "--out", tmp_path / "m.onnx"], capsys
    )
    assert_one_line_error(code, err, "run", "best.pt")
    assert not (tmp_path / "m.onnx").exists()


def test_export_to_unsupported_file_name(trained, tmp_path: Path, capsys):
    code, _, err = run(
        ["export", trained[0], "--format", "onnx", "--out", tmp_path / "m.txt"], capsys
    )
    assert_one_line_error(code, err, "m.txt")
    assert files_under(tmp_path) == []
