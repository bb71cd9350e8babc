"""Tracking: per-frame instance labels -> tracks with divisions (CTC ``L B E P`` tables).

- :func:`link_instances` links a ``(T, Y, X)`` label stack into a :class:`Tracks` (relabelled
  stack + track table) with ``laptrack``;
- :func:`object_table` and :func:`napari_tracks` give per-object rows for a CSV and the arrays of
  a napari tracks layer;
- :func:`temporal_consistency` counts one-frame tracks and gaps (do cells flicker?);
- :func:`moving_discs` and :func:`scramble_labels` make synthetic ground truth for tests.

CTC files are read and written by :mod:`lapseg.io.ctc`; DET and TRA are in
:mod:`lapseg.metrics.tracking`.
"""

from lapseg.tracking.consistency import (
    TemporalConsistency,
    temporal_consistency,
    track_ids_per_frame,
)
from lapseg.tracking.linking import (
    FrameObjects,
    Tracks,
    default_max_distance,
    frame_objects,
    link_instances,
    link_objects,
    links_to_tracks,
    relabel_frame,
    track_dtype,
)
from lapseg.tracking.synthetic import moving_discs, scramble_labels
from lapseg.tracking.tables import napari_tracks, object_table, track_rows

__all__ = [
    "FrameObjects",
    "TemporalConsistency",
    "Tracks",
    "default_max_distance",
    "frame_objects",
    "link_instances",
    "link_objects",
    "links_to_tracks",
    "moving_discs",
    "napari_tracks",
    "object_table",
    "relabel_frame",
    "scramble_labels",
    "temporal_consistency",
    "track_dtype",
    "track_ids_per_frame",
    "track_rows",
]
