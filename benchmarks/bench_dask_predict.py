"""``lapseg predict`` over many files: one process vs a Dask cluster of 1 and 2 workers.

A folder of synthetic single-channel images (default 24 of 1024 x 1024) is predicted with the
``default`` U-Net preset (random weights seeded with 0, 3-class instance model, so each file
also gets its instance labels) and the run's default tiling (512 px tiles):

- single process: :func:`lapseg.inference.apply.predict_path`, torch with every core;
- Dask, N workers: :func:`lapseg.inference.distributed.predict_path_distributed` on a
  ``LocalCluster`` of N single-threaded worker processes started once (start-up time printed
  separately), torch threads per worker = cores // N, as ``--scheduler local:N`` sets them.
  One warm-up call loads the model on every worker before the timed rounds.

Times are medians of interleaved rounds in one process (see ``common.py``); every round writes
a fresh output folder. Run from the repository root on a quiet machine::

    .venv/bin/python benchmarks/bench_dask_predict.py [--images 24] [--size 1024] [--rounds 3]
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import tifffile
import torch

from common import interleaved_medians, print_machine_info
from lapseg.config import config_to_dict, load_config
from lapseg.data.normalization import NormalizationStats
from lapseg.data.synthetic import SyntheticConfig, synthetic_image
from lapseg.data.tasks import resolve_task
from lapseg.inference.apply import predict_path
from lapseg.inference.distributed import ModelSpec, predict_path_distributed
from lapseg.models.checkpoint import save_checkpoint
from lapseg.models.registry import create_model


def write_images(folder: Path, n: int, size: int) -> Path:
    """``n`` synthetic ``size`` x ``size`` uint16 images."""
    folder.mkdir(parents=True)
    cells = max(4, size * size // 4000)
    config = SyntheticConfig(shape=(size, size), n_cells=(cells, cells + 1))
    for i in range(n):
        image, _ = synthetic_image(config, rng=i)
        tifffile.imwrite(folder / f"img{i:03d}.tif", image)
    return folder


def write_checkpoint(path: Path) -> Path:
    """A checkpoint of the ``default`` preset (3-class instances), weights seeded with 0."""
    config, _ = resolve_task(load_config(None, ["data.task=instances"]), None)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = create_model(config.model)
    return save_checkpoint(
        path,
        {
            "config": config_to_dict(config),
            "model_state": model.state_dict(),
            "normalization": NormalizationStats("percentile").to_dict(),
            "threshold": 0.5,
            "object_area": None,
        },
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=24, help="number of files")
    parser.add_argument("--size", type=int, default=1024, help="image height and width")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (3+ for figures)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="cluster sizes")
    args = parser.parse_args()
    import distributed

    started = time.perf_counter()
    print_machine_info()
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="bench-dask-") as folder:
        work = Path(folder)
        inputs = write_images(work / "images", args.images, args.size)
        spec = ModelSpec((write_checkpoint(work / "model.pt"),))
        models = spec.load()
        print(
            f"# {args.images} images of {args.size} x {args.size}; model 'default' (instances), "
            f"tile {models[0].config.predict.tile_size}; {cores} cores"
        )
        outputs = iter(range(1_000_000))

        def fresh() -> Path:
            out = work / f"out{next(outputs)}"
            return out

        def timed(run: Callable[[Path], object]) -> Callable[[], None]:
            def call() -> None:
                out = fresh()
                run(out)
                shutil.rmtree(out)

            return call

        candidates: dict[str, Callable[[], None]] = {
            "single process": timed(lambda out: predict_path(models, inputs, out))
        }
        candidates["single process"]()  # warm-up, as for the workers
        clusters = []
        for n in args.workers:
            begin = time.perf_counter()
            cluster = distributed.LocalCluster(
                n_workers=n,
                threads_per_worker=1,
                processes=True,
                dashboard_address=":0",
                silence_logs=logging.ERROR,
            )
            with distributed.Client(cluster, set_as_default=False) as client:
                client.run(torch.set_num_threads, max(1, cores // n))
            address = cluster.scheduler_address

            def run(out: Path, address: str = address) -> object:
                return predict_path_distributed(models, inputs, out, spec=spec, scheduler=address)

            timed(run)()  # warm-up: every worker loads the model
            print(f"# {n} worker(s): cluster start and warm-up {time.perf_counter() - begin:.1f} s")
            clusters.append(cluster)
            candidates[f"dask, {n} worker(s)"] = timed(run)
        try:
            medians = interleaved_medians(candidates, rounds=max(1, args.rounds))
        finally:
            for cluster in clusters:
                cluster.close()
    single = medians["single process"]
    print(f"# medians of {max(1, args.rounds)} interleaved rounds")
    print("| run | seconds | images/s | vs single process |")
    print("| --- | --- | --- | --- |")
    for name, seconds in medians.items():
        print(f"| {name} | {seconds:.2f} | {args.images / seconds:.2f} | {single / seconds:.2f} |")
    print(f"# total benchmark time {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
