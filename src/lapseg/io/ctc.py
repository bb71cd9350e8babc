"""Cell Tracking Challenge (CTC) tracking files: track tables and mask stacks.

A CTC tracking result is a folder of one ``uint16`` label image per frame (``mask000.tif``, ...;
ground truth: ``TRA/man_track000.tif``, ...) and a track table (``res_track.txt``; ground truth:
``TRA/man_track.txt``), one line ``L B E P`` per track: its label ``L`` (> 0, the value of its
pixels), the first and last frame ``B`` and ``E`` (0-based, inclusive) and the label ``P`` of its
parent track (0: none). A track is present in every frame from ``B`` to ``E``; a cell missing for
some frames continues as a new track whose parent is the old one, and a division ends the mother
track and starts the daughters in a later frame with ``P`` = the mother.

In memory a track table is an ``(N, 4)`` int64 array with the columns ``L B E P``
(:data:`TRACK_COLUMNS`), the layout ``py-ctcmetrics`` uses. Frame numbers in file names have
3 digits, or 4 when the sequence has more than 1000 frames (:func:`mask_name`), as the CTC does.

Every writer is atomic (:func:`lapseg.io.files.atomic_output`).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import tifffile
from numpy.typing import ArrayLike, NDArray

from lapseg.errors import LapsegInputError
from lapseg.io.files import atomic_output

__all__ = [
    "RESULT_TRACKS",
    "TRACK_COLUMNS",
    "TRUTH_TRACKS",
    "check_tracks",
    "mask_name",
    "read_ctc_masks",
    "read_ctc_result",
    "read_ctc_truth",
    "read_track_table",
    "write_ctc_masks",
    "write_ctc_result",
    "write_track_table",
]

TRACK_COLUMNS: tuple[str, str, str, str] = ("label", "begin", "end", "parent")
"""Columns of a track table: ``L B E P``."""

RESULT_TRACKS = "res_track.txt"
TRUTH_TRACKS = "man_track.txt"


def mask_name(t: int, n_frames: int, *, prefix: str = "mask") -> str:
    """CTC file name of frame ``t``: ``mask007.tif``, or ``mask0007.tif`` when ``n_frames > 1000``.

    >>> mask_name(7, 84), mask_name(7, 1001), mask_name(3, 10, prefix="man_track")
    ('mask007.tif', 'mask0007.tif', 'man_track003.tif')
    """
    digits = 4 if n_frames > 1000 else 3
    return f"{prefix}{t:0{digits}d}.tif"


def _as_table(tracks: ArrayLike) -> NDArray[np.int64]:
    """``tracks`` as an ``(N, 4)`` int64 array, or an error if it is not one."""
    table = np.asarray(tracks)
    if table.size == 0:
        return np.zeros((0, 4), dtype=np.int64)
    if table.ndim != 2 or table.shape[1] != 4:
        raise LapsegInputError(f"a track table must be (N, 4) (L B E P), got shape {table.shape}")
    if not np.issubdtype(table.dtype, np.integer):
        raise LapsegInputError(f"a track table must hold integers, got dtype {table.dtype}")
    return table.astype(np.int64)


def check_tracks(labels: NDArray[np.integer], tracks: ArrayLike) -> NDArray[np.int64]:
    """Check that a label stack and its track table form a valid CTC tracking result.

    Valid means (the rules of the CTC and ``py-ctcmetrics``): labels are unique and > 0, ``0 <= B
    <= E < T``, a parent is 0 or the label of a track that ends before the child begins, and in
    every frame ``t`` the labels present are exactly those of the tracks with ``B <= t <= E``.

    Parameters
    ----------
    labels : (T, Y, X) ndarray of int
        Label stack, 0 = background.
    tracks : (N, 4) array_like of int
        Track table ``L B E P``.

    Returns
    -------
    (N, 4) ndarray of int64
        The table, sorted by label.

    Raises
    ------
    LapsegInputError
        Naming the first broken rule (track, frame).
    """
    stack = np.asarray(labels)
    if stack.ndim != 3:
        raise LapsegInputError(f"a label stack must be (T, Y, X), got shape {stack.shape}")
    table = _as_table(tracks)
    table = table[np.argsort(table[:, 0], kind="stable")]
    label, begin, end = table[:, 0], table[:, 1], table[:, 2]
    n_frames = stack.shape[0]
    if np.any(label <= 0):
        raise LapsegInputError(f"track labels must be > 0, got {int(label.min())}")
    repeated = label[1:][label[1:] == label[:-1]]
    if repeated.size:
        raise LapsegInputError(f"track {int(repeated[0])} appears twice in the track table")
    for row in table:
        L, B, E, P = (int(v) for v in row)
        if not 0 <= B <= E < n_frames:
            raise LapsegInputError(
                f"track {L} spans frames {B}-{E}, outside 0-{n_frames - 1} or ending before it begins"
            )
        if P < 0:
            raise LapsegInputError(f"track {L} has a negative parent {P}")
        if P != 0:
            where = np.searchsorted(label, P)
            if where == label.size or label[where] != P:
                raise LapsegInputError(f"track {L} has parent {P}, which is not in the track table")
            if end[where] >= B:
                raise LapsegInputError(
                    f"track {L} begins in frame {B} but its parent {P} ends in frame {int(end[where])}"
                )
    for t in range(n_frames):
        present = np.unique(stack[t])
        present = present[present != 0]
        expected = label[(begin <= t) & (end >= t)]
        missing = np.setdiff1d(expected, present)
        if missing.size:
            raise LapsegInputError(
                f"track {int(missing[0])} should be in frame {t} but its label is absent"
            )
        extra = np.setdiff1d(present, expected)
        if extra.size:
            raise LapsegInputError(
                f"label {int(extra[0])} in frame {t} is not a track of the table in that frame"
            )
    return table


def read_track_table(path: str | Path) -> NDArray[np.int64]:
    """Read a CTC track table (``man_track.txt``, ``res_track.txt``).

    Lines hold four integers ``L B E P`` separated by spaces or tabs; blank lines are skipped.

    Returns
    -------
    (N, 4) ndarray of int64
        In file order.
    """
    path = Path(path)
    if not path.is_file():
        raise LapsegInputError("track table not found", path=path)
    rows: list[list[int]] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        try:
            values = [int(v) for v in fields]
        except ValueError:
            values = []
        if len(values) != 4:
            raise LapsegInputError(
                f"line {number} is not 'L B E P' (4 integers): {line!r}", path=path
            )
        rows.append(values)
    return np.array(rows, dtype=np.int64).reshape(-1, 4)


def write_track_table(path: str | Path, tracks: ArrayLike) -> Path:
    """Write a track table as lines ``L B E P`` (sorted by label), atomically; returns ``path``."""
    path = Path(path)
    table = _as_table(tracks)
    table = table[np.argsort(table[:, 0], kind="stable")]
    text = "".join(f"{L} {B} {E} {P}\n" for L, B, E, P in table.tolist())
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


def write_ctc_masks(
    folder: str | Path, labels: NDArray[np.integer], *, prefix: str = "mask"
) -> list[Path]:
    """Write a label stack as one uint16 TIFF per frame (``mask000.tif``, ...), each atomically.

    Frames are LZW-compressed, as the CTC's own files.

    Parameters
    ----------
    folder : str or Path
        Created if missing.
    labels : (T, Y, X) ndarray of int
        Values must fit uint16 (0-65535).
    prefix : str, optional
        File name prefix (``"man_track"`` writes ground-truth style names).

    Returns
    -------
    list of Path
        The files, in frame order.
    """
    stack = np.asarray(labels)
    if stack.ndim != 3 or stack.shape[0] == 0:
        raise LapsegInputError(
            f"a label stack must be (T, Y, X) with T >= 1, got shape {stack.shape}"
        )
    if not np.issubdtype(stack.dtype, np.integer):
        raise LapsegInputError(f"a label stack must hold integers, got dtype {stack.dtype}")
    if stack.size and (int(stack.min()) < 0 or int(stack.max()) > np.iinfo(np.uint16).max):
        raise LapsegInputError("CTC masks are uint16: labels must lie in 0-65535")
    folder = Path(folder)
    paths = []
    for t, frame in enumerate(stack):
        path = folder / mask_name(t, stack.shape[0], prefix=prefix)
        with atomic_output(path) as tmp:
            tifffile.imwrite(tmp, frame.astype(np.uint16), compression="lzw")
        paths.append(path)
    return paths


def write_ctc_result(folder: str | Path, labels: NDArray[np.integer], tracks: ArrayLike) -> Path:
    """Write a CTC tracking result: ``mask000.tif ...`` and ``res_track.txt`` in ``folder``.

    The pair is checked first (:func:`check_tracks`), so an invalid result is never written.

    Returns
    -------
    Path
        The ``res_track.txt`` written.
    """
    table = check_tracks(labels, tracks)
    write_ctc_masks(folder, labels)
    return write_track_table(Path(folder) / RESULT_TRACKS, table)


def read_ctc_masks(folder: str | Path, *, prefix: str = "mask") -> NDArray[np.uint16]:
    """Read ``{prefix}000.tif, {prefix}001.tif, ...`` as a ``(T, Y, X)`` uint16 stack.

    Frame numbers must run 0, 1, ... without a gap (the track table indexes frames by them).
    """
    folder = Path(folder)
    pattern = re.compile(rf"{re.escape(prefix)}(\d{{3,4}})\.tiff?")
    numbered = sorted(
        (int(match.group(1)), path)
        for path in folder.glob(f"{prefix}*.tif*")
        if (match := pattern.fullmatch(path.name))
    )
    if not numbered:
        raise LapsegInputError(f"no {prefix}TTT.tif files", path=folder)
    for expected, (number, path) in enumerate(numbered):
        if number != expected:
            raise LapsegInputError(
                f"frame {expected} is missing (next file is {path.name})", path=folder
            )
    frames = [tifffile.imread(path) for _, path in numbered]
    shapes = {frame.shape for frame in frames}
    if len(shapes) != 1 or frames[0].ndim != 2:
        raise LapsegInputError(
            f"{prefix} files must be 2D and of one size, got {sorted(shapes)}", path=folder
        )
    return np.stack(frames).astype(np.uint16)


def read_ctc_truth(tra_folder: str | Path) -> tuple[NDArray[np.uint16], NDArray[np.int64]]:
    """Read a CTC tracking ground truth folder (``NN_GT/TRA``): ``man_track*.tif`` + table.

    Returns
    -------
    labels : (T, Y, X) ndarray of uint16
    tracks : (N, 4) ndarray of int64
        ``man_track.txt``, sorted by label, checked against ``labels``.
    """
    folder = Path(tra_folder)
    labels = read_ctc_masks(folder, prefix="man_track")
    return labels, check_tracks(labels, read_track_table(folder / TRUTH_TRACKS))


def read_ctc_result(res_folder: str | Path) -> tuple[NDArray[np.uint16], NDArray[np.int64]]:
    """Read a CTC tracking result folder (``NN_RES``): ``mask*.tif`` + ``res_track.txt``."""
    folder = Path(res_folder)
    labels = read_ctc_masks(folder, prefix="mask")
    return labels, check_tracks(labels, read_track_table(folder / RESULT_TRACKS))
