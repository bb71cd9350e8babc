from __future__ import annotations

import csv
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
    run_cross_validation,
    summarize_folds,
)

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


def test_cv_refuses_sequence_layouts(tmp_path: Path):
    config = load_config(None, ["data.layout=sequences"])
    with pytest.raises(LapsegInputError, match="still-image layouts"):
        run_cross_validation(config, tmp_path, tmp_path / "out", n_folds=2)
    assert cv_module.TEST_METRICS[:3] == ("recall", "precision", "dice")
