"""One time-lapse sequence on disk (:class:`SequenceSource`) and reading its frames.

:func:`lapseg.io.sequences.discover_sequences` finds the sequences of a dataset; this module
reads them: one frame at a time (:func:`frame_reader`, :func:`read_frame`,
:func:`read_frame_mask`) or a whole sequence (:func:`read_frames`). Frames are ``(Y, X)``
float32; a memory-mapped stack's pages are released after each frame is copied.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tifffile

from lapseg.axes import validate_axes
from lapseg.errors import LapsegInputError
from lapseg.io.images import image_yx, read_image, read_mask
from lapseg.io.movies import release_mapped_pages

__all__ = [
    "SequenceSource",
    "check_frame_sizes",
    "frame_reader",
    "read_frame",
    "read_frame_mask",
    "read_frames",
    "stack_tzyx",
]


@dataclass(frozen=True)
class SequenceSource:
    """One time-lapse sequence on disk.

    Attributes
    ----------
    name : str
        Unique name (``"01"``, ``"well3"``, ``"stack/z02"``); sample names are
        ``f"{name}/{frame_names[t]}"``.
    frame_names : tuple of str
        Name of every frame in time order (``"t000"``, ...).
    frame_files : tuple of Path
        One file per frame, or empty when the frames come from ``stack``.
    stack : Path or None
        A multi-page file holding all frames.
    stack_axes : str or None
        Axes of ``stack`` (and ``mask_stack``), e.g. ``"TYX"``, ``"TZYX"``.
    z_index : int or None
        The z-slice of a ``(T, Z, Y, X)`` stack this sequence is.
    masks : dict of int to Path
        Frame index -> mask file, for the frames that have ground truth.
    mask_stack : Path or None
        A mask stack with the same axes as ``stack``.
    annotated_frames : tuple of int or None
        The frames whose mask is ground truth, when decided (see
        :func:`lapseg.data.timelapse.annotated_sequences`); None: every frame with a mask.
    """

    name: str
    frame_names: tuple[str, ...]
    frame_files: tuple[Path, ...] = ()
    stack: Path | None = None
    stack_axes: str | None = None
    z_index: int | None = None
    masks: Mapping[int, Path] = field(default_factory=dict)
    mask_stack: Path | None = None
    annotated_frames: tuple[int, ...] | None = None

    @property
    def n_frames(self) -> int:
        """Number of frames."""
        return len(self.frame_names)

    @property
    def with_masks(self) -> list[int]:
        """Indices of the frames that have a mask (file or stack frame), in time order."""
        if self.mask_stack is not None:
            return list(range(self.n_frames))
        return sorted(self.masks)

    @property
    def annotated(self) -> list[int]:
        """Indices of the annotated frames (ground truth), in time order."""
        if self.annotated_frames is not None:
            return list(self.annotated_frames)
        return self.with_masks

    def sample_name(self, t: int) -> str:
        """The sample name of frame ``t``, e.g. ``"01/t007"``."""
        return f"{self.name}/{self.frame_names[t]}"

    def files(self) -> list[Path]:
        """Every file holding this sequence's frames (for cache keys)."""
        return [self.stack] if self.stack is not None else list(self.frame_files)

    def frame_path(self, t: int) -> Path:
        """The file that holds frame ``t``."""
        return self.stack if self.stack is not None else self.frame_files[t]


# --------------------------------------------------------------------------- reading


def stack_tzyx(path: Path, axes: str) -> np.ndarray:
    """A stack as a ``(T, Z, Y, X)`` array (memory-mapped when the file allows it)."""
    array: np.ndarray
    try:
        try:
            array = tifffile.memmap(path, mode="r")
        except ValueError:  # compressed or non-contiguous: read it
            array = tifffile.imread(path)
    except (OSError, ValueError, RuntimeError) as exc:
        raise LapsegInputError(
            f"cannot read stack ({type(exc).__name__}: {exc})", path=path
        ) from exc
    try:
        axes = validate_axes(axes, ndim=array.ndim)
    except LapsegInputError as exc:
        raise LapsegInputError(f"{exc} (shape {array.shape})", path=path) from None
    if "C" in axes and array.shape[axes.index("C")] != 1:
        raise LapsegInputError("time-lapse frames must have one channel", path=path)
    order = [axes.index(a) for a in "TZ" if a in axes] + [axes.index("Y"), axes.index("X")]
    order += [i for i, a in enumerate(axes) if a == "C"]
    out = np.transpose(array, order)
    if "C" in axes:
        out = out[..., 0]
    if "Z" not in axes:
        out = out[:, None]
    if "T" not in axes:
        raise LapsegInputError(f"stack axes {axes!r} have no time axis 'T'", path=path)
    return out


def frame_reader(source: SequenceSource) -> Callable[[int], np.ndarray]:
    """A function ``t -> (Y, X) float32 frame``; a stack file is opened (memory-mapped) once."""
    if source.stack is None:
        return lambda t: read_frame(source, t)
    volume = stack_tzyx(source.stack, source.stack_axes or "TYX")
    z = source.z_index or 0

    def read(t: int) -> np.ndarray:
        frame = np.array(volume[t, z], dtype=np.float32)
        release_mapped_pages(volume)  # a long movie's pages do not pile up in memory
        return frame

    return read


def check_frame_sizes(source: SequenceSource) -> tuple[int, int]:
    """The common ``(Y, X)`` frame size of a sequence, checked from the file headers.

    Raises
    ------
    LapsegInputError
        Naming the first frame whose size differs from the first frame's.
    """
    if source.stack is not None:
        volume = stack_tzyx(source.stack, source.stack_axes or "TYX")
        return int(volume.shape[-2]), int(volume.shape[-1])
    first = image_yx(source.frame_files[0])
    for path in source.frame_files[1:]:
        size = image_yx(path)
        if size != first:
            raise LapsegInputError(
                f"frame size {size} differs from the sequence's first frame {first}; set "
                "data.crop_or_pad (or data.resize) to a common size",
                path=path,
            )
    return first


def read_frame(source: SequenceSource, t: int) -> np.ndarray:
    """Frame ``t`` of ``source`` as a ``(Y, X)`` float32 array."""
    if source.stack is not None:
        return frame_reader(source)(t)
    image = read_image(source.frame_files[t]).array
    if image.shape[0] != 1:
        raise LapsegInputError(
            f"time-lapse frames must have one channel, found {image.shape[0]}",
            path=source.frame_files[t],
        )
    return image[0].astype(np.float32)


def read_frame_mask(source: SequenceSource, t: int) -> np.ndarray:
    """The ``(Y, X)`` integer mask of frame ``t`` (which must be annotated)."""
    if source.mask_stack is not None:
        volume = stack_tzyx(source.mask_stack, source.stack_axes or "TYX")
        mask = np.asarray(volume[t, source.z_index or 0])
        if not np.issubdtype(mask.dtype, np.integer) and mask.dtype != np.bool_:
            raise LapsegInputError("mask stack must hold integer labels", path=source.mask_stack)
        return mask.astype(np.int32)
    if t not in source.masks:
        raise LapsegInputError(f"frame {source.sample_name(t)} has no mask")
    return read_mask(source.masks[t])


def read_frames(
    source: SequenceSource, *, grid: Callable[[np.ndarray], np.ndarray] | None = None
) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """All frames of ``source`` as one ``(T, Y, X)`` float32 array, and each frame's own shape.

    Parameters
    ----------
    source : SequenceSource
    grid : callable, optional
        Maps a ``(Y, X)`` frame to the common grid (``data.crop_or_pad`` / ``data.resize``).
        Without it every frame must have the same size.

    Raises
    ------
    LapsegInputError
        A frame whose size differs from the first frame's when no ``grid`` is given.
    """
    frames: list[np.ndarray] = []
    shapes: list[tuple[int, int]] = []
    read = frame_reader(source)
    for t in range(source.n_frames):
        frame = read(t)
        shapes.append((int(frame.shape[0]), int(frame.shape[1])))
        if grid is not None:
            frame = grid(frame)
        elif frames and frame.shape != frames[0].shape:
            raise LapsegInputError(
                f"frame size {frame.shape} differs from the sequence's first frame "
                f"{frames[0].shape}; set data.crop_or_pad (or data.resize) to a common size",
                path=source.frame_path(t),
            )
        frames.append(frame.astype(np.float32, copy=False))
    return np.stack(frames), shapes
