"""One synthetic image from its ingredients, and a folder of image / mask pairs.

:func:`synthetic_sample` composes the pieces of :mod:`lapseg.data.synthetic.shapes` and
:mod:`lapseg.data.synthetic.render`; :func:`synthetic_image` returns ``(image, labels)`` and
:func:`write_synthetic_dataset` writes a folder of TIFF pairs through
:func:`atomic_dataset_folder`, which the time-lapse generator uses as well.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile
from scipy import ndimage as ndi

from lapseg.data.synthetic.config import SyntheticConfig
from lapseg.data.synthetic.render import (
    DEBRIS_LEVEL,
    add_noise,
    debris_map,
    illumination_field,
    render_cells,
    render_labels,
)
from lapseg.data.synthetic.shapes import Cell, place_cells
from lapseg.errors import LapsegInputError

__all__ = [
    "SyntheticSample",
    "atomic_dataset_folder",
    "synthetic_image",
    "synthetic_sample",
    "write_synthetic_dataset",
]

_DEFAULT_CONFIG = SyntheticConfig()  # frozen: one shared default instance is safe


@dataclass(frozen=True)
class SyntheticSample:
    """Everything behind one synthetic image, for tests and composed generators.

    Attributes
    ----------
    image : (Y, X) float32 ndarray
        Final image in [0, 1], before conversion to the configured dtype.
    labels : (Y, X) int32 ndarray
        Instance labels, 0 background.
    debris : (Y, X) float32 ndarray
        Debris opacity (0 where none).
    illumination : (Y, X) float32 ndarray
        Multiplicative illumination field.
    cells : tuple of Cell
    """

    image: np.ndarray
    labels: np.ndarray
    debris: np.ndarray
    illumination: np.ndarray
    cells: tuple[Cell, ...]


def synthetic_sample(
    config: SyntheticConfig = _DEFAULT_CONFIG, *, rng: np.random.Generator | int | None = None
) -> SyntheticSample:
    """Generate one image with all of its ingredients; see :func:`synthetic_image`."""
    rng = np.random.default_rng(rng)
    shape = config.shape
    n = int(rng.integers(config.n_cells[0], config.n_cells[1] + 1))
    cells = place_cells(
        shape, n=n, radius=config.radius, touching_fraction=config.touching_fraction, rng=rng
    )
    labels, outside = render_labels(cells, shape)
    present = np.zeros(len(cells) + 1, dtype=bool)
    present[labels] = True
    if not present[1:].all():  # hidden cells own no pixel: dropping them changes no pixel
        cells = [cell for cell, keep in zip(cells, present[1:], strict=True) if keep]
        labels, outside = render_labels(cells, shape)
    image = ndi.gaussian_filter(render_cells(cells, labels, outside, rng=rng), 1.0)
    n_debris = int(rng.integers(config.n_debris[0], config.n_debris[1] + 1))
    debris = debris_map(shape, n=n_debris, exclude=labels > 0, rng=rng)
    image = image * (1.0 - debris) + DEBRIS_LEVEL * debris
    field = illumination_field(shape, strength=config.illumination_strength, rng=rng)
    image = add_noise(
        image * field / (1.0 + config.illumination_strength), std=config.noise_std, rng=rng
    )
    return SyntheticSample(image, labels, debris, field, tuple(cells))


def synthetic_image(
    config: SyntheticConfig = _DEFAULT_CONFIG, *, rng: np.random.Generator | int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Generate one synthetic microscopy image and its instance labels.

    Bright textured cells with a darker nucleus and a faint halo, some touching, on a background
    with small dark debris (not labelled), uneven illumination, mild blur and noise.

    Parameters
    ----------
    config : SyntheticConfig
    rng : Generator, int or None
        Seed or generator; the same seed gives the same arrays.

    Returns
    -------
    image : (Y, X) ndarray
        ``config.dtype``: uint16 / uint8 use the full range, float32 lies in [0, 1].
    labels : (Y, X) int32 ndarray
        0 background, 1..n cells; touching cells have distinct labels and share a boundary.
    """
    sample = synthetic_sample(config, rng=rng)
    return _to_dtype(sample.image, config.dtype), sample.labels


def _to_dtype(image: np.ndarray, dtype: str) -> np.ndarray:
    if dtype == "float32":
        return image.astype(np.float32)
    top = np.iinfo(dtype).max
    return np.round(np.clip(image, 0.0, 1.0) * top).astype(dtype)


def _sample_names(n_images: int) -> list[str]:
    """``synth_000``, ``synth_001``, ...: zero-padded so that plain and natural sort agree."""
    width = max(3, len(str(n_images - 1)))
    return [f"synth_{i:0{width}d}" for i in range(n_images)]


@contextlib.contextmanager
def atomic_dataset_folder(root: Path) -> Iterator[Path]:
    """Yield an empty sibling folder ``<root>.tmp-<pid>`` to write into; rename it to ``root``.

    An interrupted run never leaves a half-written dataset: on any exception (Ctrl-C included)
    the temporary folder is removed and ``root`` is left as it was.

    Parameters
    ----------
    root : Path
        The dataset folder to create; must not exist or be empty. Its parents are created.

    Yields
    ------
    tmp : Path
        Where to write the dataset's files.

    Raises
    ------
    LapsegInputError
        If ``root`` exists and is not an empty folder.
    """
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise LapsegInputError("exists and is not empty; choose a new folder", path=root)
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = root.with_name(f"{root.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir()
        yield tmp
        if root.exists():
            root.rmdir()
        os.replace(tmp, root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_synthetic_dataset(
    root: str | os.PathLike[str],
    *,
    n_images: int,
    config: SyntheticConfig = _DEFAULT_CONFIG,
    rng: np.random.Generator | int | None = None,
) -> list[str]:
    """Write ``root/images/synth_000.tif`` and ``root/masks/synth_000.tif`` (uint16 labels).

    Files are written into a sibling ``<root>.tmp-<pid>`` folder that is renamed to ``root``
    at the end, so an interrupted run never leaves a half-written dataset.

    Parameters
    ----------
    root : path
        Dataset folder; must not exist or be empty.
    n_images : int
        Number of image / mask pairs, >= 1.
    config : SyntheticConfig
    rng : Generator, int or None

    Returns
    -------
    names : list of str
        Sample names (file stems) in natural order, e.g. ``["synth_000", "synth_001"]``.

    Raises
    ------
    LapsegInputError
        If ``root`` exists and is not an empty folder, or ``n_images`` is not a positive int.
    """
    root = Path(root)
    if isinstance(n_images, bool) or not isinstance(n_images, int | np.integer) or n_images < 1:
        raise LapsegInputError(f"n_images must be a positive integer, got {n_images!r}", path=root)
    rng = np.random.default_rng(rng)
    names = _sample_names(n_images)
    with atomic_dataset_folder(root) as tmp:
        (tmp / "images").mkdir()
        (tmp / "masks").mkdir()
        for name in names:
            image, labels = synthetic_image(config, rng=rng)
            tifffile.imwrite(tmp / "images" / f"{name}.tif", image)
            tifffile.imwrite(tmp / "masks" / f"{name}.tif", labels.astype(np.uint16))
    return names
