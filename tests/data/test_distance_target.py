"""The ``distance`` representation's targets: cell and neighbour distance, checked against
brute-force references on small label images."""

from __future__ import annotations

import numpy as np
import pytest

from lapseg.data.targets import (
    REGRESSION_CHANNELS,
    cell_distance,
    distance_maps,
    neighbor_distance,
)
from lapseg.errors import LapsegInputError


def _touching_pair() -> np.ndarray:
    labels = np.zeros((16, 24), np.int32)
    labels[3:12, 2:11] = 1
    labels[3:12, 11:20] = 2  # touches cell 1 along a whole side
    return labels


def _brute_cell_distance(labels: np.ndarray) -> np.ndarray:
    """Distance from each cell pixel to the nearest pixel of another label (inside the image),
    over its cell's maximum."""
    ys, xs = np.indices(labels.shape)
    out = np.zeros(labels.shape)
    for index in np.unique(labels[labels > 0]):
        cell = labels == index
        outside = ~cell
        d = np.full(labels.shape, np.inf)
        for y, x in zip(*np.nonzero(cell), strict=True):
            d[y, x] = np.sqrt((ys[outside] - y) ** 2 + (xs[outside] - x) ** 2).min()
        out[cell] = d[cell] / d[cell].max()
    return out


def _brute_neighbor_distance(labels: np.ndarray) -> np.ndarray:
    ys, xs = np.indices(labels.shape)
    out = np.zeros(labels.shape)
    for index in np.unique(labels[labels > 0]):
        cell = labels == index
        others = (labels > 0) & ~cell
        if not others.any():
            continue
        d = np.array(
            [
                np.sqrt((ys[others] - y) ** 2 + (xs[others] - x) ** 2).min()
                for y, x in zip(*np.nonzero(cell), strict=True)
            ]
        )
        out[cell] = np.clip(1 - d / d.max(), 0, 1) ** 3
    return out


def test_cell_distance_matches_brute_force_and_peaks_at_one_per_cell():
    labels = _touching_pair()
    labels[13:15, 20:23] = 3  # a small third cell
    distance = cell_distance(labels)
    assert distance.dtype == np.float32
    np.testing.assert_allclose(distance, _brute_cell_distance(labels), atol=1e-6)
    for index in (1, 2, 3):
        assert distance[labels == index].max() == pytest.approx(1.0)
    assert not distance[labels == 0].any()


def test_neighbor_distance_matches_brute_force_and_is_zero_for_lone_cells():
    labels = _touching_pair()
    closeness = neighbor_distance(labels)
    np.testing.assert_allclose(closeness, _brute_neighbor_distance(labels), atol=1e-6)
    # largest at the contact column, 0 at each cell's farthest column
    assert closeness[7, 10] == closeness[7, 11] == closeness.max()
    assert closeness[7, 2] == 0.0 and closeness[7, 19] == 0.0
    lone = np.zeros((10, 10), np.int32)
    lone[2:8, 2:8] = 4
    assert not neighbor_distance(lone).any()


def test_neighbor_distance_ignores_cells_beyond_the_window():
    labels = np.zeros((10, 60), np.int32)
    labels[2:8, 2:8] = 1
    labels[2:8, 50:56] = 2  # 42 px apart
    assert not neighbor_distance(labels, window=30).any()
    assert neighbor_distance(labels, window=50)[labels > 0].max() > 0


def test_distance_maps_stack_both_and_match_the_output_layout():
    labels = _touching_pair()
    maps = distance_maps(labels)
    assert maps.shape == (REGRESSION_CHANNELS["distance"], *labels.shape)
    assert maps.dtype == np.float32
    np.testing.assert_array_equal(maps[0], cell_distance(labels))
    np.testing.assert_array_equal(maps[1], neighbor_distance(labels))
    assert maps.min() >= 0.0 and maps.max() <= 1.0


@pytest.mark.parametrize("labels", [np.zeros((4, 4, 2), np.int32), np.zeros((4, 4), np.float32)])
def test_distance_maps_reject_bad_labels(labels):
    with pytest.raises(LapsegInputError, match="labels"):
        distance_maps(labels)


def test_prepared_sample_and_patches_carry_the_maps(tmp_path):
    from lapseg.config import AugmentationConfig, load_config
    from lapseg.data.dataset import PatchDataset
    from lapseg.data.normalization import fit_normalization
    from lapseg.data.samples import prepare_sample
    from lapseg.data.tasks import resolve_task, survey_masks
    from lapseg.io.discovery import SamplePaths

    labels = _touching_pair()
    image = (labels > 0).astype(np.float32)[None] + 0.1
    config, _ = resolve_task(load_config(None, ["data.target=distance"]), survey_masks([labels]))
    stats = fit_normalization([image], mode="meanstd")
    paths = SamplePaths(name="pair", image=tmp_path / "pair.tif", mask=tmp_path / "pair_mask.tif")
    sample = prepare_sample(paths, image, labels, config=config, stats=stats)
    np.testing.assert_array_equal(sample.target, labels > 0)
    assert sample.maps is not None
    np.testing.assert_array_equal(sample.maps, distance_maps(labels))
    margin = 2
    dataset = PatchDataset(
        [sample],
        patch_size=(16, 24),
        patches_per_epoch="pass",
        foreground_probability=0.5,
        augment=AugmentationConfig(preset="none"),
        seed=0,
        output_margin=margin,
    )
    assert len(dataset) == 4  # output tiles of 12 x 20 cover 16 x 24
    for index in range(len(dataset)):
        tile = dataset[index]
        assert tuple(tile["target"].shape) == (12, 20)
        assert tuple(tile["maps"].shape) == (2, 12, 20)
        # without augmentation the maps are cut like the target: cell distance > 0 on cells
        np.testing.assert_array_equal(tile["maps"][0].numpy() > 0, tile["target"].numpy() > 0)


def test_class_weights_of_a_distance_model_cover_its_two_classes():
    from lapseg.config import load_config
    from lapseg.data.samples import Sample
    from lapseg.data.setup import compute_class_weights
    from lapseg.data.tasks import resolve_task, survey_masks

    labels = _touching_pair()
    config, _ = resolve_task(
        load_config(None, ["data.target=distance", "loss.class_weighting=inverse_frequency"]),
        survey_masks([labels]),
    )
    sample = Sample("pair", np.zeros((1, *labels.shape), np.float32), (labels > 0).astype(np.int64))
    weights = compute_class_weights([sample], config)
    assert weights is not None and len(weights) == 2  # background, foreground: not the maps
    cells = int((labels > 0).sum())
    assert weights[1] / weights[0] == pytest.approx((labels.size - cells) / cells)
