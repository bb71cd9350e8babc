"""Movies and stacks as prediction inputs: what a path holds, and its frames one at a time.

``lapseg predict --input PATH`` accepts, besides still images:

- a TIFF / OME-TIFF stack whose axes (from the file's metadata, or ``--axes``) contain ``T``
  (a movie) or ``Z`` (a z-stack, predicted slice by slice), with or without ``C``;
- a Cell Tracking Challenge dataset (``NN/tTTT.tif`` sequence folders) or one CTC sequence
  folder: each sequence is a movie and its results follow the CTC layout;
- a folder of frames (natural order) when asked to (``--movie``, or a model with temporal
  context), and the ``sequences`` training layout (``NAME/frames/*``).

A 3D file whose metadata does not name its axes (``IYX``, ``QYX``) is refused with a message
asking for ``--axes``: lapseg never guesses whether an axis is time, depth or channels. Frames
are read lazily (a memory map when the file allows it), so a movie of any length is never held
in memory.
"""

from __future__ import annotations

import itertools
import mmap
import re
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import tifffile

from lapseg.axes import to_canonical, validate_axes
from lapseg.errors import LapsegInputError
from lapseg.io.discovery import _image_files, natural_sort_key, output_stem
from lapseg.io.images import (
    TIFF_EXTENSIONS,
    ImageData,
    image_yx,
    is_image_file,
    read_image,
    tiff_pixel_size,
)

__all__ = ["Movie", "discover_movies", "is_ctc_dataset", "stack_axes"]

_CTC_FRAME = re.compile(r"^t(\d+)$")


@dataclass(frozen=True)
class Movie:
    """One movie (or z-stack) to predict frame by frame.

    Attributes
    ----------
    name : str
        Output name (the file stem, or the CTC sequence number ``"01"``).
    frame_names : tuple of str
        One name per frame (``"t000"``, ...).
    axis : {"T", "Z"}
        What the frames are: time points (tracked) or z-slices.
    stack : Path or None
        The file holding every frame, or None for one file per frame.
    stack_axes : str
        Axes of ``stack`` (e.g. ``"TYX"``, ``"TCYX"``), or of every frame file.
    frame_files : tuple of Path
        One file per frame (empty for a stack).
    ctc : bool
        A Cell Tracking Challenge sequence: results also in the CTC layout (``NN_RES``).
    pixel_size : (float, float) or None
        ``(y, x)`` micrometres, from the file's metadata.
    z_index : int or None
        For a ``(T, Z, ...)`` stack: the z-slice this movie over time is (one movie per slice,
        named ``<stem>/z00``, ``<stem>/z01``, ... as in training).
    """

    name: str
    frame_names: tuple[str, ...]
    axis: str = "T"
    stack: Path | None = None
    stack_axes: str = "TYX"
    frame_files: tuple[Path, ...] = ()
    ctc: bool = False
    pixel_size: tuple[float, float] | None = None
    z_index: int | None = None

    @property
    def n_frames(self) -> int:
        """Number of frames (time points or slices)."""
        return len(self.frame_names)

    def description(self) -> str:
        """How the input was read as a movie, for the run's log (gaps in CTC time points named).

        >>> Movie("01", ("t000", "t001", "t005"), frame_files=(Path("a"),) * 3, ctc=True).description()
        'CTC sequence t000..t005; time points missing (tracks link across them): 2..4'
        """
        if self.stack is not None:
            kind = "z-stack" if self.axis == "Z" else "movie"
            return f"{kind} {self.stack.name} ({self.stack_axes})"
        if not self.ctc:
            return f"folder of {self.n_frames} frame files in natural order"
        times = [int(name[1:]) for name in self.frame_names]
        missing = sorted(set(range(times[0], times[-1] + 1)) - set(times))
        text = f"CTC sequence {self.frame_names[0]}..{self.frame_names[-1]}"
        if missing:
            shown = _ranges(missing)
            text += f"; time points missing (tracks link across them): {shown}"
        return text

    def files(self) -> list[Path]:
        """Every input file of the movie (outputs must never overwrite them)."""
        return [self.stack] if self.stack is not None else list(self.frame_files)

    def check_frame_sizes(self) -> None:
        """Refuse a movie of frame files of different sizes (from the headers, before any work)."""
        if self.stack is not None:
            return
        first = image_yx(self.frame_files[0])
        for path in self.frame_files[1:]:
            if image_yx(path) != first:
                raise LapsegInputError(
                    f"frame size {image_yx(path)} differs from the movie's first frame {first}: "
                    "a movie's frames must have one size",
                    path=path,
                )

    def open(self) -> FrameReader:
        """A reader of the frames (keeps the stack file open; use as a context manager)."""
        return FrameReader(self)


def release_mapped_pages(array: np.ndarray) -> None:
    """Let the OS drop the resident pages of a read-only memory-mapped ``array`` (or a view of
    one) from this process; they are read from the file again when touched.

    Reading a long memory-mapped movie frame by frame otherwise keeps every page read in the
    process's resident memory (the 2,000-frame benchmark grew by the whole file, 262 MB). A
    no-op for arrays that are not memory-mapped and where ``madvise`` is missing (Windows).
    """
    base: object = array
    while isinstance(base, np.ndarray):  # views lead to the memmap, the memmap to its mapping
        mapping = getattr(base, "_mmap", None)
        base = mapping if isinstance(mapping, mmap.mmap) else base.base
    if isinstance(base, mmap.mmap) and hasattr(base, "madvise") and hasattr(mmap, "MADV_DONTNEED"):
        base.madvise(mmap.MADV_DONTNEED)


class FrameReader:
    """Reads one movie's frames on demand as ``(C, Y, X)`` arrays in the stored dtype.

    A stack is memory-mapped when its pixels are stored contiguously and uncompressed (the
    pages of each frame are released after it is copied, :func:`release_mapped_pages`); a
    compressed stack is read page by page (only the pages of the frame asked for).
    """

    def __init__(self, movie: Movie) -> None:
        self.movie = movie
        self._tif: tifffile.TiffFile | None = None
        self._memmap: np.ndarray | None = None
        if movie.stack is not None:
            try:
                self._memmap = to_canonical(
                    tifffile.memmap(movie.stack, mode="r"), movie.stack_axes
                )
            except (ValueError, OSError, RuntimeError):
                self._tif = tifffile.TiffFile(movie.stack)

    def __enter__(self) -> FrameReader:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the stack file."""
        if self._tif is not None:
            self._tif.close()
            self._tif = None
        self._memmap = None

    def frame(self, t: int) -> ImageData:
        """Frame ``t`` as ``(C, Y, X)`` in the stored dtype."""
        movie = self.movie
        if not 0 <= t < movie.n_frames:
            raise LapsegInputError(f"frame {t} is outside the movie's {movie.n_frames} frames")
        if movie.stack is None:
            axes = None if movie.stack_axes == "auto" else movie.stack_axes
            return read_image(movie.frame_files[t], axes=axes)
        if self._memmap is not None:
            volume = self._memmap
            z = movie.z_index or 0
            array = np.array(volume[t, z] if movie.axis == "T" else volume[0, t])
            release_mapped_pages(volume)
        else:
            array = self._read_pages(t)
        return ImageData(np.ascontiguousarray(array), movie.pixel_size, movie.stack)

    def _read_pages(self, t: int) -> np.ndarray:
        """Frame ``t`` of a compressed stack from its pages only."""
        if self._tif is None:
            raise ValueError("the stack file is closed")
        movie, series = self.movie, self._tif.series[0]
        page_ndim = len(series.keyframe.shape)
        lead_shape = tuple(int(n) for n in series.shape[: len(series.shape) - page_ndim])
        lead_axes = movie.stack_axes[: len(lead_shape)]
        fixed = {movie.axis: t}
        if movie.z_index is not None:
            fixed["Z"] = movie.z_index
        ranges = [
            range(fixed[a], fixed[a] + 1) if a in fixed else range(n)
            for a, n in zip(lead_axes, lead_shape, strict=True)
        ]
        keys = [
            int(np.ravel_multi_index(index, lead_shape)) for index in itertools.product(*ranges)
        ]
        pages = self._tif.asarray(key=keys, series=0)
        rest = tuple(n for a, n in zip(lead_axes, lead_shape, strict=True) if a not in fixed)
        axes = "".join(a for a in lead_axes if a not in fixed) + movie.stack_axes[len(lead_shape) :]
        return to_canonical(pages.reshape(rest + pages.shape[-page_ndim:]), axes)[0, 0]


def stack_axes(
    path: Path, axes: str | None = None
) -> tuple[str, tuple[int, ...], tuple[float, float] | None]:
    """The axes, shape and pixel size of a TIFF file, from ``axes`` or its metadata.

    Raises
    ------
    LapsegInputError
        The axes cannot be told (3 or more dimensions without axis metadata), or the given axes
        do not fit the shape.
    """
    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            shape = tuple(int(n) for n in series.shape)
            file_axes = series.axes.upper().replace("S", "C")
            image = tiff_pixel_size(tif, path)
    except (OSError, ValueError, RuntimeError, IndexError) as exc:
        raise LapsegInputError(
            f"cannot read TIFF ({type(exc).__name__}: {exc})", path=path
        ) from exc
    if axes is not None:
        try:
            return validate_axes(axes, ndim=len(shape)), shape, image
        except LapsegInputError as exc:
            raise LapsegInputError(f"{exc} (shape {shape})", path=path) from None
    known = len(set(file_axes)) == len(file_axes) and set(file_axes) <= set("TZCYX")
    if len(shape) == 2:
        return "YX", shape, image
    if not known or not {"Y", "X"} <= set(file_axes):
        raise LapsegInputError(
            f"the file does not say which axis is time, depth or channel (shape {shape}, "
            f"metadata axes {file_axes!r}); pass --axes, e.g. TYX for a movie, ZYX for a "
            "z-stack, CYX for channels",
            path=path,
        )
    return file_axes, shape, image


def _stack_movies(path: Path, axes: str | None) -> list[Movie]:
    """The movies (or z-stack) of a stack file; [] for a single 2D image.

    A ``(T, Z, ...)`` stack (a 3D movie) is one movie over time per z-slice, named
    ``<stem>/z00``, ``<stem>/z01``, ... (how training reads it): lapseg segments 2D frames.
    """
    chosen, shape, pixel_size = stack_axes(path, axes)
    sizes = dict(zip(chosen, shape, strict=True))
    axis = "T" if sizes.get("T", 1) > 1 else "Z" if sizes.get("Z", 1) > 1 else None
    if axis is None:
        return []
    n = sizes[axis]
    width = max(3, len(str(n - 1)))
    prefix = "t" if axis == "T" else "z"
    movie = Movie(
        name=output_stem(path),
        frame_names=tuple(f"{prefix}{i:0{width}d}" for i in range(n)),
        axis=axis,
        stack=path,
        stack_axes=chosen,
        pixel_size=pixel_size,
    )
    depth = sizes.get("Z", 1)
    if axis != "T" or depth == 1:
        return [movie]
    return [
        replace(movie, name=f"{movie.name}/z{z:0{max(2, len(str(depth - 1)))}d}", z_index=z)
        for z in range(depth)
    ]


def _ranges(values: list[int]) -> str:
    """``[2, 3, 4, 9]`` -> ``"2..4, 9"`` (at most 6 runs shown)."""
    runs: list[list[int]] = []
    for value in values:
        if runs and value == runs[-1][1] + 1:
            runs[-1][1] = value
        else:
            runs.append([value, value])
    parts = [str(a) if a == b else f"{a}..{b}" for a, b in runs[:6]]
    return ", ".join(parts) + (f" and {len(runs) - 6} more run(s)" if len(runs) > 6 else "")


def _frames_movie(folder: Path, files: list[Path], *, ctc: bool, name: str | None = None) -> Movie:
    stems = [output_stem(f) for f in files]
    if not files:
        raise LapsegInputError("no image files in the movie folder", path=folder)
    return Movie(
        name=name or folder.name,
        frame_names=tuple(stems),
        frame_files=tuple(files),
        stack_axes="auto",
        ctc=ctc,
    )


def _ctc_frames(folder: Path) -> list[Path]:
    """The ``tTTT.tif`` frames of a CTC sequence folder, in time order ([] if it is not one)."""
    frames = [
        (int(m.group(1)), f)
        for f in _image_files(folder)
        if (m := _CTC_FRAME.match(output_stem(f))) is not None
    ]
    return [f for _, f in sorted(frames)]


def is_ctc_dataset(path: Path) -> bool:
    """True for a folder holding CTC sequence folders (``01/t000.tif``, ...)."""
    return path.is_dir() and any(
        p.is_dir() and p.name.isdigit() and _ctc_frames(p) for p in path.iterdir()
    )


def discover_movies(
    path: str | Path, *, axes: str | None = None, as_movie: bool = False
) -> list[Movie]:
    """The movies and z-stacks at ``path`` ([] when it holds only still images).

    Parameters
    ----------
    path : str or Path
        A stack file, a CTC dataset or sequence folder, or a folder of images / stacks.
    axes : str, optional
        Axes of the stack files (``--axes``), e.g. ``"TYX"`` or ``"TCYX"``.
    as_movie : bool
        A folder of 2D images is one movie (frames in natural order) instead of still images.
    """
    path = Path(path)
    if not path.exists():
        raise LapsegInputError("input not found", path=path)
    if path.is_file():
        if path.suffix.lower() not in TIFF_EXTENSIONS:
            return []
        return _stack_movies(path, axes)
    if (path / "frames").is_dir():  # the "sequences" layout: NAME/frames/*
        return [_frames_movie(path, _image_files(path / "frames"), ctc=False, name=path.name)]
    sequence_folders = [p for p in sorted(path.iterdir()) if (p / "frames").is_dir()]
    if sequence_folders:
        return [
            _frames_movie(p, _image_files(p / "frames"), ctc=False, name=p.name)
            for p in sorted(sequence_folders, key=lambda p: natural_sort_key(p.name))
        ]
    if is_ctc_dataset(path):
        folders = sorted(
            (p for p in path.iterdir() if p.is_dir() and p.name.isdigit() and _ctc_frames(p)),
            key=lambda p: natural_sort_key(p.name),
        )
        return [_frames_movie(p, _ctc_frames(p), ctc=True) for p in folders]
    files = [f for f in _image_files(path) if is_image_file(f)]
    ctc_frames = _ctc_frames(path)
    if ctc_frames and len(ctc_frames) == len(files):
        return [_frames_movie(path, ctc_frames, ctc=True)]
    if as_movie:
        if not files:
            raise LapsegInputError("no image files in the movie folder", path=path)
        return [_frames_movie(path, files, ctc=False)]
    movies = []
    for file in files:
        if file.suffix.lower() in TIFF_EXTENSIONS:
            movies.extend(_stack_movies(file, axes))
    return movies
