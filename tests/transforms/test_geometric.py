"""Geometric transforms: coordinate maps against numpy/hand-computed references, elastic fields."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage

from lapseg.config import AUGMENTATION_PRESETS
from lapseg.transforms.geometric import (
    GeometryParams,
    apply_geometry,
    coordinate_map,
    dihedral_transform,
    elastic_displacement,
    grid_displacement,
    random_geometry,
    warp,
)


@pytest.mark.parametrize("shape", [(5, 5), (4, 6)])
def test_dihedral_coordinate_maps_equal_numpy_flips_and_turns(shape: tuple[int, int]) -> None:
    array = np.arange(shape[0] * shape[1], dtype=np.float64).reshape(shape)
    turns = range(4) if shape[0] == shape[1] else (0, 2)
    for k in turns:
        for flip_y in (False, True):
            for flip_x in (False, True):
                params = GeometryParams(flip_y=flip_y, flip_x=flip_x, k_rot90=k)
                expected = dihedral_transform(array, k_rot90=k, flip_y=flip_y, flip_x=flip_x)
                np.testing.assert_allclose(
                    warp(array, coordinate_map(shape, params), order=1), expected, atol=1e-4
                )
                np.testing.assert_array_equal(
                    warp(array.astype(np.int64), coordinate_map(shape, params), order=0),
                    expected.astype(np.int64),
                )
                (fast,) = apply_geometry([array], params, orders=[1])
                np.testing.assert_array_equal(fast, expected)


def test_rotation_by_90_degrees_is_a_quarter_turn() -> None:
    array = np.arange(36, dtype=np.float64).reshape(6, 6)
    out = warp(array, coordinate_map((6, 6), GeometryParams(angle=90.0)), order=1)
    np.testing.assert_allclose(out, np.rot90(array), atol=1e-4)


def test_zoom_crop_and_shift_on_a_ramp() -> None:
    ramp = np.tile(np.arange(9, dtype=np.float64), (9, 1))  # value = column index; centre 4
    zoomed = warp(ramp, coordinate_map((9, 9), GeometryParams(zoom=2.0)), order=1)
    np.testing.assert_allclose(zoomed[0], 4 + (np.arange(9) - 4) / 2, atol=1e-5)
    cropped = warp(
        ramp,
        coordinate_map((9, 9), GeometryParams(crop_fraction=0.5, crop_offset=(0.0, 2.0))),
        order=1,
    )
    np.testing.assert_allclose(
        cropped[3], 6 + (np.arange(9) - 4) / 2, atol=1e-5
    )  # window columns 4..8
    shifted = warp(ramp, coordinate_map((9, 9), GeometryParams(shift=(0.0, 1.5))), order=1)
    np.testing.assert_allclose(shifted[0, :7], np.arange(7) + 1.5, atol=1e-5)
    np.testing.assert_allclose(
        shifted[0, 7:], [7.5, 6.5], atol=1e-5
    )  # mirror: 8.5 -> 7.5, 9.5 -> 6.5


def test_quadrant_mirror_hand_computed() -> None:
    array = np.arange(16, dtype=np.float64).reshape(4, 4)
    out = warp(array, coordinate_map((4, 4), GeometryParams(quadrant=(0, 1))), order=1)
    top_right = array[:2, 2:]
    expected = np.block([[top_right, top_right[:, ::-1]], [top_right[::-1], top_right[::-1, ::-1]]])
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_quadrant_mirror_of_odd_sizes_stays_in_its_quarter() -> None:
    array = np.arange(35, dtype=np.float64).reshape(5, 7)
    coords = coordinate_map((5, 7), GeometryParams(quadrant=(1, 1)))
    assert coords[0].min() == 2 and coords[0].max() == 4  # rows of the lower half (ceil 5/2)
    assert coords[1].min() == 3 and coords[1].max() == 6
    assert set(np.unique(warp(array, coords, order=0))) <= set(array[2:, 3:].ravel())


def test_warp_matches_scipy_map_coordinates() -> None:
    rng = np.random.default_rng(0)
    image = rng.random((2, 40, 50)).astype(np.float32)
    labels = rng.integers(0, 9, size=(40, 50))
    field = elastic_displacement((40, 50), alpha=80.0, sigma=3.0, rng=rng)
    coords = coordinate_map((40, 50), GeometryParams(angle=33.0, zoom=0.8, displacement=field))
    out = warp(image, coords, order=1)
    assert out.shape == image.shape and out.dtype == np.float32
    for c in range(2):
        expected = ndimage.map_coordinates(image[c], coords, order=1, mode="mirror")
        np.testing.assert_allclose(out[c], expected, atol=1e-4)
    nearest = warp(labels, coords, order=0)
    assert nearest.dtype == labels.dtype
    reference = ndimage.map_coordinates(labels, coords, order=0, mode="mirror")
    assert (nearest == reference).mean() > 0.999  # ties at exactly .5 may round differently
    with pytest.raises(ValueError, match="order"):
        warp(image, coords, order=3)


@pytest.mark.parametrize("sigma", [2.0, 4.0])
def test_elastic_displacement_statistics_follow_alpha_and_sigma(sigma: float) -> None:
    alpha = 50.0
    field = elastic_displacement((160, 160), alpha=alpha, sigma=sigma, rng=np.random.default_rng(0))
    assert field.shape == (2, 160, 160) and field.dtype == np.float32
    margin = int(4 * sigma)
    inner = field[:, margin:-margin, margin:-margin]
    theory = alpha / (2 * sigma * math.sqrt(3 * math.pi))  # U(-1,1) var 1/3 x sum(kernel^2)
    assert inner.std() == pytest.approx(theory, rel=0.1)
    assert abs(inner.mean()) < 0.1 * theory
    # smooth: neighbouring displacements are strongly correlated (white noise would give ~0)
    corr = np.corrcoef(inner[0, :, :-1].ravel(), inner[0, :, 1:].ravel())[0, 1]
    assert corr > 0.9
    still = elastic_displacement((32, 32), alpha=0.0, sigma=sigma, rng=np.random.default_rng(0))
    assert not still.any()


def test_grid_displacement_passes_through_the_node_values() -> None:
    field = grid_displacement((41, 21), grid=(3, 3), std=10.0, rng=np.random.default_rng(3))
    nodes = np.random.default_rng(3).normal(0.0, 10.0, size=(2, 3, 3))
    at_nodes = field[:, ::20, ::10]  # rows 0, 20, 40 and columns 0, 10, 20 are the nodes
    np.testing.assert_allclose(at_nodes, nodes, rtol=1e-5, atol=1e-4)
    assert np.abs(np.diff(field, axis=1)).max() < 5.0  # smooth between nodes


def test_random_geometry_draws_nothing_at_probability_zero() -> None:
    rng = np.random.default_rng(0)
    state = rng.bit_generator.state
    params = random_geometry((8, 8), AUGMENTATION_PRESETS["none"], rng)
    assert params.is_identity
    assert rng.bit_generator.state == state


def test_non_square_patches_only_get_half_turns() -> None:
    config = AUGMENTATION_PRESETS["cryo-sem-004"]
    turns = {random_geometry((8, 12), config, np.random.default_rng(s)).k_rot90 for s in range(40)}
    assert turns == {0, 2}


def test_apply_geometry_rejects_mismatched_shapes_and_bad_fields() -> None:
    with pytest.raises(ValueError, match="share"):
        apply_geometry([np.zeros((1, 8, 8)), np.zeros((6, 6))], GeometryParams(), orders=[1, 0])
    bad = GeometryParams(displacement=np.zeros((2, 4, 4), dtype=np.float32))
    with pytest.raises(ValueError, match="displacement"):
        coordinate_map((8, 8), bad)


def test_identity_returns_equal_copies() -> None:
    array = np.arange(16.0).reshape(4, 4)
    (out,) = apply_geometry([array], GeometryParams(), orders=[1])
    assert out is not array
    np.testing.assert_array_equal(out, array)
