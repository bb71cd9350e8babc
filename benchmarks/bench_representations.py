"""Which instance representation wins at a fixed budget, across the shared protocols (issue 10).

    python benchmarks/bench_representations.py PROTOCOL REP [--steps N | --minutes M]
        [--context K [--context-mode raw|diff]] [--out results.jsonl] [--tag T]
    python benchmarks/bench_representations.py --table results.jsonl [more.jsonl ...]

PROTOCOL is ``hela``, ``psc``, ``usiigaci`` or ``isbi`` (splits in :mod:`protocol_arrays`); REP
is one of :data:`representations.REPRESENTATIONS` (``binary``, ``three_class``,
``three_class_plain``, ``distance``, ``contour``), several separated by commas, or ``all``.

The protocol, the same for every representation (only the targets, the loss, the number of
outputs and the post-processing change):

1. Train lapseg's ``default`` U-Net (``base_features`` 16) from scratch with Adam (lr 1e-3,
   cosine decay to 1 %, fused), bf16 autocast on the CPU, batch 8 of 256 x 256 patches: half
   centred on a random foreground pixel, the rest anywhere; random 90-degree rotation, flip,
   intensity scale 0.8-1.2 and shift +-0.1. The budget is a number of optimiser steps
   (``--steps``, default 1000) or minutes of training (``--minutes``; the learning rate then
   follows the elapsed fraction of the budget). Every random draw is seeded (0); torch uses
   ``--threads`` CPU threads (2). ``--context K`` (``hela``, ``psc``) feeds frames
   ``t-K .. t+K`` as input channels (``--context-mode diff``: their differences to frame t).
2. Predict the validation and test images with lapseg's sliding window (512 x 512 tiles,
   overlap 0.25, Gaussian blend).
3. Tune the post-processing on the validation split: every parameter set of the
   representation's ``grid()`` (thresholds, watershed options), keeping the best
   ``(SEG + AP@0.5) / 2``. Objects smaller than a tenth of the median training object (at
   least 16 pixels) are dropped.
4. Score the test split with the tuned parameters and with the representation's defaults:
   CTC SEG (pooled over objects), AP@0.5 = TP / (TP + FP + FN) (pooled over images) and the
   median area ratio (prediction / truth) of the pairs matched with IoU > 0.5.

One JSON record per run is appended to ``--out`` (machine, budget, seconds, steps reached, the
tuned parameters, validation and test scores). ``--table`` prints the records as a table and
ranks the representations within each protocol (and context, tag and budget) by the tuned test
``(SEG + AP@0.5) / 2``; the mean rank over the protocols where every representation ran is what
issue 10 picks the default by (a later record of the same run replaces an earlier one; the
campaign's own records read the same way).
A run is step for step the computation of the campaign script that first measured this
(checked bit for bit on synthetic data: losses, tuned parameters, scores). Run on a quiet
machine: seconds, and steps within a wall-clock budget, depend on the load.
Without ../shared/data the benchmark says so and exits with status 0.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_accuracy import score_instances
from common import machine_info, print_machine_info
from lapseg.inference.sliding_window import predict_sliding_window
from lapseg.models.registry import create_model
from protocol_arrays import (
    CONTEXT_MODES,
    PROTOCOL_NAMES,
    MissingSharedDataError,
    Pair,
    Split,
    load_protocol,
)
from representations import REPRESENTATIONS, Representation, create_representation

Targets = dict[str, NDArray[Any]]


@dataclass(frozen=True)
class Settings:
    """Training budget and the few knobs of the protocol (defaults: the campaign's).

    steps : optimiser steps; ``None`` with ``minutes``.
    minutes : wall-clock minutes of training (targets, prediction and tuning not included).
    """

    steps: int | None = 1000
    minutes: float | None = None
    batch_size: int = 8
    patch_size: int = 256
    lr: float = 1e-3
    base_features: int = 16
    bf16: bool = True
    seed: int = 0
    tile_size: int = 512

    def __post_init__(self) -> None:
        if (self.steps is None) == (self.minutes is None):
            raise ValueError("give exactly one budget: steps or minutes")
        if self.steps is not None and self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if self.minutes is not None and not self.minutes > 0:
            raise ValueError(f"minutes must be > 0, got {self.minutes}")


# --------------------------------------------------------------------------- training


def learning_rate(base: float, progress: float) -> float:
    """Cosine decay from ``base`` (progress 0) to ``0.01 * base`` (progress 1)."""
    return base * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * progress)))


def _crop_turn_flip(
    array: NDArray[Any], window: tuple[slice, slice], turns: int, flip: bool
) -> NDArray[Any]:
    """Crop the last two axes, rotate by ``turns`` quarter turns, flip the last axis."""
    array = np.rot90(array[(Ellipsis, *window)], turns, axes=(-2, -1))
    return np.ascontiguousarray(array[..., ::-1] if flip else array)


def sample_batch(
    pairs: Sequence[Pair],
    targets: Sequence[Targets],
    rng: np.random.Generator,
    *,
    batch_size: int,
    patch_size: int,
    foreground_fraction: float = 0.5,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """A random batch of augmented patches.

    Returns
    -------
    images : (B, C, P, P) float32 tensor, channels-last
    targets : name -> (B, P, P) tensor, the same crops, rotations and flips
    """
    images: list[NDArray[np.floating]] = []
    crops: dict[str, list[NDArray[Any]]] = {key: [] for key in targets[0]}
    for _ in range(batch_size):
        index = int(rng.integers(len(pairs)))
        image, labels = pairs[index]
        height, width = labels.shape
        if rng.random() < foreground_fraction and (labels > 0).any():
            ys, xs = np.nonzero(labels > 0)
            j = rng.integers(len(ys))
            y0 = int(np.clip(ys[j] - patch_size // 2, 0, height - patch_size))
            x0 = int(np.clip(xs[j] - patch_size // 2, 0, width - patch_size))
        else:
            y0 = rng.integers(height - patch_size + 1)
            x0 = rng.integers(width - patch_size + 1)
        window = (slice(y0, y0 + patch_size), slice(x0, x0 + patch_size))
        turns = int(rng.integers(4))
        flip = bool(rng.random() < 0.5)
        patch = _crop_turn_flip(image, window, turns, flip)
        images.append(patch * rng.uniform(0.8, 1.2) + rng.uniform(-0.1, 0.1))
        for key, array in targets[index].items():
            crops[key].append(_crop_turn_flip(array, window, turns, flip))
    batch = np.stack(images)
    if batch.ndim == 3:
        batch = batch[:, None]
    x = torch.from_numpy(batch.astype(np.float32)).contiguous(memory_format=torch.channels_last)
    return x, {key: torch.from_numpy(np.stack(value)) for key, value in crops.items()}


def train(
    model: torch.nn.Module,
    pairs: Sequence[Pair],
    targets: Sequence[Targets],
    rep: Representation,
    settings: Settings,
) -> tuple[int, list[float], float]:
    """Train in place until the budget is spent; returns steps, losses and seconds."""
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr, fused=True)
    rng = np.random.default_rng(settings.seed)
    losses: list[float] = []
    model.train()
    started = time.perf_counter()
    step = 0
    while True:
        elapsed = time.perf_counter() - started
        if settings.minutes is not None:
            progress = elapsed / (60.0 * settings.minutes)
        else:
            progress = step / settings.steps if settings.steps else 1.0
        if progress >= 1.0:
            break
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(settings.lr, progress)
        x, batch_targets = sample_batch(
            pairs, targets, rng, batch_size=settings.batch_size, patch_size=settings.patch_size
        )
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=settings.bf16):
            logits = model(x)
        loss = rep.loss(logits.float(), batch_targets)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
        if step % 100 == 0:
            print(f"step {step} loss {np.mean(losses[-100:]):.4f} {elapsed:.0f}s", flush=True)
        step += 1
    return step, losses, time.perf_counter() - started


def predict_maps(
    model: torch.nn.Module, image: NDArray[np.float32], rep: Representation, settings: Settings
) -> NDArray[np.float32]:
    """``(K, Y, X)`` maps of one ``(Y, X)`` or ``(C, Y, X)`` image by lapseg's sliding window."""

    def predictor(tiles: torch.Tensor) -> torch.Tensor:
        tiles = tiles.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=settings.bf16):
            return model(tiles).float()

    with torch.inference_mode():
        x = torch.from_numpy(image if image.ndim == 3 else image[None])
        logits = predict_sliding_window(
            predictor,
            x,
            tile_size=(settings.tile_size, settings.tile_size),
            overlap=0.25,
            batch_size=2,
            size_multiple=16,
        )
        return rep.probs(logits).numpy()


# --------------------------------------------------------------------------- scoring


def score(pairs: Sequence[tuple[NDArray[np.integer], NDArray[np.integer]]]) -> dict[str, Any]:
    """SEG, AP@0.5, TP / FP / FN and median matched-area ratio over (truth, prediction) pairs.

    ``bench_accuracy.score_instances`` under the campaign's key names. (The campaign scored a
    split without any reference object as SEG 0 and AP 0; lapseg's aggregates give NaN and 1.)
    """
    result = score_instances(list(pairs))
    return {
        "seg": result["SEG"],
        "ap50": result["AP50"],
        "tp": result["TP"],
        "fp": result["FP"],
        "fn": result["FN"],
        "area_ratio": result["area_ratio"],
    }


def objective(scores: dict[str, Any]) -> float:
    """What the post-processing is tuned for and the representations are ranked by."""
    return float((scores["seg"] + scores["ap50"]) / 2)


def min_object_size(pairs: Sequence[Pair]) -> int:
    """A tenth of the median training object area, at least 16 pixels."""
    areas = np.concatenate([np.bincount(labels.ravel())[1:] for _, labels in pairs])
    areas = areas[areas > 0]
    return max(16, int(0.1 * np.median(areas)))


def tune(
    rep: Representation,
    pairs: Sequence[Pair],
    maps: Sequence[NDArray[np.float32]],
    min_size: int,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The grid's parameters with the best objective on ``pairs`` (first wins ties), and scores."""
    truths = [labels for _, labels in pairs]
    results = [
        (
            params,
            score(
                list(
                    zip(
                        truths,
                        [rep.post(m, min_size=min_size, **params) for m in maps],
                        strict=True,
                    )
                )
            ),
        )
        for params in rep.grid()
    ]
    return max(results, key=lambda result: objective(result[1]))


def run_representation(split: Split, rep: Representation, settings: Settings) -> dict[str, Any]:
    """Train, predict, tune and score one representation on one split.

    Returns
    -------
    record : dict
        ``rep``, ``steps`` (reached), ``minutes``, ``bf16``, ``base``, ``batch_size``,
        ``patch_size``, ``min_size``, seconds ``t_prep`` (targets), ``t_train``, ``t_pred``,
        ``t_tune``, ``final_loss`` (mean of the last 50 steps), ``best_params``, and the
        score dicts ``val`` (tuned), ``test_default`` and ``test_tuned`` (keys ``seg``,
        ``ap50``, ``tp``, ``fp``, ``fn``, ``area_ratio``).
    """
    started = time.perf_counter()
    targets = [rep.target(labels) for _, labels in split.train]
    min_size = min_object_size(split.train)
    t_prep = time.perf_counter() - started
    first = split.train[0][0]
    with torch.random.fork_rng(devices=[]):  # the same initial weights for every representation
        torch.manual_seed(settings.seed)
        model = create_model(
            "default",
            in_channels=first.shape[0] if first.ndim == 3 else 1,
            out_channels=rep.out_channels,
            base_features=settings.base_features,
        ).to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # torch stubs
    steps, losses, t_train = train(model, split.train, targets, rep, settings)
    model.eval()
    started = time.perf_counter()
    val_maps = [predict_maps(model, image, rep, settings) for image, _ in split.val]
    test_maps = [predict_maps(model, image, rep, settings) for image, _ in split.test]
    t_pred = time.perf_counter() - started
    started = time.perf_counter()
    best_params, val_scores = tune(rep, split.val, val_maps, min_size)
    truths = [labels for _, labels in split.test]
    default = score(
        [(t, rep.post(m, min_size=min_size)) for t, m in zip(truths, test_maps, strict=True)]
    )
    tuned = score(
        [
            (t, rep.post(m, min_size=min_size, **best_params))
            for t, m in zip(truths, test_maps, strict=True)
        ]
    )
    t_tune = time.perf_counter() - started
    return {
        "rep": rep.name,
        "steps": steps,
        "minutes": settings.minutes,
        "bf16": settings.bf16,
        "base": settings.base_features,
        "batch_size": settings.batch_size,
        "patch_size": settings.patch_size,
        "min_size": min_size,
        "t_prep": round(t_prep, 1),
        "t_train": round(t_train, 1),
        "t_pred": round(t_pred, 1),
        "t_tune": round(t_tune, 1),
        "final_loss": float(np.mean(losses[-50:])) if losses else float("nan"),
        "best_params": best_params,
        "val": val_scores,
        "test_default": default,
        "test_tuned": tuned,
    }


# --------------------------------------------------------------------------- table


def _protocol_label(record: dict[str, Any]) -> str:
    """Protocol, context, tag and budget: the runs that are ranked against each other."""
    label = str(record["protocol"])
    context = record.get("context")
    if context is not None and context >= 0:  # the campaign wrote -1 for "no context"
        label += f" k={context} {record.get('ctxmode', 'raw')}"
    if record.get("tag"):
        label += f" [{record['tag']}]"
    if record.get("minutes"):
        return f"{label}, {record['minutes']:g} min"
    return f"{label}, {record['steps']} steps"


def load_records(paths: Sequence[Path]) -> dict[str, dict[str, dict[str, Any]]]:
    """protocol label -> representation -> record; a later record replaces an earlier one."""
    runs: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for path in paths:
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                record = json.loads(line)
                runs[_protocol_label(record)][record["rep"]] = record
    return dict(runs)


def _ranks(values: dict[str, float]) -> dict[str, float]:
    """Rank 1 = highest value; ties share their mean rank; NaN ranks last."""
    keyed = {name: (-math.inf if math.isnan(v) else v) for name, v in values.items()}
    ranks = {}
    for name, value in keyed.items():
        higher = sum(other > value for other in keyed.values())
        equal = sum(other == value for other in keyed.values())
        ranks[name] = higher + (equal + 1) / 2
    return ranks


def complete_protocols(runs: dict[str, dict[str, dict[str, Any]]]) -> list[str]:
    """The protocol labels where every representation of the records ran (those are ranked)."""
    everyone = {rep for by_rep in runs.values() for rep in by_rep}
    return sorted(label for label, by_rep in runs.items() if set(by_rep) == everyone)


def mean_ranks(runs: dict[str, dict[str, dict[str, Any]]]) -> dict[str, dict[str, float]]:
    """Per representation: mean rank by the objective, by SEG and by AP@0.5 (tuned, test)
    over :func:`complete_protocols` (at least two representations), and their number ``n``."""
    collected: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for label in complete_protocols(runs):
        if len(runs[label]) < 2:
            continue
        tuned = {rep: record["test_tuned"] for rep, record in runs[label].items()}
        for key, values in (
            ("objective", {rep: objective(s) for rep, s in tuned.items()}),
            ("seg", {rep: float(s["seg"]) for rep, s in tuned.items()}),
            ("ap50", {rep: float(s["ap50"]) for rep, s in tuned.items()}),
        ):
            for rep, rank in _ranks(values).items():
                collected[rep][key].append(rank)
    return {
        rep: {**{k: float(np.mean(v)) for k, v in ranks.items()}, "n": len(ranks["objective"])}
        for rep, ranks in collected.items()
    }


def format_table(runs: dict[str, dict[str, dict[str, Any]]]) -> str:
    """Markdown: one row per run, then the mean ranks (best first)."""
    order = {name: i for i, name in enumerate(REPRESENTATIONS)}
    lines = [
        "| protocol | representation | SEG | AP@0.5 | SEG default | AP@0.5 default "
        "| area ratio | steps | train s | total s |",
        "| --- | --- |" + " ---: |" * 8,
    ]
    for label in sorted(runs):
        for rep in sorted(runs[label], key=lambda r: (order.get(r, len(order)), r)):
            record = runs[label][rep]
            tuned, default = record["test_tuned"], record["test_default"]
            total = sum(record.get(k, 0.0) for k in ("t_prep", "t_train", "t_pred", "t_tune"))
            lines.append(
                f"| {label} | {rep} | {tuned['seg']:.3f} | {tuned['ap50']:.3f} "
                f"| {default['seg']:.3f} | {default['ap50']:.3f} | {tuned['area_ratio']:.3f} "
                f"| {record['steps']} | {record['t_train']:.0f} | {total:.0f} |"
            )
    ranks = mean_ranks(runs)
    left_out = sorted(set(runs) - set(complete_protocols(runs)))
    lines += [
        "",
        "Mean rank over protocols (1 = best; tuned post-processing, test split; "
        "objective = (SEG + AP@0.5) / 2):",
        *([f"(left out, not every representation ran: {'; '.join(left_out)})"] if left_out else []),
        "",
        "| representation | mean rank (objective) | mean rank (SEG) | mean rank (AP@0.5) "
        "| protocols |",
        "| --- |" + " ---: |" * 4,
    ]
    for rep, r in sorted(ranks.items(), key=lambda item: item[1]["objective"]):
        lines.append(
            f"| {rep} | {r['objective']:.2f} | {r['seg']:.2f} | {r['ap50']:.2f} | {r['n']:.0f} |"
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------- command line


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("protocol", nargs="?", choices=PROTOCOL_NAMES)
    parser.add_argument("rep", nargs="?", help="a representation, several (a,b) or 'all'")
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--steps", type=int, help="optimiser steps (default 1000)")
    budget.add_argument("--minutes", type=float, help="minutes of training instead of steps")
    parser.add_argument("--context", type=int, help="time-lapse: frames t-K..t+K as channels")
    parser.add_argument("--context-mode", choices=CONTEXT_MODES, default="raw")
    parser.add_argument("--out", type=Path, default=Path("runs/bench-representations.jsonl"))
    parser.add_argument("--tag", default="", help="label of this variant in the records")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--patch-size", type=int, default=256)
    parser.add_argument("--base-features", type=int, default=16)
    parser.add_argument("--fp32", action="store_true", help="no bf16 autocast")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--table", type=Path, nargs="+", metavar="JSONL", help="print a table")
    return parser


def _rep_names(text: str) -> list[str]:
    names = list(REPRESENTATIONS) if text == "all" else text.split(",")
    for name in names:
        create_representation(name)  # raises, listing the valid names
    return names


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.table:
        print(format_table(load_records(args.table)))
        return 0
    if args.protocol is None or args.rep is None:
        parser.error("give PROTOCOL and REP (or --table FILE)")
    try:
        names = _rep_names(args.rep)
    except ValueError as error:
        parser.error(str(error))
    try:
        settings = Settings(
            steps=None if args.minutes is not None else 1000 if args.steps is None else args.steps,
            minutes=args.minutes,
            batch_size=args.batch_size,
            patch_size=args.patch_size,
            base_features=args.base_features,
            bf16=not args.fp32,
        )
    except ValueError as error:
        parser.error(str(error))
    started = time.perf_counter()
    try:
        split = load_protocol(args.protocol, context=args.context, mode=args.context_mode)
    except MissingSharedDataError as error:
        print(f"skipped: {error}")
        return 0
    except ValueError as error:
        parser.error(str(error))
    t_load = round(time.perf_counter() - started, 1)
    torch.set_num_threads(args.threads)
    print_machine_info()
    budget = f"{settings.minutes:g} min" if settings.minutes else f"{settings.steps} steps"
    print(f"# budget: {budget} of training per representation; {asdict(settings)}")
    print(
        f"# {args.protocol}: {len(split.train)} train, {len(split.val)} val, "
        f"{len(split.test)} test images, loaded in {t_load} s"
    )
    machine = machine_info()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for name in names:
        record = {
            "protocol": args.protocol,
            "context": args.context,
            "ctxmode": args.context_mode,
            "tag": args.tag,
            "t_load": t_load,
            **run_representation(split, create_representation(name), settings),
            "cpu": machine["cpu"],
            "threads": torch.get_num_threads(),
        }
        print(json.dumps(record), flush=True)
        with args.out.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
    print(format_table(load_records([args.out])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
