"""Time-to-accuracy: how much of the training loop's wall clock trains the network.

    python benchmarks/bench_training_loop.py [--protocol hela] [--epochs 6]

Runs ``fit`` (what ``lapseg train`` runs: patches, augmentation, targets and weight maps,
validation on fixed tiles, checkpoints, history) on a shared real dataset for a few epochs and
measures, in the same process, the bare step (forward + backward + optimiser, same model, same
batch size and patch size, same precision) on the batches the loop draws. Prints images/s of
both, their ratio (target >= 0.8) and the optimiser steps a 12-minute budget reaches, with
float32 and with the machine's native mixed precision. Run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import print_machine_info
from lapseg.config import load_config
from lapseg.device import autocast_context
from lapseg.training.budget import TimeBudget
from lapseg.training.setup import setup_run
from lapseg.training.trainer import fit
from protocols import PROTOCOLS, SHARED


def bare_step_seconds(
    config_overrides: list[str], data: Path, work: Path, repeats: int = 8
) -> float:
    """Median seconds of forward + backward + optimiser step on the loop's own batches."""
    config = load_config(None, config_overrides)
    run = setup_run(config, data, work / "bare", resume=False, budget=TimeBudget(None))
    run.model.train()
    batches = [b for _, b in zip(range(repeats + 1), run.loader, strict=False)]
    times = []
    for batch in batches:
        image = batch["image"].contiguous(memory_format=torch.channels_last)
        started = time.perf_counter()
        run.optimizer.zero_grad(set_to_none=True)
        with autocast_context(run.device, run.precision):
            logits = run.model(image)
        loss = run.loss_fn(logits.float(), batch["target"], pixel_weights=batch["weights"])
        loss.backward()
        run.optimizer.step()
        times.append(time.perf_counter() - started)
    return float(np.median(times[1:]))


def loop(config_overrides: list[str], data: Path, work: Path, epochs: int) -> dict[str, float]:
    """Wall clock of ``fit`` for ``epochs`` epochs and its parts from the history."""
    config = load_config(None, [*config_overrides, f"train.epochs={epochs}"])
    started = time.perf_counter()
    result = fit(config, data, work / "loop", progress=False)
    total = time.perf_counter() - started
    run = json.loads((result.run_dir / "run.json").read_text())
    images = epochs * config.train.patches_per_epoch
    return {"seconds": total, "images": images, "precision": run["precision"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--protocol", default="hela", choices=sorted(PROTOCOLS))
    parser.add_argument("--epochs", type=int, default=6)
    args = parser.parse_args()
    if not SHARED.is_dir():
        raise SystemExit(f"{SHARED} not found")
    print_machine_info()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        protocol = PROTOCOLS[args.protocol](work / "prepared")
        rows = []
        for amp in ("false", "true"):
            overrides = [*protocol.options, f"train.amp={amp}", "train.tensorboard=false"]
            step = bare_step_seconds(overrides, protocol.train, work / f"b{amp}")
            result = loop(overrides, protocol.train, work / f"l{amp}", args.epochs)
            batch = load_config(None, overrides).train.batch_size
            bare_ips = batch / step
            loop_ips = result["images"] / result["seconds"]
            rows.append(
                {
                    "precision": result["precision"],
                    "bare_images_per_s": round(bare_ips, 2),
                    "loop_images_per_s": round(loop_ips, 2),
                    "ratio": round(loop_ips / bare_ips, 3),
                    "steps_in_12_min": int(720 * loop_ips / batch),
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    print(f"\n# {args.protocol}: fit for {args.epochs} epochs (setup included) vs the bare step")
    print("| precision | bare step images/s | loop images/s | loop / bare | steps in 12 min |")
    print("| --- | --- | --- | --- | --- |")
    for r in rows:
        print(
            f"| {r['precision']} | {r['bare_images_per_s']} | {r['loop_images_per_s']} | "
            f"{r['ratio']} | {r['steps_in_12_min']} |"
        )


if __name__ == "__main__":
    main()
