"""Memory and time on long movies: a 2,000-frame movie against a 200-frame one.

    python benchmarks/bench_long_movies.py [--frames 200 2000] [--size 256] [--steps 48]
        [--cache-mib 1024]

For each length: write a synthetic movie (discs drifting and bouncing off the edges,
``images/movie.tif`` + ``masks/movie.tif`` with every frame annotated) and train the default
model for the same number of optimiser steps (``lapseg train``'s code path: ``fit``) in one
fresh subprocess, then predict every frame with tracking (``predict_path``) in another, as
``lapseg train`` and ``lapseg predict`` run (so each peak RSS belongs to that stage alone).
The target: peak RSS of each stage and time per predicted frame within 1.2x between the two
lengths (frames are read lazily and their memory-mapped pages released, samples cached in an
LRU bounded by ``--cache-mib``, predictions streamed to disk). Training's peak grows with the
movie until the cache bound: the cache fills with the distinct frames the patches touch.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from tempfile import TemporaryDirectory

import numpy as np
import tifffile

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import peak_rss_mib, print_machine_info


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


def train(n_frames: int, size: int, steps: int, workdir: Path, cache_mib: int = 1024) -> dict:
    """Write one movie and train on it in this process (``lapseg train``'s code path: ``fit``);
    seconds and peak RSS."""
    from lapseg.config import load_config
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
    return {
        "train_s": round(time.perf_counter() - started, 1),
        "train_peak_rss_mib": round(peak_rss_mib(), 1),
    }


def predict(n_frames: int, workdir: Path) -> dict:
    """Predict and track every frame of the movie :func:`train` wrote with the model it trained,
    in this process (``lapseg predict``'s code path: ``predict_path``); seconds and peak RSS."""
    from lapseg.inference.apply import predict_path
    from lapseg.inference.predict import load_model

    model = load_model(workdir / "run", device="cpu")
    started = time.perf_counter()
    summary = predict_path([model], workdir / "data" / "images" / "movie.tif", workdir / "pred")
    seconds = time.perf_counter() - started
    (movie,) = summary.movies
    return {
        "predict_s": round(seconds, 1),
        "predict_s_per_frame": round(seconds / n_frames, 4),
        "tracks": movie.n_tracks or 0,
        "predict_peak_rss_mib": round(peak_rss_mib(), 1),
    }


def measure(n_frames: int, size: int, steps: int, cache_mib: int = 1024) -> dict[str, float]:
    """Train, then predict, one movie of ``n_frames`` frames, each stage in a fresh process as
    ``lapseg train`` and ``lapseg predict`` run (peak RSS belongs to that stage alone)."""
    with TemporaryDirectory() as tmp:
        shared = ["--frames", str(n_frames), "--workdir", tmp]
        trained = _child(
            [
                "train",
                *shared,
                "--size",
                str(size),
                "--steps",
                str(steps),
                "--cache-mib",
                str(cache_mib),
            ]
        )
        predicted = _child(["predict", *shared])
    return {"frames": n_frames, "sample_cache_mib": cache_mib, **trained, **predicted}


def _child(argv: list[str]) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", *argv], capture_output=True, text=True
    )
    if out.returncode:
        raise RuntimeError(f"{argv[0]} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, nargs="+", default=[200, 2000])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=48)
    parser.add_argument(
        "--cache-mib", type=int, default=1024, help="train.sample_cache_mib (default 1024)"
    )
    parser.add_argument("--child", choices=["train", "predict"], help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "train":
        print(
            json.dumps(train(args.frames[0], args.size, args.steps, args.workdir, args.cache_mib))
        )
        return
    if args.child == "predict":
        print(json.dumps(predict(args.frames[0], args.workdir)))
        return
    print_machine_info()
    rows = []
    for n in args.frames:
        rows.append(measure(n, args.size, args.steps, args.cache_mib))
        print(json.dumps(rows[-1]), flush=True)
    print(
        f"\n# {args.size}x{args.size} frames, {args.steps} training steps, every frame predicted "
        f"and tracked, train.sample_cache_mib={args.cache_mib}; train and predict each in a fresh "
        "process"
    )
    print(
        "| frames | train s | peak RSS training MiB | predict s | predict s/frame | tracks "
        "| peak RSS predicting MiB |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(
            f"| {r['frames']} | {r['train_s']} | {r['train_peak_rss_mib']} | {r['predict_s']} | "
            f"{r['predict_s_per_frame']} | {r['tracks']} | {r['predict_peak_rss_mib']} |"
        )
    if len(rows) >= 2:
        first, last = rows[0], rows[-1]
        ratio = {
            k: last[k] / first[k]
            for k in ("train_peak_rss_mib", "predict_peak_rss_mib", "predict_s_per_frame")
        }
        print(
            f"\nratios {last['frames']} vs {first['frames']} frames: peak RSS training "
            f"{ratio['train_peak_rss_mib']:.2f}x, predicting {ratio['predict_peak_rss_mib']:.2f}x; "
            f"time per predicted frame {ratio['predict_s_per_frame']:.2f}x (target: each <= 1.2x)"
        )


if __name__ == "__main__":
    main()
