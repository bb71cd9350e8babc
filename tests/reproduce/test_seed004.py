"""Seed 004 (cryo-SEM U-Net): its configurations hold the thesis' numbers, and `lapseg reproduce
004` writes Tables 5.1-5.5 and Figs. 5.3-5.5 (a smoke run on tiny synthetic data)."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lapseg.config import LapsegConfig, load_config
from lapseg.reproduce import configs_folder
from lapseg.reproduce.seed004 import (
    EXPERIMENTS,
    SEED_AVERAGES,
    SEED_TABLES,
    _experiment_config,
    reproduce,
)
from lapseg.tuning.search import load_search_file

CONFIGS = configs_folder()

# (thesis section, what it says, the configuration value, the thesis' number)
TRAINING: list[tuple[str, str, Callable[[LapsegConfig], Any], Any]] = [
    ("5.1", "images resized to 512x512", lambda c: c.data.resize, (512, 512)),
    ("5.1", "Dice loss", lambda c: c.loss.name, "dice"),
    ("5.1", "AdamW", lambda c: c.train.optimizer, "adamw"),
    ("5.1", "a learning-rate scheduler (a step)", lambda c: c.train.schedule, "piecewise"),
    ("5.1", "Xavier initialisation", lambda c: c.model.init, "xavier"),
    ("5.1", "binary masks, one sigmoid output", lambda c: c.data.task, "binary"),
    ("5.1", "threshold 0.5", lambda c: c.predict.threshold, 0.5),
    ("5.1", "folds of 80/20", lambda c: c.data.val_fraction, 0.2),
    ("5.1", "the lowest validation Dice loss is kept", lambda c: c.train.monitor, "val_loss"),
    ("Fig. 5.2", "batch normalisation", lambda c: c.model.norm, "batch"),
    ("Fig. 5.2", "transposed convolutions", lambda c: c.model.upsampling, "transpose"),
    (
        "Fig. 5.2",
        "skip connections (Table 5.3 removes them)",
        lambda c: c.model.skip_connections,
        True,
    ),
    ("Fig. 5.2", "input 256x256: the half-size crop", lambda c: c.train.patch_size, (256, 256)),
    ("5.2", "Tab. 5.1 settings: batch size 20", lambda c: c.train.batch_size, 20),
    ("5.2", "Tab. 5.1 settings: 30 epochs", lambda c: c.train.epochs, 30),
    ("5.2", "Tab. 5.1 settings: initial learning rate 1e-3", lambda c: c.train.lr, 1e-3),
    ("5.2", "Tab. 5.1 settings: learning-rate decay 0.1", lambda c: c.train.gamma, 0.1),
    ("5.2", "Tab. 5.1 settings: AdamW weight decay 1e-8", lambda c: c.train.weight_decay, 1e-8),
    ("5.2", "augmentation: one crop (the patch)", lambda c: c.augment.crop.probability, 0.0),
    ("5.2", "augmentation: random flips", lambda c: c.augment.flip.probability > 0, True),
    ("5.2", "augmentation: 90-degree rotations", lambda c: c.augment.rot90.probability > 0, True),
    ("5.2", "10 augmented images per training image", lambda c: c.train.patches_per_epoch, 800),
    ("5.2", "crops placed at random", lambda c: c.train.foreground_probability, 0.0),
]


@pytest.mark.parametrize("name", ["cryo-sem", "cryo-sem-cv"])
@pytest.mark.parametrize(("section", "what", "value", "expected"), TRAINING)
def test_cryo_sem_configs_hold_the_thesis_numbers(name, section, what, value, expected):
    config = load_config(CONFIGS / f"{name}.yaml")
    assert value(config) == pytest.approx(expected), f"section {section}: {what}"


def test_learning_rate_step_follows_the_epoch_count():
    """Section 5.2 names no step for the decay: after 2/3 of the epochs, 20 of 30."""
    from lapseg.training.schedules import lr_factor

    config = load_config(CONFIGS / "cryo-sem-cv.yaml")
    assert [lr_factor(e, config.train) for e in (19, 20)] == pytest.approx([1.0, 0.1])
    longer = load_config(CONFIGS / "cryo-sem-cv.yaml", ["train.epochs=120"])
    assert [lr_factor(e, longer.train) for e in (79, 80)] == pytest.approx([1.0, 0.1])


SEARCH: list[tuple[str, str, str, Any]] = [
    ("5.2", "batch size 8-16", "train.batch_size", (8, 16, False)),
    ("5.2", "number of epochs 60-140", "train.epochs", (60, 140, False)),
    ("5.2", "initial learning rate 1e-4..1e-2", "train.lr", (1e-4, 1e-2, True)),
    ("5.2", "learning-rate decay 0.1-1", "train.gamma", (0.1, 1.0, False)),
    ("5.2", "AdamW weight decay 1e-9..1e-5", "train.weight_decay", (1e-9, 1e-5, True)),
]


@pytest.mark.parametrize(("section", "what", "key", "expected"), SEARCH)
def test_search_space_is_the_thesis_space(section, what, key, expected):
    params, _, _ = load_search_file(CONFIGS / "search-cryo-sem.yaml")
    param = next(p for p in params if p.key == key)
    assert (param.low, param.high, param.log) == pytest.approx(expected), f"{section}: {what}"
    assert len(params) == len(SEARCH)  # only the five searched hyperparameters


def test_search_options_are_the_thesis_protocol():
    _, options, trials = load_search_file(CONFIGS / "search-cryo-sem.yaml")
    assert trials == 30  # 5.2: "executed ... with 30 iterations"
    assert options.sampler == "gp"  # 5.2: Bayesian optimisation (bayes_opt, a Gaussian process)
    assert options.metric == "val_dice" and options.direction == "maximize"  # 5.2: max val Dice
    assert (options.fold, options.folds) == (3, 5)  # 5.2: the split of model 4 (0-based fold 3)
    assert options.pruner == "none"  # every iteration trains to its end


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ("5.1", {"augment": "none", "patches_per_epoch": "pass", "patch": (512, 512)}),
        ("5.2", {"augment": "cryo-sem-004", "patches_per_epoch": 800, "batch": 20}),
        ("5.3", {"skip": False, "batch": 20, "epochs": 30}),
        ("5.4", {"batch": 16, "epochs": 140, "lr": 1e-2, "gamma": 1.0, "wd": 1e-8}),
    ],
)
def test_each_table_runs_the_thesis_settings(table, expected):
    """Section 5.2: Tab. 5.1 without augmentation, 5.2 with it, 5.3 without skip connections
    (same hyperparameters), 5.4 with the searched ones (batch 16, 140 epochs, lr 1e-2, decay 1)."""
    experiment = next(e for e in EXPERIMENTS if e.table == table)
    config = _experiment_config(experiment, 100, (), ())
    values = {
        "augment": config.augment.preset,
        "patches_per_epoch": config.train.patches_per_epoch,
        "patch": config.train.patch_size,
        "batch": config.train.batch_size,
        "epochs": config.train.epochs,
        "skip": config.model.skip_connections,
        "lr": config.train.lr,
        "gamma": config.train.gamma,
        "wd": config.train.weight_decay,
    }
    assert {k: values[k] for k in expected} == expected  # the numbers are exact in YAML


def test_transcribed_tables_match_their_printed_averages():
    for table, rows in SEED_TABLES.items():
        for key, average in SEED_AVERAGES[table].items():
            assert np.mean(rows[key]) == pytest.approx(average, abs=1.5e-3), (table, key)


TINY = [
    "model.base_features=4",
    "model.depth=2",
    "data.resize=[96, 96]",
    "train.patch_size=[48, 48]",
    "train.epochs=1",
    "train.batch_size=4",
    "train.tensorboard=false",
    "predict.tile_size=[96, 96]",
]


@pytest.mark.slow
def test_reproduce_004_writes_every_table_and_figure(tmp_path: Path):
    from conftest import write_pairs
    from lapseg.reproduce import reproduce as reproduce_seed

    write_pairs(tmp_path / "data" / "train", 5, seed=0)
    write_pairs(tmp_path / "data" / "test", 2, seed=1)
    out = tmp_path / "out"
    written = reproduce_seed("004", tmp_path / "data", out, progress=False, overrides=TINY)
    names = {p.relative_to(out).as_posix() for p in written}
    assert {"tables.md", "tables.csv", "table5_5.md", "fig5_3_boxplots.png"} <= names
    assert {"fig5_4_learning_curves.png", "fig5_5_overlays/img0.png"} <= names
    assert all(p.stat().st_size > 0 for p in written)
    tables = (out / "tables.md").read_text()
    for table in ("5.1", "5.2", "5.3", "5.4"):
        assert f"### Table {table}" in tables
        assert (out / f"table{table.replace('.', '_')}" / "cv_summary.csv").is_file()
    assert "| Avg. Dice score |" in tables and "(0.797)" in tables  # Table 5.4's thesis average
    with (out / "tables.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 4 * 5 * 5  # 4 tables x 5 models x 5 rows
    assert "Final model" in (out / "table5_5.md").read_text()
    # Table 5.1 trains on whole resized images, one pass per epoch
    assert "patches_per_epoch: pass" in (out / "table5_1" / "config.yaml").read_text()
    # a second call resumes: nothing is trained again, the same files are written
    again = reproduce(tmp_path / "data", out, minutes=None, progress=False, overrides=TINY)
    assert {p.relative_to(out).as_posix() for p in again} == names


def test_reproduce_004_needs_train_and_test_folders(tmp_path: Path):
    from lapseg.errors import LapsegInputError

    (tmp_path / "data" / "train").mkdir(parents=True)
    with pytest.raises(LapsegInputError, match="DATA/test"):
        reproduce(tmp_path / "data", tmp_path / "out", minutes=None, progress=False)
