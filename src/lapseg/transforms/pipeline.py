"""``augment_sample``: one random paired augmentation of an (image, target, weights) sample
(``augment_sample_with_maps``: with regression target maps too).

Geometry first (one coordinate map for all arrays, resampled once; see
:mod:`lapseg.transforms.geometric`), then intensity on the image only (see
:mod:`lapseg.transforms.intensity`). Interpolation: image and weight map linear, target nearest
neighbour (labels stay labels, binary stays binary). The weight map is interpolated linearly
because it is a smooth, non-negative field (linear interpolation keeps it within the range of
its neighbours, so it stays non-negative).

Where it runs: on the CPU, inside ``PatchDataset.__getitem__`` (so in DataLoader workers when
``train.num_workers > 0``). ``benchmarks/bench_augmentation.py`` measured it at tens to hundreds
of times the training throughput of the default model on a 2-core CPU, so no device-side
(batched) augmentation is needed; the resampling uses torch ``grid_sample`` on the CPU, which
was ~4x faster than ``scipy.ndimage.map_coordinates`` for the same coordinate map.
"""

from __future__ import annotations

from typing import cast

import numpy as np

from lapseg.config import AugmentationConfig, config_for_stage
from lapseg.transforms.geometric import apply_geometry, random_geometry
from lapseg.transforms.intensity import random_intensity

IMAGE_ORDER = 1
"""Interpolation order of image channels (linear)."""
TARGET_ORDER = 0
"""Interpolation order of targets and label images (nearest neighbour)."""
WEIGHTS_ORDER = 1
"""Interpolation order of pixel weight maps (linear)."""


def augment_sample(
    image: np.ndarray,
    target: np.ndarray,
    weights: np.ndarray | None,
    config: AugmentationConfig,
    *,
    rng: np.random.Generator | int | None = None,
    stage: int | None = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Augment one sample: the same geometry for every channel, the target and the weights.

    Parameters
    ----------
    image : (C, Y, X) ndarray of float32
        Channels may be the temporal frames of one sample: all get the same transform.
    target : (Y, X) ndarray of int
        Class indices or labels (nearest-neighbour interpolation: no new values appear).
    weights : (Y, X) ndarray of float or None
        Pixel weights (linear interpolation), or None.
    config : AugmentationConfig
    rng : numpy.random.Generator, int or None
        Source of randomness (``np.random.default_rng(rng)``).
    stage : int or None, optional
        Curriculum stage (0 = start of training, see
        :func:`lapseg.config.config_for_stage`); None enables every transform.

    Returns
    -------
    image : (C, Y, X) ndarray of float32
    target : (Y, X) ndarray, same dtype as ``target``
    weights : (Y, X) ndarray or None
        New arrays of the input shapes; the inputs are never modified. With every probability
        at 0 they equal the inputs bit for bit.

    Raises
    ------
    ValueError
        If the shapes do not match: a valid-padding network's target must be cut with the same
        context margin as the image and cropped after augmentation.
    """
    out_image, out_target, out_weights, _ = augment_sample_with_maps(
        image, target, weights, None, config, rng=rng, stage=stage
    )
    return out_image, out_target, out_weights


def augment_sample_with_maps(
    image: np.ndarray,
    target: np.ndarray,
    weights: np.ndarray | None,
    maps: np.ndarray | None,
    config: AugmentationConfig,
    *,
    rng: np.random.Generator | int | None = None,
    stage: int | None = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """:func:`augment_sample` with regression target maps: ``maps : (M, Y, X)`` float (or
    None) get the same geometry, interpolated linearly like the weights, and come back last.
    The random draws do not depend on ``maps``: with the same ``rng`` the other outputs equal
    :func:`augment_sample`'s."""
    image = np.asarray(image)
    target = np.asarray(target)
    if image.ndim != 3:
        raise ValueError(f"image must be (C, Y, X), got shape {image.shape}")
    if target.shape != image.shape[1:]:
        raise ValueError(f"target shape {target.shape} differs from image (Y, X) {image.shape[1:]}")
    if weights is not None and np.shape(weights) != target.shape:
        raise ValueError(f"weights shape {np.shape(weights)} differs from target {target.shape}")
    if maps is not None and (np.ndim(maps) != 3 or np.shape(maps)[1:] != target.shape):
        raise ValueError(f"maps shape {np.shape(maps)} is not (M, *{target.shape})")
    if not np.issubdtype(image.dtype, np.floating):
        raise ValueError(f"image must be floating point (normalised), got {image.dtype}")
    if not (np.issubdtype(target.dtype, np.integer) or target.dtype == bool):
        raise ValueError(f"target must hold integer labels, got {target.dtype}")
    rng = np.random.default_rng(rng)
    active = config_for_stage(config, stage)
    params = random_geometry((image.shape[1], image.shape[2]), active, rng)
    out_image, out_target, out_weights, out_maps = apply_geometry(
        (image, target, weights, maps),
        params,
        orders=(IMAGE_ORDER, TARGET_ORDER, WEIGHTS_ORDER, WEIGHTS_ORDER),
    )
    out_image = cast(np.ndarray, out_image).astype(np.float32, copy=False)
    out_image = random_intensity(out_image, active, rng)
    return out_image, cast(np.ndarray, out_target), out_weights, out_maps
