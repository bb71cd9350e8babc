"""Images larger than memory: block-wise prediction time and peak memory for N x N images.

For each size N a synthetic uint16 OME-Zarr image (N x N, chunks 1024: non-touching cells of
radius 4-8 px on a jittered 24-px lattice, plus noise) is written chunk by chunk; then a fresh
subprocess predicts it with :func:`lapseg.inference.block_run.predict_blocks` (block 2048, halo
``halo_for(24, PredictConfig())`` = 160 px), reading the input lazily and writing instance labels
into an OME-Zarr store, and reports its wall seconds and its peak RSS (``VmHWM``: the whole
process, Python, torch and the model included).

Predictor (default): the tiny lapseg U-Net ``create_model("default", base_features=4, depth=2)``
(2 poolings, 4 base features), trained here for a few dozen steps on the same synthetic cells so
its labels look like cells, run by :func:`lapseg.inference.engines.predict_logits` with
``PredictConfig()`` (tile 512, overlap 0.25, Gaussian blend, batch 4); labels from
:func:`lapseg.inference.instances.instances_from_probabilities` with ``PostprocessConfig()``.
``--stand-in`` replaces the network by a cheap smoothing + sigmoid (NOT a network: it measures
the block machinery, I/O and labelling alone).

Run from the repository root (the default sizes take about half an hour on 2 cores)::

    .venv/bin/python benchmarks/bench_large_image.py                  # 5k, 10k and 20k
    .venv/bin/python benchmarks/bench_large_image.py --quick          # 1k, 2k and 4k
    .venv/bin/python benchmarks/bench_large_image.py --sizes 5000 --stand-in
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import zarr
from scipy import ndimage

from common import current_peak_rss_mib, print_machine_info
from lapseg.config import PostprocessConfig, PredictConfig
from lapseg.inference.block_run import BlockSettings, predict_blocks
from lapseg.inference.blocks import halo_for
from lapseg.inference.engines import make_predictor, predict_logits
from lapseg.inference.instances import instances_from_probabilities
from lapseg.inference.outputs import probabilities_from_logits
from lapseg.io.zarr import read_ome_zarr
from lapseg.models import fuse_batchnorm
from lapseg.models.registry import create_model

DEFAULT_SIZES = (5000, 10000, 20000)
QUICK_SIZES = (1024, 2048, 4096)
CHUNK = 1024
BLOCK = 2048
SPACING = 24  # lattice of one cell per 24 x 24 px
MEAN, STD = 1100.0, 330.0  # intensity statistics of the synthetic images (normalisation)


# --------------------------------------------------------------------------- synthetic data


def synthetic_region(rows: slice, cols: slice, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(uint16 image, bool mask)`` of a region of the endless synthetic scene.

    Cell (i, j) of the lattice holds one disk whose jitter and radius come from an integer hash
    of (i, j), so any region is computed alone and regions agree where they meet.
    """
    y, x = np.mgrid[rows, cols]
    i, j = y // SPACING, x // SPACING
    h = ((i * 73856093) ^ (j * 19349663) ^ (seed * 83492791)) & 0xFFFF
    centre_y = i * SPACING + SPACING // 2 + h % 7 - 3
    centre_x = j * SPACING + SPACING // 2 + (h >> 3) % 7 - 3
    radius = 4 + (h >> 6) % 5
    mask = (y - centre_y) ** 2 + (x - centre_x) ** 2 <= radius**2
    rng = np.random.default_rng([seed, rows.start, cols.start])
    image = 1000.0 + 800.0 * mask + rng.normal(0.0, 60.0, mask.shape)
    return np.clip(image, 0, 65535).astype(np.uint16), mask


def write_input(path: Path, size: int) -> None:
    """An N x N OME-Zarr (NGFF 0.4, axes y, x) image, written chunk by chunk."""
    group = zarr.open_group(str(path), mode="w", zarr_format=2)
    array = group.create_array(
        "0",
        shape=(size, size),
        chunks=(CHUNK, CHUNK),
        dtype="uint16",
        chunk_key_encoding={"name": "v2", "separator": "/"},
    )
    for y0 in range(0, size, CHUNK):
        for x0 in range(0, size, CHUNK):
            rows, cols = slice(y0, min(y0 + CHUNK, size)), slice(x0, min(x0 + CHUNK, size))
            array[rows, cols] = synthetic_region(rows, cols)[0]
    scale = {"type": "scale", "scale": [1.0, 1.0]}
    axes = [{"name": "y", "type": "space"}, {"name": "x", "type": "space"}]
    group.attrs["multiscales"] = [
        {
            "version": "0.4",
            "axes": axes,
            "datasets": [{"path": "0", "coordinateTransformations": [scale]}],
        }
    ]


# --------------------------------------------------------------------------- predictors


def build_model() -> torch.nn.Module:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return create_model("default", base_features=4, depth=2)


def train_model(path: Path, *, steps: int = 60) -> float:
    """Fit the tiny U-Net to the synthetic cells (a few seconds); returns its pixel accuracy."""
    model = build_model().train()
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    rng = np.random.default_rng(1)
    for _ in range(steps):
        images, masks = [], []
        for _ in range(8):
            y0, x0 = (int(v) for v in rng.integers(0, 100_000, 2))
            image, mask = synthetic_region(slice(y0, y0 + 64), slice(x0, x0 + 64), seed=1)
            images.append((image - MEAN) / STD)
            masks.append(mask)
        batch = torch.from_numpy(np.stack(images)[:, None].astype(np.float32))
        target = torch.from_numpy(np.stack(masks)[:, None].astype(np.float32))
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(batch), target)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    model.eval()
    image, mask = synthetic_region(slice(0, 256), slice(0, 256), seed=2)
    with torch.inference_mode():
        logits = model(torch.from_numpy(((image - MEAN) / STD).astype(np.float32))[None, None])
    torch.save(model.state_dict(), path)
    return float(((logits[0, 0] > 0).numpy() == mask).mean())


def unet_probabilities(weights: Path, engine: str) -> Callable[[np.ndarray], np.ndarray]:
    """``(1, h, w)`` uint16 -> ``(1, h, w)`` foreground probability by the tiny U-Net."""
    model = build_model()
    model.load_state_dict(torch.load(weights, weights_only=True))
    model = fuse_batchnorm(model.eval())
    predictor = make_predictor(model, engine=engine, in_channels=1)
    settings = PredictConfig()

    def probabilities(block: np.ndarray) -> np.ndarray:
        tensor = torch.from_numpy(((block - MEAN) / STD).astype(np.float32))
        with torch.inference_mode():
            logits = predict_logits(model, tensor, settings, predictor=predictor)
            return probabilities_from_logits(logits).numpy()

    return probabilities


def stand_in_probabilities(block: np.ndarray) -> np.ndarray:
    """NOT a network: Gaussian smoothing and a sigmoid around the cell intensity."""
    smooth = ndimage.gaussian_filter(block[0].astype(np.float32), 1.0)
    return (1.0 / (1.0 + np.exp(-(smooth - 1400.0) / 50.0)))[np.newaxis].astype(np.float32)


# --------------------------------------------------------------------------- one size


def run_one(source: Path, output: Path, weights: Path | None, engine: str) -> None:
    """Predict one input in this (fresh) process; print a JSON line of figures."""
    probabilities = (
        stand_in_probabilities if weights is None else unet_probabilities(weights, engine)
    )
    postprocess = PostprocessConfig()

    def labels_of(prob: np.ndarray) -> np.ndarray:
        return instances_from_probabilities(prob, postprocess)

    image = read_ome_zarr(source).plane()
    probabilities(np.full((1, 64, 64), MEAN, dtype=np.uint16))  # load kernels
    setup = current_peak_rss_mib()
    settings = BlockSettings(block_size=BLOCK, halo=halo_for(SPACING), copy_image=False)
    run = predict_blocks(image, output, probabilities, labels_of, settings=settings)
    figures = {
        "seconds": run.seconds,
        "setup_mib": setup,
        "peak_mib": current_peak_rss_mib(),
        "objects": run.objects,
        "blocks": run.blocks,
        "oversized": run.oversized,
    }
    print(json.dumps(figures))


def measure(size: int, workdir: Path, weights: Path | None, engine: str) -> dict[str, float]:
    source, output = workdir / f"input-{size}.zarr", workdir / f"labels-{size}.zarr"
    started = time.perf_counter()
    write_input(source, size)
    written = time.perf_counter() - started
    command = [sys.executable, str(Path(__file__).resolve()), "--run-one", str(source), str(output)]
    command += ["--engine", engine] + (["--weights", str(weights)] if weights else [])
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"size {size} failed:\n{done.stderr}")
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    figures["input_seconds"] = written
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(DEFAULT_SIZES))
    parser.add_argument("--quick", action="store_true", help=f"sizes {QUICK_SIZES}")
    parser.add_argument("--stand-in", action="store_true", help="cheap stand-in, not the U-Net")
    parser.add_argument("--engine", choices=["torch", "onnx"], default="torch")
    parser.add_argument("--workdir", type=Path, default=None, help="(default: a temporary folder)")
    parser.add_argument(
        "--run-one", nargs=2, type=Path, metavar=("INPUT", "OUTPUT"), help=argparse.SUPPRESS
    )
    parser.add_argument("--weights", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run_one:
        run_one(*args.run_one, args.weights, args.engine)
        return
    sizes = list(QUICK_SIZES) if args.quick else args.sizes
    print_machine_info()
    with tempfile.TemporaryDirectory(dir=args.workdir) as folder:
        workdir = Path(folder)
        weights = None
        if args.stand_in:
            print("# predictor: STAND-IN (Gaussian smoothing + sigmoid), not a network")
        else:
            weights = workdir / "unet.pt"
            accuracy = train_model(weights)
            print(
                "# predictor: lapseg U-Net 'default' base_features=4 depth=2, trained 60 steps "
                f"on the synthetic cells (pixel accuracy {accuracy:.3f}); engine {args.engine}; "
                "PredictConfig() tiling (512, overlap 0.25, gaussian)"
            )
        halo = halo_for(SPACING)
        print(f"# block {BLOCK}, halo {halo}, input chunks {CHUNK}, labels via PostprocessConfig()")
        print(
            f"{'size':>7} {'Mpx':>7} {'seconds':>9} {'s/Mpx':>7} {'peak RSS MiB':>13} {'setup MiB':>10} {'objects':>9} {'blocks':>6}"
        )
        for size in sizes:
            f = measure(size, workdir, weights, args.engine)
            megapixels = size * size / 1e6
            print(
                f"{size:>7} {megapixels:7.1f} {f['seconds']:9.1f} {f['seconds'] / megapixels:7.3f} "
                f"{f['peak_mib']:13.0f} {f['setup_mib']:10.0f} {int(f['objects']):>9} "
                f"{int(f['blocks']):>6}",
                flush=True,
            )
            expected = math.ceil(size / SPACING) ** 2
            if f["oversized"] or not 0.9 * expected < f["objects"] <= expected:
                print(
                    f"#   check: {int(f['objects'])} objects of about {expected}, {int(f['oversized'])} oversized"
                )


if __name__ == "__main__":
    main()
