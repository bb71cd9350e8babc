"""Temporal consistency of tracked instance labels: do cells flicker in and out between frames?

A segmenter that works frame by frame can lose a cell in one frame and find it again in the next,
or report a spurious object for a single frame. Linked into tracks (CTC track table ``L B E P``),
both show up:

- a **flicker** is a one-frame track with no parent and no child that neither starts in the
  first frame nor ends in the last (a cell cannot appear and vanish within one frame unless it
  enters and leaves the field of view, which the border rule below excludes only roughly);
- a **gap** is a frame in which a lineage has no object: a frame inside a track's lifetime
  ``B..E`` without its object, or the frames skipped between a track and its only child (the
  CTC way of closing a gap, which :func:`lapseg.tracking.link_instances` uses); the linker
  bridged them, the segmenter missed the cell there.

``flicker_rate`` is flickers per object and ``gap_rate`` gaps per object-frame of the tracks'
lifetimes. Compute them for the reference too: fast cells at a low frame rate, or cells leaving
the field of view, give a baseline that is not zero.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["TemporalConsistency", "temporal_consistency", "track_ids_per_frame"]


@dataclass(frozen=True)
class TemporalConsistency:
    """Counts and rates; see the module docstring."""

    objects: int
    tracks: int
    flickers: int
    gaps: int
    flicker_rate: float
    gap_rate: float
    mean_track_length: float

    def as_dict(self) -> dict[str, Any]:
        """Plain dict (JSON)."""
        return asdict(self)

    def summary(self) -> str:
        """One line for the log."""
        return (
            f"temporal consistency: {self.flickers} one-frame track(s) of {self.objects} objects "
            f"({self.flicker_rate:.2%}), {self.gaps} gap(s) inside tracks ({self.gap_rate:.2%}), "
            f"mean track length {self.mean_track_length:.1f} frames"
        )


def track_ids_per_frame(labels: NDArray[np.integer]) -> list[NDArray[np.int64]]:
    """The track labels present in each frame of a ``(T, Y, X)`` label stack."""
    return [np.unique(frame)[1:].astype(np.int64) for frame in np.asarray(labels)]


def temporal_consistency(
    ids_per_frame: Sequence[NDArray[np.integer]], tracks: ArrayLike
) -> TemporalConsistency:
    """Flickers and gaps of a tracking.

    Parameters
    ----------
    ids_per_frame : sequence of (n_t,) int arrays
        The track labels present in each frame (:func:`track_ids_per_frame`).
    tracks : (N, 4) array_like of int
        Track table ``L B E P`` (label, first frame, last frame, parent label; 0 = none).

    Returns
    -------
    TemporalConsistency

    >>> ids = [np.array([1, 2, 4]), np.array([1, 3]), np.array([1, 2, 5])]
    >>> table = [[1, 0, 2, 0], [2, 0, 2, 0], [3, 1, 1, 0], [4, 0, 0, 0], [5, 2, 2, 4]]
    >>> c = temporal_consistency(ids, table)
    >>> # track 3 lives one frame; track 2 misses frame 1; track 5 continues 4 after a gap
    >>> (c.flickers, c.gaps, c.objects)
    (1, 2, 8)
    """
    table = np.asarray(tracks, dtype=np.int64).reshape(-1, 4)
    n_frames = len(ids_per_frame)
    objects = int(sum(len(ids) for ids in ids_per_frame))
    present: dict[int, int] = {}
    for ids in ids_per_frame:
        for label in np.asarray(ids).tolist():
            present[int(label)] = present.get(int(label), 0) + 1
    children: dict[int, list[int]] = {}
    for _label, begin, _, parent in table.tolist():
        if parent:
            children.setdefault(parent, []).append(begin)
    parents = set(children)
    ends = {int(row[0]): int(row[2]) for row in table.tolist()}
    flickers = gaps = lifetime = 0
    for parent, starts in children.items():
        if len(starts) == 1 and parent in ends:  # a closed gap, not a division
            skipped = starts[0] - ends[parent] - 1
            gaps += max(0, skipped)
            lifetime += max(0, skipped)
    for label, begin, end, parent in table.tolist():
        frames = present.get(label, 0)
        lifetime += end - begin + 1
        gaps += max(0, end - begin + 1 - frames)
        lone = parent == 0 and label not in parents
        inside = begin > 0 and end < n_frames - 1
        if begin == end and lone and inside and frames == 1:
            flickers += 1
    n_tracks = int(table.shape[0])
    return TemporalConsistency(
        objects=objects,
        tracks=n_tracks,
        flickers=flickers,
        gaps=gaps,
        flicker_rate=flickers / objects if objects else 0.0,
        gap_rate=gaps / lifetime if lifetime else 0.0,
        mean_track_length=lifetime / n_tracks if n_tracks else 0.0,
    )
