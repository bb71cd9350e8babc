"""Exported models (ONNX, TorchScript, bioimage.io) reproduce lapseg's own predictions."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch

from conftest import SMALLEST_TRAINING
from lapseg.config import load_config
from lapseg.errors import LapsegInputError
from lapseg.export import export_model, export_onnx_file, export_torchscript
from lapseg.export.networks import load_export_source
from lapseg.inference.exported import (
    EXPORT_FORMAT,
    is_exported_model,
    load_exported_model,
    read_export_metadata,
)
from lapseg.inference.instances import instances_from_probabilities
from lapseg.inference.predict import load_model, predict_probabilities
from lapseg.models.checkpoint import load_checkpoint
from lapseg.training.trainer import fit

pytest.importorskip("onnxruntime")

TINY = [*SMALLEST_TRAINING, "train.epochs=1"]
RUNS = {
    "instances": [],  # 3-class target, percentile normalisation
    "binary": ["data.task=binary", "normalization.mode=percentile+meanstd"],
    "valid": ["data.task=binary", "normalization.mode=meanstd", "model.padding=valid"],
}


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from conftest import write_pairs

    return write_pairs(tmp_path_factory.mktemp("export") / "data", 6, seed=0)


@pytest.fixture(scope="module")
def runs(data_root: Path) -> dict[str, Path]:
    """Three tiny trained runs (about a second each)."""
    out = {}
    for name, overrides in RUNS.items():
        run_dir = data_root.parent / name
        fit(load_config(None, [*TINY, *overrides]), data_root, run_dir, progress=False)
        out[name] = run_dir
    return out


def _image(data_root: Path) -> np.ndarray:
    return tifffile.imread(data_root / "images" / "img3.tif")[None]  # (1, 96, 96)


@pytest.mark.parametrize("kind", sorted(RUNS))
@pytest.mark.parametrize("suffix", [".onnx", ".pt", ".ts"])
def test_exported_models_reproduce_probabilities_and_labels(
    runs: dict[str, Path], data_root: Path, tmp_path: Path, kind: str, suffix: str
):
    run = runs[kind]
    out = tmp_path / f"model{suffix}"
    (export_onnx_file if suffix == ".onnx" else export_torchscript)(run, out)
    assert is_exported_model(out)
    original, exported = load_model(run), load_exported_model(out)
    assert exported.model.output_margin == original.model.output_margin
    assert exported.model.size_multiple == original.model.size_multiple
    image = _image(data_root)  # 96 x 96 with 64 px tiles: several blended tiles
    expected = predict_probabilities([original], image)
    got = predict_probabilities([exported], image)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)
    labels = [
        instances_from_probabilities(
            prob, m.config.postprocess, threshold=m.threshold, object_area=m.object_area
        )
        for m, prob in ((original, expected), (exported, got))
    ]
    np.testing.assert_array_equal(labels[1], labels[0])


@pytest.mark.filterwarnings("ignore:.*torch.jit.load. is deprecated")
@pytest.mark.parametrize("kind", ["instances", "valid"])
def test_exported_networks_have_dynamic_batch_and_spatial_size(
    runs: dict[str, Path], tmp_path: Path, kind: str
):
    import onnxruntime

    run = runs[kind]
    network = load_export_source(run).network
    ts = torch.jit.load(str(export_torchscript(run, tmp_path / "m.pt")))
    session = onnxruntime.InferenceSession(
        str(export_onnx_file(run, tmp_path / "m.onnx")), providers=["CPUExecutionProvider"]
    )
    for batch, y, x_size in [(1, 64, 64), (3, 52, 76), (2, 100, 48)]:
        size = (network.valid_input_size(y), network.valid_input_size(x_size))
        x = torch.randn(batch, 1, *size)
        with torch.inference_mode():
            expected = network(x)
            torch.testing.assert_close(ts(x), expected, atol=1e-4, rtol=1e-4)
        (logits,) = session.run(None, {"tiles": x.numpy()})
        np.testing.assert_allclose(logits, expected.numpy(), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("suffix", [".onnx", ".ts"])
def test_metadata_round_trip(runs: dict[str, Path], tmp_path: Path, suffix: str):
    run = runs["binary"]
    out = export_model(
        run, fmt="onnx" if suffix == ".onnx" else "torchscript", out=tmp_path / f"m{suffix}"
    )
    checkpoint = load_checkpoint(run / "best.pt")
    meta = read_export_metadata(out)
    assert meta.format == EXPORT_FORMAT
    assert meta.config == json.loads(json.dumps(checkpoint["config"]))
    assert meta.normalization == checkpoint["normalization"]
    assert meta.normalization["mode"] == "percentile+meanstd" and meta.normalization["mean"]
    assert meta.threshold == pytest.approx(checkpoint["threshold"])
    assert meta.object_area == pytest.approx(checkpoint["object_area"])
    assert meta.postprocess == checkpoint["config"]["postprocess"]
    assert (meta.in_channels, meta.size_multiple, meta.output_margin) == (1, 4, 0)
    original, exported = load_model(run), load_exported_model(out)
    assert exported.config == original.config
    assert exported.stats == original.stats
    assert exported.threshold == pytest.approx(original.threshold)
    assert exported.object_area == pytest.approx(original.object_area)


def test_checkpoint_is_not_an_exported_model(runs: dict[str, Path]):
    assert not is_exported_model(runs["binary"] / "best.pt")


def _one_line_error(call, match: str) -> LapsegInputError:
    with pytest.raises(LapsegInputError, match=match) as info:
        call()
    assert "\n" not in str(info.value)
    return info.value


def test_bad_inputs_are_one_line_errors(runs: dict[str, Path], data_root: Path, tmp_path: Path):
    run = runs["binary"]
    not_a_run = tmp_path / "empty"
    not_a_run.mkdir()
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    image = data_root / "images" / "img0.tif"
    _one_line_error(lambda: export_onnx_file(not_a_run, tmp_path / "m.onnx"), "no best.pt")
    _one_line_error(
        lambda: export_torchscript(tmp_path / "missing", tmp_path / "m.pt"), "not found"
    )
    _one_line_error(lambda: export_onnx_file(run, blocker / "m.onnx"), "cannot create")
    _one_line_error(lambda: export_torchscript(run, tmp_path / "m.onnx"), r"\.pt or \.ts")
    _one_line_error(lambda: export_onnx_file(run, tmp_path), r"\.onnx")
    _one_line_error(lambda: export_model(run, fmt="tflite", out=tmp_path / "m"), "bioimageio, onnx")
    _one_line_error(
        lambda: export_model(run, fmt="bioimageio", out=tmp_path / "m.zip"), "--sample-image"
    )
    _one_line_error(
        lambda: export_model(run, fmt="onnx", out=tmp_path / "m.onnx", sample_image=image),
        "for --format bioimageio",
    )
    _one_line_error(
        lambda: export_model(
            run, fmt="bioimageio", out=blocker / "m.zip", sample_image=image, name="My model"
        ),
        "cannot create",
    )
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not onnx")
    _one_line_error(lambda: load_exported_model(garbage), "ONNX")
    _one_line_error(lambda: load_exported_model(run / "best.pt"), "not a lapseg export")


# --------------------------------------------------------------------------- bioimage.io


def _package(run: Path, data_root: Path, out: Path) -> Path:
    return export_model(
        run,
        fmt="bioimageio",
        out=out,
        sample_image=data_root / "images" / "img3.tif",
        authors=["Test Author"],
        tags=["fluorescence-light-microscopy", "cells"],
    )


# third-party warnings: bioimageio.core loads TorchScript weights with torch.jit.load (deprecated
# in torch 2.13); bioimageio.spec leaves the files it hashes open until garbage collection
@pytest.mark.filterwarnings("ignore:.*torch.jit.load. is deprecated")
@pytest.mark.filterwarnings("ignore:unclosed file:ResourceWarning")
@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(RUNS))
def test_bioimageio_package_validates_and_reproduces(
    runs: dict[str, Path], data_root: Path, tmp_path: Path, kind: str
):
    spec = pytest.importorskip("bioimageio.spec")
    core = pytest.importorskip("bioimageio.core")
    out = _package(runs[kind], data_root, tmp_path / "model.zip")

    descr = spec.load_description(out, perform_io_checks=True)
    summary = descr.validation_summary
    assert summary.status == "valid-format", summary.format()
    assert descr.format_version.startswith("0.5")
    assert {"torchscript", "onnx"} <= {w for w, entry in descr.weights if entry is not None}
    steps = [p.id for p in descr.inputs[0].preprocessing if p.id != "ensure_dtype"]
    expected_steps = {
        "instances": ["scale_range"],
        "binary": ["scale_range", "fixed_zero_mean_unit_variance"],
        "valid": ["fixed_zero_mean_unit_variance"],
    }
    assert steps == expected_steps[kind]
    post = [p.id for p in descr.outputs[0].postprocessing if p.id != "ensure_dtype"]
    assert post == (["softmax"] if kind == "instances" else ["sigmoid"])
    assert descr.cite[0].doi == "10.1007/978-3-319-24574-4_28"
    assert str(descr.license) == "MIT"

    tested = core.test_model(out)
    assert tested.status == "passed", tested.format()
    reproduced = [d.name for d in tested.details if d.name.startswith("Reproduce test outputs")]
    assert len(reproduced) == 2  # torchscript and onnx

    # the test output is lapseg's own prediction of the test input
    with zipfile.ZipFile(out) as archive:
        archive.extractall(tmp_path / "unpacked")
        assert "README.md" in archive.namelist() and "cover.png" in archive.namelist()
    test_in = np.load(tmp_path / "unpacked" / "test_input.npy")
    test_out = np.load(tmp_path / "unpacked" / "test_output.npy")
    loaded = load_model(runs[kind])
    margin = loaded.model.output_margin
    assert test_out.shape[-2:] == tuple(n - 2 * margin for n in test_in.shape[-2:])
    if not margin:
        one_tile = loaded.config.predict.replace(tile_size=test_in.shape[-2:])
        expected = predict_probabilities([loaded], test_in[0], predict=one_tile)
        np.testing.assert_allclose(test_out[0], expected, atol=1e-5, rtol=0)
    readme = (tmp_path / "unpacked" / "README.md").read_text()
    for heading in ("## Training data", "## Normalisation", "## Instance post-processing"):
        assert heading in readme


def test_bioimageio_bad_settings_are_one_line_errors(
    runs: dict[str, Path], data_root: Path, tmp_path: Path
):
    pytest.importorskip("bioimageio.spec")
    from lapseg.models.checkpoint import save_checkpoint

    run, image = runs["instances"], data_root / "images" / "img0.tif"
    out = tmp_path / "m.zip"

    def package(**kwargs):
        settings = {"run": run, "sample_image": image, **kwargs}
        return lambda: export_model(settings.pop("run"), fmt="bioimageio", out=out, **settings)

    _one_line_error(package(license="NOT-A-LICENSE"), "SPDX")
    _one_line_error(package(name="a/b"), "names have")
    _one_line_error(package(authors=[{"nom": "X"}]), "an author is")
    _one_line_error(package(colour="red"), "unknown bioimage.io setting")
    small = tmp_path / "small.tif"
    tifffile.imwrite(small, np.zeros((12, 12), dtype=np.uint16))
    _one_line_error(package(sample_image=small), "at least")
    three = tmp_path / "three_channels.tif"
    planes = np.zeros((3, 64, 64), dtype=np.uint16)
    tifffile.imwrite(three, planes, photometric="minisblack", metadata={"axes": "CYX"})
    _one_line_error(package(sample_image=three), "3 channel.*expects 1")
    checkpoint = load_checkpoint(run / "best.pt")
    checkpoint["config"]["data"]["resize"] = [96, 96]
    resized = save_checkpoint(tmp_path / "resized.pt", checkpoint)
    _one_line_error(package(run=resized), "data.resize")
    assert not out.exists()


def test_export_command_and_predict_with_the_exported_file(
    runs: dict[str, Path], data_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    from lapseg.cli import main

    run, onnx_file = runs["instances"], tmp_path / "model.onnx"
    assert main(["export", str(run), "--format", "onnx", "--out", str(onnx_file)]) == 0
    assert f"exported: {onnx_file}" in capsys.readouterr().out
    images = data_root / "images"
    for model, out in ((run, tmp_path / "from_run"), (onnx_file, tmp_path / "from_onnx")):
        args = ["predict", "--model", model, "--input", images, "--output", out, "--no-progress"]
        assert main([str(a) for a in args]) == 0
    for name in ("img0.tif", "img3.tif"):
        expected = tifffile.imread(tmp_path / "from_run" / "labels" / name)
        got = tifffile.imread(tmp_path / "from_onnx" / "labels" / name)
        np.testing.assert_array_equal(got, expected)
    capsys.readouterr()
    bad = ["predict", "--model", onnx_file, "--input", images, "--output", tmp_path / "x"]
    assert main([str(a) for a in [*bad, "--engine", "torch"]]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "drop --engine" in err
    assert main(["export", str(run), "--format", "onnx", "--out", "m.onnx", "--name", "x"]) == 2
    assert "for --format bioimageio" in capsys.readouterr().err
