"""Seed 004 (cryo-SEM yeast U-Net): Tables 5.1-5.5 and Figs. 5.3-5.5 in one command.

``DATA`` holds ``train/`` (004's 100 training/validation images) and ``test/`` (its 20 test
images), each in any still-image layout. Every table is the thesis' protocol (section 5.1),
``lapseg cv configs/cryo-sem-cv.yaml --data DATA/train --test-data DATA/test --folds 5``: each
fold trains on four fifths of ``train``, keeps the epoch with the lowest validation Dice loss on
the held-out fifth and is tested on ``test``. The four experiments of section 5.2:

- Table 5.1: no augmentation: whole 512x512 images, one pass over them per epoch;
- Table 5.2: augmentation: random half-size crops, flips, 90-degree rotations, 10 crops per
  training image per epoch (``configs/cryo-sem-cv.yaml`` as it is);
- Table 5.3: as 5.2 with the skip connections removed;
- Table 5.4: as 5.2 with the searched setting (batch 16, 140 epochs, lr 1e-2, no decay).

Written into ``OUT``: ``table5_1/`` .. ``table5_4/`` (the CV folders, resumable: run the same
command again), ``tables.md`` / ``tables.csv`` (each table laid out like the thesis, lapseg's
value beside the thesis' value), ``table5_5.md`` (the final model: model 5 of Table 5.4),
``fig5_3_boxplots.png`` (its per-image test recall, precision, Dice), ``fig5_4_learning_curves.png``
(its training and validation Dice loss) and ``fig5_5_overlays/`` (its test images, truth contour
yellow, prediction red). The hyperparameter search that chose Table 5.4's setting is a separate
command (``configs/search-cryo-sem.yaml``, about 30 trainings).
"""

from __future__ import annotations

import json
import logging
import math
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lapseg.config import LapsegConfig
from lapseg.errors import LapsegInputError
from lapseg.io.files import write_csv, write_json, write_text
from lapseg.models.checkpoint import load_checkpoint
from lapseg.report.plots import save_boxplots, save_learning_curves
from lapseg.reproduce import budget_overrides, seed_config
from lapseg.training.cv import CVResult, run_cross_validation

__all__ = [
    "CONFIG",
    "EXPERIMENTS",
    "N_FOLDS",
    "SEED_AVERAGES",
    "SEED_TABLES",
    "Experiment",
    "reproduce",
    "table_markdown",
]

log = logging.getLogger(__name__)

CONFIG = "cryo-sem-cv"
"""The configuration every table starts from (``configs/cryo-sem-cv.yaml``)."""
N_FOLDS = 5
"""Section 5.1: five folds of the training/validation images (80/20)."""
CROPS_PER_IMAGE = 10
"""Section 5.2: "every image from training and validation dataset produced 10 augmented images"."""
FINAL_FOLD = 4
"""Section 5.2: model 5 of Table 5.4 became the final model (Table 5.5, Figs. 5.3-5.5)."""
ROWS: tuple[tuple[str, str], ...] = (
    ("best_val_loss", "Lowest validation Dice loss"),
    ("best_val_loss_epoch", "Lowest loss epoch"),
    ("test_recall", "Avg. recall"),
    ("test_precision", "Avg. precision"),
    ("test_dice", "Avg. Dice score"),
)
"""Rows of Tables 5.1-5.5 (the thesis calls the first "Training loss": it is the validation
Dice loss of the kept epoch, the lowest of the run) and the summary column holding each."""


@dataclass(frozen=True)
class Experiment:
    """One table: its overrides of ``configs/cryo-sem-cv.yaml`` (section 5.2)."""

    table: str
    title: str
    overrides: tuple[str, ...] = ()
    whole_images: bool = False
    """No augmentation: the patch is the whole resized image, one pass per epoch."""


EXPERIMENTS: tuple[Experiment, ...] = (
    Experiment("5.1", "first experiment (no augmentation)", ("augment.preset=none",), True),
    Experiment("5.2", "augmentation"),
    Experiment("5.3", "skip connections removed", ("model.skip_connections=false",)),
    Experiment(
        "5.4",
        "searched hyperparameters",
        ("train.batch_size=16", "train.epochs=140", "train.lr=0.01", "train.gamma=1.0"),
    ),
)

SEED_TABLES: dict[str, dict[str, tuple[float, ...]]] = {
    "5.1": {
        "best_val_loss": (0.335, 0.527, 0.534, 0.749, 0.376),
        "best_val_loss_epoch": (30, 19, 13, 10, 8),
        "test_recall": (0.612, 0.627, 0.604, 0.441, 0.599),
        "test_precision": (0.612, 0.569, 0.581, 0.663, 0.631),
        "test_dice": (0.586, 0.574, 0.560, 0.484, 0.577),
    },
    "5.2": {
        "best_val_loss": (0.168, 0.156, 0.156, 0.153, 0.171),
        "best_val_loss_epoch": (28, 29, 30, 30, 30),
        "test_recall": (0.692, 0.721, 0.729, 0.747, 0.664),
        "test_precision": (0.762, 0.766, 0.773, 0.760, 0.753),
        "test_dice": (0.713, 0.729, 0.737, 0.742, 0.688),
    },
    "5.3": {
        "best_val_loss": (0.160, 0.165, 0.168, 0.182, 0.166),
        "best_val_loss_epoch": (30, 29, 30, 29, 28),
        "test_recall": (0.733, 0.710, 0.727, 0.684, 0.693),
        "test_precision": (0.766, 0.756, 0.757, 0.719, 0.773),
        "test_dice": (0.735, 0.720, 0.726, 0.682, 0.717),
    },
    "5.4": {
        "best_val_loss": (0.122, 0.118, 0.173, 0.159, 0.114),
        "best_val_loss_epoch": (130, 137, 133, 135, 137),
        "test_recall": (0.801, 0.800, 0.797, 0.762, 0.853),
        "test_precision": (0.758, 0.827, 0.823, 0.868, 0.774),
        "test_dice": (0.763, 0.806, 0.804, 0.805, 0.806),
    },
}
"""The thesis' Tables 5.1-5.4, models 1-5 (Table 5.5 is model 5 of Table 5.4)."""

SEED_AVERAGES: dict[str, dict[str, float]] = {
    "5.1": {
        "best_val_loss": 0.504,
        "test_recall": 0.577,
        "test_precision": 0.611,
        "test_dice": 0.556,
    },
    "5.2": {
        "best_val_loss": 0.161,
        "test_recall": 0.711,
        "test_precision": 0.763,
        "test_dice": 0.722,
    },
    "5.3": {
        "best_val_loss": 0.168,
        "test_recall": 0.709,
        "test_precision": 0.754,
        "test_dice": 0.716,
    },
    "5.4": {
        "best_val_loss": 0.136,
        "test_recall": 0.803,
        "test_precision": 0.810,
        "test_dice": 0.797,
    },
}
"""The thesis' "Model avg." column as printed (from unrounded values: 5.4's loss reads 0.136,
the mean of the printed losses 0.137)."""


# --------------------------------------------------------------------------- the runs


def _folder(out: Path, table: str) -> Path:
    return out / f"table{table.replace('.', '_')}"


def _experiment_config(
    experiment: Experiment, n_images: int, overrides: Sequence[str], budget: Sequence[str]
) -> LapsegConfig:
    """``configs/cryo-sem-cv.yaml`` with the experiment's settings, then the user's overrides
    (a smoke test's small model), then the time budget. Without augmentation the patch is the
    whole resized image whatever the overrides say (that is the experiment)."""
    if experiment.whole_images:
        size = seed_config(CONFIG, overrides).data.resize
        if size is None:
            raise LapsegInputError("Table 5.1 trains on whole resized images: keep data.resize")
        crops: list[str] = []
        whole = [f"train.patch_size=[{size[0]}, {size[1]}]", "train.patches_per_epoch=pass"]
    else:  # 10 half-size crops per training image (4 of 5 folds train)
        n_train = round(n_images * (N_FOLDS - 1) / N_FOLDS)
        crops, whole = [f"train.patches_per_epoch={CROPS_PER_IMAGE * n_train}"], []
    return seed_config(CONFIG, [*experiment.overrides, *crops, *overrides, *whole, *budget])


def _count_images(config: LapsegConfig, root: Path) -> int:
    from lapseg.data.sources import discover_dataset

    _, sources = discover_dataset(config, root)
    if sources.is_timelapse:
        raise LapsegInputError("seed 004 trains on still images, not time-lapse data", path=root)
    return len(sources.samples)


def _open_output(out: Path, record: Mapping[str, Any]) -> None:
    """Create ``out`` for this reproduction, or resume one made with the same settings."""
    stamp = out / "reproduce.json"
    if stamp.is_file():
        if json.loads(stamp.read_text(encoding="utf-8")) != dict(record):
            raise LapsegInputError(
                "this folder holds a seed 004 reproduction with other settings (data, --set or "
                "--minutes): use a new --out",
                path=out,
            )
        return
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise LapsegInputError(
            "output folder exists and is not empty: choose a new --out", path=out
        )
    out.mkdir(parents=True, exist_ok=True)
    write_json(stamp, dict(record))


# --------------------------------------------------------------------------- the tables


def _cell(value: float, key: str) -> str:
    if not math.isfinite(float(value)):
        return "-"
    return str(int(value)) if key == "best_val_loss_epoch" else f"{float(value):.3f}"


def _average(values: Sequence[float], key: str) -> str:
    finite = [float(v) for v in values if math.isfinite(float(v))]
    return "-" if key == "best_val_loss_epoch" or not finite else f"{np.mean(finite):.3f}"


def table_markdown(table: str, title: str, rows: Sequence[Mapping[str, Any]]) -> str:
    """One table laid out like the thesis: models as columns, each cell ``lapseg (thesis)``."""
    seed = SEED_TABLES.get(table, {})
    header = [f"Table {table}", *(f"Model {r['fold'] + 1}" for r in rows), "Model avg."]
    lines = [f"### Table {table}: {title}", "", "| " + " | ".join(header) + " |"]
    lines.append("|" + "---|" * len(header))
    for key, label in ROWS:
        ours = [r[key] for r in rows]
        theirs = seed.get(key, ())
        cells = [
            _cell(v, key) + (f" ({_cell(theirs[i], key)})" if i < len(theirs) else "")
            for i, v in enumerate(ours)
        ]
        average = _average(ours, key)
        if key in SEED_AVERAGES.get(table, {}):
            average += f" ({SEED_AVERAGES[table][key]:.3f})"
        lines.append("| " + " | ".join([label, *cells, average]) + " |")
    return "\n".join(lines) + "\n"


def _long_rows(table: str, rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    seed = SEED_TABLES.get(table, {})
    out = []
    for r in rows:
        for key, label in ROWS:
            theirs = seed.get(key, ())
            fold = int(r["fold"])
            thesis = theirs[fold] if fold < len(theirs) else math.nan
            out.append(
                {
                    "table": table,
                    "row": label,
                    "model": fold + 1,
                    "lapseg": r[key],
                    "thesis": thesis,
                }
            )
    return out


def _final_model(out: Path, result: CVResult) -> list[Path]:
    """Table 5.5 and Figs. 5.3-5.5 of model 5 of Table 5.4."""
    final = next(f for f in result.folds if f.fold == min(FINAL_FOLD, len(result.folds) - 1))
    seed = {key: values[FINAL_FOLD] for key, values in SEED_TABLES["5.4"].items()}
    lines = ["| Table 5.5 | Final model |", "|---|---|"]
    lines += [
        f"| {label} | {_cell(final.row[key], key)} ({_cell(seed[key], key)}) |"
        for key, label in ROWS
    ]
    note = (
        f"\nModel {final.fold + 1} of Table 5.4 (run folder {final.run_dir}); the thesis' value "
        "in brackets.\n"
    )
    written = [write_text(out / "table5_5.md", "\n".join(lines) + "\n" + note)]
    metrics = ["recall", "precision", "dice"]
    written.append(save_boxplots(final.per_image, metrics, out / "fig5_3_boxplots.png"))
    history = load_checkpoint(final.run_dir / "last.pt").get("history", [])
    written.append(
        save_learning_curves(history, out / "fig5_4_learning_curves.png", metric_keys=("val_dice",))
    )
    overlays = out / "fig5_5_overlays"
    if overlays.exists():
        shutil.rmtree(overlays)
    overlays.mkdir()
    for picture in sorted((final.run_dir / "test_overlays").glob("*.png")):
        written.append(Path(shutil.copy2(picture, overlays / picture.name)))
    return written


# --------------------------------------------------------------------------- the command


def reproduce(
    data: Path,
    out: Path,
    *,
    minutes: float | None,
    progress: bool,
    overrides: Sequence[str] = (),
) -> list[Path]:
    """Run Tables 5.1-5.4 (4 x 5 trainings) and write the tables and figures (module docstring).

    Parameters
    ----------
    data : Path
        Holds ``train/`` (training/validation images) and ``test/`` (external test images).
    out : Path
        Output folder; the same call again resumes an interrupted reproduction.
    minutes : float or None
        Wall-clock budget shared by the 20 trainings; None: the thesis' epochs.
    progress : bool
        Show the training progress bars.
    overrides : sequence of str
        ``KEY=VALUE`` applied to every configuration after the experiment's settings.

    Returns
    -------
    list of Path
        The tables and figures written.
    """
    train, test = Path(data) / "train", Path(data) / "test"
    for folder, what in ((train, "training/validation"), (test, "test")):
        if not folder.is_dir():
            raise LapsegInputError(
                f"seed 004 needs DATA/{folder.name} with the {what} images (DATA/train: 004's "
                "100 images, DATA/test: its 20 test images)",
                path=folder,
            )
    n_images = _count_images(seed_config(CONFIG, overrides), train)
    budget = budget_overrides(minutes, len(EXPERIMENTS) * N_FOLDS)
    record = {"seed": "004", "data": str(data), "overrides": list(overrides), "minutes": minutes}
    _open_output(Path(out), record)
    markdown, long_rows, written = [], [], []
    result: CVResult | None = None
    for experiment in EXPERIMENTS:
        log.info("seed 004, Table %s: %s", experiment.table, experiment.title)
        config = _experiment_config(experiment, n_images, overrides, budget)
        result = run_cross_validation(
            config,
            train,
            _folder(Path(out), experiment.table),
            n_folds=N_FOLDS,
            test_data=test,
            progress=progress,
        )
        rows = [f.row for f in result.folds]
        markdown.append(table_markdown(experiment.table, experiment.title, rows))
        long_rows.extend(_long_rows(experiment.table, rows))
    note = (
        "Each cell: lapseg's value (the thesis' value). Every model trains on four fifths of "
        "the training images, keeps the epoch with the lowest validation Dice loss on the "
        "held-out fifth, and is tested on the external test images; recall, precision and Dice "
        "are computed per test image and averaged.\n"
    )
    written.append(write_text(Path(out) / "tables.md", "\n".join([*markdown, note])))
    columns = ["table", "row", "model", "lapseg", "thesis"]
    written.append(write_csv(Path(out) / "tables.csv", long_rows, columns=columns))
    if result is not None:
        written.extend(_final_model(Path(out), result))
    return written
