"""Pair predicted frames with ground-truth frames, whatever files hold them.

Either side may be a folder of 2D images, a stack file (``TYX``), a ``lapseg predict`` output
(``masks/`` or ``labels/`` subfolders, or a movie folder holding ``masks.tif`` / ``labels.tif``),
a Cell Tracking Challenge result (``maskTTT.tif``) or ground truth (``man_segTTT.tif``). Frames
are keyed by name, with CTC-style numbered names unified: ``man_seg006``, ``mask006``, ``t006``
and the sixth frame of a stack all mean frame 6, so predictions of ``t006.tif`` pair with
``man_seg006.tif``.

Ground truth without a prediction is an error naming the frames; predictions without ground
truth are skipped and counted (a CTC gold truth annotates a few frames of a movie).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile

from lapseg.errors import LapsegInputError
from lapseg.io.discovery import discover_images, natural_sort_key, output_stem
from lapseg.io.images import TIFF_EXTENSIONS, read_mask
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


def _stack_frames(path: Path) -> Frames:
    axes, shape, _ = stack_axes(path)
    sizes = dict(zip(axes, shape, strict=True))
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
    frames: Frames = {}
    for file in discover_images(path):
        key = frame_key(output_stem(file))
        if key in frames:
            raise LapsegInputError(
                f"two files give frame {key!r}: {frames[key][0]} and {file.name}; keep one",
                path=path,
            )
        frames[key] = (file.name, _file_reader(file), output_stem(file))
    return frames


def pair_frames(
    prediction: str | Path, truth: str | Path, *, prefer: str = "masks"
) -> tuple[list[FramePair], int]:
    """Pair every ground-truth frame with its prediction.

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
