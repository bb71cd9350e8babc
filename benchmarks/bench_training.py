"""Training and inference throughput of the lapseg U-Net presets, beside MONAI and a peak probe.

Run from the repository root (needs ``pip install monai`` for the peer)::

    .venv/bin/python benchmarks/bench_training.py

Training: images/s at 256x256, batch 8, forward + backward + Adam step (fused), fp32, channels_last,
eager mode, for the ``default`` preset and MONAI ``BasicUNet(features=(16, 16, 32, 64, 128, 16))``.
Inference: output megapixels/s, batch 8, ``torch.inference_mode``, with and without
:func:`lapseg.models.fuse_batchnorm`, for ``default``, ``cryo-sem`` (256x256 inputs) and
``ronneberger2015`` as configured (572x572 valid-padding inputs, 388x388 outputs).

FLOPs are counted once with ``torch.utils.flop_counter.FlopCounterMode`` (convolutions and
matrix products; forward + backward for training, forward for inference). Every figure is the
median of interleaved rounds in this one process, next to the peak probe of
``benchmarks/common.py`` (a 512->512 3x3 conv); "of probe" is GFLOP/s divided by the probe's.
Targets: training >= 0.35 of the probe, inference of the wide presets >= 0.5.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    PROBE_FLOPS,
    interleaved_medians,
    make_peak_probe,
    peak_rss_mib,
    print_machine_info,
)
from lapseg.models import count_parameters, create_model, fuse_batchnorm

BATCH = 8
SIZE = 256
CL = torch.channels_last


def _repeat(fn: Callable[[], object], n: int) -> Callable[[], None]:
    def run() -> None:
        for _ in range(n):
            fn()

    return run


def _monai_peer() -> nn.Module | None:
    try:
        from monai.networks.nets import BasicUNet
    except ImportError:
        return None
    return BasicUNet(
        spatial_dims=2, in_channels=1, out_channels=1, features=(16, 16, 32, 64, 128, 16)
    )


def _train_step(model: nn.Module) -> tuple[Callable[[], None], float]:
    """A training step closure on fixed data and its FLOPs (forward + backward)."""
    model = model.to(memory_format=CL).train()
    # fused Adam (CPU, CUDA, MPS): one kernel instead of ~10 small ops per parameter tensor
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
    x = torch.randn(BATCH, 1, SIZE, SIZE).to(memory_format=CL)
    y = (torch.rand(BATCH, 1, SIZE, SIZE) > 0.5).float()

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss = nn.functional.binary_cross_entropy_with_logits(model(x), y)
        loss.backward()
        optimizer.step()

    with FlopCounterMode(display=False) as counter:
        nn.functional.binary_cross_entropy_with_logits(model(x), y).backward()
    optimizer.zero_grad(set_to_none=True)
    step()  # warm-up: oneDNN primitives, optimizer state
    return step, float(counter.get_total_flops())


def _infer(model: nn.Module, size: int) -> tuple[Callable[[], None], float, int]:
    """An inference closure, its FLOPs and the output pixels per call.

    FLOPs are counted on one image and scaled by the batch (they are linear in it), which also
    serves as the warm-up: a full extra batch would cost ~10 s for ronneberger2015 at 572.
    """
    model = model.to(memory_format=CL).eval()
    x = torch.randn(BATCH, 1, size, size).to(memory_format=CL)
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        out = model(x[:1])
    pixels = BATCH * out.shape[-2] * out.shape[-1]

    def run() -> None:
        with torch.inference_mode():
            model(x)

    return run, float(counter.get_total_flops()) * BATCH, pixels


def _line(name: str, seconds: float, flops: float, probe_gflops: float, unit: str) -> str:
    gflops = flops / seconds / 1e9
    return (
        f"{name:<28} {unit:>18} {flops / 1e9:>8.1f} GFLOP {gflops:>7.1f} GFLOP/s "
        f"{gflops / probe_gflops:>5.2f} of probe"
    )


def bench_training(rounds: int) -> None:
    torch.manual_seed(0)
    candidates: dict[str, Callable[[], None]] = {}
    flops: dict[str, float] = {}
    reps = {"probe": 10, "lapseg default": 2, "monai BasicUNet": 2}
    lapseg_model = create_model("default")
    print(f"# lapseg default: {count_parameters(lapseg_model):,} parameters")
    candidates["lapseg default"], flops["lapseg default"] = _train_step(lapseg_model)
    peer = _monai_peer()
    if peer is None:
        print("# monai not installed: peer skipped (pip install monai)")
    else:
        print(f"# monai BasicUNet: {count_parameters(peer):,} parameters")
        candidates["monai BasicUNet"], flops["monai BasicUNet"] = _train_step(peer)
    candidates["probe"] = make_peak_probe()
    timed = {name: _repeat(fn, reps[name]) for name, fn in candidates.items()}
    med = {k: v / reps[k] for k, v in interleaved_medians(timed, rounds=rounds).items()}
    probe = PROBE_FLOPS / med["probe"] / 1e9
    print(f"\n## training, {BATCH}x1x{SIZE}x{SIZE}, fwd+bwd+fused Adam, fp32, channels_last, eager")
    print(f"{'peak probe':<28} {probe:>48.1f} GFLOP/s")
    for name in flops:
        rate = f"{BATCH / med[name]:.2f} img/s"
        print(_line(name, med[name], flops[name], probe, rate))


def bench_inference(rounds: int) -> None:
    torch.manual_seed(0)
    specs = {"default": (SIZE, 4), "cryo-sem": (SIZE, 1), "ronneberger2015": (572, 1)}
    candidates: dict[str, Callable[[], None]] = {"probe": _repeat(make_peak_probe(), 10)}
    reps = {"probe": 10}
    flops: dict[str, float] = {}
    pixels: dict[str, int] = {}
    for preset, (size, n) in specs.items():
        model = create_model(preset)
        has_bn = any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
        if not has_bn:
            print(f"# {preset}: no BatchNorm, fuse_batchnorm changes nothing: timed unfused only")
        for fused in (False, True) if has_bn else (False,):
            name = f"{preset}{' fused' if fused else ''} ({size})"
            net = fuse_batchnorm(model) if fused else model
            run, flops[name], pixels[name] = _infer(net, size)
            candidates[name] = _repeat(run, n)
            reps[name] = n
    med = {k: v / reps[k] for k, v in interleaved_medians(candidates, rounds=rounds).items()}
    probe = PROBE_FLOPS / med["probe"] / 1e9
    print(f"\n## inference, batch {BATCH}, inference_mode, fp32, channels_last, eager")
    print(f"{'peak probe':<28} {probe:>48.1f} GFLOP/s")
    for name in flops:
        rate = f"{pixels[name] / med[name] / 1e6:.2f} Mpx/s"
        print(_line(name, med[name], flops[name], probe, rate))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (>= 3)")
    args = parser.parse_args()
    start = time.perf_counter()
    print_machine_info()
    bench_training(args.rounds)
    bench_inference(args.rounds)
    print(f"\n# peak RSS {peak_rss_mib():.0f} MiB, total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
