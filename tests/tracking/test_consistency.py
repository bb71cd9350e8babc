"""Temporal consistency: one-frame tracks and gaps of linked labels."""

from __future__ import annotations

import numpy as np

from lapseg.tracking import (
    link_instances,
    moving_discs,
    temporal_consistency,
    track_ids_per_frame,
)


def test_clean_tracking_has_no_flicker_and_no_gap() -> None:
    truth = moving_discs(n_frames=8, grid=(2, 2), n_divisions=1, rng=0)
    measured = temporal_consistency(track_ids_per_frame(truth.labels), truth.table)
    assert measured.flickers == 0 and measured.gaps == 0
    assert measured.objects == int(sum(len(np.unique(f)) - 1 for f in truth.labels))
    assert measured.tracks == len(truth.table) == 6  # 4 cells, one divides into 2 daughters


def test_a_missed_cell_and_a_spurious_blob_are_counted() -> None:
    truth = moving_discs(n_frames=8, grid=(2, 2), n_divisions=0, rng=1)
    labels = truth.labels.copy()
    first_cell = labels[4] == labels[4].max()
    labels[4][first_cell] = 0  # the segmenter misses one cell in frame 4
    labels[2, 0:3, 0:3] = labels.max() + 1  # and finds a blob in frame 2 only
    tracked = link_instances(labels, max_gap=1)
    measured = temporal_consistency(track_ids_per_frame(tracked.labels), tracked.table)
    assert measured.flickers == 1
    assert measured.gaps == 1
    assert measured.flicker_rate == 1 / measured.objects
    assert "1 one-frame track(s)" in measured.summary()
