"""Synthetic ``(T, Z, Y, X)`` stacks of thin tubes, like seed 001's pancreas data, for tests.

:func:`synthetic_tube_stack` draws a few random straight tubes per plane (bright, on a darker
noisy background); :func:`write_tube_stacks` writes the layout ``lapseg`` reads with
``data.layout: sequences`` and ``data.axes: TZYX``: ``root/<name>.tif`` and the mask stack
``root/masks/<name>.tif``, both with their axes in the TIFF metadata.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile

from lapseg.io.files import atomic_output

__all__ = ["synthetic_tube_stack", "write_tube_stacks"]


def synthetic_tube_stack(
    shape: tuple[int, int, int, int],
    *,
    tubes: int = 2,
    width: float = 1.5,
    rng: np.random.Generator | int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """A ``(T, Z, Y, X)`` uint8 image stack and its 0/1 uint8 mask stack.

    Each plane holds ``tubes`` straight tubes of half-width ``width`` pixels at random angles
    (the foreground is a small fraction of the pixels, as in the seed); intensities are about
    60 (background) and 180 (tubes) with Gaussian noise of 15.
    """
    rng = np.random.default_rng(rng)
    n_t, n_z, n_y, n_x = shape
    yy, xx = np.mgrid[:n_y, :n_x].astype(np.float64)
    masks = np.zeros(shape, dtype=np.uint8)
    for t in range(n_t):
        for z in range(n_z):
            for _ in range(tubes):
                angle = rng.uniform(0, np.pi)
                cy, cx = rng.uniform(0, n_y), rng.uniform(0, n_x)
                distance = np.abs((yy - cy) * np.cos(angle) - (xx - cx) * np.sin(angle))
                masks[t, z] |= (distance < width).astype(np.uint8)
    noise = rng.normal(0.0, 15.0, shape)
    images = np.clip(60.0 + 120.0 * masks + noise, 0, 255).astype(np.uint8)
    return images, masks


def write_tube_stacks(
    root: str | Path,
    *,
    shape: tuple[int, int, int, int] = (4, 4, 24, 32),
    names: tuple[str, ...] = ("pancreas",),
    rng: np.random.Generator | int | None = None,
) -> Path:
    """Write ``root/<name>.tif`` and ``root/masks/<name>.tif`` (axes ``TZYX``) per name."""
    root = Path(root)
    rng = np.random.default_rng(rng)
    for name in names:
        images, masks = synthetic_tube_stack(shape, rng=rng)
        for path, array in (
            (root / f"{name}.tif", images),
            (root / "masks" / f"{name}.tif", masks),
        ):
            with atomic_output(path) as tmp:
                tifffile.imwrite(tmp, array, photometric="minisblack", metadata={"axes": "TZYX"})
    return root
