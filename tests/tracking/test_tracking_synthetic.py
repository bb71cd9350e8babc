"""The synthetic tracking ground truth: valid, non-touching, moving as specified."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import ndimage as ndi

from lapseg.errors import LapsegInputError
from lapseg.io.ctc import check_tracks
from lapseg.tracking import frame_objects, moving_discs, scramble_labels


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_moving_discs_is_a_valid_tracking_with_the_requested_divisions(seed: int) -> None:
    truth = moving_discs(n_frames=10, grid=(3, 2), n_divisions=2, divide_at=4, rng=seed)
    assert truth.labels.shape == (10, 3 * 48, 2 * 48)
    assert truth.labels.dtype == np.uint16
    np.testing.assert_array_equal(check_tracks(truth.labels, truth.table), truth.table)
    children = truth.table[truth.table[:, 3] > 0]
    np.testing.assert_array_equal(children[:, 3], [1, 1, 4, 4])
    assert (children[:, 1] == 4).all()
    np.testing.assert_array_equal(truth.table[[0, 3], 2], [3, 3])


def test_objects_never_touch_and_move_at_most_step() -> None:
    truth = moving_discs(n_frames=10, grid=(3, 3), n_divisions=3, step=3.0, rng=7)
    for frame in truth.labels:
        # each label is one 4-connected component and no two labels are 8-adjacent
        grown = ndi.grey_dilation(frame, size=(3, 3))
        touching = (frame > 0) & (grown != frame)
        assert not touching.any()
        assert ndi.label(frame > 0)[1] == frame_objects(frame)[0].size
    centroids = [dict(zip(*frame_objects(f)[:2], strict=True)) for f in truth.labels]
    for now, nxt in itertools.pairwise(centroids):
        for label in now.keys() & nxt.keys():
            assert np.linalg.norm(nxt[label] - now[label]) <= 3.0 + 0.5  # disc rasterisation


def test_moving_discs_is_reproducible() -> None:
    a = moving_discs(rng=3)
    b = moving_discs(rng=3)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert not np.array_equal(a.labels, moving_discs(rng=4).labels)


def test_scramble_labels_keeps_the_objects_and_renumbers_them() -> None:
    truth = moving_discs(n_frames=4, grid=(2, 2), rng=0)
    scrambled = scramble_labels(truth.labels, rng=0)
    np.testing.assert_array_equal(scrambled > 0, truth.labels > 0)
    for before, after in zip(truth.labels, scrambled, strict=True):
        pairs = np.unique(np.stack([before[before > 0], after[before > 0]]), axis=1)
        assert pairs.shape[1] == len(set(pairs[0])) == len(set(pairs[1]))
        np.testing.assert_array_equal(np.unique(after[after > 0]), np.arange(1, pairs.shape[1] + 1))


@pytest.mark.parametrize(
    "options",
    [
        {"n_frames": 1},
        {"divide_at": 0},
        {"n_frames": 4, "divide_at": 4},
        {"n_divisions": 5},
        {"step": 7.0},
    ],
)
def test_moving_discs_refuses_bad_options(options: dict) -> None:
    with pytest.raises(LapsegInputError):
        moving_discs(**options)
