"""The shared protocols (../shared/data/README.md) as in-memory train / validation / test arrays.

:mod:`protocols` prepares dataset *folders* for ``lapseg train``; this module loads the same
data as arrays for experiments that train their own loop (``bench_representations.py``). The
splits are those of the representation campaign (issue 10), image for image:

- ``hela``: DIC-HeLa sequence 01 silver truth, frames 0-70 train, 76-83 validation (71-75 left
  out: neighbouring frames are near-duplicates); test = sequence 02 gold truth.
- ``psc``: PhC-C2DL-PSC sequence 02 silver truth t150-174 and t190-240 train, t245-250
  validation; test = the gold-truth frame t182.
- ``usiigaci``: train/ shuffled by ``default_rng(0)`` (sets ordered by number): 5 validation, the
  rest train; test = val/.
- ``isbi``: ISBI 2012 slices 0-20 train, 21-23 validation, 24-29 test. The labels are the
  *membranes* as one object (label 1), as in the campaign, so its instance scores measure the
  membrane mask as a single object.

Images are float32, scaled per image so the 1st percentile maps to 0 and the 99.8th to 1
(not clipped); labels are int32. ``hela`` and ``psc`` also come with temporal context
(:func:`load_protocol` with ``context=k``): frames ``t-k .. t+k`` as channels, the sequence's
edge frame repeated past its ends; ``mode="diff"`` keeps frame ``t`` and replaces the others by
their difference to it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import tifffile
from numpy.typing import NDArray

from protocols import SHARED

__all__ = [
    "CONTEXT_MODES",
    "PROTOCOL_NAMES",
    "TIMELAPSE_PROTOCOLS",
    "MissingSharedDataError",
    "Pair",
    "Split",
    "load_protocol",
    "normalise",
]

Pair = tuple[NDArray[np.float32], NDArray[np.int32]]
"""One ``(image, labels)`` pair: image ``(Y, X)`` or ``(C, Y, X)`` float32, labels ``(Y, X)``."""

CONTEXT_MODES: tuple[str, ...] = ("raw", "diff")
"""How the context frames enter the network: as they are, or as differences to frame ``t``."""


class MissingSharedDataError(RuntimeError):
    """../shared/data (or the protocol's folder in it) is not on this machine."""


@dataclass(frozen=True)
class Split:
    """Train, validation (post-processing is tuned on it) and test pairs of one protocol."""

    train: list[Pair]
    val: list[Pair]
    test: list[Pair]


def normalise(image: NDArray[np.generic]) -> NDArray[np.float32]:
    """``(x - p1) / (p99.8 - p1)`` in float32 over the whole image (all channels together).

    The campaign's normalisation, kept bit for bit: lapseg's
    :func:`lapseg.data.normalization.percentile_normalize` computes the same percentiles but
    works per channel, on the original dtype, and falls back to ``max - min`` for a degenerate
    range, which changes the last bit of some uint16 pixels.
    """
    array = image.astype(np.float32)
    low, high = np.percentile(array, (1, 99.8))
    return ((array - low) / max(high - low, 1e-6)).astype(np.float32)


def _read(path: Path) -> NDArray[np.generic]:
    if path.suffix.lower() in (".tif", ".tiff"):
        return np.asarray(tifffile.imread(path))
    return np.asarray(iio.imread(path))


def _labels(path: Path) -> NDArray[np.int32]:
    return _read(path).astype(np.int32)


def _root(name: str) -> Path:
    root = SHARED / name
    if not root.is_dir():
        raise MissingSharedDataError(
            f"{root} not found: the protocols need ../shared/data (see its README.md)"
        )
    return root


class _Sequence:
    """The normalised frames of one CTC sequence folder, read once, on demand.

    ``first`` and ``last`` bound the context: frames past them repeat the edge frame (the
    campaign bounds PSC sequence 02 to t100-t260, the part of the movie it loaded).
    """

    def __init__(self, folder: Path, first: int, last: int) -> None:
        self.folder, self.first, self.last = folder, first, last
        self._cache: dict[int, NDArray[np.float32]] = {}

    def frame(self, t: int) -> NDArray[np.float32]:
        t = min(max(t, self.first), self.last)
        if t not in self._cache:
            self._cache[t] = normalise(_read(self.folder / f"t{t:03d}.tif"))
        return self._cache[t]

    def image(self, t: int, context: int | None, mode: str) -> NDArray[np.float32]:
        """Frame ``t`` (no context) or frames ``t-k .. t+k`` as ``(2k+1, Y, X)`` channels."""
        if context is None:
            return self.frame(t)
        stack = np.stack([self.frame(i) for i in range(t - context, t + context + 1)])
        if mode == "diff" and context > 0:
            centre = stack[context]
            others = stack[np.arange(2 * context + 1) != context] - centre[None]
            stack = np.concatenate([centre[None], others])
        return stack


def _gold_frames(folder: Path) -> list[tuple[int, Path]]:
    """(frame, mask path) of the segmentations ``man_segTTT.tif`` of a CTC truth folder."""
    return [(int(p.stem.removeprefix("man_seg")), p) for p in sorted(folder.glob("man_seg*.tif"))]


def _ctc_split(
    silver: tuple[_Sequence, Path, Iterable[int], Callable[[int], str]],
    gold: tuple[_Sequence, list[tuple[int, Path]]],
    context: int | None,
    mode: str,
) -> Split:
    """Train / val from silver truth (``part(t)`` says "train", "val" or "skip"), test from gold.

    silver : (sequence, truth folder, frames, part)
    gold : (sequence, [(frame, mask path), ...])
    """
    sequence, truth, frames, part = silver
    train: list[Pair] = []
    val: list[Pair] = []
    for t in frames:
        where = part(t)
        if where != "skip":
            pair = (sequence.image(t, context, mode), _labels(truth / f"man_seg{t:03d}.tif"))
            (train if where == "train" else val).append(pair)
    test_sequence, test_frames = gold
    test = [(test_sequence.image(t, context, mode), _labels(path)) for t, path in test_frames]
    return Split(train, val, test)


def _hela(context: int | None, mode: str) -> Split:
    root = _root("ctc-DIC-C2DH-HeLa")
    return _ctc_split(
        (
            _Sequence(root / "01", 0, 83),
            root / "01_ST" / "SEG",
            range(84),
            lambda t: "train" if t <= 70 else "val" if t >= 76 else "skip",
        ),
        (_Sequence(root / "02", 0, 83), _gold_frames(root / "02_GT" / "SEG")),
        context,
        mode,
    )


def _psc(context: int | None, mode: str) -> Split:
    root = _root("ctc-PhC-C2DL-PSC-02")
    sequence = _Sequence(root / "02", 100, 260)
    return _ctc_split(
        (
            sequence,
            root / "02_ST" / "SEG",
            [*range(150, 175), *range(190, 251)],
            lambda t: "train" if t <= 240 else "val" if t >= 245 else "skip",
        ),
        (sequence, [(182, root / "02_GT" / "SEG" / "man_seg182.tif")]),
        context,
        mode,
    )


def _usiigaci() -> Split:
    root = _root("usiigaci-phc")

    def number(folder: Path) -> int:
        digits = folder.name[3:]  # "set12" -> 12
        return int(digits) if digits.isdigit() else 0

    def pairs(folders: Iterable[Path]) -> list[Pair]:
        return [
            (normalise(_read(f / "raw.tif")), _labels(f / "instances_ids.png"))
            for f in folders
            if (f / "raw.tif").is_file()
        ]

    items = pairs(sorted((root / "train").iterdir(), key=number))
    order = np.random.default_rng(0).permutation(len(items))
    val = [items[i] for i in order[:5]]
    train = [items[i] for i in order[5:]]
    return Split(train, val, pairs(sorted((root / "val").iterdir())))


def _isbi() -> Split:
    root = _root("isbi2012-em") / "train"
    items = [
        (normalise(_read(root / "image" / f"{i}.png")), _membranes(root / "label" / f"{i}.png"))
        for i in range(30)
    ]
    return Split(items[:21], items[21:24], items[24:])


def _membranes(path: Path) -> NDArray[np.int32]:
    """ISBI labels are 255 inside cells and 0 on membranes: the membranes as label 1."""
    return (_read(path) == 0).astype(np.int32)


TIMELAPSE_PROTOCOLS: dict[str, Callable[[int | None, str], Split]] = {"hela": _hela, "psc": _psc}
"""Protocols whose images are frames of a movie (temporal context possible)."""

PROTOCOL_NAMES: tuple[str, ...] = ("hela", "psc", "usiigaci", "isbi")


def load_protocol(name: str, *, context: int | None = None, mode: str = "raw") -> Split:
    """Train / validation / test arrays of a shared protocol.

    Parameters
    ----------
    name : {"hela", "psc", "usiigaci", "isbi"}
    context : int, optional
        Time-lapse protocols only: feed frames ``t-k .. t+k`` as ``2k+1`` channels
        (``context=0`` gives ``(1, Y, X)`` images, equal to no context).
    mode : {"raw", "diff"}
        ``"diff"``: channel 0 is frame ``t``, the others their difference to frame ``t``.

    Raises
    ------
    MissingSharedDataError
        ../shared/data or the protocol's folder is missing.
    ValueError
        Unknown name or mode, negative context, or context for a protocol without time.
    """
    if name not in PROTOCOL_NAMES:
        raise ValueError(f"unknown protocol {name!r}; valid protocols: {', '.join(PROTOCOL_NAMES)}")
    if mode not in CONTEXT_MODES:
        raise ValueError(f"unknown context mode {mode!r}; valid modes: {', '.join(CONTEXT_MODES)}")
    if context is not None:
        if context < 0:
            raise ValueError(f"context must be >= 0 frames on each side, got {context}")
        if name not in TIMELAPSE_PROTOCOLS:
            raise ValueError(
                f"protocol {name!r} has no time axis; context works with: "
                f"{', '.join(TIMELAPSE_PROTOCOLS)}"
            )
    if name in TIMELAPSE_PROTOCOLS:
        return TIMELAPSE_PROTOCOLS[name](context, mode)
    return _usiigaci() if name == "usiigaci" else _isbi()
