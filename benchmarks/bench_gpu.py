"""GPU throughput of training and inference as a fraction of the card's dense bf16 peak.

    python benchmarks/bench_gpu.py [--batch-size 16] [--patch 256] [--steps 20] [--set KEY=VALUE]

On a CUDA device, the U-Net of the configuration (defaults, or ``--set model.preset=...``):

- **training**: optimiser steps exactly as ``lapseg train`` takes them
  (:func:`lapseg.training.loop.train_one_epoch`: channels_last, autocast, loss in float32, fused
  Adam, float16 with a GradScaler as :func:`lapseg.device.mixed_precision` picks on CUDA, and
  bfloat16), on batches already on the GPU (the data path is ``bench_training_loop.py``'s);
- **inference**: batches of tiles through :func:`lapseg.inference.engines.torch_predictor`
  (what ``lapseg predict`` runs per batch of tiles), in ``inference_mode``.

The arithmetic of one step is counted with ``torch.utils.flop_counter.FlopCounterMode``
(convolutions and matrix products of the model: the useful FLOPs, not the kernels' own);
throughput = counted FLOPs / median seconds per step, reported as a fraction of (a) the card's
datasheet dense bf16 tensor-core peak (:data:`DENSE_BF16_TFLOPS`, by device name) and (b) a bf16
matmul peak measured here (8192^3, the best this card reaches in practice). Without CUDA it says
so and exits with status 0. Figures are medians of ``--rounds`` interleaved rounds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import print_machine_info
from lapseg.config import load_config
from lapseg.device import mixed_precision, place_model
from lapseg.inference.engines import torch_predictor
from lapseg.losses import create_loss
from lapseg.models.registry import create_model
from lapseg.training.loop import train_one_epoch

DENSE_BF16_TFLOPS: tuple[tuple[str, float], ...] = (
    # (substring of torch.cuda.get_device_name, dense bf16 tensor TFLOP/s, FP32 accumulate);
    # datasheet figures without sparsity; the first match wins, so longer names come first.
    ("B200", 2250.0),
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("H100", 989.4),  # SXM
    ("H200", 989.4),  # SXM; GH200 too
    ("H800", 989.4),
    ("A100", 312.0),
    ("A800", 312.0),
    ("L40S", 362.0),
    ("L40", 181.0),
    ("L4", 121.0),
    ("A6000", 154.8),
    ("A10", 125.0),
    ("RTX 4090", 165.2),
)
"""Dense bf16 tensor-core peaks (TFLOP/s) of common cards; unknown cards use the measured peak."""

DEFAULTS = ("model.out_channels=3",)
"""The 3-class target of instance masks (lapseg's usual task decides it from the masks);
``--set`` values come after these."""


def datasheet_peak_tflops(device_name: str) -> float | None:
    """The dense bf16 peak of ``device_name`` from :data:`DENSE_BF16_TFLOPS` (None: unknown)."""
    for key, tflops in DENSE_BF16_TFLOPS:
        if key in device_name:
            return tflops
    return None


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_seconds(fn: Callable[[], object], device: torch.device, *, rounds: int) -> float:
    """Median wall-clock seconds of ``fn()`` over ``rounds`` calls after one warm-up call."""
    fn()
    _synchronize(device)
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        fn()
        _synchronize(device)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def counted_flops(fn: Callable[[], object]) -> int:
    """FLOPs of ``fn()`` as torch's FLOP counter sees them (convolutions, matrix products)."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def matmul_peak_tflops(device: torch.device, *, n: int = 8192, rounds: int = 10) -> float:
    """Measured bf16 matrix-product throughput (TFLOP/s) of ``n x n`` by ``n x n``."""
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    seconds = median_seconds(lambda: a @ b, device, rounds=rounds)
    return 2 * n**3 / seconds / 1e12


def training_steps(
    overrides: Sequence[str],
    *,
    device: torch.device,
    precision: torch.dtype | None,
    batch_size: int,
    patch: int,
    steps: int,
) -> tuple[Callable[[], object], Callable[[], object]]:
    """``(run, one_step)``: ``steps`` optimiser steps of lapseg's loop, and a single step."""
    config = load_config(None, [*DEFAULTS, *overrides])
    model = place_model(create_model(config.model), device)
    loss_fn = create_loss(config.loss.name, **dict(config.loss.params))
    optimizer = torch.optim.Adam(
        model.parameters(), lr=config.train.lr, fused=device.type in ("cpu", "cuda")
    )
    scaler = torch.amp.GradScaler("cuda") if precision == torch.float16 else None
    generator = torch.Generator().manual_seed(0)
    image = torch.randn(batch_size, config.model.in_channels, patch, patch, generator=generator)
    out = patch - 2 * model.output_margin
    target = torch.randint(0, max(config.model.outputs, 2), (batch_size, out, out))
    batch = {
        "image": image.to(device),
        "target": target.to(device),
        "weights": torch.ones(batch_size, out, out, device=device),
    }

    def run(n: int) -> dict[str, float]:
        return train_one_epoch(
            model,
            [batch] * n,  # type: ignore[arg-type]  # the loop only iterates over its loader
            loss_fn,
            optimizer,
            device=device,
            precision=precision,
            scaler=scaler,
        )

    return (lambda: run(steps)), (lambda: run(1))


def inference_batches(
    overrides: Sequence[str],
    *,
    device: torch.device,
    precision: torch.dtype | None,
    batch_size: int,
    patch: int,
) -> Callable[[], object]:
    """One batch of ``patch`` x ``patch`` tiles through lapseg's torch predictor."""
    config = load_config(None, [*DEFAULTS, *overrides])
    model = place_model(create_model(config.model), device).eval()
    predictor = torch_predictor(model, precision=precision)
    tiles = torch.randn(batch_size, config.model.in_channels, patch, patch, device=device)

    @torch.inference_mode()
    def run() -> torch.Tensor:
        return predictor(tiles)

    return run


def measure(
    overrides: Sequence[str],
    *,
    device: torch.device,
    batch_size: int,
    patch: int,
    steps: int,
    rounds: int,
) -> list[dict[str, Any]]:
    """Rows of (work, precision, images/s, TFLOP/s) for training and inference."""
    precisions = {"float16 (lapseg on CUDA)": mixed_precision(device), "bfloat16": torch.bfloat16}
    if device.type != "cuda":  # the CPU check of the test suite: lapseg's own precision only
        precisions = {"lapseg default": mixed_precision(device)}
    rows: list[dict[str, Any]] = []
    for name, precision in precisions.items():
        steps_fn, one_step = training_steps(
            overrides,
            device=device,
            precision=precision,
            batch_size=batch_size,
            patch=patch,
            steps=steps,
        )
        flops = counted_flops(one_step) * steps
        seconds = median_seconds(steps_fn, device, rounds=rounds)
        rows.append(_row("training", name, batch_size * steps, flops, seconds))
        infer = inference_batches(
            overrides, device=device, precision=precision, batch_size=batch_size, patch=patch
        )
        flops = counted_flops(infer)
        seconds = median_seconds(infer, device, rounds=rounds * steps)
        rows.append(_row("inference", name, batch_size, flops, seconds))
    return rows


def _row(work: str, precision: str, images: int, flops: int, seconds: float) -> dict[str, Any]:
    return {
        "work": work,
        "precision": precision,
        "images_per_s": images / seconds,
        "tflops": flops / seconds / 1e12,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--patch", type=int, default=256, help="training patch / tile size")
    parser.add_argument("--steps", type=int, default=20, help="optimiser steps per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("bench_gpu: no CUDA device (torch.cuda.is_available() is False): nothing measured")
        return 0
    device = torch.device("cuda")
    torch.backends.cudnn.benchmark = True
    print_machine_info()
    name = torch.cuda.get_device_name(device)
    datasheet = datasheet_peak_tflops(name)
    measured = matmul_peak_tflops(device)
    print(f"# device: {name}")
    print(f"# dense bf16 peak: datasheet {datasheet or 'unknown'} TFLOP/s, matmul {measured:.0f}")
    print(f"# batch {args.batch_size}, {args.patch}x{args.patch}, config {args.overrides or '-'}")
    rows = measure(
        args.overrides,
        device=device,
        batch_size=args.batch_size,
        patch=args.patch,
        steps=args.steps,
        rounds=args.rounds,
    )
    print("| work | precision | images/s | TFLOP/s | of datasheet peak | of matmul peak |")
    print("| --- | --- | --- | --- | --- | --- |")
    for row in rows:
        row["of_datasheet_peak"] = None if datasheet is None else row["tflops"] / datasheet
        row["of_matmul_peak"] = row["tflops"] / measured
        of_sheet = "-" if datasheet is None else f"{row['of_datasheet_peak']:.1%}"
        print(
            f"| {row['work']} | {row['precision']} | {row['images_per_s']:.1f} | "
            f"{row['tflops']:.1f} | {of_sheet} | {row['of_matmul_peak']:.1%} |"
        )
    print(json.dumps({"device": name, "datasheet_tflops": datasheet, "rows": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
