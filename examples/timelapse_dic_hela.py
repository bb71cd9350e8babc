"""Does temporal context help on real data? Network1 (k = 0) vs Network5 (k = 2) on DIC HeLa.

Protocol: Cell Tracking Challenge DIC-C2DH-HeLa (../shared/data/ctc-DIC-C2DH-HeLa). Train on
sequence 01 only (``temporal.truth = GT+ST``: gold truth where present, silver truth on the other
frames; the last frames of 01 form the validation block after a gap of ``temporal.gap`` frames),
then test on sequence 02's 9 gold-truth frames, which neither run has seen. Both runs use the same
seed, split, model and budget (``--minutes`` of wall-clock each, or ``--epochs``, which gives
equal steps even on a busy shared machine); only ``temporal.context`` differs.
The GT of 02 annotates only some cells in some frames, so pixel metrics count unannotated cells as
false positives (pessimistic for both runs alike).

Usage::

    python examples/timelapse_dic_hela.py --minutes 5 --out runs/hela-temporal [--set KEY=VALUE]
    python examples/timelapse_dic_hela.py --epochs 6 --out runs/hela-epochs  # equal steps

Prints 000's Table 3 measures for both runs and writes ``curves.png`` (both learning curves) and
``comparison.md`` into ``--out``.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import torch

from lapseg.config import load_config
from lapseg.io.sequences import discover_sequences
from lapseg.training.compare import compare_runs, format_comparison, save_compared_curves
from lapseg.training.trainer import fit

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ctc-DIC-C2DH-HeLa"

SETTINGS = [
    "data.layout=ctc",
    "temporal.truth=GT+ST",
    "temporal.edge_mode=replicate",
    "temporal.gap=5",
    "data.val_fraction=0.15",
    "model.base_features=16",
    "model.depth=4",
    "train.patch_size=[256, 256]",
    "train.batch_size=4",
    "train.patches_per_epoch=32",
    "train.epochs=10000",
    "train.val_every=4",
    "train.lr=1e-3",
    "train.tensorboard=false",
    "predict.tile_size=[512, 512]",
]


def link_sequence(root: Path, name: str, kinds: tuple[str, ...]) -> Path:
    """A dataset folder holding only sequence ``name`` (symlinks), so the other stays unseen."""
    root.mkdir(parents=True, exist_ok=True)
    for folder in (name, *(f"{name}_{kind}" for kind in kinds)):
        link = root / folder
        if not link.exists():
            link.symlink_to(SHARED / folder, target_is_directory=True)
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5.0, help="training budget per run")
    parser.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="budget in epochs instead of minutes (equal steps even on a shared, busy machine)",
    )
    parser.add_argument("--out", type=Path, default=Path("runs/hela-temporal"))
    parser.add_argument("--background", choices=("none", "median"), default="none")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    if not SHARED.is_dir():
        parser.error(f"{SHARED} not found")
    train_root = link_sequence(args.out / "data-01", "01", ("GT", "ST"))
    test_root = link_sequence(args.out / "data-02", "02", ("GT",))
    (test_source,) = discover_sequences(test_root, layout="ctc", truth="GT")
    names = [test_source.sample_name(t) for t in test_source.annotated]

    runs = []
    for k in (0, 2):
        overrides = [
            *SETTINGS,
            f"temporal.context={k}",
            f"temporal.background={args.background}",
            *(
                [f"train.epochs={args.epochs}", f"train.val_every={args.epochs}"]
                if args.epochs
                else [f"train.time_budget_minutes={args.minutes}"]
            ),
            *args.set,
        ]
        config = load_config(None, overrides)
        run_dir = args.out / f"k{k}"
        start = time.perf_counter()
        result = fit(config, train_root, run_dir, progress=False)
        print(
            f"k={k}: {len(result.history)} epochs in {time.perf_counter() - start:.0f} s, "
            f"best epoch {result.best_epoch} ({result.stopped_because})"
        )
        runs.append(run_dir)

    rows = compare_runs(runs, test_root, names=names)
    table = format_comparison(rows)
    save_compared_curves(runs, args.out / "curves.png")
    budget = f"{args.epochs} epochs" if args.epochs else f"{args.minutes} min"
    machine = (
        f"{platform.processor() or platform.machine()}, torch threads {torch.get_num_threads()}"
    )
    report = (
        f"DIC-C2DH-HeLa: train 01 (GT+ST), test 02 GT frames {', '.join(names)}\n"
        f"{budget} per run on {machine}; background={args.background}\n\n{table}\n"
    )
    (args.out / "comparison.md").write_text(report, encoding="utf-8")
    print(report)


if __name__ == "__main__":
    main()
