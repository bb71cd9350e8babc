"""INT8 ONNX export: calibrated on the run's tiles, checked on its validation split, loads back."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import tifffile

from conftest import SMALLEST_TRAINING
from lapseg.cli import main
from lapseg.config import load_config
from lapseg.errors import LapsegInputError
from lapseg.export import export_model, export_onnx_int8
from lapseg.export import quantize as quantize_module
from lapseg.export.accuracy import AccuracyComparison
from lapseg.export.networks import load_export_source
from lapseg.export.quantize import calibration_batches
from lapseg.inference.exported import read_export_metadata
from lapseg.inference.predict import load_model, predict_probabilities
from lapseg.models.checkpoint import load_checkpoint, save_checkpoint
from lapseg.training.trainer import fit

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

TINY = [*SMALLEST_TRAINING, "train.epochs=1"]
RUNS = {
    "instances": [],  # 3-class target, percentile normalisation: Dice and SEG are checked
    "binary": ["data.task=binary", "normalization.mode=percentile+meanstd"],
}
LENIENT = 0.5
"""An accuracy limit one-epoch models always meet: these tests check the plumbing; the guard's
rule is checked with a comparison that fails (below)."""


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from conftest import write_pairs

    return write_pairs(tmp_path_factory.mktemp("int8") / "data", 6, seed=0)


@pytest.fixture(scope="module")
def runs(data_root: Path) -> dict[str, Path]:
    out = {}
    for name, overrides in RUNS.items():
        run_dir = data_root.parent / name
        fit(load_config(None, [*TINY, *overrides]), data_root, run_dir, progress=False)
        out[name] = run_dir
    return out


def _image(data_root: Path) -> np.ndarray:
    return tifffile.imread(data_root / "images" / "img3.tif")[None]


@pytest.mark.parametrize("kind", sorted(RUNS))
def test_int8_model_is_quantised_checked_and_predicts_like_the_float_model(
    runs: dict[str, Path], data_root: Path, tmp_path: Path, kind: str
):
    out = tmp_path / "m.int8.onnx"
    result = export_onnx_int8(runs[kind], out, data=data_root, max_drop=LENIENT)
    assert result.path == out and out.is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.int8.onnx"]  # no scratch files
    proto = onnx.load(str(out))
    ops = Counter(node.op_type for node in proto.graph.node)
    assert ops["QuantizeLinear"] > 0 and ops["DequantizeLinear"] > ops["QuantizeLinear"]
    int8 = onnx.TensorProto.INT8
    assert any(t.data_type == int8 for t in proto.graph.initializer)  # int8 weights
    comparison = result.comparison
    assert set(comparison.reference) == ({"dice", "seg"} if kind == "instances" else {"dice"})
    meta = read_export_metadata(out)
    assert meta.quantization is not None
    assert meta.quantization["validation"] == comparison.to_dict()
    assert meta.quantization["calibration"]["tiles"] == result.calibration_tiles > 0
    assert meta.quantization["calibration"]["source"] == "training split"
    original, quantised = load_model(runs[kind]), load_model(out)  # as `predict --model`
    assert quantised.config == original.config and quantised.stats == original.stats
    image = _image(data_root)
    expected = predict_probabilities([original], image)
    got = predict_probabilities([quantised], image)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=0.2)
    assert 0 < comparison.max_probability_difference < 0.2


def test_calibration_tiles_are_the_sliding_window_tiles(runs: dict[str, Path]):
    source = load_export_source(runs["binary"])
    rng = np.random.default_rng(0)
    images = [rng.standard_normal((1, 96, 96), dtype=np.float32) for _ in range(3)]
    batches = calibration_batches(images, source.network, source.config, max_tiles=5)
    tiles = np.concatenate(batches)
    assert tiles.shape[1:] == (1, 64, 64)  # the run's tile size
    assert len(tiles) == 5
    assert all(len(b) <= source.config.predict.batch_size for b in batches)
    # every tile is a window of an image (or of its mirrored border)
    assert all(np.isin(tile, np.concatenate([i.ravel() for i in images])).all() for tile in tiles)


def test_a_drop_above_the_limit_writes_nothing(
    runs: dict[str, Path], data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    def worse(reference: object, candidate: object, samples: list, *, max_drop: float) -> object:
        return AccuracyComparison(
            n_images=len(samples),
            reference={"dice": 0.90, "seg": 0.80},
            candidate={"dice": 0.899, "seg": 0.79},
            max_drop=max_drop,
            max_probability_difference=0.1,
        )

    monkeypatch.setattr(quantize_module, "compare_on_samples", worse)
    out = tmp_path / "m.int8.onnx"
    with pytest.raises(
        LapsegInputError, match=r"INT8 model not written.*seg 0.8000 -> 0.7900"
    ) as e:
        export_onnx_int8(runs["instances"], out, data=data_root)
    assert "\n" not in str(e.value)
    assert not list(tmp_path.iterdir())


def test_accuracy_rule():
    def comparison(candidate: float, max_drop: float = 0.005) -> AccuracyComparison:
        return AccuracyComparison(1, {"dice": 0.9}, {"dice": candidate}, max_drop, 0.0)

    assert comparison(0.895).passed  # exactly the limit
    assert not comparison(0.8949).passed
    assert comparison(0.95).passed  # better is never refused
    assert comparison(0.0, max_drop=0.95).passed
    assert comparison(0.9).drops() == {"dice": 0.0}


def test_calibration_folder(runs: dict[str, Path], data_root: Path, tmp_path: Path):
    out = tmp_path / "m.onnx"
    folder = data_root / "images"
    result = export_onnx_int8(
        runs["binary"], out, data=data_root, calibration_data=folder, max_drop=LENIENT
    )
    assert result.calibration_images == 6
    meta = read_export_metadata(out)
    assert meta.quantization is not None
    assert meta.quantization["calibration"]["source"] == str(folder)


def _without_validation(run: Path, tmp_path: Path) -> Path:
    checkpoint = load_checkpoint(run / "best.pt")
    checkpoint["split"] = {**checkpoint["split"], "val": []}
    save_checkpoint(tmp_path / "noval.pt", checkpoint)
    return tmp_path / "noval.pt"


def test_bad_input_is_one_line_and_writes_nothing(
    runs: dict[str, Path], data_root: Path, tmp_path: Path
):
    from conftest import write_pairs

    run, out = runs["binary"], tmp_path / "out" / "m.onnx"
    other = write_pairs(tmp_path / "other", 6, seed=1)  # same file names, other pixels
    (tmp_path / "empty").mkdir()
    cases = [
        (lambda: export_model(run, fmt="onnx-int8", out=out), "needs --data"),
        (lambda: export_model(run, fmt="onnx", out=out, data=data_root), "for --format onnx-int8"),
        (lambda: export_onnx_int8(run, tmp_path / "m.int8", data=data_root), r"\.onnx"),
        (lambda: export_onnx_int8(run, out, data=tmp_path / "missing"), "not found"),
        (lambda: export_onnx_int8(run, out, data=other), "not the data the run was trained on"),
        (
            lambda: export_onnx_int8(run, out, data=data_root, calibration_data=tmp_path / "empty"),
            "no image",
        ),
        (
            lambda: export_onnx_int8(_without_validation(run, tmp_path), out, data=data_root),
            "no validation split",
        ),
        (lambda: export_onnx_int8(run, out, data=data_root, max_drop=-1), "accuracy drop"),
    ]
    for call, message in cases:
        with pytest.raises(LapsegInputError, match=message) as error:
            call()
        assert "\n" not in str(error.value)
    assert not out.exists() and not list(out.parent.glob("*.onnx"))


def test_cli_exports_int8_and_predict_runs_it(
    runs: dict[str, Path], data_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    out = tmp_path / "m.int8.onnx"
    args = ["export", str(runs["binary"]), "--format", "onnx-int8", "--out", str(out)]
    assert main(args) == 2  # no --data
    assert "needs --data" in capsys.readouterr().err
    assert main([*args, "--data", str(data_root), "--max-accuracy-drop", str(LENIENT)]) == 0
    printed = capsys.readouterr().out
    assert f"exported: {out}" in printed and "INT8 vs float: dice" in printed
    image = data_root / "images" / "img3.tif"
    predicted = tmp_path / "pred"
    predict = ["predict", "--model", str(out), "--input", str(image), "--output", str(predicted)]
    assert main(predict) == 0
    assert (predicted / "masks" / "img3.tif").is_file()
