"""Tiled inference speed and memory: lapseg vs the bare network vs MONAI.

One single-channel square image (default 2048 x 2048), tile 256, overlap 0.25, Gaussian blend,
4 tiles per batch, the ``"default"`` U-Net preset in eval mode, channels_last, inference_mode.

- bare: the network alone on the same tiles (pre-cut, same batches): the floor for any tiler;
- lapseg: :func:`lapseg.inference.sliding_window.predict_sliding_window`;
- monai: ``monai.inferers.sliding_window_inference`` (roi 256, sw_batch_size 4, overlap 0.25,
  mode "gaussian").

Times are medians of interleaved rounds in this process (see ``common.py``); peak memory is
measured for each tiler in a fresh subprocess (``--memory-only lapseg|monai``), as the peak RSS
(``VmHWM``) of that process. Run from the repository root::

    .venv/bin/python benchmarks/bench_tiled_inference.py [--size 2048] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from common import (
    PROBE_FLOPS,
    current_peak_rss_mib,
    interleaved_medians,
    make_peak_probe,
    print_machine_info,
)
from lapseg.errors import LapsegInputError
from lapseg.inference.engines import make_predictor
from lapseg.inference.sliding_window import predict_sliding_window
from lapseg.inference.tiling import tile_grid
from lapseg.models import fuse_batchnorm

TILE = 256
OVERLAP = 0.25
BATCH = 4


def build_model() -> nn.Module:
    """The ``"default"`` preset (weights seeded with 0), eval mode, channels_last."""
    import lapseg.models

    create_model = getattr(lapseg.models, "create_model", None)
    if create_model is None:
        from lapseg.models.registry import create_model
    with torch.random.fork_rng():  # reproducible weights, global RNG state left untouched
        torch.manual_seed(0)
        model = create_model("default").eval()
    return model.to(memory_format=torch.channels_last)


def make_image(size: int) -> torch.Tensor:
    """A reproducible ``(1, size, size)`` float32 image."""
    rng = np.random.default_rng(0)
    return torch.from_numpy(rng.standard_normal((1, size, size), dtype=np.float32))


def channels_last_predictor(model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    def predictor(batch: torch.Tensor) -> torch.Tensor:
        return model(batch.contiguous(memory_format=torch.channels_last))

    return predictor


def run_lapseg(
    model: nn.Module,
    image: torch.Tensor,
    predictor: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    with torch.inference_mode():
        return predict_sliding_window(
            predictor or channels_last_predictor(model),
            image,
            tile_size=(TILE, TILE),
            overlap=OVERLAP,
            blend="gaussian",
            batch_size=BATCH,
            size_multiple=int(getattr(model, "size_multiple", 1)),
            output_margin=int(getattr(model, "output_margin", 0)),
        )


def run_monai(model: nn.Module, image: torch.Tensor) -> torch.Tensor:
    from monai.inferers import sliding_window_inference

    with torch.inference_mode():
        return sliding_window_inference(
            image[None],
            roi_size=(TILE, TILE),
            sw_batch_size=BATCH,
            predictor=channels_last_predictor(model),
            overlap=OVERLAP,
            mode="gaussian",
        )


def make_bare(model: nn.Module, image: torch.Tensor) -> Callable[[], None]:
    """The network alone on the tiles lapseg cuts (pre-cut here, same batches)."""
    size_multiple = int(getattr(model, "size_multiple", 1))
    grid = tile_grid(tuple(image.shape[1:]), (TILE, TILE), OVERLAP, align=size_multiple)
    tiles = torch.stack([image[:, rows, cols] for rows, cols in grid])
    tiles = tiles.contiguous(memory_format=torch.channels_last)
    batches = list(torch.split(tiles, BATCH))

    def run() -> None:
        with torch.inference_mode():
            for batch in batches:
                model(batch)

    return run


def network_gflop_per_tile(model: nn.Module) -> float:
    """Floating-point operations of one forward pass on one tile, in GFLOP."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        model(torch.zeros(1, 1, TILE, TILE).contiguous(memory_format=torch.channels_last))
    return counter.get_total_flops() / 1e9


def memory_only(which: str, size: int) -> None:
    """Print the peak RSS of one call of ``which`` (run in a fresh process)."""
    model = build_model()
    image = make_image(size)
    if which == "monai":
        import monai.inferers  # noqa: F401  (import cost is not part of the call)
    with torch.inference_mode():  # load the kernels on a tiny input (few activations)
        model(torch.zeros(1, 1, 32, 32).contiguous(memory_format=torch.channels_last))
    setup = current_peak_rss_mib()
    (run_lapseg if which == "lapseg" else run_monai)(model, image)
    print(f"setup_mib={setup:.1f} peak_mib={current_peak_rss_mib():.1f}")


def measure_memory(which: str, size: int) -> tuple[float, float]:
    """(setup, peak) RSS in MiB of ``which`` measured in a subprocess."""
    command = [sys.executable, str(Path(__file__).resolve())]
    command += ["--memory-only", which, "--size", str(size)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    fields = dict(item.split("=") for item in done.stdout.split()[-2:])
    return float(fields["setup_mib"]), float(fields["peak_mib"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048, help="image height and width")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (>= 3)")
    parser.add_argument("--memory-only", choices=["lapseg", "monai"], default=None)
    args = parser.parse_args()
    if args.memory_only:
        memory_only(args.memory_only, args.size)
        return

    started = time.perf_counter()
    print_machine_info()
    model = build_model()
    image = make_image(args.size)
    size_multiple = int(getattr(model, "size_multiple", 1))
    n_tiles = len(tile_grid((args.size, args.size), (TILE, TILE), OVERLAP, align=size_multiple))
    gflop = network_gflop_per_tile(model)
    print(
        f"# image 1x{args.size}x{args.size}, tile {TILE}, overlap {OVERLAP}, gaussian, "
        f"batch {BATCH}, {n_tiles} tiles; model 'default' "
        f"({sum(p.numel() for p in model.parameters()):,} parameters, {gflop:.2f} GFLOP/tile)"
    )

    # accuracy check on a 512 x 512 crop: both tilers against one whole-crop forward pass
    crop = image[:, :512, :512].contiguous()
    with torch.inference_mode():
        whole = model(crop[None].contiguous(memory_format=torch.channels_last))[0]
    inner = slice(32, 480)  # MONAI pads with zeros, lapseg reflects: skip the image border
    for name, run in (("lapseg", run_lapseg), ("monai", run_monai)):
        tiled = run(model, crop).reshape(whole.shape)
        error = (tiled - whole)[:, inner, inner].abs().max().item()
        print(f"# 512x512 crop, max |{name} - whole-image forward| inside: {error:.2e}")

    # What `lapseg predict` runs: BatchNorm folded into the convolutions (engine "torch"), and
    # the optional ONNX Runtime engine on the same folded model.
    fused = fuse_batchnorm(model).to(memory_format=torch.channels_last)
    engines = {"lapseg predict (torch)": make_predictor(fused, engine="torch", in_channels=1)}
    try:
        engines["lapseg predict (onnx)"] = make_predictor(fused, engine="onnx", in_channels=1)
    except LapsegInputError as error:
        print(f"# onnx engine skipped: {error}")
    probe = make_peak_probe()
    candidates = {
        "probe": probe,
        "bare network": make_bare(model, image),
        "lapseg": lambda: run_lapseg(model, image),
        "monai": lambda: run_monai(model, image),
    }
    for name, predictor in engines.items():
        candidates[name] = lambda p=predictor: run_lapseg(model, image, p)
    # CPU seconds of this process as well: other users of a shared machine inflate wall times
    # of whichever candidate they coincide with, but hardly its CPU time.
    cpu: dict[str, list[float]] = {name: [] for name in candidates}
    wall: dict[str, list[float]] = {name: [] for name in candidates}

    def timed(name: str, fn: Callable[[], object]) -> Callable[[], None]:
        def run() -> None:
            cpu_start, wall_start = time.process_time(), time.perf_counter()
            fn()
            cpu[name].append(time.process_time() - cpu_start)
            wall[name].append(time.perf_counter() - wall_start)

        return run

    rounds = max(3, args.rounds)
    medians = interleaved_medians(
        {name: timed(name, fn) for name, fn in candidates.items()}, rounds=rounds
    )
    cpu_medians = {name: statistics.median(values) for name, values in cpu.items()}
    megapixels = args.size * args.size / 1e6
    print(f"# medians of {rounds} interleaved rounds (wall s; CPU s of this process)")
    print(f"peak probe          {PROBE_FLOPS / medians['probe'] / 1e9:8.1f} GFLOP/s")
    for name in ("bare network", "lapseg", "monai", *engines):
        seconds = medians[name]
        rounds_text = " ".join(f"{t:.1f}" for t in wall[name])
        print(
            f"{name:<18s} {seconds:8.2f} s  {megapixels / seconds:6.3f} MP/s  "
            f"network {n_tiles * gflop / seconds:6.1f} GFLOP/s  CPU {cpu_medians[name]:7.2f} s"
            f"  (rounds: {rounds_text})"
        )
    for other in ("bare network", "monai"):
        print(
            f"lapseg / {other:<12s} throughput: wall {medians[other] / medians['lapseg']:.3f}"
            f"  CPU {cpu_medians[other] / cpu_medians['lapseg']:.3f}"
        )
    for name in engines:
        print(
            f"{name} / monai throughput: wall {medians['monai'] / medians[name]:.3f}"
            f"  CPU {cpu_medians['monai'] / cpu_medians[name]:.3f}"
        )
    for name in ("lapseg", "monai"):
        print(
            f"tiling overhead of {name:<7s} wall {medians[name] - medians['bare network']:+.2f} s"
            f"  CPU {cpu_medians[name] - cpu_medians['bare network']:+.2f} s"
        )

    for name in ("lapseg", "monai"):
        setup, peak = measure_memory(name, args.size)
        print(
            f"peak RSS {name:<7s} {peak:8.1f} MiB  ({peak - setup:+.1f} MiB over the set-up: "
            f"model, image, {setup:.0f} MiB)"
        )
    print(f"# total benchmark time {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
