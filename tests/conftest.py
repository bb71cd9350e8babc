"""Shared fixtures: tiny synthetic datasets written to tmp folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch

from lapseg.data.synthetic import SyntheticConfig, synthetic_image

# Tests run tiny tensors: one thread avoids thread start-up costs that dominate them on 2 cores
# (the model suite runs 3.7x faster); benchmarks measure real speed with all threads.
torch.set_num_threads(1)

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

TINY_SYNTHETIC = SyntheticConfig(
    shape=(96, 96), n_cells=(3, 6), radius=(7.0, 12.0), n_debris=(1, 2)
)

TINY_TRAINING = [
    "model.base_features=8",
    "model.depth=2",
    "train.patch_size=[64, 64]",
    "train.patches_per_epoch=32",
    "train.batch_size=4",
    "train.tensorboard=false",
    "predict.tile_size=[64, 64]",
    "train.deterministic=true",
]
"""A small, deterministic model trained on 64 x 64 patches of the synthetic pairs (add
``train.epochs``)."""

SMALLEST_TRAINING = [
    "model.base_features=4",
    "model.depth=2",
    "train.patch_size=[48, 48]",
    "train.patches_per_epoch=8",
    "train.batch_size=4",
    "train.tensorboard=false",
    "predict.tile_size=[64, 64]",
    "train.deterministic=true",
]
"""The fastest deterministic run (2 steps of 4 patches of 48 x 48 per epoch; add
``train.epochs``): for tests of the run's mechanics, not of what it learns."""


def write_pairs(root: Path, n: int, *, seed: int, config: SyntheticConfig = TINY_SYNTHETIC) -> Path:
    """Write ``n`` synthetic image/mask pairs as root/images/*.tif, root/masks/*.tif."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        image, labels = synthetic_image(config, rng=rng)
        tifffile.imwrite(root / "images" / f"img{i}.tif", image)
        tifffile.imwrite(root / "masks" / f"img{i}.tif", labels.astype(np.uint16))
    return root


@pytest.fixture
def tiny_dataset(tmp_path: Path) -> Path:
    """Six 96x96 synthetic pairs."""
    return write_pairs(tmp_path / "data", 6, seed=0)


@pytest.fixture
def shared_data() -> Path:
    """The real datasets in ../shared/data, or a clean skip."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not available")
    return SHARED_DATA


@pytest.fixture(scope="session")
def instance_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A small instance model trained with no flags on 9 synthetic label images (about 10 s),
    and its data folder. Tests that use it should be marked slow."""
    from lapseg.config import load_config
    from lapseg.training.trainer import fit

    root = tmp_path_factory.mktemp("instance-run")
    data = write_pairs(root / "data", 9, seed=5)
    fit(load_config(None, [*TINY_TRAINING, "train.epochs=15"]), data, root / "run", progress=False)
    return root / "run", data
