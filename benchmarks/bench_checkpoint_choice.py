"""Which checkpoint to predict with: the best validation epoch (``best.pt``) or the last one.

    python benchmarks/bench_checkpoint_choice.py OUT/PROTOCOL/lapseg-TAG-STAMP [...]

Takes finished run folders written by ``bench_accuracy.py`` (each under its protocol's folder,
next to ``prepared/``). For every run the last epoch's weights (``run/last.pt``) get what
``lapseg train`` gives the best epoch: the run's own validation split is prepared again (same
seed, same split, checked), the post-processing (or threshold) is tuned on it and stored, and
``lapseg predict`` scores both checkpoints on the protocol's test set. Prints one line per run
and appends it to ``OUT/checkpoint_choice.jsonl``. Costs one validation pass and one prediction
per run (about 1-3 minutes on 2 CPU cores); the training budget is not involved, so it can run
on a busy machine.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from bench_accuracy import predict_lapseg
from common import print_machine_info
from lapseg.config import config_from_dict
from lapseg.models.checkpoint import load_checkpoint
from lapseg.training.budget import TimeBudget
from lapseg.training.setup import setup_run
from lapseg.training.tune_after import tune_on_validation
from protocols import PROTOCOLS, SHARED


def last_epoch_as_model(run_folder: Path, data_root: Path, out: Path) -> tuple[Path, dict]:
    """``out``: a model folder holding the run's last epoch with its own tuned post-processing."""
    last = load_checkpoint(run_folder / "last.pt")
    if out.exists():
        shutil.rmtree(out)
    run = setup_run(
        config_from_dict(last["config"]), data_root, out, resume=False, budget=TimeBudget(None)
    )
    if run.data.split != last["split"]:
        raise SystemExit(f"{run_folder}: the split prepared again differs from the run's")
    shutil.copy(run_folder / "last.pt", out / "best.pt")  # what tuning and prediction read
    for name in ("run.json", "history.csv"):
        shutil.copy(run_folder / name, out / name)
    return out, tune_on_validation(run)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="OUT/PROTOCOL/lapseg-TAG-STAMP")
    args = parser.parse_args()
    if not SHARED.is_dir():
        raise SystemExit(f"{SHARED} not found: the protocols need ../shared/data")
    print_machine_info()
    for folder in args.runs:
        protocol = PROTOCOLS[folder.parent.name](folder.parent / "prepared")
        run_folder = folder / "run"
        best_epoch = load_checkpoint(run_folder / "best.pt")["epoch"]
        last_epoch = load_checkpoint(run_folder / "last.pt")["epoch"]
        model, tuning = last_epoch_as_model(run_folder, protocol.train, folder / "run-last")
        record = {
            "run": str(folder),
            "best_epoch": best_epoch,
            "last_epoch": last_epoch,
            "best": predict_lapseg(protocol, run_folder, folder / "checkpoint-best", []),
            "last": predict_lapseg(protocol, model, folder / "checkpoint-last", []),
            "last_tuning": tuning,
        }
        print(json.dumps(record), flush=True)
        with (folder.parents[1] / "checkpoint_choice.jsonl").open("a") as handle:
            handle.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
