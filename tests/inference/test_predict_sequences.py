"""Prediction on a sequence (one mask per frame with the trained context rule) and the N1 vs N5
comparison built on it (Table 3 measures on shared held-out frames, curves on one plot)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from sklearn.metrics import f1_score, jaccard_score, precision_score

from lapseg.config import config_to_dict, load_config
from lapseg.data.temporal import stack_context
from lapseg.data.timelapse import load_sequence
from lapseg.errors import LapsegInputError
from lapseg.inference.movies import MovieOutputs, predict_movie
from lapseg.inference.predict import load_model, predict_probabilities
from lapseg.inference.sequences import SequencePredictor
from lapseg.io.movies import discover_movies
from lapseg.io.sequences import discover_sequences
from lapseg.models.checkpoint import save_checkpoint
from lapseg.models.registry import create_model
from lapseg.training.compare import compare_runs, format_comparison, save_compared_curves

TINY = [
    "data.layout=sequences",
    "model.base_features=4",
    "model.depth=2",
    "train.epochs=1",
    "train.patch_size=[32, 32]",
    "train.patches_per_epoch=4",
    "train.batch_size=4",
    "train.tensorboard=false",
    "predict.tile_size=[32, 32]",
    "data.val_fraction=0.5",
]


def _write(root: Path, n_frames: int, shape: tuple[int, int], seed: int) -> None:
    rng = np.random.default_rng(seed)
    (root / "frames").mkdir(parents=True)
    (root / "masks").mkdir()
    for t in range(n_frames):
        frame = rng.integers(0, 200, shape).astype(np.uint16)
        frame[5 + t : 12 + t, 6:14] += 500
        tifffile.imwrite(root / "frames" / f"t{t}.tif", frame)
        if t % 2 == 0:
            mask = np.zeros(shape, np.uint8)
            mask[5 + t : 12 + t, 6:14] = 1
            tifffile.imwrite(root / "masks" / f"t{t}.tif", mask)


def fake_run(run_dir: Path, overrides: list[str], *, seed: int = 0) -> Path:
    """A run folder with an untrained model (seeded), as ``fit`` would write it (fast)."""
    config = load_config(None, [*TINY, *overrides])
    torch.manual_seed(seed)
    model = create_model(config.model)
    save_checkpoint(
        run_dir / "best.pt",
        {
            "config": config_to_dict(config),
            "model_state": model.state_dict(),
            "normalization": {"mode": "percentile"},
            "threshold": 0.5,
        },
    )
    return run_dir


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("seq")
    _write(root / "data" / "a", 6, (30, 34), 0)
    _write(root / "data" / "b", 5, (30, 34), 1)
    overrides = [
        "temporal.context=1",
        "temporal.edge_mode=reflect",
        "temporal.background=median",
        "data.crop_or_pad=[32, 32]",
    ]
    return root / "data", fake_run(root / "run", overrides)


def test_one_mask_per_frame_on_the_frame_grid(trained, tmp_path: Path):
    data, run = trained
    model = load_model(run, device="cpu")
    assert model.config.temporal.context == 1 and model.config.model.in_channels == 3
    (movie,) = discover_movies(data / "a")
    assert movie.frame_names == tuple(f"t{t}" for t in range(6))
    calls = []
    result = predict_movie(
        [model],
        movie,
        tmp_path / "out",
        outputs=MovieOutputs(probabilities=True, per_frame=True),
        on_frame=lambda done, total: calls.append((done, total)),
    )
    assert calls == [(i, 6) for i in range(1, 7)]
    masks = tifffile.imread(result.files["masks"])
    assert masks.shape == (6, 30, 34) and set(np.unique(masks)) <= {0, 255}
    with tifffile.TiffFile(result.files["masks"]) as tif:
        assert tif.series[0].axes == "TYX"
    prob = tifffile.imread(result.files["probabilities"])
    assert prob.shape == (6, 30, 34) and 0.0 <= prob.min() <= prob.max() <= 1.0
    frame = tifffile.imread(tmp_path / "out" / "a" / "frames" / "masks" / "t3.tif")
    np.testing.assert_array_equal(frame, masks[3])
    assert not list((tmp_path / "out" / "a").glob(".*"))  # no scratch or temporary leftovers


def test_frame_uses_the_trained_context_rule(trained):
    data, run = trained
    model = load_model(run, device="cpu")
    source = discover_sequences(data)[1]
    frames, _ = load_sequence(source, data=model.config.data, temporal=model.config.temporal)
    # reflect at the end: frame 4 of 5 sees frames 3, 4, 3
    stacked = stack_context(frames, 4, 1, "reflect")
    np.testing.assert_array_equal(stacked[0], stacked[2])
    expected = predict_probabilities([model], stacked)
    expected = expected[:, 1:-1, :]  # rows 30 were padded to 32 (one each side)
    got = SequencePredictor([model], source).probabilities(4)
    np.testing.assert_allclose(got[:, :, 1:-1], expected, atol=1e-5)
    assert got.shape[1:] == (30, 34) and (got[:, :, [0, -1]] == 0).all()  # cropped columns


def test_ensemble_and_bad_inputs(trained, tmp_path: Path):
    data, run = trained
    model = load_model(run, device="cpu")
    source = discover_sequences(data)[0]
    single = SequencePredictor([model], source).probabilities(2)
    double = SequencePredictor([model, model], source).probabilities(2)
    np.testing.assert_allclose(single, double, atol=1e-6)
    with pytest.raises(LapsegInputError, match="no model"):
        SequencePredictor([], source)


# ---- the N1 vs N5 comparison (lapseg.training.compare) on the same held-out frames


def _finish(run: Path, split: dict, losses: list[float]) -> Path:
    (run / "split.json").write_text(json.dumps(split), encoding="utf-8")
    rows = ["epoch,train_loss,val_dice"] + [f"{i + 1},{v},{1 - v}" for i, v in enumerate(losses)]
    (run / "history.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return run


@pytest.fixture
def two_runs(tmp_path: Path) -> tuple[Path, list[Path]]:
    _write(tmp_path / "data" / "a", 6, (32, 32), 0)
    _write(tmp_path / "data" / "b", 5, (32, 32), 1)
    split = {"train": ["a/t0", "a/t2", "a/t4"], "val": [], "test": ["b/t0", "b/t2", "b/t4"]}
    runs = [
        _finish(fake_run(tmp_path / "n1", ["temporal.context=0"], seed=1), split, [0.9, 0.5]),
        _finish(fake_run(tmp_path / "n5", ["temporal.context=2"], seed=2), split, [0.8, 0.4]),
    ]
    return tmp_path / "data", runs


def test_table3_measures_match_an_independent_reference(two_runs, tmp_path: Path):
    data, runs = two_runs
    rows = compare_runs(runs, data)
    assert [r["run"] for r in rows] == ["n1", "n5"]
    movie = discover_movies(data)[1]
    for run, row in zip(runs, rows, strict=True):
        assert row["n_frames"] == 3
        result = predict_movie([load_model(run, device="cpu")], movie, tmp_path / run.name)
        masks = tifffile.imread(result.files["masks"])
        preds = [masks[t].ravel() > 0 for t in (0, 2, 4)]
        truths = [
            tifffile.imread(data / "b" / "masks" / f"t{t}.tif").ravel() > 0 for t in (0, 2, 4)
        ]
        # Table 3: per frame with the thesis code's rules (0 for undefined ratios), then averaged
        per_frame = {
            "f1": [f1_score(t, p, zero_division=0.0) for t, p in zip(truths, preds, strict=True)],
            "precision": [
                precision_score(t, p, zero_division=0.0) for t, p in zip(truths, preds, strict=True)
            ],
            "error_rate": [100 * np.mean(t != p) for t, p in zip(truths, preds, strict=True)],
            "false_white": [np.mean(p & ~t) for t, p in zip(truths, preds, strict=True)],
            "white_pixel_accuracy": [
                (p & t).sum() / t.sum() if t.any() else 1.0
                for t, p in zip(truths, preds, strict=True)
            ],
        }
        for key, values in per_frame.items():
            assert row[key] == pytest.approx(np.mean(values)), key
        truth, pred = np.concatenate(truths), np.concatenate(preds)
        assert row["iou"] == pytest.approx(jaccard_score(truth, pred, zero_division=1.0))
    table = format_comparison(rows)
    assert table.splitlines()[0] == "| Measure | n1 | n5 |"
    assert any(line.startswith("| false_white |") for line in table.splitlines())
    png = save_compared_curves(runs, tmp_path / "curves.png")
    assert png.stat().st_size > 1000


def test_runs_with_different_splits_are_refused(two_runs):
    data, runs = two_runs
    (runs[1] / "split.json").write_text(json.dumps({"train": ["a/t0"], "test": ["b/t0"]}))
    with pytest.raises(LapsegInputError, match="splits differ"):
        compare_runs(runs, data)
    (runs[0] / "history.csv").unlink()
    with pytest.raises(LapsegInputError, match=r"no history\.csv"):
        save_compared_curves(runs, data / "x.png")


def test_a_short_movie_for_a_median_background_model_is_flagged(
    trained, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Training records the fewest frames its medians came from; prediction on a movie with
    fewer than half as many says so (and a long enough movie says nothing)."""
    data, _ = trained
    from lapseg.data.setup import resolve_run_config

    resolved, _, _ = resolve_run_config(
        load_config(None, [*TINY, "temporal.background=median"]), data
    )
    assert resolved.temporal.median_frames == 5  # sequences of 6 and 5 frames
    run = fake_run(tmp_path / "run", ["temporal.background=median", "temporal.median_frames=12"])
    loaded = load_model(run)
    (short,) = [s for s in discover_sequences(data, layout="sequences") if s.n_frames == 5]
    with caplog.at_level("WARNING", logger="lapseg"):
        SequencePredictor([loaded], short)
    assert "comes from only 5 frame(s)" in caplog.text and "at least 12" in caplog.text
    caplog.clear()
    long_enough = fake_run(
        tmp_path / "run2", ["temporal.background=median", "temporal.median_frames=10"]
    )
    with caplog.at_level("WARNING", logger="lapseg"):
        SequencePredictor([load_model(long_enough)], short)
    assert "comes from only" not in caplog.text
