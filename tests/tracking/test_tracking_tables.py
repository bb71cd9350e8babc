"""Per-object rows (tracks CSV) and napari tracks layer arrays."""

from __future__ import annotations

import numpy as np
import pytest

from lapseg.errors import LapsegInputError
from lapseg.tracking import napari_tracks, object_table
from lapseg.tracking.tables import OBJECT_COLUMNS


def _tracking() -> tuple[np.ndarray, np.ndarray]:
    """Track 1: a 2x2 square (frames 0-1) that divides into 2 and 3 (frame 2); track 4: 1 px."""
    labels = np.zeros((3, 6, 6), dtype=np.uint16)
    labels[0, 0:2, 0:2] = 1  # centroid (0.5, 0.5), area 4
    labels[1, 1:3, 0:2] = 1  # centroid (1.5, 0.5)
    labels[2, 1:3, 0] = 2  # centroid (1.5, 0), area 2
    labels[2, 1:3, 1] = 3  # centroid (1.5, 1)
    labels[1:3, 5, 4] = 4  # centroid (5, 4), area 1
    table = np.array([[1, 0, 1, 0], [2, 2, 2, 1], [3, 2, 2, 1], [4, 1, 2, 0]])
    return labels, table


def test_object_table_rows_by_hand() -> None:
    rows = object_table(*_tracking())
    assert all(tuple(row) == OBJECT_COLUMNS for row in rows)
    assert [tuple(row.values()) for row in rows] == [
        (1, 0, 0.5, 0.5, 4, 0),
        (1, 1, 1.5, 0.5, 4, 0),
        (2, 2, 1.5, 0.0, 2, 1),
        (3, 2, 1.5, 1.0, 2, 1),
        (4, 1, 5.0, 4.0, 1, 0),
        (4, 2, 5.0, 4.0, 1, 0),
    ]
    assert all(isinstance(row["track_id"], int) and isinstance(row["y"], float) for row in rows)


def test_napari_tracks_data_and_graph_by_hand() -> None:
    data, graph = napari_tracks(*_tracking())
    assert data.shape == (6, 4)
    assert data.dtype == np.float64
    np.testing.assert_array_equal(
        data,
        [
            [1, 0, 0.5, 0.5],
            [1, 1, 1.5, 0.5],
            [2, 2, 1.5, 0.0],
            [3, 2, 1.5, 1.0],
            [4, 1, 5.0, 4.0],
            [4, 2, 5.0, 4.0],
        ],
    )
    assert graph == {2: [1], 3: [1]}


def test_tables_refuse_a_table_that_disagrees_with_the_stack() -> None:
    labels, table = _tracking()
    with pytest.raises(LapsegInputError, match="label 4 in frame 1"):
        object_table(labels, table[:3])
    with pytest.raises(LapsegInputError, match="label 4 in frame 1"):
        napari_tracks(labels, table[:3])
