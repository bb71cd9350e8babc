"""Every user-facing bad-input path: one line on stderr, exit code 2, no traceback, no output."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile

from lapseg.cli import main

TINY = [
    "--set",
    "model.base_features=4",
    "--set",
    "model.depth=2",
    "--set",
    "train.epochs=1",
    "--set",
    "train.patch_size=[48, 48]",
    "--set",
    "train.patches_per_epoch=4",
    "--set",
    "train.batch_size=4",
    "--set",
    "train.tensorboard=false",
    "--set",
    "predict.tile_size=[64, 64]",
]


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(code: int, err: str, *fragments: str) -> None:
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("lapseg: error: ")
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from conftest import write_pairs

    root = tmp_path_factory.mktemp("cli")
    data = write_pairs(root / "data", 4, seed=3)
    # the synthetic masks are instance labels; this fixture exercises the binary round trip
    args = ["train", "--data", str(data), "--out", str(root / "run"), "--no-progress", *TINY]
    assert main([*args, "--set", "data.task=binary"]) == 0
    return root


def test_train_predict_evaluate_round_trip(trained_run: Path, capsys, tmp_path: Path):
    out = tmp_path / "pred"
    code, stdout, _ = run(
        [
            "predict",
            "--model",
            trained_run / "run",
            "--input",
            trained_run / "data" / "images",
            "--output",
            out,
            "--no-progress",
        ],
        capsys,
    )
    assert code == 0
    masks = sorted((out / "masks").glob("*.tif"))
    probs = sorted((out / "probabilities").glob("*.tif"))
    assert [p.name for p in masks] == [f"img{i}.tif" for i in range(4)]
    assert len(probs) == 4
    mask = tifffile.imread(masks[0])
    prob = tifffile.imread(probs[0])
    assert mask.shape == prob.shape == (96, 96)
    assert set(np.unique(mask)) <= {0, 255}
    assert prob.dtype == np.float32 and prob.min() >= 0.0 and prob.max() <= 1.0
    np.testing.assert_array_equal(mask == 255, prob > 0.5)
    assert (trained_run / "run" / "report.html").is_file()  # written at the end of train
    code, stdout, err = run(
        [
            "evaluate",
            "--pred",
            out,
            "--truth",
            trained_run / "data" / "masks",
            "--out",
            tmp_path / "eval",
            "--run",
            trained_run / "run",
            "--images",
            trained_run / "data" / "images",
        ],
        capsys,
    )
    assert code == 0, err
    assert "warning" not in err
    assert "dice" in stdout
    assert (tmp_path / "eval" / "summary.json").is_file()
    html = (trained_run / "run" / "report.html").read_text()
    assert 'id="metrics"' in html and 'id="overlays"' in html


def test_train_missing_data_folder(tmp_path: Path, capsys):
    code, _, err = run(
        ["train", "--data", tmp_path / "nope", "--out", tmp_path / "run", *TINY], capsys
    )
    assert_one_line_error(code, err, "nope")
    assert not (tmp_path / "run").exists()


def test_train_image_without_mask(tiny_dataset: Path, tmp_path: Path, capsys):
    (tiny_dataset / "masks" / "img2.tif").unlink()
    code, _, err = run(["train", "--data", tiny_dataset, "--out", tmp_path / "run", *TINY], capsys)
    assert_one_line_error(code, err, "img2")
    assert not (tmp_path / "run").exists()


def test_train_shape_mismatch(tiny_dataset: Path, tmp_path: Path, capsys):
    tifffile.imwrite(tiny_dataset / "masks" / "img1.tif", np.ones((50, 60), np.uint8))
    code, _, err = run(["train", "--data", tiny_dataset, "--out", tmp_path / "run", *TINY], capsys)
    assert_one_line_error(code, err, "img1", "shape")
    assert not (tmp_path / "run").exists()


def test_train_corrupt_image(tiny_dataset: Path, tmp_path: Path, capsys):
    (tiny_dataset / "images" / "img3.tif").write_bytes(b"not a tiff at all")
    code, _, err = run(["train", "--data", tiny_dataset, "--out", tmp_path / "run", *TINY], capsys)
    assert_one_line_error(code, err, "img3.tif")
    assert not (tmp_path / "run").exists()


def test_train_empty_dataset(tmp_path: Path, capsys):
    (tmp_path / "data" / "images").mkdir(parents=True)
    (tmp_path / "data" / "masks").mkdir(parents=True)
    code, _, err = run(
        ["train", "--data", tmp_path / "data", "--out", tmp_path / "run", *TINY], capsys
    )
    assert_one_line_error(code, err)
    assert not (tmp_path / "run").exists()


def test_train_invalid_config_value(tiny_dataset: Path, tmp_path: Path, capsys):
    code, _, err = run(
        ["train", "--data", tiny_dataset, "--out", tmp_path / "run", *TINY, "--set", "train.lr=-3"],
        capsys,
    )
    assert_one_line_error(code, err, "train.lr")


def test_unknown_option_exits_2(capsys):
    with pytest.raises(SystemExit) as info:
        main(["train", "--bogus"])
    assert info.value.code == 2


def test_predict_missing_model(tmp_path: Path, capsys):
    code, _, err = run(
        [
            "predict",
            "--model",
            tmp_path / "none.pt",
            "--input",
            tmp_path,
            "--output",
            tmp_path / "o",
        ],
        capsys,
    )
    assert_one_line_error(code, err, "none.pt")


def test_predict_corrupt_checkpoint(tmp_path: Path, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00garbage")
    code, _, err = run(
        ["predict", "--model", bad, "--input", tmp_path, "--output", tmp_path / "o"], capsys
    )
    assert_one_line_error(code, err, "bad.pt")


def test_predict_never_overwrites_inputs(trained_run: Path, tmp_path: Path, capsys):
    images = tmp_path / "masks"
    shutil.copytree(trained_run / "data" / "images", images)
    before = {p.name: p.read_bytes() for p in images.iterdir()}
    code, _, err = run(
        [
            "predict",
            "--model",
            trained_run / "run",
            "--input",
            images,
            "--output",
            tmp_path,
            "--no-progress",
        ],
        capsys,
    )
    assert_one_line_error(code, err, "overwrite")
    assert {p.name: p.read_bytes() for p in images.iterdir()} == before


def test_predict_corrupt_input_leaves_no_partial_file(trained_run: Path, tmp_path: Path, capsys):
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "broken.tif").write_bytes(b"II*\x00garbage")
    code, _, err = run(
        [
            "predict",
            "--model",
            trained_run / "run",
            "--input",
            inputs,
            "--output",
            tmp_path / "out",
            "--no-progress",
        ],
        capsys,
    )
    assert_one_line_error(code, err, "broken.tif")
    leftovers = list((tmp_path / "out").rglob("*")) if (tmp_path / "out").exists() else []
    assert not [p for p in leftovers if p.is_file()]


def test_evaluate_missing_prediction(trained_run: Path, tmp_path: Path, capsys):
    (tmp_path / "pred").mkdir()
    code, _, err = run(
        ["evaluate", "--pred", tmp_path / "pred", "--truth", trained_run / "data" / "masks"], capsys
    )
    assert_one_line_error(code, err)


def test_help_explains_every_option(capsys):
    with pytest.raises(SystemExit) as info:
        main(["train", "--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    for option in ("--data", "--out", "--config", "--set", "--resume", "--device"):
        assert option in text


def test_predict_with_onnx_engine_matches_torch(trained_run: Path, tmp_path: Path, capsys):
    pytest.importorskip("onnxruntime")
    for engine in ("torch", "onnx"):
        code, _, err = run(
            [
                "predict",
                "--model",
                trained_run / "run",
                "--input",
                trained_run / "data" / "images",
                "--output",
                tmp_path / engine,
                "--engine",
                engine,
                "--no-progress",
            ],
            capsys,
        )
        assert code == 0, err
    for path in sorted((tmp_path / "torch" / "probabilities").glob("*.tif")):
        a = tifffile.imread(path)
        b = tifffile.imread(tmp_path / "onnx" / "probabilities" / path.name)
        np.testing.assert_allclose(a, b, atol=1e-4)


def test_three_class_model_writes_instance_labels_and_evaluates(tmp_path: Path, capsys):
    from conftest import write_pairs

    data = write_pairs(tmp_path / "data", 4, seed=5)
    three_class = [
        "--set",
        "data.target=three_class",
        "--set",
        "data.mask_kind=instance",
        "--set",
        "model.out_channels=3",
        "--set",
        "loss.border_weights=true",
    ]
    code, _, err = run(
        ["train", "--data", data, "--out", tmp_path / "run", "--no-progress", *TINY, *three_class],
        capsys,
    )
    assert code == 0, err
    code, _, err = run(
        [
            "predict",
            "--model",
            tmp_path / "run",
            "--input",
            data / "images",
            "--output",
            tmp_path / "pred",
            "--no-progress",
        ],
        capsys,
    )
    assert code == 0, err
    labels = tifffile.imread(tmp_path / "pred" / "labels" / "img0.tif")
    probs = tifffile.imread(tmp_path / "pred" / "probabilities" / "img0.tif")
    assert labels.dtype == np.uint16 and labels.shape == (96, 96)
    assert probs.shape == (3, 96, 96)
    np.testing.assert_allclose(probs.sum(axis=0), 1.0, atol=1e-5)
    code, stdout, err = run(
        [
            "evaluate",
            "--instances",
            "--pred",
            tmp_path / "pred",
            "--truth",
            data / "masks",
            "--out",
            tmp_path / "eval",
        ],
        capsys,
    )
    assert code == 0, err
    assert "SEG" in stdout or "seg" in stdout
    assert (tmp_path / "eval" / "instances_summary.json").is_file()


def test_three_class_needs_three_outputs(tiny_dataset: Path, tmp_path: Path, capsys):
    code, _, err = run(
        [
            "train",
            "--data",
            tiny_dataset,
            "--out",
            tmp_path / "run",
            *TINY,
            "--set",
            "data.target=three_class",
            "--set",
            "model.out_channels=1",
        ],
        capsys,
    )
    assert_one_line_error(code, err, "model.out_channels=3")


@pytest.mark.slow
def test_cv_command_writes_summary_and_resumes(tmp_path: Path, capsys):
    from conftest import write_pairs

    data = write_pairs(tmp_path / "data", 6, seed=9)
    args = ["cv", "--data", data, "--out", tmp_path / "cv", "--folds", "3", "--no-progress", *TINY]
    code, stdout, err = run(args, capsys)
    assert code == 0, err
    assert "fold" in stdout.lower()
    summary = (tmp_path / "cv" / "cv_summary.csv").read_text()
    assert summary.count("\n") >= 4  # header + 3 folds (+ mean/std)
    mtime = (tmp_path / "cv" / "fold0" / "best.pt").stat().st_mtime
    code, _, err = run(args, capsys)  # finished folds are not retrained
    assert code == 0, err
    assert (tmp_path / "cv" / "fold0" / "best.pt").stat().st_mtime == mtime


def test_search_command_rejects_bad_space(tiny_dataset: Path, tmp_path: Path, capsys):
    space = tmp_path / "space.yaml"
    space.write_text("train.lr: {type: float, low: 0.1, high: 0.01}\n")
    code, _, err = run(
        [
            "search",
            "--data",
            tiny_dataset,
            "--space",
            space,
            "--trials",
            "1",
            "--out",
            tmp_path / "s",
        ],
        capsys,
    )
    assert_one_line_error(code, err, "train.lr")


def test_predict_tta_option(trained_run: Path, tmp_path: Path, capsys):
    code, _, err = run(
        [
            "predict",
            "--model",
            trained_run / "run",
            "--input",
            trained_run / "data" / "images" / "img0.tif",
            "--output",
            tmp_path / "tta",
            "--tta",
            "--no-progress",
        ],
        capsys,
    )
    assert code == 0, err
    prob = tifffile.imread(tmp_path / "tta" / "probabilities" / "img0.tif")
    assert prob.shape == (96, 96) and prob.min() >= 0.0 and prob.max() <= 1.0


def test_export_contours_and_baseline_commands(trained_run: Path, tmp_path: Path, capsys):
    import json

    masks = trained_run / "data" / "masks"
    code, _, err = run(["export-contours", "--labels", masks, "--out", tmp_path / "geo"], capsys)
    assert code == 0, err
    features = json.loads((tmp_path / "geo" / "img0.geojson").read_text())["features"]
    assert len(features) == len(np.unique(tifffile.imread(masks / "img0.tif"))) - 1
    code, _, err = run(
        [
            "baseline",
            "train",
            "--data",
            trained_run / "data",
            "--out",
            tmp_path / "forest",
            "--set",
            "baseline.n_estimators=5",
            "--set",
            "baseline.n_pixels_per_image=500",
        ],
        capsys,
    )
    assert code == 0, err
    code, _, err = run(
        [
            "baseline",
            "predict",
            "--model",
            tmp_path / "forest",
            "--input",
            trained_run / "data" / "images",
            "--output",
            tmp_path / "rf",
            "--no-progress",
        ],
        capsys,
    )
    assert code == 0, err
    assert len(list((tmp_path / "rf" / "masks").glob("*.tif"))) == 4


def test_augment_preview_writes_png(tiny_dataset: Path, tmp_path: Path, capsys):
    import imageio.v3 as iio

    code, _, err = run(
        [
            "augment-preview",
            "--data",
            tiny_dataset,
            "--out",
            tmp_path / "p.png",
            "--n",
            "4",
            "--set",
            "augment.preset=seed002",
            "--set",
            "train.patch_size=[48, 48]",
        ],
        capsys,
    )
    assert code == 0, err
    picture = iio.imread(tmp_path / "p.png")
    assert picture.ndim == 3 and picture.shape[0] > 48 and picture.shape[1] > 48


@pytest.mark.slow
def test_timelapse_train_predict_and_compare(tmp_path: Path, capsys):
    from lapseg.data.synthetic_timelapse import TimelapseConfig, write_synthetic_timelapse

    data = tmp_path / "seqs"
    write_synthetic_timelapse(data, n_sequences=3, config=TimelapseConfig(n_frames=6), rng=0)
    n1, n5 = tmp_path / "n1.yaml", tmp_path / "n5.yaml"
    n1.write_text("data: {layout: sequences}\ntemporal: {context: 0}\n")
    n5.write_text("data: {layout: sequences}\ntemporal: {context: 2, background: median}\n")
    tiny = [a for a in TINY if a != "--set"]
    sets = [x for item in tiny for x in ("--set", item)] + ["--set", "data.test_fraction=0.3"]
    code, stdout, err = run(
        ["compare", n1, n5, "--data", data, "--out", tmp_path / "cmp", "--no-progress", *sets],
        capsys,
    )
    assert code == 0, err
    assert "false_white" in stdout.replace(" ", "_").lower() or "false white" in stdout.lower()
    assert (tmp_path / "cmp" / "curves.png").is_file()
    assert (tmp_path / "cmp" / "n5" / "cache").is_dir()  # median backgrounds cached with the run
    code, stdout, err = run(
        [
            "predict",
            "--model",
            tmp_path / "cmp" / "n5",
            "--input",
            data,
            "--output",
            tmp_path / "pred",
            "--no-progress",
        ],
        capsys,
    )
    assert code == 0, err
    stacks = sorted((tmp_path / "pred").glob("*/masks.tif"))
    assert len(stacks) == 3  # one mask stack per sequence, one frame per time point
    assert all(tifffile.imread(path).shape[0] == 6 for path in stacks)
    assert len(sorted((tmp_path / "pred").glob("*/tracks.csv"))) == 3  # an instance model
    assert len(sorted((tmp_path / "pred").glob("*/consistency.json"))) == 3
    assert "temporal consistency:" in stdout


def test_predict_reads_every_training_layout(trained_run: Path, tmp_path: Path, capsys):
    """Sample folders, CSV/JSON lists and a training folder predict like plain image folders."""
    data = trained_run / "data"
    model = trained_run / "run"
    reference = tmp_path / "plain"
    assert (
        run(
            [
                "predict",
                "--model",
                model,
                "--input",
                data / "images",
                "--output",
                reference,
                "--no-progress",
            ],
            capsys,
        )[0]
        == 0
    )
    samples = tmp_path / "samples"
    for image in sorted((data / "images").iterdir()):
        (samples / f"cell_{image.stem}").mkdir(parents=True)
        shutil.copy(image, samples / f"cell_{image.stem}" / "raw.tif")
    listing = tmp_path / "list.csv"
    listing.write_text(
        "image,name\n" + "".join(f"{p},{p.stem}\n" for p in sorted((data / "images").iterdir()))
    )
    expected_names = {
        "samples": {f"cell_{p.stem}.tif" for p in (data / "images").iterdir()},
        "list": {p.name for p in (data / "images").iterdir()},
        "dataset": {p.name for p in (data / "images").iterdir()},
    }
    for kind, source in (("samples", samples), ("list", listing), ("dataset", data)):
        out = tmp_path / kind
        code, stdout, err = run(
            ["predict", "--model", model, "--input", source, "--output", out, "--no-progress"],
            capsys,
        )
        assert code == 0, err
        written = {p.name for p in (out / "masks").iterdir()}
        assert written == expected_names[kind], kind
        if kind != "list":  # the list names its images; the others say what they found
            assert "image(s) from" in stdout
        for name in written:
            plain = name.removeprefix("cell_")
            np.testing.assert_array_equal(
                tifffile.imread(out / "masks" / name), tifffile.imread(reference / "masks" / plain)
            )


def test_predict_refuses_two_inputs_with_one_output_name(trained_run: Path, tmp_path: Path, capsys):
    inputs = tmp_path / "in"
    inputs.mkdir()
    image = next((trained_run / "data" / "images").iterdir())
    shutil.copy(image, inputs / "a.tif")
    shutil.copy(image, inputs / "a.ome.tif")
    code, _, err = run(
        ["predict", "--model", trained_run / "run", "--input", inputs, "--output", tmp_path / "o"],
        capsys,
    )
    assert_one_line_error(code, err, "same output name", "a")
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_held_out_test_split_is_evaluated_and_reported(tmp_path: Path, capsys):
    import json

    from conftest import write_pairs

    data = write_pairs(tmp_path / "data", 10, seed=1)
    run_dir = tmp_path / "run"
    args = ["train", "--data", data, "--out", run_dir, "--no-progress", *TINY]
    code, stdout, err = run([*args, "--set", "data.test_fraction=0.2"], capsys)
    assert code == 0, err
    split = json.loads((run_dir / "split.json").read_text())
    assert len(split["test"]) == 2
    assert "held-out test split (2 image(s)): dice" in stdout
    summary = json.loads((run_dir / "test" / "evaluation" / "summary.json").read_text())
    assert summary["n_images"] == 2
    assert {p.stem for p in (run_dir / "test" / "predictions" / "labels").iterdir()} == set(
        split["test"]
    )
    record = json.loads((run_dir / "run.json").read_text())
    assert record["held_out_test"]["n_images"] == 2 and "seg" in record["held_out_test"]
    report = (run_dir / "report.html").read_text()
    assert split["test"][0] in report  # the held-out images' rows and overlays
