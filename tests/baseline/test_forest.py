"""Tests of the random-forest baseline: learning, tiling, memory, persistence, pipeline."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import tifffile

from lapseg.baseline.forest import (
    BaselineConfig,
    ForestModel,
    load_forest,
    predict_forest,
    sample_pixels,
    save_forest,
    train_forest,
)
from lapseg.baseline.pipeline import predict_baseline, train_baseline
from lapseg.config import LapsegConfig
from lapseg.data.normalization import NormalizationStats, fit_normalization
from lapseg.errors import LapsegInputError
from lapseg.io.images import read_mask
from lapseg.metrics.evaluate import evaluate_folders

FAST = BaselineConfig(sigmas=(1.0, 3.5), n_pixels_per_image=1500, n_estimators=10, tile=48)


def _discs(seed: int, shape: tuple[int, int] = (64, 64)) -> tuple[np.ndarray, np.ndarray]:
    """Bright discs on a dark, noisy background (offset/scale vary per image)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    target = np.zeros(shape, np.int64)
    for _ in range(4):
        cy, cx = rng.integers(8, shape[0] - 8), rng.integers(8, shape[1] - 8)
        target[(yy - cy) ** 2 + (xx - cx) ** 2 <= rng.integers(4, 8) ** 2] = 1
    image = 100.0 + 50.0 * target + rng.normal(0.0, 8.0, shape)
    return image[None].astype(np.float32), target


def _dice(pred: np.ndarray, truth: np.ndarray) -> float:
    return 2.0 * np.sum(pred & truth) / (np.sum(pred) + np.sum(truth))


def _stats(images: list[np.ndarray]) -> NormalizationStats:
    return fit_normalization(images, mode="percentile")


def test_learns_separable_task() -> None:
    pairs = [_discs(s) for s in range(3)]
    images, targets = [p[0] for p in pairs], [p[1] for p in pairs]
    model = train_forest(images, targets, normalization=_stats(images), settings=FAST, rng=0)
    counts = model.info["class_pixel_counts"]  # balanced: weight n / (k * count) per class
    weights = model.classifier.class_weight
    assert weights == pytest.approx({c: 3 * 1500 / (2 * n) for c, n in enumerate(counts)})
    assert model.info["n_training_pixels"] == 3 * 1500
    test_image, test_target = _discs(99)
    prob = predict_forest(model, test_image, tile=32)
    assert prob.shape == (1, 64, 64) and prob.dtype == np.float32
    assert prob.min() >= 0.0 and prob.max() <= 1.0
    assert _dice(prob[0] > 0.5, test_target.astype(bool)) > 0.9


def test_tiled_prediction_does_not_depend_on_tile() -> None:
    images, targets = zip(*[_discs(s) for s in range(2)], strict=True)
    model = train_forest(
        list(images), list(targets), normalization=_stats(list(images)), settings=FAST
    )
    image = _discs(5, (50, 70))[0]
    np.testing.assert_allclose(
        predict_forest(model, image, tile=17), predict_forest(model, image, tile=512), atol=1e-6
    )


def test_sample_pixels_matches_whole_image_features() -> None:
    from lapseg.baseline.features import compute_features

    image, target = _discs(1, (40, 30))
    x, y = sample_pixels(image, target, n_pixels=50, sigmas=(1.0,), tile=16, rng=3)
    whole = compute_features(image, sigmas=(1.0,))
    flat = whole.reshape(whole.shape[0], -1).T
    # every sampled row equals a whole-image feature row of a pixel of the same class
    chosen = np.sort(np.random.default_rng(3).choice(target.size, size=50, replace=False))
    np.testing.assert_allclose(x, flat[chosen], atol=1e-6)
    np.testing.assert_array_equal(y, target.ravel()[chosen])
    # asking for more pixels than exist gives every pixel once
    x_all, _ = sample_pixels(image, target, n_pixels=10**6, sigmas=(1.0,), rng=0)
    assert x_all.shape == (40 * 30, whole.shape[0])


def test_normalisation_comes_from_training_data_only() -> None:
    pairs = [_discs(s) for s in range(2)]
    images, targets = [p[0] for p in pairs], [p[1] for p in pairs]
    stats = fit_normalization(images, mode="meanstd")
    model = train_forest(images, targets, normalization=stats, settings=FAST)
    assert model.normalization == stats
    pooled = np.concatenate([im.ravel() for im in images]).astype(np.float64)
    assert model.normalization.mean[0] == pytest.approx(pooled.mean(), rel=1e-6)
    # a brighter unseen image is normalised with the TRAINING statistics, not its own
    from lapseg.baseline.features import compute_features

    bright = _discs(7)[0] * 3.0
    mean, std = stats.mean[0], stats.std[0]
    own = (bright - bright.mean()) / bright.std()
    expected = []
    for normalised in ((bright - mean) / std, own):
        feats = compute_features(normalised.astype(np.float32), sigmas=FAST.sigmas)
        proba = model.classifier.predict_proba(feats.reshape(feats.shape[0], -1).T)
        expected.append(proba[:, 1].reshape(64, 64))
    prob = predict_forest(model, bright)[0]
    np.testing.assert_allclose(prob, expected[0], atol=1e-5)
    assert np.abs(prob - expected[1]).max() > 0.1


def test_bounded_memory_on_large_image() -> None:
    """Peak memory of tiled prediction stays far below the whole-image feature stack."""
    images, targets = zip(*[_discs(s) for s in range(2)], strict=True)
    settings = BaselineConfig(
        sigmas=(1.0, 2.0), n_pixels_per_image=500, n_estimators=3, max_depth=6
    )
    model = train_forest(
        list(images), list(targets), normalization=_stats(list(images)), settings=settings
    )
    size = 1024
    image = np.random.default_rng(0).normal(100, 8, (1, size, size)).astype(np.float32)
    n_features = 2 * 8 + 1
    whole_features = n_features * size * size * 4  # bytes of float32 features: 71 MB
    tracemalloc.start()
    try:
        prob = predict_forest(model, image, tile=128)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert prob.shape == (1, size, size)
    # output (2 x 4 MB) + normalised copy (<= 8 MB) + one tile's features (~1.7 MB) + proba
    assert peak < 0.35 * whole_features, f"peak {peak / 1e6:.1f} MB"


def test_save_load_roundtrip(tmp_path: Path) -> None:
    images, targets = zip(*[_discs(s) for s in range(2)], strict=True)
    model = train_forest(
        list(images), list(targets), normalization=_stats(list(images)), settings=FAST
    )
    save_forest(model, tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "baseline.json").read_text())
    assert meta["sigmas"] == [1.0, 3.5] and len(meta["feature_names"]) == 17
    loaded = load_forest(tmp_path / "m")
    assert isinstance(loaded, ForestModel)
    image = _discs(9)[0]
    np.testing.assert_array_equal(predict_forest(loaded, image), predict_forest(model, image))


def test_load_refuses_untrusted_types(tmp_path: Path) -> None:
    import skops.io as sio
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    images, targets = zip(*[_discs(s) for s in range(1)], strict=True)
    model = train_forest(
        list(images), list(targets), normalization=_stats(list(images)), settings=FAST
    )
    save_forest(model, tmp_path / "m")
    evil = Pipeline([("f", FunctionTransformer(np.exp)), ("rf", model.classifier)])
    sio.dump(evil, tmp_path / "m" / "forest.skops")
    with pytest.raises(LapsegInputError, match="untrusted"):
        load_forest(tmp_path / "m")


def test_bad_inputs(tmp_path: Path) -> None:
    image, target = _discs(0)
    stats = _stats([image])
    with pytest.raises(LapsegInputError, match="at least one"):
        train_forest([], [], normalization=stats)
    with pytest.raises(LapsegInputError, match="masks"):
        train_forest([image], [], normalization=stats)
    with pytest.raises(LapsegInputError, match="shape"):
        train_forest([image], [target[:10]], normalization=stats)
    with pytest.raises(LapsegInputError, match="integers"):
        train_forest([image], [target.astype(float)], normalization=stats)
    with pytest.raises(LapsegInputError, match="channels"):
        train_forest(
            [image, np.concatenate([image, image])],
            [target, target],
            normalization=stats,
            settings=FAST,
        )
    with pytest.raises(LapsegInputError, match="n_estimators"):
        BaselineConfig(n_estimators=0)
    with pytest.raises(LapsegInputError, match="sigmas"):
        BaselineConfig(sigmas=(-1.0,))
    with pytest.raises(LapsegInputError, match="max_depth"):
        BaselineConfig(max_depth=0)
    model = train_forest([image], [target], normalization=stats, settings=FAST)
    with pytest.raises(LapsegInputError, match="expects"):
        predict_forest(model, image[0])
    with pytest.raises(LapsegInputError, match="missing"):
        load_forest(tmp_path)


def _write_dataset(root: Path, n: int) -> None:
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(n):
        image, target = _discs(100 + i)
        tifffile.imwrite(root / "images" / f"img{i}.tif", image[0])
        tifffile.imwrite(root / "masks" / f"img{i}.tif", (target * 255).astype(np.uint8))


def test_pipeline_writes_predict_layout_and_evaluates(tmp_path: Path) -> None:
    _write_dataset(tmp_path / "data", 4)
    config = LapsegConfig()
    out = train_baseline(tmp_path / "data", tmp_path / "rf", config, settings=FAST)
    for name in ("forest.skops", "baseline.json", "config.yaml", "split.json", "run.json"):
        assert (out / name).is_file()
    run = json.loads((out / "run.json").read_text())
    assert run["n_train"] + run["n_val"] == 4 and run["training_seconds"] > 0
    written = predict_baseline(out, [tmp_path / "data" / "images"], tmp_path / "pred")
    assert [m.name for m, _ in written] == ["img0.tif", "img1.tif", "img2.tif", "img3.tif"]
    mask = read_mask(tmp_path / "pred" / "masks" / "img0.tif")
    assert set(np.unique(mask)) <= {0, 255}
    assert tifffile.imread(tmp_path / "pred" / "probabilities" / "img0.tif").dtype == np.float32
    result = evaluate_folders(tmp_path / "pred", tmp_path / "data" / "masks")
    assert result.mean["dice"] > 0.9
    with pytest.raises(LapsegInputError, match="not empty"):
        train_baseline(tmp_path / "data", out, config, settings=FAST)
    with pytest.raises(LapsegInputError, match="overwrite"):
        predict_baseline(out, [tmp_path / "pred" / "masks"], tmp_path / "pred")


@pytest.mark.slow
def test_bounded_memory_on_4096_image() -> None:
    """A 4096 x 4096 image: peak memory is a few image-sized planes, not the feature stack."""
    image, target = _discs(0)
    settings = BaselineConfig(
        sigmas=(1.0, 2.0), n_pixels_per_image=500, n_estimators=2, max_depth=4
    )
    model = train_forest([image], [target], normalization=_stats([image]), settings=settings)
    big = np.random.default_rng(0).normal(100, 8, (1, 4096, 4096)).astype(np.float32)
    whole_features = 17 * 4096 * 4096 * 4  # 1.14 GB
    tracemalloc.start()
    try:
        prob = predict_forest(model, big, tile=512)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert prob.shape == (1, 4096, 4096)
    assert peak < 0.3 * whole_features, f"peak {peak / 1e6:.0f} MB"


def test_forest_fitted_in_steps_equals_one_shot_fit(caplog: pytest.LogCaptureFixture) -> None:
    """Progress comes from growing the forest a tenth at a time; the trees are the ones a single
    fit grows (same seeds), so predictions are identical."""
    from sklearn.ensemble import RandomForestClassifier

    images, targets = zip(*(_discs(seed) for seed in range(3)), strict=True)
    stats = _stats(list(images))
    with caplog.at_level("INFO", logger="lapseg"):
        model = train_forest(images, targets, normalization=stats, settings=FAST, rng=7)
    assert "random forest: 10/10 trees" in caplog.text and "random forest: 1/10" in caplog.text
    assert len(model.classifier.estimators_) == 10 and not model.classifier.warm_start
    one_shot = RandomForestClassifier(**{**model.classifier.get_params(), "warm_start": False})
    features = np.random.default_rng(0).normal(size=(200, model.classifier.n_features_in_))
    x_train = np.random.default_rng(1).normal(size=(300, model.classifier.n_features_in_))
    y_train = (x_train[:, 0] > 0).astype(int)
    stepped = RandomForestClassifier(**{**model.classifier.get_params(), "warm_start": True})
    for n in range(1, 11):
        stepped.set_params(n_estimators=n).fit(x_train, y_train)
    one_shot.fit(x_train, y_train)
    np.testing.assert_array_equal(stepped.predict_proba(features), one_shot.predict_proba(features))


def test_balanced_weights_equal_scikit_learns() -> None:
    from sklearn.utils.class_weight import compute_class_weight

    from lapseg.baseline.forest import _balanced_weights

    classes = np.array([0, 0, 0, 1, 2, 2])
    reference = compute_class_weight("balanced", classes=np.array([0, 1, 2]), y=classes)
    weights = _balanced_weights(classes)
    assert list(weights) == [0, 1, 2] and list(weights.values()) == pytest.approx(reference)
