"""The held-out test split (``data.test_fraction``), evaluated when training ends.

``lapseg train`` calls :func:`evaluate_held_out` after :func:`~lapseg.training.trainer.fit` (the
time budget covers training only). The best model predicts the test images exactly as ``lapseg
predict`` would (original resolution, the stored post-processing), and ``lapseg evaluate`` (plus
``--instances`` for instance models) scores them. The run folder receives::

    test/images/       links to the test images (named by sample)
    test/truth/        links to their masks
    test/predictions/  masks/, probabilities/ (and labels/) as written by lapseg predict
    test/evaluation/   per_image.csv, summary.json (and instances_*.csv/json)

and the run report shows these metrics and overlays. Time-lapse test frames are predicted with
their temporal context (:func:`lapseg.training.cv_evaluate.evaluate_test_images`) and scored
with pixel measures (``test/evaluation/per_frame.csv``, ``summary.json``, ``test/overlays/``);
instance measures of a movie come from ``lapseg predict`` on it and ``lapseg evaluate``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from lapseg.config import LapsegConfig
from lapseg.data.sources import discover_dataset
from lapseg.data.split import read_split
from lapseg.inference.predict import load_model, predict_files
from lapseg.io.discovery import SamplePaths
from lapseg.io.files import write_csv, write_json
from lapseg.metrics.evaluate import evaluate_folders
from lapseg.metrics.evaluate_instances import evaluate_instance_folders
from lapseg.training.cv_evaluate import evaluate_test_images

__all__ = ["HELD_OUT_FOLDER", "evaluate_held_out"]

log = logging.getLogger(__name__)

HELD_OUT_FOLDER = "test"
"""Sub-folder of the run folder holding the held-out evaluation."""


def _link(source: Path, target: Path) -> None:
    """A symbolic link at ``target`` to ``source`` (a copy where links are not allowed)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists() or target.is_symlink():
        target.unlink()
    try:
        os.symlink(source.resolve(), target)
    except OSError:
        shutil.copy2(source, target)


def _stage(samples: list[SamplePaths], folder: Path) -> tuple[Path, Path]:
    """``folder/images`` and ``folder/truth`` holding the samples under their names."""
    images, truth = folder / "images", folder / "truth"
    for sample in samples:
        _link(sample.image, images / f"{sample.name}{sample.image.suffix}")
        if sample.mask is not None:
            _link(sample.mask, truth / f"{sample.name}{sample.mask.suffix}")
    return images, truth


def _held_out_frames(
    run_dir: Path, data_root: str | Path, config: LapsegConfig, names: list[str]
) -> dict[str, Any]:
    """Time-lapse test frames, predicted with their temporal context: pixel measures."""
    folder = run_dir / HELD_OUT_FOLDER
    rows = evaluate_test_images(run_dir, names, data_root, config, overlay_dir=folder / "overlays")
    write_csv(folder / "evaluation" / "per_frame.csv", rows, float_format=".4f")
    summary: dict[str, Any] = {"n_images": len(rows)}
    for key in ("dice", "iou", "recall", "precision"):
        values = [float(r[key]) for r in rows if key in r]
        summary[key] = float(np.mean(values)) if values else math.nan
    write_json(folder / "evaluation" / "summary.json", summary)
    log.info(
        "held-out test frames (%d, with their temporal context): mean dice %.4f, iou %.4f; "
        "instance measures: lapseg predict on the movie, then lapseg evaluate --instances",
        len(rows),
        summary["dice"],
        summary["iou"],
    )
    return summary


def evaluate_held_out(
    run_dir: str | Path, data_root: str | Path, *, device: str = "auto"
) -> dict[str, Any] | None:
    """Predict and score the run's test split; the summary, or None without a test split.

    Parameters
    ----------
    run_dir : str or Path
        A finished run folder (``best.pt``, ``split.json``).
    data_root : str or Path
        The dataset the run trained on.
    device : str
        Where the best model predicts.

    Returns
    -------
    dict or None
        ``n_images``, the pooled foreground Dice / IoU and, for instance models, SEG and AP@0.5.
    """
    run_dir = Path(run_dir)
    test_names = read_split(run_dir / "split.json").get("test", [])
    if not test_names:
        return None
    loaded = load_model(run_dir, device=device)
    config, sources = discover_dataset(loaded.config, data_root)
    if sources.is_timelapse:
        return _held_out_frames(run_dir, data_root, config, test_names)
    by_name = {s.name: s for s in sources.samples}
    samples = [by_name[name] for name in test_names if name in by_name]
    folder = run_dir / HELD_OUT_FOLDER
    images, truth = _stage(samples, folder)
    predictions = folder / "predictions"
    predict_files(
        [loaded],
        [images / f"{s.name}{s.image.suffix}" for s in samples],
        predictions,
        axes=config.data.axes,
    )
    semantic = loaded.config.data.task == "semantic"
    pixels = evaluate_folders(
        predictions,
        truth,
        num_classes=loaded.config.model.outputs if semantic else 2,
        out_dir=folder / "evaluation",
    )
    summary: dict[str, Any] = {
        "n_images": pixels.n_images,
        "dice": pixels.pooled.get("dice", math.nan),
        "iou": pixels.pooled.get("iou", math.nan),
    }
    if loaded.config.data.task == "instances":
        instances = evaluate_instance_folders(predictions, truth, out_dir=folder / "evaluation")
        at_half = next(r for r in instances.matching if math.isclose(r.threshold, 0.5))
        summary.update(seg=instances.seg["seg"], ap50=at_half.ap)
    shown = ", ".join(
        f"{k} {v:.4f}" for k, v in summary.items() if k != "n_images" and isinstance(v, float)
    )
    log.info("held-out test split (%d image(s)): %s", summary["n_images"], shown)
    run_json = run_dir / "run.json"
    if run_json.is_file():
        record = json.loads(run_json.read_text(encoding="utf-8"))
        write_json(run_json, {**record, "held_out_test": summary})
    return summary
