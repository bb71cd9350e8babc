"""Per-object views of a tracking: rows for a tracks CSV, arrays for a napari tracks layer."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from lapseg.io.ctc import check_tracks
from lapseg.tracking.linking import FrameObjects, frame_objects

__all__ = ["OBJECT_COLUMNS", "napari_tracks", "object_table"]

OBJECT_COLUMNS: tuple[str, ...] = ("track_id", "frame", "y", "x", "area", "parent")
"""Columns of :func:`object_table` rows."""


def _objects(labels: NDArray[np.integer], tracks: ArrayLike) -> tuple[NDArray, NDArray]:
    """Checked table and an ``(n, 5)`` float array ``track_id, t, y, x, area`` by (track, t)."""
    stack = np.asarray(labels)
    table = check_tracks(stack, tracks)
    parts = []
    for t, frame in enumerate(stack):
        ids, centroids, areas = frame_objects(frame)
        parts.append(np.column_stack([ids, np.full(ids.size, t), centroids, areas]))
    objects = np.concatenate(parts).astype(np.float64).reshape(-1, 5)
    order = np.lexsort((objects[:, 1], objects[:, 0]))
    return table, objects[order]


def object_table(labels: NDArray[np.integer], tracks: ArrayLike) -> list[dict[str, int | float]]:
    """One row per object per frame: track id, frame, centroid, area and the track's parent.

    Parameters
    ----------
    labels : (T, Y, X) ndarray of int
        Stack labelled by track id (e.g. :attr:`Tracks.labels`).
    tracks : (N, 4) array_like of int
        Its track table ``L B E P``.

    Returns
    -------
    list of dict
        Keys :data:`OBJECT_COLUMNS`: ``track_id``, ``frame``, ``area``, ``parent`` (int; parent
        track id, 0: none) and ``y``, ``x`` (float, pixels); sorted by track id, then frame.
        Ready for a CSV writer taking dict rows.
    """
    table, objects = _objects(labels, tracks)
    parent = dict(zip(table[:, 0].tolist(), table[:, 3].tolist(), strict=True))
    return [
        {
            "track_id": int(track),
            "frame": int(t),
            "y": float(y),
            "x": float(x),
            "area": int(area),
            "parent": parent[int(track)],
        }
        for track, t, y, x, area in objects.tolist()
    ]


def napari_tracks(
    labels: NDArray[np.integer], tracks: ArrayLike
) -> tuple[NDArray[np.float64], dict[int, list[int]]]:
    """The ``data`` and ``graph`` of a napari tracks layer (``viewer.add_tracks(data, graph=graph)``).

    Parameters
    ----------
    labels : (T, Y, X) ndarray of int
        Stack labelled by track id.
    tracks : (N, 4) array_like of int
        Its track table ``L B E P``.

    Returns
    -------
    data : (M, 4) ndarray of float64
        ``track_id, t, y, x`` per object, sorted by track id, then t.
    graph : dict of int to list of int
        ``{daughter track id: [parent track id]}`` for every track with a parent.
    """
    table, objects = _objects(labels, tracks)
    graph = {int(L): [int(P)] for L, _, _, P in table.tolist() if P != 0}
    return objects[:, :4].copy(), graph


def track_rows(
    objects: list[FrameObjects], track_of: list[NDArray[np.int64]], table: NDArray[np.int64]
) -> list[dict[str, int | float]]:
    """The rows of :func:`object_table` from per-frame object tables and their track ids
    (:func:`lapseg.tracking.linking.link_objects`), without the label stack."""
    parent = dict(zip(table[:, 0].tolist(), table[:, 3].tolist(), strict=True))
    rows = [
        {
            "track_id": int(track),
            "frame": t,
            "y": float(y),
            "x": float(x),
            "area": int(area),
            "parent": parent[int(track)],
        }
        for t, ((_, centroids, areas), tracks) in enumerate(zip(objects, track_of, strict=True))
        for track, (y, x), area in zip(
            tracks.tolist(), centroids.tolist(), areas.tolist(), strict=True
        )
    ]
    rows.sort(key=lambda row: (row["track_id"], row["frame"]))
    return rows
