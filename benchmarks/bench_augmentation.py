"""Augmentation throughput beside MONAI transforms and the training throughput of the default model.

Run from the repository root (MONAI is the peer: ``pip install monai``, the ``bench`` extra)::

    .venv/bin/python benchmarks/bench_augmentation.py

Everything is measured in ONE process, single-process augmentation (no DataLoader workers), as
medians of interleaved rounds (``benchmarks/common.py``):

- samples/s of :func:`lapseg.transforms.pipeline.augment_sample` on a 1x256x256 float32 image and
  its int64 mask, for the ``default``, ``seed002`` (elastic on: stage 1), ``ronneberger2015`` and
  ``cryo-sem-004`` presets;
- the MONAI peers: a dictionary ``Compose`` equivalent to the default preset (flips, quarter
  turns, ``RandAffined`` rotation/scale, gamma, contrast, brightness) and ``Rand2DElasticd``
  (control-point elastic, MONAI's nearest equivalent of Simard's field);
- the warp step alone on the same coordinate map (elastic + rotation): scipy
  ``map_coordinates`` vs lapseg's ``warp`` (torch ``grid_sample`` per sample, the choice) vs
  a raw ``grid_sample`` batched by 8;
- training images/s of ``create_model("default")``, batch 8, 256x256, forward + backward + fused
  Adam, channels_last (as ``benchmarks/bench_training.py``).

Target: every lapseg preset >= 5x the training throughput.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import interleaved_medians, peak_rss_mib, print_machine_info
from lapseg.config import AUGMENTATION_PRESETS
from lapseg.models import create_model
from lapseg.transforms.geometric import GeometryParams, coordinate_map, elastic_displacement, warp
from lapseg.transforms.pipeline import augment_sample

SIZE = 256
BATCH = 8
PER_CALL = 16  # samples per timed call of an augmentation candidate


def make_sample(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A 1x256x256 float32 image of smooth blobs and its int64 mask."""
    noise = np.random.default_rng(seed).random((SIZE, SIZE))
    smooth = ndimage.gaussian_filter(noise, 4.0)
    image = ((smooth - smooth.mean()) / smooth.std()).astype(np.float32)[None]
    return image, (image[0] > 0.5).astype(np.int64)


def lapseg_candidate(preset: str, stage: int | None) -> Callable[[], None]:
    image, target = make_sample()
    config = AUGMENTATION_PRESETS[preset]
    rng = np.random.default_rng(0)

    def run() -> None:
        for _ in range(PER_CALL):
            augment_sample(image, target, None, config, rng=rng, stage=stage)

    return run


def monai_candidates() -> dict[str, Callable[[], None]]:
    try:
        import monai.transforms as mt
    except ImportError:
        print("# monai not installed: peers skipped (pip install monai)")
        return {}
    image, target = make_sample()
    keys = ["image", "label"]
    default = mt.Compose(
        [
            mt.RandFlipd(keys, prob=0.5, spatial_axis=0),
            mt.RandFlipd(keys, prob=0.5, spatial_axis=1),
            mt.RandRotate90d(keys, prob=0.75, max_k=3),
            mt.RandAffined(
                keys,
                prob=0.3,
                rotate_range=np.deg2rad(20.0),
                mode=("bilinear", "nearest"),
                padding_mode="reflection",
            ),
            mt.RandZoomd(keys, prob=0.3, min_zoom=0.9, max_zoom=1.1, mode=("bilinear", "nearest")),
            mt.RandAdjustContrastd(["image"], prob=0.3, gamma=(0.8, 1.25)),
            mt.RandScaleIntensityd(["image"], prob=0.3, factors=0.2),
            mt.RandShiftIntensityd(["image"], prob=0.3, offsets=0.1),
        ]
    )
    elastic = mt.Rand2DElasticd(
        keys,
        spacing=(16, 16),
        magnitude_range=(0.0, 2.0),
        prob=1.0,
        mode=("bilinear", "nearest"),
        padding_mode="reflection",
    )
    for transform in (default, elastic):
        transform.set_random_state(0)
    data = {"image": torch.from_numpy(image), "label": torch.from_numpy(target[None])}

    def runner(transform: Callable[[dict[str, torch.Tensor]], object]) -> Callable[[], None]:
        def run() -> None:
            for _ in range(PER_CALL):
                transform(data)

        return run

    return {"monai default-like": runner(default), "monai Rand2DElasticd": runner(elastic)}


def warp_candidates() -> dict[str, Callable[[], None]]:
    """The resampling step alone: scipy map_coordinates vs torch grid_sample, same coordinates."""
    image, target = make_sample()
    rng = np.random.default_rng(0)
    displacement = elastic_displacement((SIZE, SIZE), alpha=40.0, sigma=4.0, rng=rng)
    coords = coordinate_map((SIZE, SIZE), GeometryParams(angle=17.0, displacement=displacement))
    # grid_sample wants (x, y) in [-1, 1]; align_corners=True + reflection == scipy "mirror"
    grid = torch.from_numpy(
        np.stack([coords[1], coords[0]], axis=-1) * (2.0 / (SIZE - 1)) - 1.0
    ).float()[None]
    image_t = torch.from_numpy(image)[None]
    target_t = torch.from_numpy(target[None, None].astype(np.float32))
    image_b, target_b, grid_b = (t.repeat(BATCH, 1, 1, 1) for t in (image_t, target_t, grid))

    def scipy_warp() -> None:
        for _ in range(PER_CALL):
            ndimage.map_coordinates(image[0], coords, order=1, mode="mirror")
            ndimage.map_coordinates(target, coords, order=0, mode="mirror")

    def lapseg_warp() -> None:  # grid_sample, including the grid and dtype conversions
        for _ in range(PER_CALL):
            warp(image, coords, order=1)
            warp(target, coords, order=0)

    def torch_warp_batched() -> None:
        with torch.inference_mode():
            for _ in range(PER_CALL // BATCH):
                nn.functional.grid_sample(
                    image_b, grid_b, "bilinear", "reflection", align_corners=True
                )
                nn.functional.grid_sample(
                    target_b, grid_b, "nearest", "reflection", align_corners=True
                )

    ours = warp(image, coords, order=1)[0]  # same result as scipy up to float32 rounding
    theirs = ndimage.map_coordinates(image[0], coords, order=1, mode="mirror")
    print(f"# warp check: max |scipy - lapseg warp| = {np.abs(ours - theirs).max():.2e}")
    return {
        "warp: scipy map_coordinates": scipy_warp,
        "warp: lapseg (torch grid_sample)": lapseg_warp,
        f"warp: torch grid_sample x{BATCH}": torch_warp_batched,
    }


def training_candidate() -> Callable[[], None]:
    torch.manual_seed(0)
    model = create_model("default").to(memory_format=torch.channels_last).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
    x = torch.randn(BATCH, 1, SIZE, SIZE).to(memory_format=torch.channels_last)
    y = (torch.rand(BATCH, 1, SIZE, SIZE) > 0.5).float()

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        nn.functional.binary_cross_entropy_with_logits(model(x), y).backward()
        optimizer.step()

    step()  # warm-up
    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (>= 3)")
    args = parser.parse_args()
    start = time.perf_counter()
    print_machine_info()
    augmenters: dict[str, Callable[[], None]] = {
        "lapseg default": lapseg_candidate("default", None),
        "lapseg seed002 (elastic on)": lapseg_candidate("seed002", 1),
        "lapseg ronneberger2015": lapseg_candidate("ronneberger2015", None),
        "lapseg cryo-sem-004": lapseg_candidate("cryo-sem-004", None),
        **monai_candidates(),
        **warp_candidates(),
    }
    candidates = {**augmenters, "train default (batch 8)": training_candidate()}
    for fn in candidates.values():  # warm-up outside the timed rounds
        fn()
    med = interleaved_medians(candidates, rounds=args.rounds)
    train_rate = BATCH / med["train default (batch 8)"]
    print(f"\n## augmentation, 1x{SIZE}x{SIZE} float32 image + int64 mask, single process")
    print(f"{'candidate':<36} {'samples/s':>10} {'x training':>11}")
    for name in augmenters:
        rate = PER_CALL / med[name]
        print(f"{name:<36} {rate:>10.1f} {rate / train_rate:>10.1f}x")
    print(
        f"{'train default (batch 8)':<36} {train_rate:>10.2f}   images/s, fwd+bwd+fused Adam, "
        f"{torch.get_num_threads()} threads"
    )
    print(f"\n# peak RSS {peak_rss_mib():.0f} MiB, total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
