"""Accuracy and time of one fold's model vs the fold ensemble vs test-time augmentation.

Takes a finished cross-validation folder (``lapseg cv``: ``fold0/best.pt`` .. ``foldK/best.pt``)
and held-out images with masks that none of the folds trained on, and predicts every image with

- ``single``: fold 0's best model;
- ``single+tta``: the same model averaged over the 8 flips/rotations (dihedral group);
- ``ensemble``: the mean probability map of all folds' best models;
- ``ensemble+tta``: every fold model with TTA, averaged.

For each it reports the mean per-image Dice / precision / recall (seed 004 style), the pooled
Dice (every pixel counts once) and the prediction time per image (median over images after one
warm-up call, all in one process so the ratios are comparable; absolute times drift on a shared
machine). Masks follow the training configuration stored in the checkpoints
(``data.mask_kind``). Run from the repository root::

    .venv/bin/python benchmarks/bench_ensemble_tta.py runs/cv --images DIR --masks DIR \
        [--single-fold 0] [--no-tta-ensemble] [--device auto]
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from common import print_machine_info
from lapseg.data.masks import mask_to_target
from lapseg.inference.predict import (
    LoadedModel,
    load_model,
    model_mask,
    predict_probabilities,
)
from lapseg.inference.tta import dihedral_tta
from lapseg.io.discovery import discover_images
from lapseg.io.images import read_image, read_mask
from lapseg.metrics.pixel import MetricAccumulator


def with_tta(loaded: LoadedModel) -> LoadedModel:
    """The same model, its predictor averaged over the 8 dihedral transforms."""
    return replace(loaded, predictor=dihedral_tta(loaded.predictor))


def pairs(images: Path, masks: Path) -> list[tuple[Path, Path]]:
    """Image and mask files paired by stem."""
    by_stem = {p.stem: p for p in discover_images(masks)}
    out = [(p, by_stem[p.stem]) for p in discover_images(images) if p.stem in by_stem]
    if not out:
        raise SystemExit(f"no image in {images} has a mask with the same stem in {masks}")
    return out


def evaluate(
    models: list[LoadedModel], files: list[tuple[Path, Path]]
) -> tuple[dict[str, float], float]:
    """Mean per-image metrics, pooled Dice and the median seconds per image."""
    first = models[0]
    num_classes = max(first.config.model.out_channels, 2)
    accumulator = MetricAccumulator(num_classes=num_classes)
    seconds = []
    warm_up = read_image(files[0][0], axes=first.config.data.axes).array
    predict_probabilities(models, warm_up)  # first-call allocations are not timed
    for image_path, mask_path in files:
        image = read_image(image_path, axes=first.config.data.axes).array
        start = time.perf_counter()
        prob = predict_probabilities(models, image)
        seconds.append(time.perf_counter() - start)
        pred = model_mask(first, prob)
        if num_classes == 2:
            pred = (pred > 0).astype(np.int64)
        truth = mask_to_target(
            read_mask(mask_path), kind=first.config.data.mask_kind, num_classes=num_classes
        )
        accumulator.update(truth, pred)
    mean = accumulator.mean_per_image()["mean"]
    metrics = {k: float(mean[k]) for k in ("dice", "precision", "recall")}
    metrics["pooled_dice"] = float(accumulator.pooled()["dice"])
    return metrics, statistics.median(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cv_dir", type=Path, help="folder written by lapseg cv")
    parser.add_argument("--images", type=Path, required=True, help="held-out images")
    parser.add_argument("--masks", type=Path, required=True, help="their masks (same stems)")
    parser.add_argument("--single-fold", type=int, default=0)
    parser.add_argument("--no-tta-ensemble", action="store_true", help="skip ensemble+tta")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    fold_dirs = sorted(args.cv_dir.glob("fold*/best.pt"), key=lambda p: int(p.parent.name[4:]))
    if not fold_dirs:
        raise SystemExit(f"no fold*/best.pt in {args.cv_dir}")
    models = [load_model(p, device=args.device) for p in fold_dirs]
    single = models[args.single_fold]
    files = pairs(args.images, args.masks)
    candidates = {
        "single": [single],
        "single+tta": [with_tta(single)],
        "ensemble": models,
    }
    if not args.no_tta_ensemble:
        candidates["ensemble+tta"] = [with_tta(m) for m in models]

    print_machine_info()
    print(f"# cv folder: {args.cv_dir} ({len(models)} folds), {len(files)} held-out images")
    print(f"# single = fold {args.single_fold}")
    print()
    print("| predictor | models x passes | Dice (mean/image) | precision | recall | "
          "pooled Dice | s / image |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for name, members in candidates.items():
        metrics, seconds = evaluate(members, files)
        passes = 8 if name.endswith("tta") else 1
        print(
            f"| {name} | {len(members)} x {passes} | {metrics['dice']:.4f} | "
            f"{metrics['precision']:.4f} | {metrics['recall']:.4f} | "
            f"{metrics['pooled_dice']:.4f} | {seconds:.3f} |"
        )


if __name__ == "__main__":
    main()
