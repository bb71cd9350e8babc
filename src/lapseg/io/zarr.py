"""Images larger than memory: OME-Zarr stores and large TIFFs as lazy arrays.

:func:`read_ome_zarr` opens an OME-Zarr image (OME-NGFF 0.4 with Zarr v2, 0.5 with Zarr v3;
level 0 of the multiscale pyramid by default) as a :class:`LazyImage`: the Zarr array itself,
never loaded whole, with the axes of the NGFF metadata in lapseg's ``"TZCYX"`` vocabulary. A
plain Zarr array (no NGFF metadata) needs ``axes``, as any file whose axes lapseg cannot read.
:func:`open_lazy_tiff` opens a TIFF the same way (tifffile's Zarr interface, one chunk per tile or
strip; an uncompressed contiguous TIFF through a memory map opened per read) and
:func:`open_large_image` reads small TIFFs into memory and large ones lazily. A :class:`PlaneView`
presents one time point / z-slice of any of them as ``(C, Y, X)``: slicing it reads only that
region (what :func:`lapseg.inference.block_run.predict_blocks` needs).

A lapseg output still being written carries ``"lapseg": {"complete": false}``
(:mod:`lapseg.io.zarr_store`); :func:`read_ome_zarr` refuses it. Why lapseg writes its few NGFF
fields itself instead of depending on ``ome-zarr``: see :mod:`lapseg.io.zarr_store`.
"""

from __future__ import annotations

import mmap
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
import zarr

from lapseg.axes import AXES_VOCABULARY, validate_axes
from lapseg.errors import LapsegInputError

__all__ = [
    "DEFAULT_LAZY_FROM_BYTES",
    "LazyImage",
    "PlaneView",
    "node_attributes",
    "open_large_image",
    "open_lazy_tiff",
    "read_ome_zarr",
]

DEFAULT_LAZY_FROM_BYTES = 512 * 2**20
"""TIFF files from this size on are read lazily by :func:`open_large_image`."""

_UNIT_TO_MICROMETRE = {"micrometer": 1.0, "nanometer": 1e-3, "millimeter": 1e3, "meter": 1e6}
_TIFF_EXTENSIONS = (".tif", ".tiff")


def node_attributes(node: zarr.Array | zarr.Group) -> dict[str, Any]:
    """The attributes of a Zarr group or array as a plain dict (JSON values)."""
    return dict(node.attrs.asdict())


# --------------------------------------------------------------------------- lazy arrays


class PlaneView:
    """One time point / z-slice of a lazy array, seen as ``(C, Y, X)``.

    ``view[:, y0:y1, x0:x1]`` reads only that region of the underlying array and returns a
    ``(C, h, w)`` ndarray; a missing ``C`` axis reads as one channel. Only slices (step 1) are
    accepted, so every read keeps three dimensions.
    """

    ndim = 3

    def __init__(self, array: Any, axes: str, *, t: int = 0, z: int = 0) -> None:
        axes = validate_axes(axes, ndim=len(array.shape))
        sizes = dict(zip(axes, array.shape, strict=True))
        for letter, index in (("T", t), ("Z", z)):
            if not 0 <= index < sizes.get(letter, 1):
                raise LapsegInputError(
                    f"{letter.lower()}={index} is outside the image ({letter}={sizes.get(letter, 1)})"
                )
        self._array = array
        self._axes = axes
        self._fixed = {"T": t, "Z": z}
        self.shape: tuple[int, int, int] = (sizes.get("C", 1), sizes["Y"], sizes["X"])
        self.dtype = np.dtype(array.dtype)

    def __getitem__(self, key: Any) -> np.ndarray:
        key = key if isinstance(key, tuple) else (key,)
        if len(key) > 3 or not all(isinstance(k, slice) and k.step in (None, 1) for k in key):
            raise TypeError("a PlaneView takes up to three slices (C, Y, X) with step 1")
        wanted = dict(zip("CYX", key + (slice(None),) * (3 - len(key)), strict=True))
        index = tuple(self._fixed[a] if a in "TZ" else wanted[a] for a in self._axes)
        data = np.asarray(self._array[index])
        kept = "".join(a for a in self._axes if a in "CYX")
        data = np.transpose(data, [kept.index(a) for a in "CYX" if a in kept])
        if "C" not in kept:
            data = data[np.newaxis][wanted["C"]]
        return data


class _MappedTiff:
    """A contiguous, uncompressed TIFF series read through a memory map opened per read.

    The map is closed after each read, so the pages of one block leave the resident set before
    the next block is read (one long-lived map would keep every page read so far resident).
    """

    def __init__(self, path: Path, offset: int, shape: tuple[int, ...], dtype: np.dtype) -> None:
        self.path, self.offset, self.shape, self.dtype = path, offset, shape, np.dtype(dtype)
        self.ndim = len(shape)

    def __getitem__(self, key: Any) -> np.ndarray:
        with (
            open(self.path, "rb") as handle,
            mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped,
        ):
            view = np.ndarray(self.shape, self.dtype, buffer=mapped, offset=self.offset)
            region = np.array(view[key])
            del view  # the map closes only once no array uses it
        return region


@dataclass(frozen=True)
class LazyImage:
    """An image opened without reading its pixels.

    Attributes
    ----------
    array : array-like
        A Zarr array (or, for small or memory-mapped files, an ndarray-like) with numpy-style
        slicing; its dimensions are named by ``axes``.
    axes : str
        Axis letters from ``"TZCYX"``, e.g. ``"YX"``, ``"CYX"``, ``"TCYX"``, ``"ZYX"``.
    path : Path
    pixel_size : tuple of float or None
        ``(y, x)`` in micrometres when the metadata say so.
    """

    array: Any
    axes: str
    path: Path
    pixel_size: tuple[float, float] | None = None
    _close: Callable[[], None] | None = field(default=None, repr=False, compare=False)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(int(s) for s in self.array.shape)

    def plane(self, *, t: int = 0, z: int = 0) -> PlaneView:
        """The ``(C, Y, X)`` view of time point ``t`` and z-slice ``z``."""
        return PlaneView(self.array, self.axes, t=t, z=z)

    def close(self) -> None:
        """Release the file a lazy TIFF keeps open (nothing to do for Zarr stores)."""
        if self._close is not None:
            self._close()

    def __enter__(self) -> LazyImage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------- reading OME-Zarr


def _ngff_section(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """The NGFF metadata of a group: under ``"ome"`` (0.5) or at the top level (0.4)."""
    ome = attrs.get("ome")
    return dict(ome) if isinstance(ome, Mapping) else dict(attrs)


def _axes_from_ngff(multiscale: Mapping[str, Any], path: Path) -> str:
    entries = multiscale.get("axes")
    if entries is None:  # NGFF 0.1 / 0.2: always 5D t, c, z, y, x
        return "TCZYX"
    names = [str(e.get("name", "") if isinstance(e, Mapping) else e) for e in entries]
    letters = "".join(n.upper() for n in names)
    if any(len(n) != 1 for n in names) or not set(letters) <= set(AXES_VOCABULARY):
        raise LapsegInputError(
            f"NGFF axes {names} are not all among t, c, z, y, x; pass axes explicitly", path=path
        )
    return letters


def _pixel_size_from_ngff(
    multiscale: Mapping[str, Any], level: int, axes: str
) -> tuple[float, float] | None:
    """``(y, x)`` micrometres from the level's (and the multiscale's) scale, or None."""
    scale = np.ones(len(axes))
    for transforms in (
        multiscale["datasets"][level].get("coordinateTransformations", []),
        multiscale.get("coordinateTransformations", []),
    ):
        for transform in transforms:
            if transform.get("type") == "scale" and "scale" in transform:
                scale = scale * np.asarray(transform["scale"], dtype=float)
    entries = multiscale.get("axes") or []
    units = [e.get("unit") if isinstance(e, Mapping) else None for e in entries]
    factors = [_UNIT_TO_MICROMETRE.get(units[axes.index(a)] or "") for a in "YX"] if units else []
    if len(factors) != 2 or factors[0] is None or factors[1] is None:
        return None
    return float(scale[axes.index("Y")] * factors[0]), float(scale[axes.index("X")] * factors[1])


def _check_complete(attrs: Mapping[str, Any], path: Path, allow_incomplete: bool) -> None:
    marker = attrs.get("lapseg")
    if not allow_incomplete and isinstance(marker, Mapping) and marker.get("complete") is False:
        raise LapsegInputError(
            "this lapseg output is incomplete (its write was interrupted); rerun the same "
            "prediction to finish it",
            path=path,
        )


def read_ome_zarr(
    path: str | Path, *, axes: str | None = None, level: int = 0, allow_incomplete: bool = False
) -> LazyImage:
    """Open an OME-Zarr image (or a plain Zarr array) lazily.

    Parameters
    ----------
    path : str or Path
        An NGFF image group (``image.zarr``, ``out.zarr/labels/instances``), or a Zarr array.
    axes : str, optional
        Axis letters of the array; overrides the NGFF axes. Required for a store without NGFF
        metadata.
    level : int, optional
        Multiscale level (0 = full resolution).
    allow_incomplete : bool, optional
        Open a lapseg output whose write has not finished (default: an error).

    Returns
    -------
    LazyImage
        ``array`` is the Zarr array; slicing it reads only the chunks concerned.

    Raises
    ------
    LapsegInputError
        Missing or non-Zarr path, no NGFF metadata and no ``axes``, axes outside ``"TZCYX"``,
        a missing level, or an unfinished lapseg output.
    """
    path = Path(path)
    try:
        node = zarr.open(str(path), mode="r")
    except (FileNotFoundError, zarr.errors.NodeNotFoundError, ValueError) as exc:
        raise LapsegInputError(f"not a Zarr store ({exc})", path=path) from None
    attrs = node_attributes(node)
    _check_complete(attrs, path, allow_incomplete)
    pixel_size = None
    array: Any
    multiscales = _ngff_section(attrs).get("multiscales")
    if isinstance(node, zarr.Array):
        array = node
    elif multiscales:
        multiscale = multiscales[0]
        datasets = multiscale.get("datasets", [])
        if not 0 <= level < len(datasets):
            raise LapsegInputError(
                f"level {level} does not exist ({len(datasets)} level(s))", path=path
            )
        array = node[datasets[level]["path"]]
        file_axes = _axes_from_ngff(multiscale, path) if axes is None else None
        if file_axes is not None:
            pixel_size = _pixel_size_from_ngff(multiscale, level, file_axes)
            axes = file_axes
    else:
        arrays = sorted(name for name, _ in node.arrays())
        if axes is None or len(arrays) != 1:
            raise LapsegInputError(
                f"Zarr group without OME-NGFF metadata (arrays: {', '.join(arrays) or 'none'}); "
                "pass axes (e.g. 'CYX') and the path of one array",
                path=path,
            )
        array = node[arrays[0]]
    if axes is None:
        raise LapsegInputError(
            f"Zarr array of shape {array.shape} without OME-NGFF metadata; pass axes "
            "(e.g. 'YX' or 'CYX')",
            path=path,
        )
    try:
        axes = validate_axes(axes, ndim=array.ndim)
    except LapsegInputError as exc:
        raise LapsegInputError(f"{exc} (shape {array.shape})", path=path) from None
    return LazyImage(array=array, axes=axes, path=path, pixel_size=pixel_size)


# --------------------------------------------------------------------------- reading TIFF


def open_lazy_tiff(path: str | Path, *, axes: str | None = None) -> LazyImage:
    """Open the first series of a TIFF without reading its pixels.

    Tiled or strip-compressed files are read through tifffile's Zarr interface (one chunk per
    tile or strip); uncompressed contiguous files through a memory map. Close the result (or use
    it as a context manager) when done. Axes come from ``axes`` or the file (TIFF samples
    ``S`` are channels).
    """
    path = Path(path)
    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            shape, dtype, offset = tuple(series.shape), series.dtype, series.dataoffset
            file_axes = series.axes.upper().replace("S", "C")
        if offset is not None:
            array: Any = _MappedTiff(path, int(offset), shape, dtype)
            close = None
        else:
            store = tifffile.imread(path, aszarr=True, series=0, level=0)
            array, close = zarr.open(store, mode="r"), store.close
    except (OSError, ValueError, RuntimeError, KeyError, IndexError) as exc:
        raise LapsegInputError(
            f"cannot read TIFF ({type(exc).__name__}: {exc})", path=path
        ) from exc
    try:
        chosen = validate_axes(axes if axes is not None else file_axes, ndim=len(shape))
    except LapsegInputError as exc:
        if close is not None:
            close()
        hint = "" if axes is not None else f"; the file says {file_axes!r}: pass axes"
        raise LapsegInputError(f"{exc} (shape {shape}){hint}", path=path) from None
    return LazyImage(array=array, axes=chosen, path=path, _close=close)


def open_large_image(
    path: str | Path, *, axes: str | None = None, lazy_from_bytes: int = DEFAULT_LAZY_FROM_BYTES
) -> LazyImage:
    """Open an OME-Zarr store (always lazily) or a TIFF (lazily from ``lazy_from_bytes`` on).

    A smaller TIFF is read into memory (``array`` is then an ndarray). Close the result when done.
    """
    path = Path(path)
    if path.is_dir() or path.suffix.lower() == ".zarr":
        return read_ome_zarr(path, axes=axes)
    if path.suffix.lower() not in _TIFF_EXTENSIONS:
        raise LapsegInputError("large images must be OME-Zarr stores or TIFF files", path=path)
    if not path.is_file():
        raise LapsegInputError("file not found", path=path)
    lazy = open_lazy_tiff(path, axes=axes)
    if path.stat().st_size >= lazy_from_bytes:
        return lazy
    with lazy:
        array = np.asarray(lazy.array[...])
    return LazyImage(array=array, axes=lazy.axes, path=path)
