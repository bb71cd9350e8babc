from __future__ import annotations

import math
import os

import numpy as np
import pytest
import tifffile

from lapseg.data.synthetic import (
    Cell,
    SyntheticConfig,
    _sample_names,
    add_noise,
    atomic_dataset_folder,
    cell_boundary_radius,
    cell_distance,
    debris_map,
    illumination_field,
    place_cells,
    render_labels,
    synthetic_image,
    synthetic_sample,
    write_synthetic_dataset,
)
from lapseg.errors import LapsegInputError

SMALL = SyntheticConfig(shape=(64, 96), n_cells=(3, 6), radius=(4.0, 8.0), n_debris=(1, 3))


def _disc(center: tuple[float, float], radius: float) -> Cell:
    return Cell(center=center, radius=radius, elongation=1.0, angle=0.0, harmonics=())


def _touching_pairs(labels: np.ndarray) -> set[tuple[int, int]]:
    pairs = set()
    for a, b in ((labels[:-1], labels[1:]), (labels[:, :-1], labels[:, 1:])):
        edge = (a != b) & (a > 0) & (b > 0)
        pairs |= {(min(p, q), max(p, q)) for p, q in zip(a[edge], b[edge], strict=True)}
    return pairs


# --- building blocks -------------------------------------------------------------------------


def test_cell_distance_of_a_disc_is_radial_distance_over_radius():
    cell = _disc((10.0, 20.0), 4.0)
    yy = np.array([[10.0], [10.0], [14.0], [16.0]])
    xx = np.array([[20.0], [22.0], [20.0], [28.0]])
    normalized, outside = cell_distance(cell, yy, xx)
    np.testing.assert_allclose(normalized.ravel(), [0.0, 0.5, 1.0, 2.5])
    np.testing.assert_allclose(outside.ravel(), [0.0, 0.0, 0.0, 6.0], atol=1e-12)


def test_cell_boundary_radius_matches_distance_one():
    cell = Cell((0.0, 0.0), 6.0, 1.6, 0.7, ((0.1, 0.3), (0.05, 2.0)))
    phi = np.linspace(-np.pi, np.pi, 17)
    radius = cell_boundary_radius(cell, phi)
    normalized, _ = cell_distance(cell, radius * np.sin(phi), radius * np.cos(phi))
    np.testing.assert_allclose(normalized, 1.0)
    # the ellipse without harmonics: semi-axes r*sqrt(e) along the angle, r/sqrt(e) across it
    ellipse = Cell((0.0, 0.0), 6.0, 1.6, 0.7, ())
    np.testing.assert_allclose(cell_boundary_radius(ellipse, 0.7), 6.0 * math.sqrt(1.6))
    np.testing.assert_allclose(cell_boundary_radius(ellipse, 0.7 + np.pi / 2), 6.0 / math.sqrt(1.6))
    assert cell.extent >= radius.max()


def test_render_labels_gives_overlap_to_the_nearer_centre():
    cells = [_disc((10.0, 10.0), 5.0), _disc((10.0, 17.0), 5.0)]
    labels, outside = render_labels(cells, (21, 30))
    assert labels.dtype == np.int32
    # overlap is x in (12, 15); the midline is x = 13.5
    assert labels[10, 13] == 1 and labels[10, 14] == 2
    assert labels[10, 6] == 1 and labels[10, 21] == 2
    assert labels[10, 5] == 0 and labels[10, 22] == 0  # exactly on the boundary: outside
    assert (labels == 1).sum() == (labels == 2).sum()
    assert _touching_pairs(labels) == {(1, 2)}
    assert outside[10, 25] == pytest.approx(3.0)
    assert np.all(outside[labels > 0] == 0)


def test_place_cells_count_and_contact():
    cells = place_cells((128, 128), n=10, radius=(5.0, 8.0), touching_fraction=0.3, rng=1)
    assert len(cells) == 10
    assert all(0 <= c.center[0] <= 127 and 0 <= c.center[1] <= 127 for c in cells)
    labels, _ = render_labels(cells, (128, 128))
    assert len(_touching_pairs(labels)) >= 1


def test_place_cells_without_touching_keeps_cells_apart():
    for seed in range(3):
        cells = place_cells((256, 256), n=8, radius=(8.0, 12.0), touching_fraction=0.0, rng=seed)
        labels, _ = render_labels(cells, (256, 256))
        assert len(cells) == 8
        assert _touching_pairs(labels) == set()


def test_debris_map_avoids_excluded_pixels():
    exclude = np.zeros((64, 64), dtype=bool)
    exclude[:, :32] = True
    opacity = debris_map((64, 64), n=40, exclude=exclude, rng=0)
    assert opacity.dtype == np.float32
    assert np.all(opacity[:, :35] == 0)  # excluded band plus its 3-pixel margin
    assert opacity.max() > 0.0 and opacity.max() <= 0.95
    assert np.all(debris_map((64, 64), n=0, rng=0) == 0)


def test_illumination_field_range():
    field = illumination_field((50, 70), strength=0.4, rng=3)
    assert field.shape == (50, 70)
    assert field.min() >= 0.6 - 1e-6 and field.max() <= 1.4 + 1e-6
    assert field.max() - field.min() > 0.4  # it does vary
    np.testing.assert_array_equal(illumination_field((8, 8), strength=0.0, rng=3), 1.0)


def test_add_noise_level_and_no_mutation():
    image = np.full((200, 200), 0.75)
    noisy = add_noise(image, std=0.05, rng=0)
    assert np.all(image == 0.75)
    # read + shot noise: 0.05 * sqrt(0.25 + 0.75) = 0.05
    assert noisy.std() == pytest.approx(0.05, rel=0.05)
    np.testing.assert_array_equal(add_noise(image, std=0.0, rng=0), np.float32(0.75))


# --- synthetic_image ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dtype", "expected"),
    [("uint16", np.uint16), ("uint8", np.uint8), ("float32", np.float32)],
)
def test_synthetic_image_shape_and_dtype(dtype, expected):
    config = SyntheticConfig(
        shape=(64, 96), n_cells=(3, 6), radius=(4.0, 8.0), n_debris=(1, 3), dtype=dtype
    )
    image, labels = synthetic_image(config, rng=0)
    assert image.shape == labels.shape == (64, 96)
    assert image.dtype == expected
    assert labels.dtype == np.int32
    if dtype == "float32":
        assert image.min() >= 0.0 and image.max() <= 1.0


def test_synthetic_image_default_shape():
    image, labels = synthetic_image(rng=0)
    assert image.shape == labels.shape == (256, 256)
    assert image.dtype == np.uint16


def test_synthetic_image_is_deterministic():
    a_image, a_labels = synthetic_image(SMALL, rng=7)
    b_image, b_labels = synthetic_image(SMALL, rng=7)
    c_image, c_labels = synthetic_image(SMALL, rng=8)
    np.testing.assert_array_equal(a_image, b_image)
    np.testing.assert_array_equal(a_labels, b_labels)
    assert not np.array_equal(a_image, c_image)
    assert not np.array_equal(a_labels, c_labels)
    gen = np.random.default_rng(7)
    np.testing.assert_array_equal(synthetic_image(SMALL, rng=gen)[0], a_image)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_labels_are_consecutive_instances_in_range(seed):
    labels = synthetic_image(rng=seed)[1]
    present = np.unique(labels)
    n = present.size - 1
    np.testing.assert_array_equal(present, np.arange(n + 1))
    assert 8 <= n <= 20
    assert _touching_pairs(labels), "touching_fraction 0.3 must give touching cells"


def test_single_cell_config():
    config = SyntheticConfig(shape=(32, 32), n_cells=(1, 1), radius=(4.0, 6.0), n_debris=(0, 0))
    sample = synthetic_sample(config, rng=0)
    assert set(np.unique(sample.labels)) == {0, 1}
    assert np.all(sample.debris == 0)


def test_no_cells_config():
    config = SyntheticConfig(n_cells=(0, 0), shape=(32, 32), radius=(4.0, 6.0))
    image, labels = synthetic_image(config, rng=0)
    assert np.all(labels == 0) and image.shape == (32, 32)


@pytest.mark.parametrize("seed", [0, 1])
def test_debris_is_outside_labels_and_darker_than_background(seed):
    config = SyntheticConfig(n_debris=(6, 6), illumination_strength=0.0, noise_std=0.0)
    sample = synthetic_sample(config, rng=seed)
    debris = sample.debris > 0
    assert debris.any()
    assert not np.any(debris & (sample.labels > 0))
    background = (sample.labels == 0) & ~debris
    assert sample.image[debris].mean() < 0.5 * sample.image[background].mean()


def test_cells_are_brighter_than_background():
    sample = synthetic_sample(rng=5)
    cells = sample.labels > 0
    background = ~cells & (sample.debris == 0)
    assert sample.image[cells].mean() > 1.3 * sample.image[background].mean()
    # the illumination field is applied: it is not flat at the default strength
    assert sample.illumination.max() - sample.illumination.min() > 0.3


# --- config validation -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"shape": (8, 64)}, "shape"),
        ({"shape": (64,)}, "shape"),
        ({"shape": (64.0, 64.0)}, "shape"),
        ({"n_cells": (5, 2)}, "n_cells"),
        ({"n_cells": (-1, 2)}, "n_cells"),
        ({"radius": (0.5, 3.0)}, "radius"),
        ({"radius": (8.0, 200.0)}, "radius"),
        ({"radius": "big"}, "radius"),
        ({"touching_fraction": 1.5}, "touching_fraction"),
        ({"n_debris": (-2, 1)}, "n_debris"),
        ({"illumination_strength": 1.0}, "illumination_strength"),
        ({"noise_std": -0.1}, "noise_std"),
        ({"noise_std": float("nan")}, "noise_std"),
        ({"dtype": "int64"}, "dtype"),
    ],
)
def test_config_validation(kwargs, field):
    with pytest.raises(LapsegInputError, match=f"SyntheticConfig.{field} "):
        SyntheticConfig(**kwargs)


def test_config_accepts_lists_and_stores_tuples():
    config = SyntheticConfig(shape=[64, 64], n_cells=[2, 3], radius=[4, 6])
    assert config.shape == (64, 64) and config.radius == (4.0, 6.0)
    assert isinstance(config.radius[0], float)


# --- write_synthetic_dataset -------------------------------------------------------------------


def test_write_synthetic_dataset_layout(tmp_path):
    root = tmp_path / "synth"
    names = write_synthetic_dataset(root, n_images=3, config=SMALL, rng=4)
    assert names == ["synth_000", "synth_001", "synth_002"]
    assert sorted(p.name for p in root.iterdir()) == ["images", "masks"]
    assert sorted(p.stem for p in (root / "images").iterdir()) == names
    assert sorted(p.stem for p in (root / "masks").iterdir()) == names
    assert [p.name for p in tmp_path.iterdir()] == ["synth"]  # no temporary folder left
    gen = np.random.default_rng(4)
    for name in names:
        image, labels = synthetic_image(SMALL, rng=gen)
        np.testing.assert_array_equal(tifffile.imread(root / "images" / f"{name}.tif"), image)
        mask = tifffile.imread(root / "masks" / f"{name}.tif")
        assert mask.dtype == np.uint16
        np.testing.assert_array_equal(mask, labels)


def test_sample_names_sort_naturally():
    assert _sample_names(2) == ["synth_000", "synth_001"]
    names = _sample_names(1001)
    assert names[0] == "synth_0000" and names[-1] == "synth_1000"
    assert sorted(names) == names


def test_write_synthetic_dataset_into_empty_folder(tmp_path):
    write_synthetic_dataset(tmp_path, n_images=1, config=SMALL, rng=0)
    assert (tmp_path / "images" / "synth_000.tif").is_file()


def test_write_synthetic_dataset_refuses_non_empty_folder(tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(LapsegInputError, match="not empty"):
        write_synthetic_dataset(tmp_path, n_images=1, config=SMALL, rng=0)
    assert os.listdir(tmp_path) == ["keep.txt"]


@pytest.mark.parametrize("n_images", [0, -1, 2.0, True])
def test_write_synthetic_dataset_rejects_bad_count(tmp_path, n_images):
    with pytest.raises(LapsegInputError, match="n_images"):
        write_synthetic_dataset(tmp_path / "d", n_images=n_images, config=SMALL)
    assert not (tmp_path / "d").exists()


def test_atomic_dataset_folder_leaves_nothing_when_interrupted(tmp_path):
    root = tmp_path / "out" / "ds"
    with pytest.raises(KeyboardInterrupt), atomic_dataset_folder(root) as tmp:
        assert tmp.parent == root.parent and tmp.is_dir() and not root.exists()
        (tmp / "half-written.tif").write_bytes(b"partial")
        raise KeyboardInterrupt
    assert list((tmp_path / "out").iterdir()) == []  # neither root nor the temporary folder


def test_atomic_dataset_folder_renames_onto_an_empty_root(tmp_path):
    root = tmp_path / "ds"
    root.mkdir()
    with atomic_dataset_folder(root) as tmp:
        (tmp / "a.txt").write_text("a")
    assert [p.name for p in tmp_path.iterdir()] == ["ds"]
    assert (root / "a.txt").read_text() == "a"
