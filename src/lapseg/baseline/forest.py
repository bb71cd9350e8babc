"""Random-forest pixel classifier: the ilastik-style baseline the U-Net is compared with.

A scikit-learn :class:`~sklearn.ensemble.RandomForestClassifier` with balanced class weights is
trained on the :mod:`~lapseg.baseline.features` of randomly sampled pixels (a fixed number per
image, so memory is bounded whatever the dataset size) and predicts tile by tile.

A model folder holds ``forest.skops`` (the classifier, stored with :mod:`skops.io`, which loads
only an explicit list of trusted types instead of unpickling arbitrary objects) and
``baseline.json`` (feature scales, normalisation fitted on the training images only, classes,
threshold, training time).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.ensemble import RandomForestClassifier

from lapseg.baseline.features import (
    DEFAULT_SIGMAS,
    check_sigmas,
    feature_names,
    iter_feature_tiles,
)
from lapseg.config import BaselineConfig
from lapseg.data.normalization import NormalizationStats, apply_normalization
from lapseg.errors import LapsegInputError, optional_import
from lapseg.io.files import atomic_output, write_json

__all__ = [
    "FOREST_FILE",
    "META_FILE",
    "BaselineConfig",
    "ForestModel",
    "load_forest",
    "predict_forest",
    "sample_pixels",
    "save_forest",
    "train_forest",
]

log = logging.getLogger(__name__)

FOREST_FILE = "forest.skops"
META_FILE = "baseline.json"

# Types inside a fitted RandomForestClassifier that skops does not trust by default.
_TRUSTED_TYPES: tuple[str, ...] = ("sklearn.tree._tree.Tree",)


@dataclass(frozen=True)
class ForestModel:
    """A trained baseline: classifier plus everything needed to reproduce its features.

    Attributes
    ----------
    classifier : RandomForestClassifier
        Trained on feature vectors; ``classifier.classes_`` are the target classes.
    sigmas : tuple of float
        Feature scales.
    normalization : NormalizationStats
        Fitted on the training images only; applied to every image before its features.
    n_channels : int
        Image channels ``C`` the model expects.
    threshold : float
        Foreground probability threshold of binary masks.
    info : dict
        Free-form provenance (training time, pixel counts), written to ``baseline.json``.
    """

    classifier: RandomForestClassifier
    sigmas: tuple[float, ...]
    normalization: NormalizationStats
    n_channels: int
    threshold: float = 0.5
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        """Number of output classes (at least 2: a one-class training set still has K = 2)."""
        return max(int(self.classifier.classes_.max()) + 1, 2)


def _check_pair(image: np.ndarray, target: np.ndarray, index: int) -> tuple[np.ndarray, np.ndarray]:
    image, target = np.asarray(image), np.asarray(target)
    if image.ndim != 3:
        raise LapsegInputError(f"training image {index} must be (C, Y, X), got {image.shape}")
    if target.shape != image.shape[-2:]:
        raise LapsegInputError(
            f"training mask {index} has shape {target.shape}, image has {image.shape[-2:]}"
        )
    if not np.issubdtype(target.dtype, np.integer) and target.dtype != np.bool_:
        raise LapsegInputError(f"training mask {index} must hold integers, got {target.dtype}")
    if target.size and target.min() < 0:
        raise LapsegInputError(f"training mask {index} has negative class indices")
    return image, target


def sample_pixels(
    image: np.ndarray,
    target: np.ndarray,
    *,
    n_pixels: int,
    sigmas: Sequence[float] = DEFAULT_SIGMAS,
    tile: int = 512,
    rng: int | np.random.Generator | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Features and classes of ``n_pixels`` random pixels (all pixels if the image is smaller).

    Parameters
    ----------
    image : (C, Y, X) ndarray
        Normalised image.
    target : (Y, X) ndarray of int
        Class index per pixel.
    n_pixels : int
        Pixels to draw without replacement, uniformly over the image.
    sigmas : sequence of float, optional
        Feature scales.
    tile : int, optional
        Features are computed tile by tile; only sampled pixels are kept.
    rng : int, Generator or None
        Seed or generator of the draw.

    Returns
    -------
    features : (N, F) ndarray of float32
    classes : (N,) ndarray of int64
    """
    image, target = _check_pair(image, target, 0)
    rng = np.random.default_rng(rng)
    total = target.size
    chosen = np.sort(rng.choice(total, size=min(n_pixels, total), replace=False))
    rows, cols = np.unravel_index(chosen, target.shape)
    parts: list[np.ndarray] = []
    order: list[np.ndarray] = []
    for rs, cs, feats in iter_feature_tiles(image, sigmas=sigmas, tile=tile):
        inside = np.flatnonzero(
            (rows >= rs.start) & (rows < rs.stop) & (cols >= cs.start) & (cols < cs.stop)
        )
        if inside.size:
            parts.append(feats[:, rows[inside] - rs.start, cols[inside] - cs.start].T)
            order.append(inside)
    features = np.concatenate(parts)[np.argsort(np.concatenate(order))]
    return np.ascontiguousarray(features), target[rows, cols].astype(np.int64)


def _balanced_weights(classes: np.ndarray) -> dict[int, float]:
    """scikit-learn's ``class_weight="balanced"`` computed once (``n / (k * count)`` per class),
    so the forest can grow in steps with the same weights."""
    values, counts = np.unique(classes, return_counts=True)
    return {
        int(v): float(classes.size / (values.size * c)) for v, c in zip(values, counts, strict=True)
    }


def _fit_with_progress(
    classifier: RandomForestClassifier, features: np.ndarray, classes: np.ndarray
) -> None:
    """Fit the forest a tenth of its trees at a time, logging progress with the time left.

    With ``warm_start`` scikit-learn draws the new trees' seeds after the existing ones', so
    the forest equals a one-shot fit (tested).
    """
    total = int(classifier.n_estimators)
    step = max(1, total // 10)
    log.info(
        "random forest: %d trees on %d pixels x %d features",
        total,
        features.shape[0],
        features.shape[1],
    )
    started = time.perf_counter()
    classifier.set_params(warm_start=True)
    for grown in range(step, total + step, step):
        classifier.set_params(n_estimators=min(grown, total))
        classifier.fit(features, classes)
        done = int(classifier.n_estimators)
        elapsed = time.perf_counter() - started
        log.info(
            "random forest: %d/%d trees (%.0f s, about %.0f s left)",
            done,
            total,
            elapsed,
            elapsed / done * (total - done),
        )
    classifier.set_params(warm_start=False)


def train_forest(
    images: Sequence[np.ndarray],
    targets: Sequence[np.ndarray],
    *,
    normalization: NormalizationStats,
    settings: BaselineConfig | None = None,
    rng: int | np.random.Generator | None = None,
) -> ForestModel:
    """Train the baseline on sampled pixels of raw training images.

    Parameters
    ----------
    images : sequence of (C, Y, X) ndarray
        Raw training images (normalised here with ``normalization``).
    targets : sequence of (Y, X) ndarray of int
        Class index per pixel (0 = background, 1 = foreground for binary tasks).
    normalization : NormalizationStats
        Statistics fitted on these training images only
        (:func:`lapseg.data.normalization.fit_normalization`).
    settings : BaselineConfig, optional
        Forest and sampling settings; defaults to ``BaselineConfig()``.
    rng : int, Generator or None
        Seed or generator of pixel sampling and of the forest; default ``settings.seed``.

    Returns
    -------
    ForestModel

    Raises
    ------
    LapsegInputError
        No images, image/target counts or shapes that differ, channel counts that differ, or
        non-integer targets.
    """
    settings = settings if settings is not None else BaselineConfig()
    if len(images) == 0:
        raise LapsegInputError("train_forest needs at least one training image")
    if len(images) != len(targets):
        raise LapsegInputError(f"{len(images)} images but {len(targets)} masks")
    rng = np.random.default_rng(settings.seed if rng is None else rng)
    start = time.perf_counter()
    xs, ys = [], []
    n_channels = int(np.asarray(images[0]).shape[0]) if np.ndim(images[0]) == 3 else -1
    for index, (image, target) in enumerate(zip(images, targets, strict=True)):
        image, target = _check_pair(image, target, index)
        if image.shape[0] != n_channels:
            raise LapsegInputError(
                f"training image {index} has {image.shape[0]} channels, the first has {n_channels}"
            )
        x, y = sample_pixels(
            apply_normalization(image, normalization),
            target,
            n_pixels=settings.n_pixels_per_image,
            sigmas=settings.sigmas,
            tile=settings.tile,
            rng=rng,
        )
        xs.append(x)
        ys.append(y)
    features, classes = np.concatenate(xs), np.concatenate(ys)
    classifier = RandomForestClassifier(
        n_estimators=settings.n_estimators,
        max_depth=settings.max_depth,
        min_samples_leaf=settings.min_samples_leaf,
        class_weight=_balanced_weights(classes),
        n_jobs=settings.n_jobs,
        random_state=int(rng.integers(2**31 - 1)),
    )
    _fit_with_progress(classifier, features, classes)
    info = {
        "training_seconds": round(time.perf_counter() - start, 3),
        "n_training_pixels": int(classes.size),
        "class_pixel_counts": np.bincount(classes).tolist(),
        "n_images": len(images),
        "n_features": int(features.shape[1]),
    }
    return ForestModel(
        classifier=classifier,
        sigmas=settings.sigmas,
        normalization=normalization,
        n_channels=n_channels,
        info=info,
    )


def predict_forest(model: ForestModel, image: np.ndarray, *, tile: int = 512) -> np.ndarray:
    """Class probabilities of a raw image, computed tile by tile (bounded memory).

    Parameters
    ----------
    model : ForestModel
    image : (C, Y, X) ndarray
        Raw image (normalised with the model's training statistics).
    tile : int, optional
        Tile edge; memory is about ``F * (tile + 2 * halo)**2`` floats besides the output.

    Returns
    -------
    probabilities : (K, Y, X) ndarray of float32
        ``K = 1`` (foreground probability) for a binary model, else one row per class.
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[0] != model.n_channels:
        raise LapsegInputError(
            f"the baseline expects ({model.n_channels}, Y, X) images, got shape {image.shape}"
        )
    normalised = apply_normalization(image, model.normalization)
    k = model.num_classes
    # binary models keep only the foreground row, so the output is one (Y, X) plane
    rows = [1] if k == 2 else list(range(k))
    probs = np.zeros((len(rows), *image.shape[-2:]), dtype=np.float32)
    classes = model.classifier.classes_.astype(np.int64).tolist()
    for rs, cs, feats in iter_feature_tiles(normalised, sigmas=model.sigmas, tile=tile):
        flat = feats.reshape(feats.shape[0], -1).T
        p = model.classifier.predict_proba(flat).astype(np.float32)
        shape = (rs.stop - rs.start, cs.stop - cs.start)
        for out_row, cls in enumerate(rows):
            if cls in classes:
                probs[out_row, rs, cs] = p[:, classes.index(cls)].reshape(shape)
    return probs


def save_forest(model: ForestModel, folder: str | Path) -> Path:
    """Write ``forest.skops`` and ``baseline.json`` into ``folder`` (atomically each)."""
    sio = optional_import("skops.io", extra="baseline", purpose="the random-forest baseline")

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_output(folder / FOREST_FILE) as tmp:
        sio.dump(model.classifier, tmp)
    meta = {
        "format": "lapseg-forest-1",
        "sigmas": list(model.sigmas),
        "normalization": model.normalization.to_dict(),
        "n_channels": model.n_channels,
        "threshold": model.threshold,
        "feature_names": feature_names(model.n_channels, model.sigmas),
        "info": model.info,
    }
    write_json(folder / META_FILE, meta)
    return folder


def load_forest(folder: str | Path) -> ForestModel:
    """Read a model folder written by :func:`save_forest`.

    Only the types of a plain random forest are trusted; a file holding anything else is
    refused (skops never executes arbitrary pickled code).

    Raises
    ------
    LapsegInputError
        Missing files, an unreadable ``baseline.json`` or a forest file with untrusted types.
    """
    sio = optional_import("skops.io", extra="baseline", purpose="the random-forest baseline")

    folder = Path(folder)
    forest_path, meta_path = folder / FOREST_FILE, folder / META_FILE
    for path in (forest_path, meta_path):
        if not path.is_file():
            raise LapsegInputError("not a baseline model folder (file missing)", path=path)
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        untrusted = sio.get_untrusted_types(file=forest_path)
    except (OSError, ValueError) as exc:
        raise LapsegInputError(f"cannot read model ({exc})", path=folder) from exc
    unexpected = sorted(set(untrusted) - set(_TRUSTED_TYPES))
    if unexpected:
        raise LapsegInputError(
            f"forest file holds untrusted types {', '.join(unexpected)}; refusing to load",
            path=forest_path,
        )
    classifier = sio.load(forest_path, trusted=list(untrusted))
    if not isinstance(classifier, RandomForestClassifier):
        raise LapsegInputError("forest file does not hold a random forest", path=forest_path)
    try:
        return ForestModel(
            classifier=classifier,
            sigmas=check_sigmas(meta["sigmas"]),
            normalization=NormalizationStats.from_dict(meta["normalization"]),
            n_channels=int(meta["n_channels"]),
            threshold=float(meta["threshold"]),
            info=dict(meta.get("info", {})),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise LapsegInputError(f"corrupt baseline.json ({exc!r})", path=meta_path) from exc
