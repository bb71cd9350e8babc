"""Write images, stacks and PNGs atomically (OME-TIFF with axes and pixel size).

Every writer is atomic (:func:`lapseg.io.files.atomic_output`): a crash never leaves a
half-written file. :mod:`lapseg.io.images` reads back what these write.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import tifffile

from lapseg.axes import AXES_VOCABULARY, validate_axes
from lapseg.errors import LapsegInputError
from lapseg.io.files import atomic_output

__all__ = ["write_png", "write_tiff", "write_tiff_stack"]

_TIFF_SUFFIXES = (".tif", ".tiff")


def _ome_metadata(
    axes: str, pixel_size: tuple[float, float] | None, path: Path
) -> dict[str, object]:
    metadata: dict[str, object] = {"axes": axes}
    if pixel_size is not None:
        y, x = (float(v) for v in pixel_size)
        if not (np.isfinite(y) and np.isfinite(x) and y > 0 and x > 0):
            raise LapsegInputError(f"pixel size must be positive, got {pixel_size}", path=path)
        metadata.update(
            PhysicalSizeY=y, PhysicalSizeYUnit="µm", PhysicalSizeX=x, PhysicalSizeXUnit="µm"
        )
    return metadata


def _check_tiff_path(path: Path) -> None:
    if path.suffix.lower() not in _TIFF_SUFFIXES:
        raise LapsegInputError("write_tiff needs a .tif or .tiff file name", path=path)


def write_tiff(
    path: str | Path,
    array: np.ndarray,
    *,
    axes: str = "YX",
    pixel_size: tuple[float, float] | None = None,
    compression: str | None = "zlib",
) -> Path:
    """Write an array as an OME-TIFF that :func:`lapseg.io.images.read_image` reads back with its axes.

    Parameters
    ----------
    path : str or Path
        Destination (``.tif`` or ``.tiff``).
    array : ndarray
        Data whose dimensions are named by ``axes``.
    axes : str
        Axis letters of ``array`` over ``"TZCYX"``. The data are stored in canonical order
        (T, Z, C before Y, X) as OME requires; reading returns the same values.
    pixel_size : tuple of float, optional
        ``(y, x)`` in micrometres, stored as OME PhysicalSizeY/X.
    compression : str or None
        tifffile compression name (``"zlib"``, ``"lzw"``, ``"zstd"``, ...) or None.

    Returns
    -------
    Path
        ``path``.
    """
    path = Path(path)
    _check_tiff_path(path)
    axes = validate_axes(axes, ndim=np.ndim(array))
    canonical = "".join(a for a in AXES_VOCABULARY if a in axes)
    data = np.ascontiguousarray(np.transpose(np.asarray(array), [axes.index(a) for a in canonical]))
    metadata = _ome_metadata(canonical, pixel_size, path)
    with atomic_output(path) as tmp:
        tifffile.imwrite(
            tmp,
            data,
            ome=True,
            photometric="minisblack",
            metadata=metadata,
            compression=compression,
        )
    return path


def write_tiff_stack(
    path: str | Path,
    frames: Iterable[np.ndarray],
    *,
    shape: tuple[int, ...],
    dtype: np.dtype | type,
    axes: str,
    pixel_size: tuple[float, float] | None = None,
    compression: str | None = "zlib",
) -> Path:
    """Write a stack frame by frame as an OME-TIFF (a movie is never held in memory).

    Parameters
    ----------
    path : str or Path
        Destination (``.tif``), written atomically.
    frames : iterable of ndarray
        The stack's leading-axis slices in order (e.g. ``(Y, X)`` frames of a ``TYX`` stack).
    shape, dtype
        Shape and dtype of the whole stack.
    axes : str
        Axes of the stack in canonical order (``"TYX"``, ``"TCYX"``, ``"ZYX"``).
    pixel_size, compression
        As in :func:`write_tiff`.
    """
    path = Path(path)
    _check_tiff_path(path)
    axes = validate_axes(axes, ndim=len(shape))
    metadata = _ome_metadata(axes, pixel_size, path)
    planes = (plane for frame in frames for plane in np.reshape(frame, (-1, *shape[-2:])))
    with atomic_output(path) as tmp, tifffile.TiffWriter(tmp, ome=True, bigtiff=True) as tif:
        tif.write(
            planes,  # tifffile writes (Y, X) pages
            shape=shape,
            dtype=dtype,
            photometric="minisblack",
            metadata=metadata,
            compression=compression,
        )
    return path


def write_png(path: str | Path, array: np.ndarray) -> Path:
    """Write a uint8 or uint16 array as PNG, atomically.

    Parameters
    ----------
    path : str or Path
        Destination (``.png``).
    array : (Y, X) or (Y, X, C) ndarray
        uint8 or uint16; ``C`` is 3 (RGB) or 4 (RGBA).

    Returns
    -------
    Path
        ``path``.
    """
    path = Path(path)
    array = np.asarray(array)
    if path.suffix.lower() != ".png":
        raise LapsegInputError("write_png needs a .png file name", path=path)
    if array.dtype not in (np.uint8, np.uint16):
        raise LapsegInputError(
            f"PNG holds uint8 or uint16 only, got {array.dtype}; convert first", path=path
        )
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[-1] in (3, 4))):
        raise LapsegInputError(
            f"PNG needs shape (Y, X) or (Y, X, 3|4), got {array.shape}", path=path
        )
    with atomic_output(path) as tmp:
        iio.imwrite(tmp, array)
    return path
