"""The ``baseline`` section: the random-forest pixel classifier compared with the U-Net."""

from __future__ import annotations

import math

from pydantic import Field, field_validator

from lapseg.config.base import Int, Section

__all__ = ["DEFAULT_SIGMAS", "BaselineConfig"]

DEFAULT_SIGMAS: tuple[float, ...] = (0.7, 1.0, 1.6, 3.5, 5.0, 10.0)
"""ilastik's default feature scales (pixels)."""


class BaselineConfig(Section):
    """Settings of the random-forest baseline (ilastik-like features + scikit-learn forest)."""

    SECTION = "baseline"

    sigmas: tuple[float, ...] = DEFAULT_SIGMAS
    """Feature scales in pixels (ilastik's defaults)."""
    n_pixels_per_image: Int = Field(20000, ge=1)
    """Training pixels sampled at random from each training image."""
    n_estimators: Int = Field(100, ge=1)
    """Trees in the forest."""
    max_depth: Int | None = Field(None, ge=1)
    """Depth limit of each tree (null: grow until pure)."""
    min_samples_leaf: Int = Field(1, ge=1)
    """Minimum training pixels in a leaf."""
    tile: Int = Field(512, ge=1)
    """Tile edge for feature computation and prediction (bounded memory)."""
    n_jobs: Int | None = -1
    """Parallel jobs of scikit-learn (-1: all cores; null: 1)."""
    seed: Int = 0
    """Seed of pixel sampling and of the forest."""

    @field_validator("sigmas")
    @classmethod
    def _positive_sigmas(cls, sigmas: tuple[float, ...]) -> tuple[float, ...]:
        if not sigmas or not all(math.isfinite(s) and s > 0 for s in sigmas):
            raise ValueError(f"feature sigmas must be positive numbers, got {list(sigmas)}")
        return sigmas

    @field_validator("n_jobs")
    @classmethod
    def _jobs(cls, n_jobs: int | None) -> int | None:
        if n_jobs == 0:
            raise ValueError("baseline.n_jobs must be null, -1 or >= 1")
        return n_jobs
