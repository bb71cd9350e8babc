"""Paired geometric augmentation: the same transform for image, target and weight map.

The dihedral transforms (flips and 90-degree rotations) are exact on the pixel grid, so labels
stay labels. They operate on the last two axes of every array, so a ``(C, Y, X)`` image whose
channels are temporal frames gets the same transform for every frame.
"""

from __future__ import annotations

import numpy as np

from lapseg.config import AugmentConfig


def dihedral_transform(
    array: np.ndarray, *, k_rot90: int, flip_y: bool, flip_x: bool
) -> np.ndarray:
    """Apply flips then ``k_rot90`` quarter turns to the last two axes of ``array``.

    Parameters
    ----------
    array : (..., Y, X) ndarray
    k_rot90 : int
        Number of counter-clockwise quarter turns (0-3).
    flip_y, flip_x : bool
        Mirror along the rows / columns first.

    Returns
    -------
    out : (..., Y', X') ndarray
        A contiguous copy (``Y' = X``, ``X' = Y`` for odd ``k_rot90``).
    """
    out = array
    if flip_y:
        out = out[..., ::-1, :]
    if flip_x:
        out = out[..., :, ::-1]
    if k_rot90 % 4:
        out = np.rot90(out, k=k_rot90 % 4, axes=(-2, -1))
    return np.ascontiguousarray(out)


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
