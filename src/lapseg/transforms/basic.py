"""Paired geometric augmentation: the same transform for image, target and weight map.

Superseded by :func:`lapseg.transforms.pipeline.augment_sample`; kept until the dataset switches.

The dihedral transforms (flips and 90-degree rotations) are exact on the pixel grid, so labels
stay labels. They operate on the last two axes of every array, so a ``(C, Y, X)`` image whose
channels are temporal frames gets the same transform for every frame.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from lapseg.transforms.geometric import dihedral_transform

if TYPE_CHECKING:  # the old config section; superseded by lapseg.transforms.config
    from lapseg.config import AugmentConfig

__all__ = ["augment_pair", "dihedral_transform", "random_dihedral_params"]


def random_dihedral_params(config: AugmentConfig, rng: np.random.Generator) -> dict[str, object]:
    """Draw the parameters of one paired dihedral transform allowed by ``config``."""
    return {
        "k_rot90": int(rng.integers(4)) if config.rot90 else 0,
        "flip_y": bool(rng.integers(2)) if config.flip else False,
        "flip_x": bool(rng.integers(2)) if config.flip else False,
    }


def augment_pair(
    arrays: tuple[np.ndarray | None, ...], config: AugmentConfig, rng: np.random.Generator
) -> tuple[np.ndarray | None, ...]:
    """Apply one random dihedral transform identically to every array (``None`` passes through).

    Parameters
    ----------
    arrays : tuple of (..., Y, X) ndarray or None
        E.g. ``(image (C, Y, X), target (Y, X), weights (Y, X) or None)``; square patches keep
        their shape under rotation, non-square ones swap Y and X.
    """
    params = random_dihedral_params(config, rng)
    return tuple(None if a is None else dihedral_transform(a, **params) for a in arrays)  # type: ignore[arg-type]
