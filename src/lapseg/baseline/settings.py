"""Settings of the random-forest baseline: a plain frozen dataclass with no heavy imports.

Kept apart from :mod:`lapseg.baseline.forest` (scikit-learn) so :mod:`lapseg.config` can hold it
as its ``baseline`` section without importing scikit-learn or creating an import cycle.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from lapseg.errors import LapsegInputError

__all__ = ["DEFAULT_SIGMAS", "BaselineConfig", "check_sigmas"]

DEFAULT_SIGMAS: tuple[float, ...] = (0.7, 1.0, 1.6, 3.5, 5.0, 10.0)
"""ilastik's default feature scales (pixels)."""


def check_sigmas(sigmas: Sequence[float]) -> tuple[float, ...]:
    """Validated scales as a tuple of positive finite floats (at least one)."""
    try:
        values = tuple(float(s) for s in sigmas)
    except (TypeError, ValueError):
        raise LapsegInputError(f"feature sigmas must be numbers, got {sigmas!r}") from None
    if not values or not all(math.isfinite(s) and s > 0 for s in values):
        raise LapsegInputError(f"feature sigmas must be positive numbers, got {list(sigmas)}")
    return values


@dataclass(frozen=True)
class BaselineConfig:
    """Settings of the random-forest baseline (config section ``baseline``).

    Attributes
    ----------
    sigmas : tuple of float
        Feature scales in pixels (ilastik's defaults).
    n_pixels_per_image : int
        Training pixels sampled at random from each training image.
    n_estimators : int
        Trees in the forest.
    max_depth : int or None
        Depth limit of each tree (None: grow until pure).
    min_samples_leaf : int
        Minimum training pixels in a leaf.
    tile : int
        Tile edge for feature computation and prediction (bounded memory).
    n_jobs : int or None
        Parallel jobs of scikit-learn (default -1: all cores; None: 1).
    seed : int
        Seed of pixel sampling and of the forest.
    """

    sigmas: tuple[float, ...] = DEFAULT_SIGMAS
    n_pixels_per_image: int = 20000
    n_estimators: int = 100
    max_depth: int | None = None
    min_samples_leaf: int = 1
    tile: int = 512
    n_jobs: int | None = -1
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "sigmas", check_sigmas(self.sigmas))
        for name in ("n_pixels_per_image", "n_estimators", "min_samples_leaf", "tile"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise LapsegInputError(f"baseline.{name} must be an integer >= 1, got {value!r}")
        depth = self.max_depth
        if depth is not None and (
            isinstance(depth, bool) or not isinstance(depth, int) or depth < 1
        ):
            raise LapsegInputError(f"baseline.max_depth must be None or >= 1, got {depth!r}")
        if self.n_jobs is not None and (isinstance(self.n_jobs, bool) or self.n_jobs == 0):
            raise LapsegInputError(f"baseline.n_jobs must be None, -1 or >= 1, got {self.n_jobs!r}")
