from __future__ import annotations

import csv
import itertools
import json
from pathlib import Path

import pytest

from lapseg.config import load_config
from lapseg.errors import LapsegInputError
from lapseg.training import cv as cv_module
from lapseg.training import trainer as trainer_module
from lapseg.training.cv import (
    best_validation_loss,
    format_cv_markdown,
    groups_from_pattern,
    make_folds,
    make_timelapse_folds,
    plan_folds,
    run_cross_validation,
    summarize_folds,
)
from lapseg.training.folds import holdout_as_validation

NAMES = [f"img{i}" for i in range(11)]

TINY = [
    "model.base_features=4",
    "model.depth=2",
    "train.epochs=2",
    "train.patch_size=[32, 32]",
    "train.patches_per_epoch=4",
    "train.batch_size=4",
    "train.tensorboard=false",
    "train.monitor=val_loss",
    "predict.tile_size=[96, 96]",
    "data.val_fraction=0.25",
]


def _check_partition(folds: list[dict[str, list[str]]], names: list[str]) -> None:
    tests = [n for f in folds for n in f["test"]]
    assert sorted(tests) == sorted(names)  # the test parts partition the samples
    for fold in folds:
        everything = fold["train"] + fold["val"] + fold["test"]
        assert sorted(everything) == sorted(names)  # disjoint and covering
        assert fold["train"] and fold["val"]


def test_folds_disjoint_covering_deterministic():
    folds = make_folds(NAMES, 4, seed=3, val_fraction=0.2)
    _check_partition(folds, NAMES)
    assert sorted(len(f["test"]) for f in folds) == [2, 3, 3, 3]
    assert all(len(f["val"]) == 2 for f in folds)  # round(0.2 * 8 or 9) = 2
    assert make_folds(list(reversed(NAMES)), 4, seed=3, val_fraction=0.2) == folds
    assert make_folds(NAMES, 4, seed=4, val_fraction=0.2) != folds


def test_validation_has_at_least_one_sample_or_none():
    folds = make_folds(NAMES[:4], 2, seed=0, val_fraction=0.01)
    assert all(len(f["val"]) == 1 for f in folds)
    folds = make_folds(NAMES[:4], 2, seed=0, val_fraction=0.0)
    assert all(f["val"] == [] for f in folds)


def test_grouped_folds_keep_sequences_together():
    groups = {n: f"seq{int(n[3:]) // 3}" for n in NAMES}  # 4 sequences of 3, 3, 3, 2 frames
    folds = make_folds(NAMES, 2, groups=groups, seed=1, val_fraction=0.3)
    _check_partition(folds, NAMES)
    for fold in folds:
        owners = {key: {groups[n] for n in fold[key]} for key in ("train", "val", "test")}
        assert not owners["train"] & owners["val"]
        assert not owners["train"] & owners["test"]
        assert not owners["val"] & owners["test"]
    assert make_folds(NAMES, 2, groups=groups, seed=1, val_fraction=0.3) == folds


def test_groups_from_pattern():
    names = ["seqA_t1", "seqA_t2", "seqB_t1"]
    assert groups_from_pattern(names, r"^(.*)_t\d+$") == {
        "seqA_t1": "seqA",
        "seqA_t2": "seqA",
        "seqB_t1": "seqB",
    }
    with pytest.raises(LapsegInputError, match="does not match"):
        groups_from_pattern([*names, "other"], r"^(.*)_t\d+$")
    with pytest.raises(LapsegInputError, match="capture group"):
        groups_from_pattern(names, r"seq")
    with pytest.raises(LapsegInputError, match="not a valid regex"):
        groups_from_pattern(names, r"(")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_folds": 1}, "integer >= 2"),
        ({"n_folds": 12}, "cannot make 12 folds from 11 samples"),
        ({"n_folds": 2, "groups": {"img0": "a"}}, "no group given"),
        ({"n_folds": 3, "groups": dict.fromkeys(NAMES, "a")}, "from 1 groups"),
        ({"n_folds": 2, "val_fraction": 1.0}, r"\[0, 1\)"),
    ],
)
def test_bad_fold_requests(kwargs, message):
    with pytest.raises(LapsegInputError, match=message):
        make_folds(NAMES, **kwargs)
    with pytest.raises(LapsegInputError, match="unique"):
        make_folds(["a", "a", "b"], 2)


def test_best_validation_loss_and_summary():
    history = [
        {"epoch": 1, "val_loss": 0.5},
        {"epoch": 2, "train_loss": 0.3},
        {"epoch": 3, "val_loss": 0.25},
        {"epoch": 4, "val_loss": 0.4},
    ]
    assert best_validation_loss(history) == (0.25, 3)
    assert best_validation_loss([{"epoch": 1}])[1] == -1
    rows = [
        {"fold": 0, "best_val_loss": 0.2, "best_val_loss_epoch": 3, "best_epoch": 3,
         "test_recall": 0.5, "test_precision": 0.6, "test_dice": 0.7, "test_iou": 0.5},
        {"fold": 1, "best_val_loss": 0.4, "best_val_loss_epoch": 5, "best_epoch": 4,
         "test_recall": 0.7, "test_precision": 0.8, "test_dice": 0.9, "test_iou": 0.7},
    ]  # fmt: skip
    mean, std = summarize_folds(rows)
    assert mean["test_dice"] == pytest.approx(0.8)
    assert std["test_dice"] == pytest.approx(0.1414213562)  # sample std of 0.7, 0.9
    assert "best_epoch" not in mean
    table = format_cv_markdown(rows, mean, std)
    assert "| Avg. Dice score (test) | 0.7000 | 0.9000 | 0.8000 | 0.1414 |" in table


@pytest.mark.slow
def test_cross_validation_runs_and_resumes(tiny_dataset: Path, tmp_path: Path, monkeypatch):
    config = load_config(None, TINY)
    out = tmp_path / "cv"
    real_epoch = trainer_module.train_one_epoch
    epochs = {"n": 0}

    def interrupt_in_fold1(*args, **kwargs):
        epochs["n"] += 1
        if epochs["n"] == 4:  # fold 0 ran epochs 1-2, fold 1 finished its first epoch
            raise KeyboardInterrupt
        return real_epoch(*args, **kwargs)

    monkeypatch.setattr(trainer_module, "train_one_epoch", interrupt_in_fold1)
    with pytest.raises(KeyboardInterrupt):
        run_cross_validation(config, tiny_dataset, out, n_folds=3, progress=False)
    monkeypatch.setattr(trainer_module, "train_one_epoch", real_epoch)
    assert (out / "fold0" / "test_metrics.json").is_file()
    assert not (out / "fold1" / "run.json").exists()
    fold0_mtime = (out / "fold0" / "best.pt").stat().st_mtime_ns

    real_fit = trainer_module.fit
    calls: list[tuple[str, bool]] = []

    def counting_fit(config, data_root, run_dir, **kwargs):
        calls.append((Path(run_dir).name, kwargs.get("resume", False)))
        return real_fit(config, data_root, run_dir, **kwargs)

    monkeypatch.setattr(trainer_module, "fit", counting_fit)
    result = run_cross_validation(config, tiny_dataset, out, n_folds=3, progress=False)
    # fold 0 is not trained again, fold 1 resumes from its last.pt, fold 2 starts fresh
    assert calls == [("fold1", True), ("fold2", False)]
    assert (out / "fold0" / "best.pt").stat().st_mtime_ns == fold0_mtime
    assert len(result.folds) == 3

    folds = json.loads((out / "folds.json").read_text())["folds"]
    _check_partition(folds, [f"img{i}" for i in range(6)])
    for k, fold in enumerate(folds):
        split = json.loads((out / "splits" / f"fold{k}.json").read_text())
        assert split == fold
        stored = json.loads((out / f"fold{k}" / "split.json").read_text())
        assert stored["train"] == fold["train"] and stored["val"] == fold["val"]
        per_image = result.folds[k].per_image
        assert [r["name"] for r in per_image] == fold["test"]
        assert all(0.0 <= r["dice"] <= 1.0 for r in per_image)
    with (out / "cv_summary.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["fold"] for r in rows] == ["0", "1", "2", "mean", "std"]
    dice = [float(r["test_dice"]) for r in rows[:3]]
    assert float(rows[3]["test_dice"]) == pytest.approx(sum(dice) / 3, abs=1e-4)
    assert (out / "cv_summary.md").read_text().count("Fold") == 3
    assert (out / "cv_boxplot.png").stat().st_size > 0

    # a finished CV reruns without training; other folds in the same folder are refused
    calls.clear()
    run_cross_validation(config, tiny_dataset, out, n_folds=3, progress=False)
    assert calls == []
    with pytest.raises(LapsegInputError, match="other folds"):
        run_cross_validation(config, tiny_dataset, out, n_folds=2, progress=False)


def test_test_metrics_are_seed_004s():
    assert cv_module.TEST_METRICS[:3] == ("recall", "precision", "dice")


# --------------------------------------------------------------------------- time-lapse folds


def _movie(name: str, frames: range) -> list[tuple[int, str]]:
    return [(t, f"{name}/t{t:03d}") for t in frames]


def _check_timelapse_folds(
    folds: list[dict[str, list[str]]], frames: dict[str, list[tuple[int, str]]], gap: int
) -> None:
    """Disjoint subsets, every annotated frame tested once, and within each sequence any two
    frames of different subsets at least ``gap`` frames apart."""
    where = {name: (seq, t) for seq, entries in frames.items() for t, name in entries}
    _check_partition_of(folds, list(where))
    for fold in folds:
        assert fold["train"]
        owner = sorted((*where[n], key) for key in ("train", "val", "test") for n in fold[key])
        for (s0, t0, k0), (s1, t1, k1) in itertools.pairwise(owner):
            if s0 == s1 and k0 != k1:
                assert t1 - t0 - 1 >= gap, (t0, k0, t1, k1)


def _check_partition_of(folds: list[dict[str, list[str]]], names: list[str]) -> None:
    assert sorted(n for f in folds for n in f["test"]) == sorted(names)
    for fold in folds:
        used = fold["train"] + fold["val"] + fold["test"]
        assert len(used) == len(set(used))  # disjoint
        assert set(used) <= set(names)


@pytest.mark.parametrize("n_folds", [2, 3, 5])
@pytest.mark.parametrize("every", [1, 3])
def test_time_block_folds_of_one_movie(n_folds, every):
    frames = {"movie": _movie("movie", range(0, 30, every))}
    folds = make_timelapse_folds(frames, n_folds, mode="time_blocks", gap=2, val_fraction=0.2)
    _check_timelapse_folds(folds, frames, gap=2)
    for fold in folds:
        tested = sorted(int(n[-3:]) for n in fold["test"])
        assert tested == list(range(tested[0], tested[-1] + 1, every))  # one contiguous block
        assert fold["val"]
    assert make_timelapse_folds(frames, n_folds, mode="time_blocks", gap=2) == folds


def test_sequence_folds_and_their_fallbacks():
    frames = {f"s{i}": _movie(f"s{i}", range(8)) for i in range(3)}
    by_sequence = make_timelapse_folds(frames, 3, mode="sequence", gap=2, seed=1)
    _check_timelapse_folds(by_sequence, frames, gap=2)
    for fold in by_sequence:  # whole sequences: one tests, one validates, one trains
        assert [len({n.split("/")[0] for n in fold[k]}) for k in ("train", "val", "test")] == [
            1,
            1,
            1,
        ]
    # 2 folds: a fold may keep one sequence for itself: its validation is a time block of it
    two = make_timelapse_folds(frames, 2, mode="sequence", gap=2, seed=0, val_fraction=0.3)
    _check_timelapse_folds(two, frames, gap=2)
    assert all(fold["val"] for fold in two)
    # more folds than sequences: time blocks of every sequence
    five = make_timelapse_folds(frames, 5, mode="time_blocks", gap=1, val_fraction=0.2)
    _check_timelapse_folds(five, frames, gap=1)
    assert all({n.split("/")[0] for n in fold["test"]} == set(frames) for fold in five[:3])


def test_bad_time_block_requests():
    frames = {"movie": _movie("movie", range(6))}
    with pytest.raises(LapsegInputError, match="longest sequence has 6"):
        make_timelapse_folds(frames, 7, mode="time_blocks", gap=0)
    with pytest.raises(LapsegInputError, match="no frame for training"):
        make_timelapse_folds(frames, 2, mode="time_blocks", gap=5)
    with pytest.raises(LapsegInputError, match="not one of"):
        make_timelapse_folds(frames, 2, mode="random", gap=0)


def test_holdout_as_validation_is_seed_004s_protocol():
    folds = holdout_as_validation(make_folds(NAMES, 5, seed=0, val_fraction=0.0))
    assert sorted(n for f in folds for n in f["val"]) == sorted(NAMES)
    assert all(f["test"] == [] and sorted(f["train"] + f["val"]) == sorted(NAMES) for f in folds)
    with pytest.raises(ValueError, match="val_fraction=0"):
        holdout_as_validation(make_folds(NAMES, 5, seed=0, val_fraction=0.2))


@pytest.fixture
def movies(tmp_path: Path) -> dict[str, Path]:
    """One 30-frame movie and three 8-frame movies of 48x48 synthetic cells."""
    from lapseg.data.synthetic_timelapse import TimelapseConfig, write_synthetic_timelapse

    small = {"shape": (48, 48), "radius": (4.0, 6.0), "dtype": "float32"}
    one = tmp_path / "one"
    write_synthetic_timelapse(
        one, n_sequences=1, config=TimelapseConfig(n_frames=30, **small), rng=0
    )
    three = tmp_path / "three"
    write_synthetic_timelapse(
        three, n_sequences=3, config=TimelapseConfig(n_frames=8, **small), rng=1
    )
    return {"one": one, "three": three}


@pytest.mark.parametrize(
    ("which", "n_folds", "mode"),
    [("one", 3, "time_blocks"), ("three", 3, "sequence"), ("three", 4, "time_blocks")],
)
def test_plan_folds_of_timelapse_data_is_leak_free(movies, which, n_folds, mode):
    from lapseg.data.sources import discover_dataset
    from lapseg.data.timelapse import check_split_leak_free

    config = load_config(None, ["data.layout=sequences", "temporal.gap=1", "temporal.context=1"])
    plan = plan_folds(config, movies[which], n_folds)
    assert plan.record["split_by"] == mode and plan.record["gap"] == 1
    _, sources = discover_dataset(config, movies[which])
    names = [s.sample_name(t) for s in sources.sequences for t in s.annotated]
    _check_partition_of(plan.folds, names)
    for fold in plan.folds:
        check_split_leak_free(fold, sources.sequences, gap=1)
    external = plan_folds(config, movies[which], n_folds, external_test=True)
    assert all(f["test"] == [] and f["val"] for f in external.folds)
    with pytest.raises(LapsegInputError, match=r"temporal.gap=0 must be >= temporal.context=1"):
        plan_folds(config.replace(temporal=config.temporal.replace(gap=0)), movies[which], 3)
    with pytest.raises(LapsegInputError, match="--group-pattern is for still images"):
        plan_folds(config, movies[which], n_folds, groups={})


TIMELAPSE_TINY = [
    *(o for o in TINY if not o.startswith(("train.patch_size", "predict.tile", "data.val"))),
    "train.patch_size=[48, 48]",
    "predict.tile_size=[48, 48]",
    "data.layout=sequences",
    "temporal.context=1",
    "temporal.gap=2",
]


@pytest.mark.slow
def test_timelapse_cross_validation_runs_and_resumes(movies, tmp_path: Path, monkeypatch):
    config = load_config(None, TIMELAPSE_TINY)
    out = tmp_path / "cv"
    real_epoch = trainer_module.train_one_epoch
    epochs = {"n": 0}

    def interrupt_in_fold1(*args, **kwargs):
        epochs["n"] += 1
        if epochs["n"] == 4:
            raise KeyboardInterrupt
        return real_epoch(*args, **kwargs)

    monkeypatch.setattr(trainer_module, "train_one_epoch", interrupt_in_fold1)
    with pytest.raises(KeyboardInterrupt):
        run_cross_validation(config, movies["one"], out, n_folds=3, progress=False)
    monkeypatch.setattr(trainer_module, "train_one_epoch", real_epoch)
    real_fit = trainer_module.fit
    calls: list[tuple[str, bool]] = []

    def counting_fit(config, data_root, run_dir, **kwargs):
        calls.append((Path(run_dir).name, kwargs.get("resume", False)))
        return real_fit(config, data_root, run_dir, **kwargs)

    monkeypatch.setattr(trainer_module, "fit", counting_fit)
    result = run_cross_validation(config, movies["one"], out, n_folds=3, progress=False)
    assert calls == [("fold1", True), ("fold2", False)]

    record = json.loads((out / "folds.json").read_text())
    assert record["split_by"] == "time_blocks"
    frames = {"seq00": [(int(n[-3:]), n) for f in record["folds"] for n in f["test"]]}
    _check_timelapse_folds(record["folds"], frames, gap=2)
    for k, fold in enumerate(result.folds):
        assert [r["name"] for r in fold.per_image] == record["folds"][k]["test"]
        assert all(0.0 <= r["dice"] <= 1.0 for r in fold.per_image)
        overlays = sorted(p.name for p in (fold.run_dir / "test_overlays").iterdir())
        assert overlays == sorted(r["name"].replace("/", "_") + ".png" for r in fold.per_image)
    assert (out / "cv_summary.md").read_text().count("Fold") == 3


@pytest.mark.slow
def test_cv_with_external_test_set_writes_seed_004_tables(tmp_path: Path, capsys):
    from conftest import write_pairs
    from lapseg.cli import main

    train, test = (
        write_pairs(tmp_path / "train", 5, seed=0),
        write_pairs(tmp_path / "test", 2, seed=1),
    )
    sets = [x for item in TINY for x in ("--set", item)]
    out = tmp_path / "cv"
    args = ["cv", "--data", str(train), "--test-data", str(test), "--folds", "5", "--out", str(out)]
    assert main([*args, "--no-progress", *sets]) == 0
    assert "external test images" in capsys.readouterr().out
    record = json.loads((out / "folds.json").read_text())
    assert record["external_test"] == ["img0", "img1"]
    assert sorted(n for f in record["folds"] for n in f["val"]) == [f"img{i}" for i in range(5)]
    with (out / "cv_summary.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["fold"] for r in rows] == ["0", "1", "2", "3", "4", "mean", "std"]
    for k, row in enumerate(rows[:5]):  # Tables 5.1-5.4: loss and its epoch, test measures
        assert row["n_val"] == "1" and row["n_test"] == "2"
        assert float(row["best_val_loss"]) > 0 and row["best_val_loss_epoch"] in ("1", "2")
        assert all(0 <= float(row[f"test_{m}"]) <= 1 for m in ("recall", "precision", "dice"))
        per_image = json.loads((out / f"fold{k}" / "test_metrics.json").read_text())["per_image"]
        assert [r["name"] for r in per_image] == ["img0", "img1"]
        assert len(list((out / f"fold{k}" / "test_overlays").glob("*.png"))) == 2
        split = json.loads((out / f"fold{k}" / "split.json").read_text())
        assert split["test"] == [] and split["val"] == record["folds"][k]["val"]
