"""Train, predict and evaluate lapseg on the real datasets in ../shared/data with fixed protocols.

Protocols (the same as the peer figures in ../shared/data/README.md):
- ``isbi2012``: ISBI 2012 EM, train on slices 0-23, test on 24-29; the target is the membranes
  (label value 0 in the files), so the masks are inverted into a prepared folder first.
- ``dic-hela``: Cell Tracking Challenge DIC-C2DH-HeLa, train on sequence 01's silver truth (all 84
  frames), test on sequence 02's gold-truth frames. The GT annotates only some cells in some
  frames, so pixel metrics on it count unannotated cells as false positives (pessimistic).
- ``usiigaci``: phase contrast, train on ``train/`` (45 images), test on ``val/`` (5 images).

Usage::

    python examples/real_data.py isbi2012 --minutes 12 --out runs/isbi
    python examples/real_data.py dic-hela --minutes 12 --out runs/hela [--set model.base_features=32]

Prints the pooled test metrics; the run folder, predictions and evaluation land in ``--out``.
"""

from __future__ import annotations

import argparse
import csv
import platform
import time
from pathlib import Path

import numpy as np

from lapseg.config import load_config
from lapseg.inference.predict import load_model, predict_files
from lapseg.io.images import read_mask, write_png, write_tiff
from lapseg.metrics.evaluate import evaluate_folders, format_metrics_table
from lapseg.metrics.evaluate_instances import evaluate_instance_folders, format_instance_table
from lapseg.training.trainer import fit

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def prepare_isbi(prepared: Path) -> tuple[Path, list[Path], Path]:
    root = SHARED / "isbi2012-em" / "train"
    rows = []
    test_images, truth = [], prepared / "test_truth"
    for i in range(30):
        image = root / "image" / f"{i}.png"
        membranes = (read_mask(root / "label" / f"{i}.png") == 0).astype(np.uint8) * 255
        mask = write_png(prepared / "masks" / f"{i}.png", membranes)
        if i < 24:
            rows.append((str(image), str(mask), f"slice{i}"))
        else:
            test_images.append(image)
            write_png(truth / f"{i}.png", membranes)
    return _write_list(prepared / "train.csv", rows), test_images, truth


def prepare_dic_hela(prepared: Path) -> tuple[Path, list[Path], Path]:
    root = SHARED / "ctc-DIC-C2DH-HeLa"
    rows = [
        (
            str(image),
            str(root / "01_ST" / "SEG" / f"man_seg{image.stem[1:]}.tif"),
            f"t{image.stem[1:]}",
        )
        for image in sorted((root / "01").glob("t*.tif"))
    ]
    test_images, truth = [], prepared / "test_truth"
    for gt in sorted((root / "02_GT" / "SEG").glob("man_seg*.tif")):
        frame = gt.stem.removeprefix("man_seg")
        test_images.append(root / "02" / f"t{frame}.tif")
        write_tiff(truth / f"t{frame}.tif", read_mask(gt))
    return _write_list(prepared / "train.csv", rows), test_images, truth


def prepare_usiigaci(prepared: Path) -> tuple[Path, list[Path], Path]:
    root = SHARED / "usiigaci-phc"
    rows = [
        (str(d / "raw.tif"), str(d / "instances_ids.png"), d.name)
        for d in sorted((root / "train").iterdir())
        if (d / "raw.tif").is_file()
    ]
    test_images, truth = [], prepared / "test_truth"
    for d in sorted((root / "val").iterdir()):
        if (d / "raw.tif").is_file():
            image = prepared / "test_images" / f"{d.name}.tif"
            image.parent.mkdir(parents=True, exist_ok=True)
            image.write_bytes((d / "raw.tif").read_bytes())
            test_images.append(image)
            write_png(truth / f"{d.name}.png", read_mask(d / "instances_ids.png").astype(np.uint16))
    return _write_list(prepared / "train.csv", rows), test_images, truth


def _write_list(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "mask", "name"])
        writer.writerows(rows)
    return path


PREPARE = {"isbi2012": prepare_isbi, "dic-hela": prepare_dic_hela, "usiigaci": prepare_usiigaci}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("dataset", choices=sorted(PREPARE))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--minutes", type=float, default=12.0, help="training wall-clock budget")
    parser.add_argument("--config", type=Path)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()
    if not SHARED.is_dir():
        raise SystemExit(f"{SHARED} not found")
    list_file, test_images, truth = PREPARE[args.dataset](args.out / "prepared")
    config = load_config(
        args.config,
        [
            "data.layout=list",
            "train.epochs=1000",
            f"train.time_budget_minutes={args.minutes}",
            *args.overrides,
        ],
    )
    start = time.perf_counter()
    result = fit(config, list_file, args.out / "run")
    train_seconds = time.perf_counter() - start
    model = load_model(result.run_dir)
    start = time.perf_counter()
    instances = args.dataset != "isbi2012"
    predict_files([model], test_images, args.out / "predictions", labels=instances)
    predict_seconds = time.perf_counter() - start
    evaluation = evaluate_folders(args.out / "predictions", truth, out_dir=args.out / "evaluation")
    print(f"# machine: {platform.processor() or platform.machine()}, {platform.platform()}")
    print(
        f"# dataset {args.dataset}: {len(test_images)} test images; training {train_seconds / 60:.1f} min "
        f"({len(result.history)} epochs, best epoch {result.best_epoch}), prediction {predict_seconds:.1f} s"
    )
    print(format_metrics_table(evaluation))
    if instances:
        result = evaluate_instance_folders(
            args.out / "predictions", truth, out_dir=args.out / "evaluation"
        )
        print(format_instance_table(result))


if __name__ == "__main__":
    main()
