"""Link per-frame instance labels into tracks with divisions (LAP tracking with ``laptrack``).

Each object of each frame is reduced to its centroid; ``laptrack`` (Fukai & Kawaguchi 2023, the
linear assignment framework of Jaqaman et al. 2008, Nat Methods 5:695) links centroids between
consecutive frames, then closes gaps (an object missing for up to ``max_gap`` frames) and detects
divisions (a track starting next to an existing one). Every candidate link is a squared centroid
distance below ``max_distance ** 2``; the default ``max_distance`` is the median equivalent
diameter of the objects (:func:`default_max_distance`): a cell moves less than its own size
between frames, and a daughter's centroid lies about half a diameter from its mother's.

The result is written the way the Cell Tracking Challenge writes tracks (see
:mod:`lapseg.io.ctc`): one label per track in a relabelled stack, and a track table ``L B E P``.
A track covers consecutive frames only; after a gap the object continues as a new track whose
parent is the old one, and a division ends the mother track, the daughters starting in the next
frame with parent = the mother.
"""

from __future__ import annotations

from typing import NamedTuple

import laptrack
import numpy as np
from numpy.typing import NDArray

from lapseg.errors import LapsegInputError

__all__ = [
    "FrameObjects",
    "Tracks",
    "check_label_stack",
    "default_max_distance",
    "frame_objects",
    "link_instances",
    "link_objects",
    "links_to_tracks",
    "relabel_frame",
    "track_dtype",
]


class Tracks(NamedTuple):
    """A tracking: a relabelled stack and its CTC track table.

    Attributes
    ----------
    labels : (T, Y, X) ndarray of uint16 (uint32 beyond 65535 tracks)
        Pixels of a track carry its id in every frame of the track.
    table : (N, 4) ndarray of int64
        One row ``L B E P`` per track: id, first and last frame, parent id (0: none); sorted by
        id, ids 1..N numbered by first frame, then by position in that frame.
    """

    labels: NDArray[np.unsignedinteger]
    table: NDArray[np.int64]


def check_label_stack(labels: NDArray[np.integer]) -> NDArray[np.integer]:
    """``labels`` as an array after checking it is a ``(T, Y, X)`` integer stack, T >= 2."""
    stack = np.asarray(labels)
    if stack.ndim != 3:
        raise LapsegInputError(f"tracking needs a (T, Y, X) label stack, got shape {stack.shape}")
    if stack.size == 0:
        raise LapsegInputError(f"the label stack is empty (shape {stack.shape}): nothing to track")
    if stack.shape[0] < 2:
        raise LapsegInputError("the label stack has a single frame: tracking needs T >= 2 frames")
    if not np.issubdtype(stack.dtype, np.integer):
        raise LapsegInputError(f"the label stack must hold integers, got dtype {stack.dtype}")
    if int(stack.min()) < 0:
        raise LapsegInputError("the label stack has negative labels")
    if not stack.any():
        raise LapsegInputError("the label stack has no objects (all background): nothing to track")
    return stack


def frame_objects(
    frame: NDArray[np.integer],
) -> tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.int64]]:
    """Labels, centroids and areas of the objects of one label image.

    Parameters
    ----------
    frame : (Y, X) ndarray of int
        0 = background; pixels of one label form one object (connected or not).

    Returns
    -------
    ids : (n,) ndarray of int64
        Sorted labels.
    centroids : (n, 2) ndarray of float64
        ``(y, x)`` pixel-centre means.
    areas : (n,) ndarray of int64
        Pixel counts.

    Examples
    --------
    >>> ids, centroids, areas = frame_objects(np.array([[0, 3, 3], [7, 0, 3]]))
    >>> ids.tolist(), centroids.tolist(), areas.tolist()
    ([3, 7], [[0.3333333333333333, 1.6666666666666667], [1.0, 0.0]], [3, 1])
    """
    frame = np.asarray(frame)
    ys, xs = np.nonzero(frame)
    ids, index = np.unique(frame[ys, xs], return_inverse=True)
    areas = np.bincount(index, minlength=ids.size)
    centroids = (
        np.stack(
            [
                np.bincount(index, weights=ys, minlength=ids.size),
                np.bincount(index, weights=xs, minlength=ids.size),
            ],
            axis=1,
        )
        / np.maximum(areas, 1)[:, None]
    )
    return ids.astype(np.int64), centroids.astype(np.float64), areas.astype(np.int64)


def default_max_distance(labels: NDArray[np.integer], *, factor: float = 1.0) -> float:
    """``factor`` x the median equivalent diameter ``2 sqrt(area / pi)`` of all objects, in pixels.

    Parameters
    ----------
    labels : (T, Y, X) ndarray of int
        Per-frame instance labels.
    factor : float, optional
        Multiple of the median diameter.

    Examples
    --------
    >>> stack = np.zeros((2, 20, 20), dtype=np.uint16)
    >>> stack[:, 2:12, 2:12] = 1  # 100 pixels: diameter 2 sqrt(100 / pi) = 11.28
    >>> round(default_max_distance(stack), 2)
    11.28
    """
    stack = check_label_stack(labels)
    areas = np.concatenate([frame_objects(frame)[2] for frame in stack])
    return float(factor * 2.0 * np.sqrt(np.median(areas) / np.pi))


def _predict_graph(
    centroids: list[NDArray[np.float64]], *, max_distance: float, max_gap: int, divisions: bool
) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """Directed links ``((t, i), (t', j))``, ``t < t'``, between centroids (``i``: row index)."""
    cutoff = float(max_distance) ** 2
    tracker = laptrack.LapTrack(
        metric="sqeuclidean",
        cutoff=cutoff,
        gap_closing_metric="sqeuclidean",
        gap_closing_cutoff=cutoff if max_gap > 0 else False,
        gap_closing_max_frame_count=max_gap + 1,
        splitting_metric="sqeuclidean",
        splitting_cutoff=cutoff if divisions else False,
        merging_cutoff=False,
        # Any candidate within max_distance beats "no link" (laptrack's default, a percentile of
        # the candidate costs, drops the farthest of a few divisions).
        segment_start_cost=cutoff,
        segment_end_cost=cutoff,
        no_splitting_cost=cutoff,
        no_merging_cost=cutoff,
    )
    graph = tracker.predict(centroids)
    return [((int(a[0]), int(a[1])), (int(b[0]), int(b[1]))) for a, b in graph.edges()]


def links_to_tracks(
    counts: list[int], links: list[tuple[tuple[int, int], tuple[int, int]]]
) -> tuple[list[NDArray[np.int64]], NDArray[np.int64]]:
    """Cut a link graph into CTC tracks.

    Parameters
    ----------
    counts : list of int
        Number of objects per frame; object ``(t, i)`` is the ``i``-th of frame ``t``.
    links : list of ((t, i), (t', j))
        Directed links, ``t < t'``, at most one incoming link per object (no merges).

    Returns
    -------
    track_of : list of (counts[t],) ndarray of int64
        Track id of every object, per frame.
    table : (N, 4) ndarray of int64
        ``L B E P`` per track, ids 1..N by first frame, then object index.

    A track continues from ``(t, i)`` to ``(t + 1, j)`` when that is the only link leaving
    ``(t, i)``; any other link (a division, or a gap ``t' > t + 1``) starts a new track whose
    parent is the track of ``(t, i)``.
    """
    parent_of: dict[tuple[int, int], tuple[int, int]] = {}
    children: dict[tuple[int, int], int] = {}
    for source, target in links:
        for t, i in (source, target):
            if not (0 <= t < len(counts) and 0 <= i < counts[t]):
                raise LapsegInputError(
                    f"link {source} -> {target} names a missing object ({t}, {i})"
                )
        if not source[0] < target[0]:
            raise LapsegInputError(f"link {source} -> {target} does not go forward in time")
        if target in parent_of:
            raise LapsegInputError(f"object {target} has two incoming links: merges are not tracks")
        parent_of[target] = source
        children[source] = children.get(source, 0) + 1
    track_of = [np.zeros(n, dtype=np.int64) for n in counts]
    rows: list[list[int]] = []
    for t, n in enumerate(counts):
        for i in range(n):
            previous = parent_of.get((t, i))
            parent = 0 if previous is None else int(track_of[previous[0]][previous[1]])
            if previous is not None and previous[0] == t - 1 and children[previous] == 1:
                rows[parent - 1][2] = t  # the same track, one frame longer
                track_of[t][i] = parent
            else:
                rows.append([len(rows) + 1, t, t, parent])
                track_of[t][i] = len(rows)
    return track_of, np.array(rows, dtype=np.int64).reshape(-1, 4)


def link_instances(
    labels: NDArray[np.integer],
    *,
    max_distance: float | None = None,
    max_gap: int = 1,
    divisions: bool = True,
) -> Tracks:
    """Link the per-frame instance labels of a time-lapse into tracks with divisions.

    Parameters
    ----------
    labels : (T, Y, X) ndarray of int
        Instance labels per frame, 0 = background; label values are independent between frames
        (a segmentation), T >= 2.
    max_distance : float, optional
        Largest centroid displacement (pixels) of a link, a gap closing or a division. Default:
        the median equivalent object diameter (:func:`default_max_distance`).
    max_gap : int, optional
        Largest number of consecutive frames an object may be missing and still continue its
        lineage (as a new track with the old one as parent); 0 disables gap closing.
    divisions : bool, optional
        Detect divisions (one object -> two in the next frame).

    Returns
    -------
    Tracks
        ``labels``: the stack relabelled by track id; ``table``: ``L B E P`` rows.

    Raises
    ------
    LapsegInputError
        Not a ``(T, Y, X)`` integer stack, a single frame, an empty stack or one without objects,
        a negative label, ``max_distance <= 0`` or ``max_gap < 0``.
    """
    stack = check_label_stack(labels)
    objects = [frame_objects(frame) for frame in stack]
    track_of, table = link_objects(
        objects, max_distance=max_distance, max_gap=max_gap, divisions=divisions
    )
    dtype = track_dtype(table)
    relabelled = np.zeros(stack.shape, dtype=dtype)
    for t, ((ids, _, _), tracks) in enumerate(zip(objects, track_of, strict=True)):
        relabelled[t] = relabel_frame(stack[t], ids, tracks, dtype=dtype)
    return Tracks(labels=relabelled, table=table)


FrameObjects = tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.int64]]
"""``(ids, centroids, areas)`` of one frame (:func:`frame_objects`)."""


def link_objects(
    objects: list[FrameObjects],
    *,
    max_distance: float | None = None,
    max_gap: int = 1,
    divisions: bool = True,
) -> tuple[list[NDArray[np.int64]], NDArray[np.int64]]:
    """:func:`link_instances` on per-frame object tables (a movie never held in memory).

    Parameters
    ----------
    objects : list of (ids, centroids, areas)
        One :func:`frame_objects` result per frame, T >= 2.
    max_distance, max_gap, divisions
        As in :func:`link_instances`; the default distance is the median equivalent diameter.

    Returns
    -------
    track_of : list of (n_t,) ndarray of int64
        Track id of every object, per frame, in the order of ``ids``.
    table : (N, 4) ndarray of int64
        ``L B E P`` rows.
    """
    if len(objects) < 2:
        raise LapsegInputError("tracking needs T >= 2 frames; the movie has a single frame")
    areas = np.concatenate([a for _, _, a in objects])
    if areas.size == 0:
        raise LapsegInputError("no objects in any frame: nothing to track")
    if max_distance is None:
        max_distance = float(2.0 * np.sqrt(np.median(areas) / np.pi))
    if not max_distance > 0:
        raise LapsegInputError(f"max_distance must be > 0 pixels, got {max_distance}")
    if max_gap < 0:
        raise LapsegInputError(f"max_gap must be >= 0 frames, got {max_gap}")
    links = _predict_graph(
        [centroids for _, centroids, _ in objects],
        max_distance=max_distance,
        max_gap=max_gap,
        divisions=divisions,
    )
    return links_to_tracks([ids.size for ids, _, _ in objects], links)


def track_dtype(table: NDArray[np.int64]) -> type[np.unsignedinteger]:
    """uint16 for up to 65535 tracks, else uint32."""
    return np.uint16 if table.shape[0] <= np.iinfo(np.uint16).max else np.uint32


def relabel_frame(
    frame: NDArray[np.integer],
    ids: NDArray[np.int64],
    tracks: NDArray[np.int64],
    *,
    dtype: type[np.unsignedinteger] = np.uint16,
) -> NDArray[np.unsignedinteger]:
    """``frame`` with each object ``ids[i]`` relabelled to its track ``tracks[i]``."""
    frame = np.asarray(frame)
    lut = np.zeros(int(frame.max(initial=0)) + 1, dtype=dtype)
    lut[ids] = tracks
    return lut[frame]
