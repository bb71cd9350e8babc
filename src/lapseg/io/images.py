"""Read and write 2D microscopy images and masks.

Images come back as ``(C, Y, X)`` arrays in the dtype stored in the file; masks as ``(Y, X)``
integer arrays. Which axis is the channel is never guessed: it comes from the ``axes`` argument,
from the file's own metadata (OME, ImageJ, tifffile's shaped description, TIFF samples per pixel)
or from the format's definition (a 2D array is ``"YX"``; a 3D PNG/JPEG/BMP is ``"YXC"``).
Anything else raises :class:`~lapseg.errors.LapsegInputError` asking for ``axes``.

Reading refuses what no command can use, before it spreads: floating-point pixels that are NaN
or infinite, and headers declaring more pixels than the file holds (uncompressed TIFF) or than the
machine's memory, checked before anything is allocated (docs/reliability.md).

Every writer is atomic (:func:`lapseg.io.files.atomic_output`): a crash never leaves a
half-written file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import tifffile
from PIL import Image

from lapseg.axes import AXES_VOCABULARY, to_cyx, validate_axes
from lapseg.errors import LapsegInputError
from lapseg.io.image_writers import write_png, write_tiff, write_tiff_stack
from lapseg.io.pixel_size import tiff_pixel_size

__all__ = [  # the writers live in lapseg.io.image_writers, the pixel size in lapseg.io.pixel_size
    "IMAGE_EXTENSIONS",
    "TIFF_EXTENSIONS",
    "ImageData",
    "image_yx",
    "is_image_file",
    "memory_bytes",
    "read_image",
    "read_mask",
    "tiff_pixel_size",
    "write_png",
    "write_tiff",
    "write_tiff_stack",
]

IMAGE_EXTENSIONS: tuple[str, ...] = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".bmp")
"""Supported file extensions (compared case-insensitively)."""

TIFF_EXTENSIONS: tuple[str, ...] = (".tif", ".tiff")


@dataclass(frozen=True)
class ImageData:
    """An image read from disk.

    Attributes
    ----------
    array : (C, Y, X) ndarray
        Pixel data in the dtype stored in the file.
    pixel_size : tuple of float or None
        ``(y, x)`` pixel size in micrometres, or None when the file does not say.
    path : Path
        The file the image was read from.
    """

    array: np.ndarray
    pixel_size: tuple[float, float] | None
    path: Path


def is_image_file(path: str | Path) -> bool:
    """Return True if ``path`` has a supported image extension (case-insensitive)."""
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def _check_readable(path: Path) -> None:
    if not path.exists():
        raise LapsegInputError("file not found", path=path)
    if not path.is_file():
        raise LapsegInputError("not a file", path=path)
    if not is_image_file(path):
        raise LapsegInputError(
            f"unsupported extension {path.suffix!r}; use one of {', '.join(IMAGE_EXTENSIONS)}",
            path=path,
        )


def memory_bytes() -> int | None:
    """The machine's physical memory in bytes, or None where the system does not say."""
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return None


def _check_declared_size(series: tifffile.TiffPageSeries, path: Path) -> None:
    """Refuse a TIFF whose header declares more pixels than could be read, before allocating.

    Uncompressed pixels must be in the file (a header claiming more is corrupt or hostile); no
    image larger than the machine's memory can be read whole (``lapseg predict-large`` reads
    huge images block by block).
    """
    declared = int(np.prod(series.shape, dtype=np.float64)) * np.dtype(series.dtype).itemsize
    shape = " x ".join(str(n) for n in series.shape)
    keyframe = series.keyframe
    uncompressed = keyframe is not None and keyframe.compression == 1
    size = path.stat().st_size
    if uncompressed and declared > size:
        raise LapsegInputError(
            f"the TIFF header declares {shape} pixels ({declared:,} bytes) but the file holds "
            f"{size:,} bytes: truncated or corrupt",
            path=path,
        )
    memory = memory_bytes()
    if memory is not None and declared > memory:
        raise LapsegInputError(
            f"the TIFF header declares {shape} pixels ({declared / 2**30:,.1f} GiB), more than "
            f"this machine's memory ({memory / 2**30:,.1f} GiB); lapseg predict-large reads "
            "images larger than memory block by block",
            path=path,
        )


def _read_tiff(path: Path) -> tuple[np.ndarray, str | None, tuple[float, float] | None]:
    with tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        _check_declared_size(series, path)
        array = series.asarray()
        axes: str | None = series.axes
        pixel_size = tiff_pixel_size(tif, path)
    if axes is not None:
        axes = axes.upper().replace("S", "C")  # TIFF samples per pixel are channels
    return array, axes, pixel_size


def _read_raw(
    path: Path, *, palette_indices: bool = False
) -> tuple[np.ndarray, str | None, tuple[float, float] | None]:
    """Read pixels, the axes implied by the file (None if unknown) and the pixel size.

    With ``palette_indices`` a palette PNG/BMP gives its indices (labels) instead of colours.
    """
    suffix = path.suffix.lower()
    try:
        if suffix in TIFF_EXTENSIONS:
            array, axes, pixel_size = _read_tiff(path)
        else:
            # Pillow reads PNG (8/16-bit), JPEG and BMP; passing bytes keeps no file open.
            data = path.read_bytes()
            mode = None
            if palette_indices and iio.immeta(data, plugin="pillow").get("mode") == "P":
                mode = "P"
            array = np.asarray(iio.imread(data, plugin="pillow", mode=mode))
            pixel_size = None
            if array.ndim == 2:
                axes = "YX"
            elif array.ndim == 3 and array.shape[-1] in (3, 4):
                # PNG/JPEG/BMP store colour samples last; an alpha channel is dropped.
                array = array[..., :3]
                axes = "YXC"
            else:
                axes = None
    except LapsegInputError:
        raise
    except Image.DecompressionBombError as exc:  # Pillow's limit on declared pixels
        raise LapsegInputError(f"image refused before decoding: {exc}", path=path) from None
    except MemoryError:
        raise LapsegInputError(
            "the image does not fit in memory; lapseg predict-large reads images larger than "
            "memory block by block",
            path=path,
        ) from None
    except (OSError, ValueError, RuntimeError, KeyError, IndexError, TypeError) as exc:
        # tifffile.TiffFileError and imagecodecs errors derive from ValueError/RuntimeError;
        # imageio wraps Pillow's errors (its refusal of absurd sizes) in an OSError.
        if isinstance(exc.__cause__, Image.DecompressionBombError):
            raise LapsegInputError(
                f"image refused before decoding: {exc.__cause__}", path=path
            ) from None
        raise LapsegInputError(
            f"cannot read image ({type(exc).__name__}: {exc})", path=path
        ) from exc
    if array.size == 0:
        raise LapsegInputError(f"image is empty (shape {array.shape})", path=path)
    _check_finite(array, path)
    return array, axes, pixel_size


def _check_finite(array: np.ndarray, path: Path) -> None:
    """Refuse floating-point pixels that are NaN or infinite (min and max: two passes, no copy).

    They would make the normalisation, the loss and every prediction NaN without a word.
    """
    if not np.issubdtype(array.dtype, np.floating):
        return
    low, high = array.min(), array.max()
    if np.isfinite(low) and np.isfinite(high):
        return
    bad = int(np.count_nonzero(~np.isfinite(array)))
    raise LapsegInputError(
        f"image has {bad} NaN or infinite pixel value(s) of {array.size}; replace them (e.g. "
        "numpy.nan_to_num) or mask them out before using the file",
        path=path,
    )


def _is_valid_axes(axes: str, ndim: int) -> bool:
    return (
        len(axes) == ndim
        and len(set(axes)) == ndim
        and all(letter in AXES_VOCABULARY for letter in axes)
        and "Y" in axes
        and "X" in axes
    )


def _read_image(
    path: str | Path, *, axes: str | None = None, palette_indices: bool = False
) -> ImageData:
    """:func:`read_image`; ``palette_indices`` reads palette PNG/BMP as indices (masks)."""
    path = Path(path)
    _check_readable(path)
    array, file_axes, pixel_size = _read_raw(path, palette_indices=palette_indices)
    if axes is not None:
        try:
            chosen = validate_axes(axes, ndim=array.ndim)
        except LapsegInputError as exc:
            raise LapsegInputError(f"{exc} (shape {array.shape})", path=path) from exc
    elif file_axes is not None and _is_valid_axes(file_axes, array.ndim):
        chosen = file_axes
    elif array.ndim == 2:
        chosen = "YX"
    elif file_axes is not None:
        raise LapsegInputError(
            f"the file's metadata gives axes {file_axes!r} for shape {array.shape}, which lapseg "
            "cannot interpret; pass axes explicitly (e.g. 'CYX' or 'YXC')",
            path=path,
        )
    else:
        raise LapsegInputError(
            f"image has shape {array.shape} and the file does not say which axis is which; "
            "pass axes (e.g. 'CYX' or 'YXC')",
            path=path,
        )
    try:
        cyx = to_cyx(array, chosen)
    except LapsegInputError as exc:
        raise LapsegInputError(str(exc), path=path) from exc
    return ImageData(array=np.ascontiguousarray(cyx), pixel_size=pixel_size, path=path)


def image_yx(path: str | Path) -> tuple[int, int]:
    """The ``(Y, X)`` size of a 2D image file from its header (the pixels are not decoded)."""
    path = Path(path)
    _check_readable(path)
    try:
        if path.suffix.lower() in TIFF_EXTENSIONS:
            with tifffile.TiffFile(path) as tif:
                series = tif.series[0]
                axes = series.axes.upper()
                shape = dict(zip(axes, series.shape, strict=True))
                return int(shape["Y"]), int(shape["X"])
        properties = iio.improps(path)
        return int(properties.shape[0]), int(properties.shape[1])
    except (OSError, ValueError, RuntimeError, KeyError, IndexError) as exc:
        raise LapsegInputError(
            f"cannot read image ({type(exc).__name__}: {exc})", path=path
        ) from exc


def read_image(path: str | Path, *, axes: str | None = None) -> ImageData:
    """Read a 2D image file as ``(C, Y, X)``.

    Parameters
    ----------
    path : str or Path
        A TIFF (uncompressed, LZW, zlib/deflate, ...; 8/16/32-bit integer or float), PNG, JPEG
        or BMP file.
    axes : str, optional
        Axis letters of the stored array (e.g. ``"YX"``, ``"CYX"``, ``"YXC"``). Overrides the
        file's metadata. Required when the file does not define its axes.

    Returns
    -------
    ImageData
        ``array`` of shape ``(C, Y, X)`` in the stored dtype. For PNG/JPEG/BMP colour images the
        alpha channel of RGBA data is dropped (3 channels remain); palette images are read as
        their colours.

    Raises
    ------
    LapsegInputError
        Missing file, unsupported extension, unreadable or corrupt file, empty image, NaN or
        infinite pixels, a header declaring an absurd size, or axes that are unknown,
        inconsistent with the array, or name more than one time point or z-slice.
    """
    return _read_image(path, axes=axes)


def read_mask(path: str | Path) -> np.ndarray:
    """Read a label/mask image as a ``(Y, X)`` integer array.

    Parameters
    ----------
    path : str or Path
        Any supported image file holding one channel, or RGB(A) whose colour channels are equal.
        Palette PNG/BMP files give their palette indices.

    Returns
    -------
    mask : (Y, X) ndarray
        uint8, uint16 and int32 are kept; bool becomes uint8; other integer types and floats
        holding whole numbers become int32.

    Raises
    ------
    LapsegInputError
        For everything :func:`read_image` rejects, colour masks whose channels differ,
        negative or fractional values, or labels that do not fit in int32.
    """
    path = Path(path)
    image = _read_image(path, palette_indices=True).array
    if image.shape[0] > 1:
        colour = image[:3] if image.shape[0] in (3, 4) else image
        if not all(np.array_equal(colour[0], c) for c in colour[1:]):
            raise LapsegInputError(
                f"mask has colour channels that differ ({image.shape[0]} channels); "
                "save masks as one channel of integer labels",
                path=path,
            )
    mask = image[0]
    if mask.dtype == np.bool_:
        return mask.astype(np.uint8)
    if mask.dtype in (np.uint8, np.uint16, np.int32):
        if mask.dtype == np.int32 and mask.min() < 0:
            raise LapsegInputError("mask has negative labels", path=path)
        return mask
    if np.issubdtype(mask.dtype, np.floating):
        if not np.all(np.isfinite(mask)):
            raise LapsegInputError("mask has NaN or infinite values", path=path)
        if not np.array_equal(mask, np.round(mask)):
            raise LapsegInputError(
                "mask has fractional values; masks must hold integer labels", path=path
            )
    elif not np.issubdtype(mask.dtype, np.integer):
        raise LapsegInputError(f"mask has unsupported dtype {mask.dtype}", path=path)
    if mask.min() < 0:
        raise LapsegInputError("mask has negative labels", path=path)
    if mask.max() > np.iinfo(np.int32).max:
        raise LapsegInputError(f"mask label {mask.max()} does not fit in int32", path=path)
    return mask.astype(np.int32)
