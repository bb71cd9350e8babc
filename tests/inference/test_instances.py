"""Tests for lapseg.inference.instances: post-processing and tile-seam invariance."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import ndimage
from skimage.draw import disk

from lapseg.data.targets import distance_maps, three_class_target
from lapseg.errors import LapsegInputError
from lapseg.inference.instances import (
    PostprocessConfig,
    fill_label_holes,
    instances_from_binary,
    instances_from_distance,
    instances_from_probabilities,
    instances_from_three_class,
    remove_border_objects,
    remove_small_objects,
)
from lapseg.inference.sliding_window import predict_sliding_window
from lapseg.inference.tiling import tile_starts
from lapseg.metrics.instance import match_instances


def _one_hot(target: np.ndarray) -> np.ndarray:
    return np.stack([target == k for k in range(3)]).astype(np.float32)


def _same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal up to a renaming of the labels (0 fixed)."""
    if not np.array_equal(a > 0, b > 0):
        return False
    pairs = np.unique(np.stack([a[a > 0], b[b > 0]]), axis=1)
    return len(set(pairs[0])) == len(set(pairs[1])) == pairs.shape[1]


def _touching_cells(shape=(40, 60)) -> np.ndarray:
    labels = np.zeros(shape, dtype=np.uint16)
    labels[5:25, 5:25] = 1
    labels[5:25, 25:45] = 2  # touches cell 1 along a whole side
    labels[28:38, 48:58] = 3
    return labels


def test_three_class_separates_touching_cells_exactly():
    labels = _touching_cells()
    prob = _one_hot(three_class_target(labels, boundary_width=2))
    out = instances_from_three_class(prob, min_size=0)
    assert out.dtype == np.uint16
    assert _same_partition(out, labels)
    # the binary baseline merges the touching pair
    merged = instances_from_binary(1.0 - prob[0], min_size=0)
    assert merged.max() == 2


def test_three_class_seed_growth_follows_foreground_probability():
    # one row: interior seeds at both ends, foreground in between, a dip of P(fg) at x=6
    prob = np.zeros((3, 1, 10), dtype=np.float32)
    prob[1, 0, [0, 9]] = 1.0
    prob[2, 0, 1:9] = [0.9, 0.9, 0.9, 0.9, 0.9, 0.6, 0.9, 0.9]
    prob[0] = 1.0 - prob[1] - prob[2]
    out = instances_from_three_class(prob, min_size=0, fill_holes=False)
    np.testing.assert_array_equal(out[0], [1, 1, 1, 1, 1, 1, 2, 2, 2, 2])


def test_three_class_options_min_size_seed_size_border_and_holes():
    labels = _touching_cells()
    labels[0:3, 0:3] = 4  # small, at the border
    prob = _one_hot(three_class_target(labels, boundary_width=1))
    prob[:, 12, 12] = [1.0, 0.0, 0.0]  # a one-pixel hole in cell 1
    full = instances_from_three_class(prob, min_size=0, fill_holes=True)
    assert full[12, 12] == full[10, 10] != 0
    holes = instances_from_three_class(prob, min_size=0, fill_holes=False)
    assert holes[12, 12] == 0
    assert instances_from_three_class(prob, min_size=10).max() == 3  # the 9-pixel cell goes
    assert instances_from_three_class(prob, remove_border=True, min_size=0).max() == 3
    # a 1-pixel interior speck in the background adds an object unless its seed is filtered
    prob[:, 35, 10] = [0.0, 1.0, 0.0]
    assert instances_from_three_class(prob, min_size=0).max() == 5
    assert instances_from_three_class(prob, min_size=0, min_seed_size=2).max() == 4


def test_binary_watershed_splits_two_overlapping_discs():
    mask = np.zeros((40, 60), dtype=bool)
    mask[disk((20, 18), 11, shape=mask.shape)] = True
    mask[disk((20, 38), 11, shape=mask.shape)] = True
    mask[2:8, 2:50] = True  # an elongated bar: its ridge of equal distances is one seed
    prob = mask.astype(np.float32)
    assert instances_from_binary(prob, min_size=0).max() == 2
    split = instances_from_binary(prob, watershed=True, min_distance=5, min_size=0)
    assert split.max() == 3
    assert split[20, 18] != split[20, 38]
    assert np.array_equal(split > 0, mask)


def test_fill_remove_helpers_by_hand():
    labels = np.array(
        [
            [1, 1, 1, 0, 0],
            [1, 0, 1, 0, 2],
            [1, 1, 1, 0, 0],
            [0, 0, 0, 0, 3],
        ],
        dtype=np.int32,
    )
    filled = fill_label_holes(labels)
    assert filled[1, 1] == 1 and labels[1, 1] == 0
    np.testing.assert_array_equal(
        remove_small_objects(labels, min_size=2), np.where(labels > 1, 0, labels)
    )
    inner = np.zeros((5, 5), np.int32)
    inner[2, 2] = 7
    inner[0, 1] = 8
    np.testing.assert_array_equal(remove_border_objects(inner), np.where(inner == 8, 0, inner))


def test_gap_between_three_cells_is_not_filled():
    labels = np.zeros((7, 7), np.int32)
    labels[:, :3] = 1
    labels[:, 4:] = 2
    labels[0, 3] = 3
    labels[6, 3] = 3
    labels[2:5, 3] = 0
    np.testing.assert_array_equal(fill_label_holes(labels), labels)


def test_dispatch_by_channel_count():
    labels = _touching_cells()
    prob3 = _one_hot(three_class_target(labels))
    config = PostprocessConfig(min_size=0)
    assert _same_partition(instances_from_probabilities(prob3, config), labels)
    fg = (labels > 0).astype(np.float32)[None]
    assert instances_from_probabilities(fg, config, threshold=0.5).max() == 2
    two = np.concatenate([1 - fg, fg])
    assert instances_from_probabilities(two, config).max() == 2
    ideal = _ideal_distance(labels)
    assert _same_partition(instances_from_probabilities(ideal, config), labels)
    with pytest.raises(LapsegInputError, match="4"):
        instances_from_probabilities(np.zeros((5, 8, 8), np.float32), config)


def _ideal_distance(labels: np.ndarray) -> np.ndarray:
    """The probabilities a perfect ``distance`` model gives: background, foreground, maps."""
    cells = (labels > 0).astype(np.float32)
    return np.concatenate([np.stack([1 - cells, cells]), distance_maps(labels)])


def test_distance_separates_touching_cells():
    labels = _touching_cells()
    out = instances_from_distance(_ideal_distance(labels), min_size=0)
    assert out.dtype == np.uint16
    assert _same_partition(out, labels)
    # a narrower pair at the image border: every cell found, but the maps do not say on which
    # side of a contact line a pixel lies, so the watershed may give one contact pixel away
    labels[30:40, 5:15] = 4
    labels[30:40, 15:22] = 5
    out = instances_from_distance(_ideal_distance(labels), min_size=0)
    np.testing.assert_array_equal(out > 0, labels > 0)
    (record,) = match_instances(labels, out, thresholds=[0.95])
    assert record.tp == 5 and record.fp == 0 and record.fn == 0
    assert (out != labels).sum() <= 2  # labels happen to keep their numbers (sequential order)
    # the binary baseline merges the touching pairs
    assert instances_from_binary(1.0 - _ideal_distance(labels)[0], min_size=0).max() == 3


def test_distance_seed_threshold_and_foreground_threshold():
    labels = _touching_cells()
    prob = _ideal_distance(labels)
    # cell minus neighbour distance never reaches 1: no seed, no object
    assert instances_from_distance(prob, seed_threshold=0.999, min_size=0).max() == 0
    # a weak foreground ring grows the cells only when the threshold lets it in
    ring = (ndimage.binary_dilation(labels > 0, iterations=2) & (labels == 0)).astype(np.float32)
    prob[1] = np.maximum(prob[1], 0.45 * ring)
    prob[0] = 1 - prob[1]
    loose = instances_from_distance(prob, foreground_threshold=0.4, min_size=0)
    tight = instances_from_distance(prob, foreground_threshold=0.5, min_size=0)
    assert _same_partition(tight, labels)
    assert (loose > 0).sum() == (labels > 0).sum() + ring.sum()


@pytest.mark.parametrize(
    ("call", "kwargs"),
    [
        (instances_from_three_class, {"prob": np.zeros((2, 8, 8), np.float32)}),
        (instances_from_three_class, {"prob": np.zeros((3, 8, 8), np.int32)}),
        (instances_from_three_class, {"prob": np.full((3, 8, 8), np.nan, np.float32)}),
        (instances_from_three_class, {"prob": np.zeros((3, 8, 8)), "interior_threshold": 1.0}),
        (instances_from_three_class, {"prob": np.zeros((3, 8, 8)), "min_size": -1}),
        (instances_from_distance, {"prob": np.zeros((3, 8, 8), np.float32)}),
        (instances_from_distance, {"prob": np.zeros((4, 8, 8)), "seed_threshold": 1.0}),
        (instances_from_binary, {"prob": np.zeros((3, 8, 8), np.float32)}),
        (instances_from_binary, {"prob": np.zeros((8, 8)), "threshold": 0.0}),
        (instances_from_binary, {"prob": np.zeros((8, 8)), "min_distance": 0}),
        (fill_label_holes, {"labels": np.zeros((8, 8), np.float32)}),
    ],
)
def test_bad_input(call, kwargs):
    with pytest.raises(LapsegInputError):
        call(**kwargs)


def test_postprocess_config_validation():
    with pytest.raises(LapsegInputError, match=r"postprocess\.interior_threshold"):
        PostprocessConfig(interior_threshold=0.0)
    with pytest.raises(LapsegInputError, match=r"postprocess\.min_size"):
        PostprocessConfig(min_size=-1)


# --------------------------------------------------------------------------- tile seams


def _discs(shape: tuple[int, int], centres: list[tuple[int, int]]) -> np.ndarray:
    """Discs of radius 7 labelled 1..N (discs 14 pixels apart touch)."""
    labels = np.zeros(shape, dtype=np.uint16)
    for k, centre in enumerate(centres, start=1):
        labels[disk(centre, 7, shape=shape)] = k
    return labels


def _box_blur_valid(batch: torch.Tensor) -> torch.Tensor:
    """A toy 'valid' predictor with a 5 x 5 receptive field (output_margin = 2)."""
    channels = batch.shape[1]
    kernel = torch.full((channels, 1, 5, 5), 1.0 / 25.0, dtype=batch.dtype, device=batch.device)
    return F.conv2d(batch, kernel, groups=channels)


@pytest.mark.parametrize("blend", ["crop", "gaussian", "constant"])
def test_tiled_prediction_gives_the_same_instances_as_whole_image(blend):
    shape, tile, margin, overlap = (90, 100), (32, 32), 2, 0.25
    out_tile = tile[0] - 2 * margin
    # seams: where one tile's output ends, inside the next tile (starts as the tiler plans them)
    seams = [[s + out_tile for s in tile_starts(n, out_tile, overlap)[:-1]] for n in shape]
    (y0, y1), (x0, x1) = seams[0][:2], seams[1][::2][:2]
    labels = _discs(shape, [(y0, x0), (y0, x0 + 14), (y1, x1), (y1 + 14, x1)])  # 2 touching pairs
    n_cells = int(labels.max())
    image = torch.from_numpy(_one_hot(three_class_target(labels, boundary_width=2)))
    with torch.inference_mode():
        tiled = predict_sliding_window(
            _box_blur_valid,
            image,
            tile_size=tile,
            overlap=overlap,
            blend=blend,
            output_margin=margin,
        )
        padded = F.pad(image[None], (margin,) * 4, mode="reflect")
        whole = _box_blur_valid(padded)[0]
    assert tiled.shape == image.shape
    tiled_labels = instances_from_three_class(tiled.numpy(), min_size=0)
    whole_labels = instances_from_three_class(whole.numpy(), min_size=0)
    assert _same_partition(tiled_labels, whole_labels)
    # no cell cut or duplicated at a seam: one instance per cell, each matched with high IoU
    assert tiled_labels.max() == n_cells
    record = match_instances(labels, tiled_labels, thresholds=[0.8])[0]
    assert record.tp == n_cells and record.fp == 0
    # the seams really cross cells: some cell lies on both sides of a seam, in y and in x
    for axis, cuts in enumerate(seams):
        extents = [np.nonzero(labels == k)[axis] for k in range(1, n_cells + 1)]
        assert any(e.min() < c <= e.max() for e in extents for c in cuts)


def test_foreground_without_seed_is_dropped_and_empty_maps_give_no_object():
    prob = np.zeros((3, 8, 8), np.float32)
    prob[2] = 1.0  # all boundary: foreground, but no interior seed
    assert instances_from_three_class(prob).max() == 0
    prob = np.zeros((3, 8, 8), np.float32)
    prob[0] = 1.0
    assert instances_from_three_class(prob).max() == 0
    assert instances_from_binary(prob[1], watershed=True).max() == 0


def test_size_limits_scale_with_the_training_object_area():
    from lapseg.config import PostprocessConfig
    from lapseg.inference.instances import instances_from_probabilities

    prob = np.zeros((3, 64, 64), np.float32)
    prob[0] = 1.0
    prob[:, 8:40, 8:40] = [[[0.0]], [[1.0]], [[0.0]]]  # a 1024-pixel cell
    prob[:, 50:56, 50:56] = [[[0.0]], [[1.0]], [[0.0]]]  # a 36-pixel speck
    config = PostprocessConfig()  # min_size 16: the speck survives without an object area
    assert instances_from_probabilities(prob, config).max() == 2
    # typical training cells of ~1000 px: 10% = 100 px, so the speck goes, the cell stays
    labels = instances_from_probabilities(prob, config, object_area=1000.0)
    assert labels.max() == 1 and (labels == 1).sum() == 32 * 32
