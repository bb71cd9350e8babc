"""Pair predicted frames with ground-truth frames, whatever files hold them.

Either side may be a folder of 2D images, a stack file (``TYX``), a ``lapseg predict`` output
(``masks/`` or ``labels/`` subfolders, or a movie folder holding ``masks.tif`` / ``labels.tif``),
a Cell Tracking Challenge result (``maskTTT.tif``) or ground truth (``man_segTTT.tif``). Frames
are keyed by name, with CTC-style numbered names unified: ``man_seg006``, ``mask006``, ``t006``
and the sixth frame of a stack all mean frame 6, so predictions of ``t006.tif`` pair with
``man_seg006.tif``.

A ``(T, Z, Y, X)`` stack (seed 001's time x depth pancreas stacks; a time and a depth axis both
longer than 1, in any order) gives one frame per ``(t, z)``, keyed like the per-frame files of
the ``sequences`` layout: frame ``t`` of slice ``z`` of ``pancreas.tif`` pairs with
``pancreas/z02/t005.tif`` (a folder without images of its own is searched in its subfolders,
their names prefixing the keys), and is named ``pancreas/z02/t005`` like the training sample.

Ground truth without a prediction is an error naming the frames; predictions without ground
truth are skipped and counted (a CTC gold truth annotates a few frames of a movie).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile

from lapseg.axes import to_canonical
from lapseg.errors import LapsegInputError
from lapseg.io.discovery import discover_images, natural_sort_key, output_stem
from lapseg.io.images import TIFF_EXTENSIONS, is_image_file, read_mask
from lapseg.io.movies import stack_axes

__all__ = ["FramePair", "frame_key", "pair_frames"]

_NUMBERED = re.compile(r"^(?:man_seg|man_track|mask|t)_?(\d+)$")


def frame_key(stem: str) -> str:
    """The pairing key of a file stem: ``"frame 6"`` for CTC-style numbered names, else the
    stem itself."""
    match = _NUMBERED.match(stem)
    return f"frame {int(match.group(1))}" if match else stem


@dataclass(frozen=True)
class FramePair:
    """One predicted frame and its ground truth."""

    name: str
    prediction: str
    truth: str
    read_prediction: Callable[[], np.ndarray]
    read_truth: Callable[[], np.ndarray]


Frames = dict[str, tuple[str, Callable[[], np.ndarray], str]]
"""key -> (where it is, reader, frame name)."""


def _time_depth_frames(path: Path, axes: str, sizes: dict[str, int], prefix: str = "") -> Frames:
    """Every ``(t, z)`` plane of a ``(T, Z, Y, X)`` stack, keyed ``<stem>/zZZ/frame t``."""
    stem = prefix + output_stem(path)
    loaded: list[np.ndarray] = []

    def volume() -> np.ndarray:
        if not loaded:
            array: np.ndarray
            try:
                array = tifffile.memmap(path, mode="r")
            except ValueError:  # compressed or non-contiguous: read it
                array = tifffile.imread(path)
            array = to_canonical(array, axes)
            if array.shape[2] != 1:
                raise LapsegInputError("a mask stack must have one channel", path=path)
            loaded.append(array[:, :, 0])
        return loaded[0]

    def reader(t: int, z: int) -> Callable[[], np.ndarray]:
        return lambda: np.asarray(volume()[t, z])

    width = max(3, len(str(sizes["T"] - 1)))
    return {
        f"{stem}/z{z:02d}/frame {t}": (
            f"{path.name}[t={t}, z={z}]",
            reader(t, z),
            f"{stem}/z{z:02d}/t{t:0{width}d}",
        )
        for z in range(sizes["Z"])
        for t in range(sizes["T"])
    }


def _time_depth_sizes(path: Path) -> tuple[str, dict[str, int]] | None:
    """Axes and sizes of a TIFF with a time and a depth axis both longer than 1, else None
    (files whose axes are unknown included: they stay single frames)."""
    if path.suffix.lower() not in TIFF_EXTENSIONS:
        return None
    try:
        axes, shape, _ = stack_axes(path)
    except LapsegInputError:
        return None
    sizes = dict(zip(axes, (int(n) for n in shape), strict=True))
    return (axes, sizes) if sizes.get("T", 1) > 1 and sizes.get("Z", 1) > 1 else None


def _stack_frames(path: Path) -> Frames:
    axes, shape, _ = stack_axes(path)
    sizes = dict(zip(axes, shape, strict=True))
    if sizes.get("T", 1) > 1 and sizes.get("Z", 1) > 1:
        return _time_depth_frames(path, axes, sizes)
    axis = "T" if sizes.get("T", 1) > 1 else "Z" if sizes.get("Z", 1) > 1 else None
    if axis is None:
        stem = output_stem(path)
        return {frame_key(stem): (path.name, lambda: read_mask(path), stem)}
    position = axes.index(axis)

    def reader(t: int) -> Callable[[], np.ndarray]:
        def read() -> np.ndarray:
            if len(shape) == 3 and position == 0:  # one page per frame: read that page only
                return np.asarray(tifffile.imread(path, key=t))
            return np.asarray(np.take(tifffile.imread(path), t, axis=position))

        return read

    width = max(3, len(str(sizes[axis] - 1)))
    return {
        f"frame {t}": (f"{path.name}[{t}]", reader(t), f"{axis.lower()}{t:0{width}d}")
        for t in range(sizes[axis])
    }


def _file_reader(path: Path) -> Callable[[], np.ndarray]:
    return lambda: read_mask(path)


def _frames(path: Path, *, prefer: str) -> Frames:
    """Every frame under ``path`` by pairing key (``prefer``: "labels" or "masks")."""
    if not path.exists():
        raise LapsegInputError("not found", path=path)
    if path.is_file():
        if path.suffix.lower() in TIFF_EXTENSIONS:
            return _stack_frames(path)
        stem = output_stem(path)
        return {frame_key(stem): (path.name, lambda: read_mask(path), stem)}
    for name in (prefer, "labels", "masks"):
        if (path / name).is_dir():
            return _frames(path / name, prefer=prefer)
        if (path / f"{name}.tif").is_file():  # a movie folder written by lapseg predict
            return _stack_frames(path / f"{name}.tif")
    if not _has_images(path):
        nested = _nested_frames(path, "")
        if nested:
            return nested
    frames: Frames = {}
    for file in discover_images(path):
        _add_file(frames, file, "", path)
    return frames


def _has_images(folder: Path) -> bool:
    return any(
        p.is_file() and not p.name.startswith(".") and is_image_file(p) for p in folder.iterdir()
    )


def _add_file(frames: Frames, file: Path, prefix: str, folder: Path) -> None:
    """Add the frames of ``file`` (one, or every plane of a (T, Z) stack) to ``frames``."""
    time_depth = _time_depth_sizes(file)
    if time_depth is not None:
        found = _time_depth_frames(file, *time_depth, prefix=prefix)
    else:
        stem = output_stem(file)
        found = {prefix + frame_key(stem): (prefix + file.name, _file_reader(file), prefix + stem)}
    for key, frame in found.items():
        if key in frames:
            raise LapsegInputError(
                f"two files give frame {key!r}: {frames[key][0]} and {frame[0]}; keep one",
                path=folder,
            )
        frames[key] = frame


def _nested_frames(folder: Path, prefix: str) -> Frames:
    """Frames of the images in ``folder`` and its subfolders, keys prefixed by the folder path
    (``pancreas/z02/`` + ``frame 5``)."""
    frames: Frames = {}
    for entry in sorted(folder.iterdir(), key=lambda p: natural_sort_key(p.name)):
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            for key, frame in _nested_frames(entry, f"{prefix}{entry.name}/").items():
                if key in frames:
                    raise LapsegInputError(f"two files give frame {key!r}", path=folder)
                frames[key] = frame
        elif entry.is_file() and is_image_file(entry):
            _add_file(frames, entry, prefix, folder)
    return frames


def pair_frames(
    prediction: str | Path,
    truth: str | Path,
    *,
    prefer: str = "masks",
    only: Collection[str] | None = None,
) -> tuple[list[FramePair], int]:
    """Pair every ground-truth frame (or those named in ``only``) with its prediction.

    ``only``: ground-truth frame names (:attr:`FramePair.name`, e.g. a run's test split
    ``pancreas/z02/t005``) to pair; the other ground-truth frames are left out.

    Returns
    -------
    pairs : list of FramePair
        In natural order of the frame names.
    unmatched : int
        Predicted frames without ground truth (skipped).

    Raises
    ------
    LapsegInputError
        A side is missing or empty, two files give the same frame, or ground-truth frames have
        no prediction (up to 5 are named).
    """
    truths = _frames(Path(truth), prefer="labels")
    if not truths:
        raise LapsegInputError("no ground-truth images found", path=truth)
    if only is not None:
        wanted = set(only)
        unknown = sorted(wanted - {frame[2] for frame in truths.values()}, key=natural_sort_key)
        if unknown:
            raise LapsegInputError(
                f"{len(unknown)} frame(s) to evaluate are not in the ground truth: "
                + ", ".join(unknown[:5]),
                path=truth,
            )
        truths = {key: frame for key, frame in truths.items() if frame[2] in wanted}
    predictions = _frames(Path(prediction), prefer=prefer)
    if not predictions:
        raise LapsegInputError("no prediction images found", path=prediction)
    missing = sorted(set(truths) - set(predictions), key=natural_sort_key)
    if missing:
        shown = ", ".join(truths[key][0] for key in missing[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise LapsegInputError(
            f"{len(missing)} ground-truth image(s) have no prediction: {shown}{more}",
            path=prediction,
        )
    keys = sorted(truths, key=natural_sort_key)
    pairs = [
        FramePair(
            name=truths[key][2],
            prediction=predictions[key][0],
            truth=truths[key][0],
            read_prediction=predictions[key][1],
            read_truth=truths[key][1],
        )
        for key in keys
    ]
    return pairs, len(set(predictions) - set(truths))
