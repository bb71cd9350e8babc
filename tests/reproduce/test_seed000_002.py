"""Smoke runs of ``lapseg reproduce 000`` and ``002`` on tiny synthetic data (about 5 s each):
every table and figure the seed reports is written (tiny models, one epoch: the numbers mean
nothing here)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from lapseg.cli import main
from lapseg.data.synthetic import SyntheticConfig, write_synthetic_dataset
from lapseg.data.synthetic_timelapse import TimelapseConfig, write_synthetic_timelapse

TINY = [
    "model.depth=2",
    "model.base_features=4",
    "train.epochs=1",
    "train.tensorboard=false",
    "train.device=cpu",
    "data.val_fraction=0.5",
]


def _run(seed: str, data: Path, out: Path, extra: list[str], capsys: pytest.CaptureFixture[str]):
    sets = [a for item in [*TINY, *extra] for a in ("--set", item)]
    argv = ["reproduce", seed, "--data", str(data), "--out", str(out), "--no-progress", *sets]
    assert main(argv) == 0
    return [
        Path(line.removeprefix("wrote "))
        for line in capsys.readouterr().out.splitlines()
        if line.startswith("wrote ")
    ]


def test_reproduce_000_writes_table_3_and_figures_15_to_23(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    config = TimelapseConfig(shape=(32, 32), n_frames=4, radius=(3.0, 5.0), n_decoys=(1, 2))
    write_synthetic_timelapse(data, n_sequences=2, config=config, rng=0)
    grid = ["data.crop_or_pad=[32, 32]", "train.patch_size=[32, 32]", "predict.tile_size=[32, 32]"]
    written = _run("000", data, tmp_path / "out", grid, capsys)
    out = tmp_path / "out"
    runs = ("network1", "network5", "network5-table2")
    expected = {"comparison.md", "comparison.csv", "curves.png", "examples.png"}
    expected |= {"feature_maps-network1.png", "feature_maps-network5.png"}
    expected |= {f"edge_pixels-{run}.csv" for run in runs}
    assert {p.name for p in written} == expected
    assert all(p.stat().st_size > 0 for p in written)
    table = (out / "comparison.md").read_text()
    assert table.splitlines()[0] == "| Measure | network1 | network5 | network5-table2 |"
    for measure in ("error_rate (%)", "f1", "false_white", "white_pixel_accuracy", "precision"):
        assert f"| {measure} |" in table
    for run in runs:  # Figs 15-21: per-epoch validation curves in every history
        with (out / run / "history.csv").open() as handle:
            header = next(csv.reader(handle))
        assert {"val_error_rate", "val_f1", "val_false_white", "val_white_pixel_accuracy"} <= set(
            header
        )


def test_reproduce_002_writes_the_results_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    config = SyntheticConfig(shape=(32, 32), n_cells=(2, 3), radius=(4.0, 6.0))
    write_synthetic_dataset(data, n_images=4, config=config, rng=1)
    written = _run("002", data, tmp_path / "out", [], capsys)
    out = tmp_path / "out"
    assert {p.name for p in written} == {"results.md", "results.csv", "curves.png", "examples.png"}
    lines = (out / "results.md").read_text().splitlines()
    assert lines[0].startswith("| Tested U-Net models | IoU (with CL) | SEG (with CL) |")
    assert [line.split(" | ")[0] for line in lines[2:]] == [
        "| Vanilla (batch size = 4)",
        "| Trained on tiles",
        "| Batch size = 1",
        "| Batch size = 4",
        "| Batch size = 8",
    ]
    with (out / "results.csv").open() as handle:
        rows = {row["run"]: row for row in csv.DictReader(handle)}
    assert set(rows) == {"full", "full-cl", "tiles", "tiles-cl", "batch1", "batch8"}
    assert all(0.0 <= float(row["iou"]) <= 1.0 for row in rows.values())
    assert len(list((out / "tiles-data" / "images").iterdir())) == 4 * 4  # 4 quadrants each
