"""Linking per-frame instances into tracks: exact recovery, divisions, gaps, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from lapseg.errors import LapsegInputError
from lapseg.io.ctc import check_tracks
from lapseg.metrics.tracking import tracking_scores
from lapseg.tracking import (
    default_max_distance,
    frame_objects,
    link_instances,
    links_to_tracks,
    moving_discs,
    scramble_labels,
)


def _id_map(truth: np.ndarray, result: np.ndarray) -> dict[int, int]:
    """Truth id -> result id, asserting that the two stacks have the same objects, one to one."""
    np.testing.assert_array_equal(truth > 0, result > 0)
    pairs = np.unique(np.stack([truth[truth > 0], result[truth > 0]]), axis=1).T
    mapping = dict(pairs.tolist())
    assert len(mapping) == pairs.shape[0] == len(set(mapping.values()))
    return mapping


def _assert_same_tracking(truth_labels: np.ndarray, truth_table: np.ndarray, result) -> None:
    mapping = _id_map(truth_labels, result.labels)
    mapping[0] = 0
    renamed = sorted([mapping[L], B, E, mapping[P]] for L, B, E, P in truth_table.tolist())
    np.testing.assert_array_equal(result.table, renamed)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_moving_and_dividing_discs_are_recovered_exactly(seed: int) -> None:
    truth = moving_discs(n_frames=12, grid=(3, 3), n_divisions=3, rng=seed)
    segmentation = scramble_labels(truth.labels, rng=seed)
    result = link_instances(segmentation)
    _assert_same_tracking(truth.labels, truth.table, result)
    scores = tracking_scores(truth.labels, truth.table, result.labels, result.table)
    assert (scores.det, scores.tra) == (1.0, 1.0)


def test_division_parent_is_the_mother() -> None:
    truth = moving_discs(n_frames=6, grid=(1, 2), n_divisions=1, divide_at=3, rng=5)
    result = link_instances(scramble_labels(truth.labels, rng=5))
    children = result.table[result.table[:, 3] > 0]
    assert children.shape[0] == 2
    mother = int(children[0, 3])
    assert (children[:, 3] == mother).all()
    assert (children[:, 1] == 3).all()
    np.testing.assert_array_equal(result.table[mother - 1], [mother, 0, 2, 0])
    # the mother's pixels are the truth mother's pixels
    np.testing.assert_array_equal(result.labels == mother, truth.labels == 1)


def test_output_is_a_valid_ctc_tracking_and_input_is_untouched() -> None:
    truth = moving_discs(n_frames=5, grid=(2, 2), rng=1)
    segmentation = scramble_labels(truth.labels, rng=1)
    before = segmentation.copy()
    result = link_instances(segmentation)
    np.testing.assert_array_equal(segmentation, before)
    assert result.labels.dtype == np.uint16
    assert result.labels.shape == segmentation.shape
    np.testing.assert_array_equal(check_tracks(result.labels, result.table), result.table)
    np.testing.assert_array_equal(result.table[:, 0], np.arange(1, result.table.shape[0] + 1))


def _drop_object(labels: np.ndarray, truth_id: int, t: int) -> np.ndarray:
    out = labels.copy()
    out[t][out[t] == truth_id] = 0
    return out


def test_gap_closing_continues_the_lineage() -> None:
    truth = moving_discs(n_frames=8, grid=(2, 2), n_divisions=0, rng=2)
    segmentation = scramble_labels(_drop_object(truth.labels, 1, 4), rng=2)
    closed = link_instances(segmentation, max_gap=1)
    assert closed.table.shape[0] == 5  # truth track 1 is cut into 0-3 and 5-7
    child = closed.table[closed.table[:, 1] == 5]
    assert child.shape == (1, 4)
    parent = closed.table[closed.table[:, 0] == child[0, 3]]
    np.testing.assert_array_equal(parent[:, 1:3], [[0, 3]])
    np.testing.assert_array_equal(closed.labels[:4] == parent[0, 0], truth.labels[:4] == 1)
    opened = link_instances(segmentation, max_gap=0)
    assert opened.table.shape[0] == 5
    assert (opened.table[:, 3] == 0).all()


def test_an_empty_frame_is_bridged_by_gap_closing() -> None:
    truth = moving_discs(n_frames=6, grid=(1, 2), n_divisions=0, rng=4)
    labels = truth.labels.copy()
    labels[2] = 0
    result = link_instances(labels, max_gap=1, max_distance=20.0)
    np.testing.assert_array_equal(
        result.table, [[1, 0, 1, 0], [2, 0, 1, 0], [3, 3, 5, 1], [4, 3, 5, 2]]
    )


def test_without_divisions_a_daughter_continues_the_mother() -> None:
    truth = moving_discs(n_frames=6, grid=(1, 1), n_divisions=1, divide_at=3, rng=0)
    result = link_instances(truth.labels, divisions=False)
    assert result.table.shape[0] == 2
    np.testing.assert_array_equal(result.table[:, 3], [0, 0])
    np.testing.assert_array_equal(sorted(result.table[:, 1].tolist()), [0, 3])


def test_max_distance_below_the_motion_links_nothing() -> None:
    truth = moving_discs(n_frames=4, grid=(1, 2), n_divisions=0, step=3.0, rng=0)
    result = link_instances(truth.labels, max_distance=0.5, max_gap=0)
    n_objects = sum(frame_objects(frame)[0].size for frame in truth.labels)
    assert result.table.shape[0] == n_objects == 8
    np.testing.assert_array_equal(result.table[:, 1], result.table[:, 2])


def test_default_max_distance_is_the_median_diameter() -> None:
    stack = np.zeros((2, 30, 30), dtype=np.uint16)
    stack[0, 0:10, 0:10] = 1  # 100 px
    stack[0, 20:24, 20:24] = 2  # 16 px
    stack[1, 0:5, 0:5] = 4  # 25 px
    assert default_max_distance(stack) == pytest.approx(2 * np.sqrt(25 / np.pi))
    assert default_max_distance(stack, factor=2.0) == pytest.approx(4 * np.sqrt(25 / np.pi))


def test_frame_objects_of_an_empty_frame() -> None:
    ids, centroids, areas = frame_objects(np.zeros((4, 4), dtype=np.uint16))
    assert (ids.shape, centroids.shape, areas.shape) == ((0,), (0, 2), (0,))


def test_links_to_tracks_by_hand() -> None:
    # frame 0: a0 a1; frame 1: b0; frame 2: c0 c1 c2
    # a0 -> b0 -> (c0, c1) is a division; a1 -> c2 skips frame 1 (a gap)
    links = [((0, 0), (1, 0)), ((1, 0), (2, 0)), ((1, 0), (2, 1)), ((0, 1), (2, 2))]
    track_of, table = links_to_tracks([2, 1, 3], links)
    assert [t.tolist() for t in track_of] == [[1, 2], [1], [3, 4, 5]]
    np.testing.assert_array_equal(
        table, [[1, 0, 1, 0], [2, 0, 0, 0], [3, 2, 2, 1], [4, 2, 2, 1], [5, 2, 2, 2]]
    )


@pytest.mark.parametrize(
    ("links", "message"),
    [
        ([((0, 0), (1, 0)), ((0, 1), (1, 0))], "two incoming links"),
        ([((1, 0), (0, 0))], "does not go forward in time"),
        ([((0, 0), (0, 1))], "does not go forward in time"),
        ([((0, 0), (1, 1))], r"names a missing object \(1, 1\)"),
    ],
)
def test_links_to_tracks_refuses_bad_links(links: list, message: str) -> None:
    with pytest.raises(LapsegInputError, match=message):
        links_to_tracks([2, 1], links)


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (np.zeros((0, 8, 8), dtype=np.uint16), "empty"),
        (np.zeros((2, 0, 8), dtype=np.uint16), "empty"),
        (np.ones((1, 8, 8), dtype=np.uint16), "single frame"),
        (np.ones((8, 8), dtype=np.uint16), r"\(T, Y, X\) label stack"),
        (np.zeros((3, 8, 8), dtype=np.uint16), "no objects"),
        (np.ones((2, 8, 8), dtype=np.float32), "integers"),
        (-np.ones((2, 8, 8), dtype=np.int32), "negative"),
    ],
)
def test_bad_stacks_raise_one_line_errors(labels: np.ndarray, message: str) -> None:
    with pytest.raises(LapsegInputError, match=message) as info:
        link_instances(labels)
    assert "\n" not in str(info.value)


def test_bad_options_raise() -> None:
    labels = moving_discs(n_frames=3, grid=(1, 1), n_divisions=0, rng=0).labels
    with pytest.raises(LapsegInputError, match="max_distance must be > 0"):
        link_instances(labels, max_distance=0.0)
    with pytest.raises(LapsegInputError, match="max_gap must be >= 0"):
        link_instances(labels, max_gap=-1)
