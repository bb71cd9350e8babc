"""Test metrics of one cross-validation fold: its best model on test images or test frames.

:func:`evaluate_test_images` predicts each named test sample with ``run_dir/best.pt`` exactly as
``lapseg predict`` would (the stored normalisation, resize and threshold; predictions mapped back
to the image's own grid) and scores it per image (seed 004 averages recall, precision and Dice
over its test images). Time-lapse test frames are predicted with their temporal context by
:class:`lapseg.inference.sequences.SequencePredictor`, the model's own rule (frames ``t-k ..
t+k``, the sequence's median background): cross-validation keeps ``temporal.gap >= k`` unused
frames around every test block, so no test input holds a frame the model trained on. Each test
image also gets an overlay (truth contour yellow, prediction red; seed 004 Fig. 5.5).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lapseg.config import LapsegConfig
from lapseg.data.masks import mask_to_target
from lapseg.errors import LapsegInputError
from lapseg.inference.predict import LoadedModel, load_model, model_mask, predict_probabilities
from lapseg.metrics.pixel import MetricAccumulator
from lapseg.report.plots import save_overlay
from lapseg.training.cv_summary import TEST_METRICS

__all__ = ["evaluate_test_images", "overlay_name"]


def overlay_name(sample: str) -> str:
    """File name of a sample's overlay: ``"01/t007"`` (a time-lapse frame) -> ``"01_t007.png"``."""
    return sample.replace("/", "_") + ".png"


def _score(
    loaded: LoadedModel, prob: np.ndarray, mask: np.ndarray
) -> tuple[dict[str, float], np.ndarray]:
    """Per-image test metrics of one probability map, and the predicted mask."""
    semantic = loaded.config.data.task == "semantic"
    num_classes = loaded.config.model.outputs if semantic else 2  # else: foreground metrics
    pred = model_mask(loaded, prob)
    if num_classes == 2:
        pred = (pred > 0).astype(np.int64)
    kind = loaded.config.data.mask_kind if semantic else "binary"
    target = mask_to_target(mask, kind=kind, num_classes=num_classes)
    accumulator = MetricAccumulator(num_classes=num_classes)
    accumulator.update(target, pred)
    metrics = accumulator.pooled()
    return {m: float(metrics[m]) for m in TEST_METRICS}, pred


def _overlay(
    folder: Path | None, name: str, image: np.ndarray, mask: np.ndarray, pred: Any
) -> None:
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        save_overlay(image, mask, pred, folder / overlay_name(name))


def _still_images(
    loaded: LoadedModel, samples: dict[str, Any], names: Sequence[str], overlays: Path | None
) -> list[dict[str, Any]]:
    from lapseg.data.samples import read_raw_sample

    rows = []
    for name in names:
        image, mask = read_raw_sample(samples[name], loaded.config)
        metrics, pred = _score(loaded, predict_probabilities([loaded], image), mask)
        _overlay(overlays, name, image.mean(axis=0), mask, pred)
        rows.append({"name": name, **metrics})
    return rows


def _timelapse_frames(
    loaded: LoadedModel,
    sequences: Sequence[Any],
    names: Sequence[str],
    overlays: Path | None,
    cache_dir: Path,
) -> list[dict[str, Any]]:
    from lapseg.inference.sequences import SequencePredictor
    from lapseg.io.sequences import read_frame, read_frame_mask

    where = {s.sample_name(t): (i, t) for i, s in enumerate(sequences) for t in s.annotated}
    missing = [n for n in names if n not in where]
    if missing:
        raise LapsegInputError(f"test frame(s) not found: {', '.join(missing[:5])}")
    predictors: dict[int, SequencePredictor] = {}
    rows = []
    for name in names:
        i, t = where[name]
        if i not in predictors:  # one predictor per sequence: frames read once, a few kept
            predictors = {i: SequencePredictor([loaded], sequences[i], cache_dir=cache_dir)}
        mask = read_frame_mask(sequences[i], t)
        metrics, pred = _score(loaded, predictors[i].probabilities(t), mask)
        _overlay(overlays, name, read_frame(sequences[i], t), mask, pred)
        rows.append({"name": name, **metrics})
    return rows


def evaluate_test_images(
    run_dir: str | Path,
    names: Sequence[str],
    data_root: str | Path,
    config: LapsegConfig,
    *,
    overlay_dir: str | Path | None = None,
) -> list[dict[str, Any]]:
    """Predict the named test samples with ``run_dir/best.pt``; per-image metric rows.

    Parameters
    ----------
    run_dir : str or Path
        A finished fold run.
    names : sequence of str
        Test sample names of ``data_root`` (``"SEQUENCE/FRAME"`` for time-lapse frames).
    data_root : str or Path
        The dataset holding them (the CV data, or an external test set).
    config : LapsegConfig
        How to find the samples (``data.layout`` and the annotation rules); the model's own
        configuration decides how they are read and predicted.
    overlay_dir : str or Path, optional
        Write one overlay PNG per test image there (:func:`overlay_name`).

    Returns
    -------
    list of dict
        ``{"name", "recall", "precision", "dice", "iou"}`` per test image, in ``names`` order.
    """
    from lapseg.data.sources import discover_dataset

    run_dir = Path(run_dir)
    loaded = load_model(run_dir, device=config.train.device)
    _, sources = discover_dataset(config, data_root)
    overlays = None if overlay_dir is None else Path(overlay_dir)
    if sources.is_timelapse:
        return _timelapse_frames(loaded, sources.sequences, names, overlays, run_dir / "cache")
    samples = {s.name: s for s in sources.samples}
    missing = [n for n in names if n not in samples]
    if missing:
        raise LapsegInputError(f"test image(s) not found: {', '.join(missing[:5])}", path=data_root)
    return _still_images(loaded, samples, names, overlays)
