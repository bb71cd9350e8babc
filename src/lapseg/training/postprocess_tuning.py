"""Post-processing tuned on the validation split (as StarDist's ``optimize_thresholds``).

After training, the best model predicts the validation tiles once; every candidate of a small
grid of post-processing settings then turns those probabilities into instance labels, and the
settings with the best validation measure (``postprocess.tune_for``: SEG, AP@0.5 or their mean)
are stored in the model. The grid depends on the representation the network learnt; the search
stops early (keeping the best so far) when the time budget runs out.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from lapseg.config import PostprocessConfig
from lapseg.training.validation import ValidationSet, score_postprocessing

__all__ = ["TuningResult", "candidate_settings", "tune_postprocessing"]

_THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
"""Interior and foreground thresholds tried. The best pair lay on the edge of a grid ending at
0.8 / 0.7 on DIC-HeLa and PSC (outlines too large by 1-8%), so the grid reaches 0.9."""

_SEED_THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)
"""Seed thresholds of ``distance`` models (on cell minus neighbour distance, both in [0, 1]:
seeds shrink towards each cell's centre as it grows)."""


def candidate_settings(target: str) -> list[dict[str, Any]]:
    """The grid of post-processing settings searched for ``target`` (``data.target``)."""
    if target == "three_class":
        return [
            {"interior_threshold": i, "foreground_threshold": f}
            for i, f in itertools.product(_THRESHOLDS, _THRESHOLDS)
        ]
    if target == "distance":
        return [
            {"interior_threshold": i, "foreground_threshold": f}
            for i, f in itertools.product(_SEED_THRESHOLDS, _THRESHOLDS)
        ]
    return []


@dataclass(frozen=True)
class TuningResult:
    """The chosen settings and what the search saw."""

    postprocess: PostprocessConfig
    measure: str
    value: float
    default_value: float
    tried: int
    of: int
    seconds: float

    def summary(self) -> dict[str, Any]:
        """Plain dict for ``run.json``."""
        changed = {
            k: v
            for k, v in self.postprocess.to_dict().items()
            if v != PostprocessConfig().to_dict()[k]
        }
        return {
            "measure": self.measure,
            "value": round(self.value, 4),
            "value_with_defaults": round(self.default_value, 4),
            "settings_tried": f"{self.tried} of {self.of}",
            "seconds": round(self.seconds, 2),
            "changed_settings": changed,
        }


def tune_postprocessing(
    probabilities: Sequence[np.ndarray],
    tiles: ValidationSet,
    base: PostprocessConfig,
    *,
    target: str,
    object_area: float | None,
    deadline: float | None = None,
) -> TuningResult:
    """Search :func:`candidate_settings` over ``base`` for the best ``base.tune_for`` measure.

    Parameters
    ----------
    probabilities : sequence of (K, h, w) ndarray
        The best model's probabilities of the validation tiles.
    tiles : ValidationSet
        The tiles, with their instance labels.
    base : PostprocessConfig
        The run's settings (kept where the grid does not change them; the first candidate).
    target : str
        The representation the network learnt (``data.target``).
    object_area : float, optional
        Median training object area (scale-aware size limits).
    deadline : float, optional
        ``time.perf_counter()`` value after which the search stops.
    """
    started = time.perf_counter()
    measure = base.tune_for

    def score(settings: PostprocessConfig) -> float:
        return score_postprocessing(probabilities, tiles, settings, object_area)[measure]

    default_value = score(base)
    best, best_value = base, default_value
    grid = candidate_settings(target)
    tried = 0
    for changes in grid:
        if deadline is not None and time.perf_counter() > deadline:
            break
        candidate = base.replace(**changes)
        value = score(candidate)
        tried += 1
        if value > best_value + 1e-9 or (math.isclose(value, best_value) and best is base):
            best, best_value = candidate, value
    return TuningResult(
        postprocess=best,
        measure=measure,
        value=best_value,
        default_value=default_value,
        tried=tried,
        of=len(grid),
        seconds=time.perf_counter() - started,
    )
