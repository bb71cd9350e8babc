"""A PNG grid of augmented training samples with their mask outline (``lapseg augment-preview``)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from lapseg.config import AugmentationConfig, LapsegConfig
from lapseg.io.images import write_png
from lapseg.report.plots import overlay_rgb
from lapseg.transforms.pipeline import augment_sample

GAP = 4
"""White pixels between tiles of the grid."""


class SampleLike(Protocol):
    """Anything with ``image (C, Y, X)`` and ``target (Y, X)`` (e.g. ``lapseg.data.Sample``)."""

    @property
    def image(self) -> np.ndarray: ...

    @property
    def target(self) -> np.ndarray: ...


def _random_window(
    shape: tuple[int, int], size: tuple[int, int] | None, rng: np.random.Generator
) -> tuple[slice, slice]:
    if size is None:
        return slice(None), slice(None)
    y0 = int(rng.integers(0, max(shape[0] - size[0], 0) + 1))
    x0 = int(rng.integers(0, max(shape[1] - size[1], 0) + 1))
    return slice(y0, y0 + size[0]), slice(x0, x0 + size[1])


def augmented_tiles(
    samples: Sequence[SampleLike],
    config: AugmentationConfig,
    *,
    n: int = 16,
    patch_size: tuple[int, int] | None = None,
    stage: int | None = None,
    rng: np.random.Generator | int | None = None,
) -> list[np.ndarray]:
    """``n`` augmented samples drawn at random, each as an RGB overlay ``(Y, X, 3)`` uint8.

    The middle channel of each image is shown (the current frame of a temporal stack) with the
    target's outline in yellow. ``patch_size`` cuts a random window first (as in training);
    ``stage`` selects the curriculum stage (None: every transform, i.e. the final stage).
    """
    if not samples:
        raise ValueError("no samples to preview")
    if n < 1:
        raise ValueError(f"n={n} must be >= 1")
    rng = np.random.default_rng(rng)
    tiles = []
    for _ in range(n):
        sample = samples[int(rng.integers(len(samples)))]
        wy, wx = _random_window(sample.target.shape, patch_size, rng)
        image, target, _ = augment_sample(
            np.asarray(sample.image[:, wy, wx], dtype=np.float32),
            sample.target[wy, wx],
            None,
            config,
            rng=rng,
            stage=stage,
        )
        blank = np.zeros(target.shape, dtype=np.uint8)
        tiles.append(overlay_rgb(image[image.shape[0] // 2], target, blank))
    return tiles


def tile_grid(tiles: Sequence[np.ndarray], *, columns: int | None = None) -> np.ndarray:
    """Arrange RGB tiles (any sizes) in a white grid, row by row.

    Returns
    -------
    grid : (H, W, 3) ndarray of uint8
    """
    columns = columns or math.ceil(math.sqrt(len(tiles)))
    rows = math.ceil(len(tiles) / columns)
    cell_y = max(t.shape[0] for t in tiles)
    cell_x = max(t.shape[1] for t in tiles)
    grid = np.full(
        (rows * cell_y + (rows + 1) * GAP, columns * cell_x + (columns + 1) * GAP, 3),
        255,
        dtype=np.uint8,
    )
    for i, tile in enumerate(tiles):
        r, c = divmod(i, columns)
        y0, x0 = GAP + r * (cell_y + GAP), GAP + c * (cell_x + GAP)
        grid[y0 : y0 + tile.shape[0], x0 : x0 + tile.shape[1]] = tile
    return grid


def write_augmentation_preview(
    samples: Sequence[SampleLike],
    config: AugmentationConfig,
    path: str | Path,
    *,
    n: int = 16,
    patch_size: tuple[int, int] | None = None,
    stage: int | None = None,
    rng: np.random.Generator | int | None = None,
) -> Path:
    """Write a PNG grid of ``n`` augmented samples with the mask outline drawn on each.

    Parameters
    ----------
    samples : sequence of Sample-like
        Objects with ``image (C, Y, X)`` (normalised float) and ``target (Y, X)``.
    config : AugmentationConfig
    path : str or Path
        Output ``.png`` file (written atomically).
    n : int, optional
        Number of tiles.
    patch_size : (Y, X), optional
        Cut a random training-size window before augmenting (default: whole images).
    stage : int or None, optional
        Curriculum stage to show (None: every transform enabled).
    rng : numpy.random.Generator, int or None

    Returns
    -------
    path : Path
    """
    tiles = augmented_tiles(samples, config, n=n, patch_size=patch_size, stage=stage, rng=rng)
    return write_png(path, tile_grid(tiles))


def preview_dataset_augmentation(
    config: LapsegConfig,
    data_root: str | Path,
    path: str | Path,
    *,
    n: int = 16,
    stage: int | None = None,
    rng: np.random.Generator | int | None = None,
) -> Path:
    """:func:`write_augmentation_preview` of the training split of a dataset, as the run with
    ``config`` would prepare it."""
    from lapseg.data.setup import prepare_run_data

    run_data = prepare_run_data(config, data_root)
    return write_augmentation_preview(
        run_data.train,
        config.augment,
        path,
        n=n,
        patch_size=config.train.patch_size,
        stage=stage,
        rng=rng,
    )
