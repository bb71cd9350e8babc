"""The demo: synthetic cells -> train the default U-Net -> predict held-out images -> evaluate.

Everything lands in one folder::

    OUT/data/train/{images,masks}   synthetic training images (training + validation split)
    OUT/data/test/{images,masks}    held-out synthetic images
    OUT/run/                        the run folder (config, checkpoints, history, curves)
    OUT/predictions/                masks/ and probabilities/ of the held-out images
    OUT/evaluation/                 per_image.csv, summary.json, boxplots.png
    OUT/overlays/                   ground truth (yellow) and prediction (red) contours
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from lapseg.config import load_config
from lapseg.data.synthetic import SyntheticConfig, write_synthetic_dataset
from lapseg.errors import LapsegInputError
from lapseg.inference.predict import load_model, predict_files
from lapseg.io.discovery import discover_images
from lapseg.io.images import read_image, read_mask
from lapseg.metrics.evaluate import evaluate_folders, format_metrics_table
from lapseg.metrics.evaluate_instances import evaluate_instance_folders, format_instance_table
from lapseg.report.plots import save_evaluation_boxplots, save_overlay
from lapseg.training.trainer import fit

DEMO_OVERRIDES = [
    "train.patch_size=[128, 128]",
    "train.patches_per_epoch=64",
    "train.batch_size=8",
    "train.lr=0.002",
    "predict.tile_size=[256, 256]",
]
"""The demo's settings on top of the defaults: small patches so that 2 CPU cores see many."""

N_TRAIN_IMAGES = 32
N_TEST_IMAGES = 8


def run_demo(
    out: str | Path,
    *,
    minutes: float = 3.0,
    device: str = "auto",
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> dict[str, float]:
    """Run the whole demo in ``out`` (refuses a non-empty folder) and return pooled metrics.

    ``log`` receives the step messages and the metrics table (the CLI passes ``print``).
    """
    log = log or (lambda _message: None)
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise LapsegInputError(
            "demo folder exists and is not empty; remove it or pass --out", path=out
        )
    synthetic = SyntheticConfig()
    log(
        f"[1/4] generating {N_TRAIN_IMAGES} training and {N_TEST_IMAGES} test images in {out / 'data'}"
    )
    write_synthetic_dataset(
        out / "data" / "train", n_images=N_TRAIN_IMAGES, config=synthetic, rng=1
    )
    write_synthetic_dataset(out / "data" / "test", n_images=N_TEST_IMAGES, config=synthetic, rng=2)

    log(f"[2/4] training the default U-Net for up to {minutes:g} min")
    config = load_config(
        None, [*DEMO_OVERRIDES, f"train.time_budget_minutes={minutes}", f"train.device={device}"]
    )
    result = fit(config, out / "data" / "train", out / "run", progress=progress)
    log(
        f"      best epoch {result.best_epoch} ({result.monitor} {result.best_metric:.3f}), "
        f"stopped by {result.stopped_because}"
    )

    log("[3/4] predicting the held-out images")
    model = load_model(result.run_dir, device=device)
    inputs = discover_images(out / "data" / "test" / "images")
    predict_files([model], inputs, out / "predictions")

    log("[4/4] evaluating")
    evaluation = evaluate_folders(
        out / "predictions", out / "data" / "test" / "masks", out_dir=out / "evaluation"
    )
    save_evaluation_boxplots(evaluation, out / "evaluation")
    log(format_metrics_table(evaluation))
    if (out / "predictions" / "labels").is_dir():  # an instance model: cells as label images
        instances = evaluate_instance_folders(
            out / "predictions", out / "data" / "test" / "masks", out_dir=out / "evaluation"
        )
        log(format_instance_table(instances))
    for path in inputs[:4]:
        image = read_image(path).array[0].astype(np.float32)
        truth = read_mask(out / "data" / "test" / "masks" / path.name) > 0
        pred = read_mask(out / "predictions" / "masks" / f"{path.stem}.tif") > 0
        save_overlay(image, truth, pred, out / "overlays" / f"{path.stem}.png")
    log(f"done: run folder {out / 'run'}, overlays in {out / 'overlays'}")
    return evaluation.pooled
