"""Memory and time on long movies: a 2,000-frame movie against a 200-frame one.

    python benchmarks/bench_long_movies.py [--frames 200 2000] [--size 256] [--steps 48]
        [--cache-mib 1024]

For each length, in a fresh subprocess (so peak RSS belongs to that run alone): write a
synthetic movie (discs drifting and bouncing off the edges, ``images/movie.tif`` +
``masks/movie.tif`` with every frame annotated), train the default model for the same number of optimiser steps
(``lapseg train``'s code path: ``fit``), then predict every frame with tracking
(``predict_path``). The target: peak RSS within 1.2x and time per predicted frame within 1.2x
between the two lengths (frames are read lazily and their memory-mapped pages released,
samples cached in an LRU bounded by ``--cache-mib``, predictions streamed to disk). Peak RSS is
also reported after training alone: the sample cache fills with the distinct frames the
training patches touch, so that part grows with the movie until the cache bound.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from tempfile import TemporaryDirectory

import numpy as np
import tifffile

sys.path.insert(0, str(Path(__file__).resolve().parent))


def write_movie(root: Path, n_frames: int, size: int, seed: int = 0) -> Path:
    """``root/images/movie.tif`` and ``root/masks/movie.tif``: discs drifting over noise,
    bouncing off the edges (the same scene statistics at every length)."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    n_cells = max(4, size // 32)
    centres = rng.uniform(16, size - 16, (n_cells, 2))
    velocity = rng.normal(0, 0.7, (n_cells, 2))
    yy, xx = np.mgrid[:size, :size]
    with (
        tifffile.TiffWriter(root / "images" / "movie.tif", bigtiff=True) as images,
        tifffile.TiffWriter(root / "masks" / "movie.tif", bigtiff=True) as masks,
    ):
        for _ in range(n_frames):
            labels = np.zeros((size, size), np.uint16)
            for i, (cy, cx) in enumerate(centres, start=1):
                labels[(yy - cy) ** 2 + (xx - cx) ** 2 < 64] = i
            image = (labels > 0) * 600 + rng.normal(300, 40, (size, size))
            images.write(image.astype(np.uint16), contiguous=True, metadata={"axes": "TYX"})
            masks.write(labels, contiguous=True, metadata={"axes": "TYX"})
            centres = centres + velocity
            # bounce off a 12-pixel margin, so a long movie looks like a short one throughout
            # (clipped cells piled up along the edges: 1,877 tracks in 2,000 frames)
            outside = (centres < 12) | (centres > size - 12)
            velocity[outside] *= -1
            centres = np.clip(centres, 12, size - 12)
    return root


def measure(
    n_frames: int, size: int, steps: int, workdir: Path, cache_mib: int = 1024
) -> dict[str, float]:
    """Write, train and predict one movie in this process; what it cost (peak RSS after
    training, and at the end, after predicting)."""
    from lapseg.config import load_config
    from lapseg.inference.apply import predict_path
    from lapseg.inference.predict import load_model
    from lapseg.training.trainer import fit

    data = write_movie(workdir / "data", n_frames, size)
    config = load_config(
        None,
        [
            "data.axes=TYX",
            f"train.epochs={max(1, steps // 16)}",
            "train.patches_per_epoch=128",
            "train.patch_size=[128, 128]",
            f"train.sample_cache_mib={cache_mib}",
            "train.tensorboard=false",
            "postprocess.tune_for=none",
        ],
    )
    started = time.perf_counter()
    fit(config, data, workdir / "run", progress=False)
    train_seconds = time.perf_counter() - started
    train_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    model = load_model(workdir / "run", device="cpu")
    started = time.perf_counter()
    summary = predict_path([model], data / "images" / "movie.tif", workdir / "pred")
    predict_seconds = time.perf_counter() - started
    (movie,) = summary.movies
    return {
        "frames": n_frames,
        "train_s": round(train_seconds, 1),
        "predict_s": round(predict_seconds, 1),
        "predict_s_per_frame": round(predict_seconds / n_frames, 4),
        "tracks": movie.n_tracks or 0,
        "sample_cache_mib": cache_mib,
        "train_peak_rss_mib": round(train_peak, 1),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, nargs="+", default=[200, 2000])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=48)
    parser.add_argument(
        "--cache-mib", type=int, default=1024, help="train.sample_cache_mib (default 1024)"
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        with TemporaryDirectory() as tmp:
            result = measure(args.frames[0], args.size, args.steps, Path(tmp), args.cache_mib)
        print(json.dumps(result))
        return
    from common import print_machine_info

    print_machine_info()
    rows = []
    for n in args.frames:
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--child",
                "--frames",
                str(n),
                "--size",
                str(args.size),
                "--steps",
                str(args.steps),
                "--cache-mib",
                str(args.cache_mib),
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), flush=True)
    print(
        f"\n# {args.size}x{args.size} frames, {args.steps} training steps, every frame predicted, "
        f"train.sample_cache_mib={args.cache_mib}"
    )
    print(
        "| frames | train s | predict s | predict s/frame | tracks | peak RSS after training "
        "MiB | peak RSS MiB |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(
            f"| {r['frames']} | {r['train_s']} | {r['predict_s']} | {r['predict_s_per_frame']} | "
            f"{r['tracks']} | {r['train_peak_rss_mib']} | {r['peak_rss_mib']} |"
        )
    if len(rows) >= 2:
        first, last = rows[0], rows[-1]
        print(
            f"\nratios {last['frames']} vs {first['frames']} frames: peak RSS "
            f"{last['peak_rss_mib'] / first['peak_rss_mib']:.2f}x (after training "
            f"{last['train_peak_rss_mib'] / first['train_peak_rss_mib']:.2f}x), time per frame "
            f"{last['predict_s_per_frame'] / first['predict_s_per_frame']:.2f}x"
        )


if __name__ == "__main__":
    main()
