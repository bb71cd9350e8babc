"""Does elastic augmentation help on 5 ISBI 2012 slices? Held-out Dice with and without it.

Needs the augmentation integration (``augment`` section = ``AugmentationConfig``, see
``docs/augmentation.md``) and ../shared/data/isbi2012-em. Run from the repository root::

    .venv/bin/python benchmarks/bench_elastic_isbi.py --minutes 6 --seeds 0 1 --out runs/elastic

Protocol: train on slices 0-4 (5 slices), validate on slice 5 (model selection only), test on
slices 24-29; the target is the membranes (label value 0 in the files, as in
``examples/real_data.py``). Each arm trains the default model for the same wall-clock budget
(``train.time_budget_minutes``) with the same seeds; the only difference is the augmentation:

- ``default``: the default preset (flips, quarter turns, mild rotation/scale/intensity);
- ``+elastic``: default + Simard elastic (alpha ~ U(0, 50), sigma 4, p 0.5; seed 002);
- ``+grid_elastic``: default + the U-Net paper's 3x3 grid, 10 px std (p 0.5).

Prints pooled and mean per-image membrane Dice on the 6 test slices per arm and seed.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import print_machine_info
from lapseg.config import load_config
from lapseg.inference.predict import load_model, predict_files
from lapseg.io.images import read_mask, write_png
from lapseg.metrics.evaluate import evaluate_folders
from lapseg.training.trainer import fit

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "isbi2012-em" / "train"
TRAIN, VAL, TEST = range(0, 5), (5,), range(24, 30)
ARMS: dict[str, list[str]] = {
    "default": ["augment.preset=default"],
    "+elastic": ["augment.preset=default", "augment.elastic.probability=0.5"],
    "+grid_elastic": ["augment.preset=default", "augment.grid_elastic.probability=0.5"],
}


def prepare(root: Path) -> tuple[Path, Path, list[Path], Path]:
    """Membrane masks, the list file, the split file, the test images and their truth folder."""
    rows = []
    for i in [*TRAIN, *VAL, *TEST]:
        membranes = (read_mask(SHARED / "label" / f"{i}.png") == 0).astype(np.uint8) * 255
        mask = write_png(root / "masks" / f"{i}.png", membranes)
        if i in TEST:
            write_png(root / "test_truth" / f"{i}.png", membranes)
        else:
            rows.append((str(SHARED / "image" / f"{i}.png"), str(mask), f"slice{i}"))
    list_file = root / "train.csv"
    with list_file.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "mask", "name"])
        writer.writerows(rows)
    split_file = root / "split.json"
    split = {"train": [f"slice{i}" for i in TRAIN], "val": [f"slice{i}" for i in VAL], "test": []}
    split_file.write_text(json.dumps(split), encoding="utf-8")
    test_images = [SHARED / "image" / f"{i}.png" for i in TEST]
    return list_file, split_file, test_images, root / "test_truth"


def run_arm(
    name: str, seed: int, minutes: float, out: Path, data: tuple[Path, Path, list[Path], Path]
) -> dict[str, float]:
    list_file, split_file, test_images, truth = data
    folder = out / f"{name.strip('+')}-seed{seed}"
    config = load_config(
        None,
        [
            "data.layout=list",
            f"data.split_file={split_file}",
            "train.epochs=100000",
            "train.patches_per_epoch=64",
            f"train.time_budget_minutes={minutes}",
            f"train.seed={seed}",
            "train.tensorboard=false",
            *ARMS[name],
        ],
    )
    start = time.perf_counter()
    result = fit(config, list_file, folder / "run", progress=False)
    seconds = time.perf_counter() - start
    predict_files([load_model(result.run_dir)], test_images, folder / "predictions")
    evaluation = evaluate_folders(folder / "predictions", truth)
    return {
        "pooled_dice": float(evaluation.pooled["dice"]),
        "mean_dice": float(evaluation.mean["dice"]),
        "epochs": float(len(result.history)),
        "train_s": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=6.0, help="training budget per run")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    parser.add_argument("--out", type=Path, required=True, help="a new folder for the runs")
    args = parser.parse_args()
    if not SHARED.is_dir():
        raise SystemExit(f"{SHARED} not found")
    print_machine_info()
    data = prepare(args.out / "prepared")
    results: dict[str, list[dict[str, float]]] = {arm: [] for arm in args.arms}
    for seed in args.seeds:  # interleave the arms per seed: machine drift hits all alike
        for arm in args.arms:
            row = run_arm(arm, seed, args.minutes, args.out, data)
            results[arm].append(row)
            print(
                f"{arm:<14} seed {seed}: pooled Dice {row['pooled_dice']:.4f}, mean Dice "
                f"{row['mean_dice']:.4f} ({row['epochs']:.0f} epochs, {row['train_s']:.0f} s)",
                flush=True,
            )
    print(f"\n## membrane Dice on ISBI slices 24-29, 5 training slices, {args.minutes} min/run")
    print(f"{'arm':<14} {'pooled (median)':>16} {'mean/img (median)':>18} {'runs':>5}")
    for arm, rows in results.items():
        pooled = statistics.median(r["pooled_dice"] for r in rows)
        mean = statistics.median(r["mean_dice"] for r in rows)
        print(f"{arm:<14} {pooled:>16.4f} {mean:>18.4f} {len(rows):>5}")


if __name__ == "__main__":
    main()
