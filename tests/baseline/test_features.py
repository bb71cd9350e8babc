"""Tests of the ilastik-style pixel features."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage.feature import hessian_matrix, hessian_matrix_eigvals

from lapseg.baseline.features import (
    PER_SCALE_FEATURES,
    TRUNCATE,
    compute_features,
    feature_halo,
    feature_names,
    iter_feature_tiles,
)
from lapseg.errors import LapsegInputError


def _image(shape: tuple[int, ...] = (1, 40, 50), seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random(shape).astype(np.float32)


def _row(name: str, n_channels: int, sigmas: tuple[float, ...]) -> int:
    return feature_names(n_channels, sigmas).index(name)


def test_shape_and_names_match() -> None:
    sigmas = (1.0, 2.0)
    features = compute_features(_image((2, 20, 30)), sigmas=sigmas)
    names = feature_names(2, sigmas)
    assert features.shape == (2 * (8 * 2 + 1), 20, 30) == (len(names), 20, 30)
    assert features.dtype == np.float32
    assert names[0] == "c0_gauss_s1" and names[-1] == "c1_sobel"
    assert len(PER_SCALE_FEATURES) == 8


def test_features_against_scipy_and_skimage() -> None:
    image = _image()
    sigmas = (1.6,)
    features = compute_features(image, sigmas=sigmas)
    plane = image[0].astype(np.float64)
    gauss = ndi.gaussian_filter(plane, 1.6, truncate=TRUNCATE)
    np.testing.assert_allclose(features[_row("c0_gauss_s1.6", 1, sigmas)], gauss, atol=1e-5)
    dog = gauss - ndi.gaussian_filter(plane, 0.66 * 1.6, truncate=TRUNCATE)
    np.testing.assert_allclose(features[_row("c0_dog_s1.6", 1, sigmas)], dog, atol=1e-5)
    log = ndi.gaussian_laplace(plane, 1.6, truncate=TRUNCATE)
    np.testing.assert_allclose(features[_row("c0_log_s1.6", 1, sigmas)], log, atol=1e-5)
    # independent reference for the Hessian eigenvalues: scikit-image (same Gaussian derivatives)
    h = hessian_matrix(
        plane,
        sigma=1.6,
        order="rc",
        use_gaussian_derivatives=True,
        mode="reflect",
    )
    eig = hessian_matrix_eigvals(h)  # largest first
    # skimage uses truncate=4; compare away from where the truncation matters (interior)
    interior = (slice(10, -10), slice(10, -10))
    for k in (0, 1):
        ours = features[_row(f"c0_hessian_eig{k + 1}_s1.6", 1, sigmas)]
        np.testing.assert_allclose(ours[interior], eig[k][interior], atol=2e-3)
    sobel = np.hypot(ndi.sobel(plane, axis=0), ndi.sobel(plane, axis=1))
    np.testing.assert_allclose(features[_row("c0_sobel", 1, sigmas)], sobel, atol=1e-4)


def test_structure_tensor_of_vertical_edge() -> None:
    """A vertical step edge: gradient along x only, so eig1 > 0 and eig2 == 0 everywhere."""
    image = np.zeros((1, 30, 30), np.float32)
    image[:, :, 15:] = 1.0
    features = compute_features(image, sigmas=(1.0,))
    eig1 = features[_row("c0_structure_eig1_s1", 1, (1.0,))]
    eig2 = features[_row("c0_structure_eig2_s1", 1, (1.0,))]
    assert eig1[:, 14:16].min() > 0.01
    np.testing.assert_allclose(eig2, 0.0, atol=1e-6)
    assert np.all(eig1 >= eig2 - 1e-7)


def test_tiles_equal_whole_image() -> None:
    image = _image((2, 70, 90), seed=3)
    sigmas = (0.7, 3.5)
    whole = compute_features(image, sigmas=sigmas)
    tiled = np.full_like(whole, np.nan)
    for rows, cols, feats in iter_feature_tiles(image, sigmas=sigmas, tile=25):
        assert feats.shape[1:] == (rows.stop - rows.start, cols.stop - cols.start)
        tiled[:, rows, cols] = feats
    np.testing.assert_allclose(tiled, whole, rtol=0, atol=1e-6)


def test_halo_covers_structure_tensor_chain() -> None:
    # radius(10) = 30, radius(5) = 15 at truncate 3
    assert feature_halo((10.0,)) == 45
    assert feature_halo((0.7, 1.0, 1.6, 3.5, 5.0, 10.0)) == 45


def test_input_not_mutated() -> None:
    image = _image()
    before = image.copy()
    compute_features(image, sigmas=(1.0,))
    np.testing.assert_array_equal(image, before)


@pytest.mark.parametrize(
    ("image", "sigmas"),
    [
        (np.zeros((10, 10)), (1.0,)),
        (np.zeros((1, 0, 10)), (1.0,)),
        (np.zeros((1, 10, 10), dtype=complex), (1.0,)),
        (np.zeros((1, 10, 10)), ()),
        (np.zeros((1, 10, 10)), (0.0,)),
        (np.zeros((1, 10, 10)), ("a",)),
    ],
)
def test_bad_input(image: np.ndarray, sigmas: tuple) -> None:
    with pytest.raises(LapsegInputError):
        compute_features(image, sigmas=sigmas)


def test_bad_tile() -> None:
    with pytest.raises(LapsegInputError, match="tile"):
        next(iter_feature_tiles(_image(), tile=0))
