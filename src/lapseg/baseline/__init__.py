"""Random-forest pixel classifier baseline (ilastik-style features, scikit-learn forest)."""

from __future__ import annotations

from lapseg.baseline.features import (
    DEFAULT_SIGMAS,
    compute_features,
    feature_halo,
    feature_names,
    iter_feature_tiles,
)
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

__all__ = [
    "DEFAULT_SIGMAS",
    "BaselineConfig",
    "ForestModel",
    "compute_features",
    "feature_halo",
    "feature_names",
    "iter_feature_tiles",
    "load_forest",
    "predict_baseline",
    "predict_forest",
    "sample_pixels",
    "save_forest",
    "train_baseline",
    "train_forest",
]
