"""Options of the synthetic still-image generator, validated once when they are built."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

import numpy as np

from lapseg.errors import LapsegInputError

__all__ = ["SyntheticConfig"]

_DTYPES = ("uint16", "uint8", "float32")


@dataclass(frozen=True)
class SyntheticConfig:
    """Options of the synthetic generator; ranges are ``(low, high)``, both inclusive.

    Attributes
    ----------
    shape : (int, int)
        Image size ``(Y, X)``.
    n_cells : (int, int)
        Range of the number of cells per image.
    radius : (float, float)
        Range of the mean cell radius, in pixels.
    touching_fraction : float
        Fraction of cells placed in contact with another cell, in [0, 1].
    n_debris : (int, int)
        Range of the number of debris pieces (specks and fibres) per image.
    illumination_strength : float
        Amplitude of the smooth multiplicative illumination field, in [0, 1).
    noise_std : float
        Standard deviation of the noise, relative to the [0, 1] intensity range.
    dtype : str
        Output image dtype: ``"uint16"``, ``"uint8"`` or ``"float32"`` (values in [0, 1]).
    """

    shape: tuple[int, int] = (256, 256)
    n_cells: tuple[int, int] = (8, 20)
    radius: tuple[float, float] = (8.0, 20.0)
    touching_fraction: float = 0.3
    n_debris: tuple[int, int] = (2, 6)
    illumination_strength: float = 0.4
    noise_std: float = 0.05
    dtype: str = "uint16"

    def __post_init__(self) -> None:
        shape = _pair(self.shape, "shape", integer=True)
        n_cells = _pair(self.n_cells, "n_cells", integer=True)
        radius = _pair(self.radius, "radius", integer=False)
        n_debris = _pair(self.n_debris, "n_debris", integer=True)
        if min(shape) < 16:
            _bad("shape", f"must be at least (16, 16), got {shape}")
        if n_cells[0] < 0 or n_cells[1] > 65535:
            _bad("n_cells", f"must lie in [0, 65535], got {n_cells}")
        if radius[0] < 2 or radius[1] > min(shape) / 2:
            _bad("radius", f"must lie in [2, min(shape) / 2 = {min(shape) / 2}], got {radius}")
        if n_debris[0] < 0:
            _bad("n_debris", f"must be non-negative, got {n_debris}")
        if not 0.0 <= self.touching_fraction <= 1.0:
            _bad("touching_fraction", f"must lie in [0, 1], got {self.touching_fraction}")
        if not 0.0 <= self.illumination_strength < 1.0:
            _bad("illumination_strength", f"must lie in [0, 1), got {self.illumination_strength}")
        if not self.noise_std >= 0.0:
            _bad("noise_std", f"must be non-negative, got {self.noise_std}")
        if self.dtype not in _DTYPES:
            _bad("dtype", f"must be one of {', '.join(_DTYPES)}, got {self.dtype!r}")
        for name, value in (("shape", shape), ("n_cells", n_cells), ("radius", radius)):
            object.__setattr__(self, name, value)
        object.__setattr__(self, "n_debris", n_debris)


def _bad(field: str, problem: str) -> NoReturn:
    raise LapsegInputError(f"SyntheticConfig.{field} {problem}")


def _pair(value: object, field: str, *, integer: bool) -> tuple[Any, Any]:
    """Check a ``(low, high)`` range and return it as a tuple of int or float."""
    if isinstance(value, str | bytes) or not isinstance(value, Sequence) or len(value) != 2:
        _bad(field, f"must be a pair (low, high), got {value!r}")
    kinds = (int, np.integer) if integer else (int, float, np.integer, np.floating)
    if not all(isinstance(v, kinds) and not isinstance(v, bool) for v in value):
        _bad(field, f"must hold {'integers' if integer else 'numbers'}, got {value!r}")
    low, high = (int(v) for v in value) if integer else (float(v) for v in value)
    if not low <= high:
        _bad(field, f"low must not exceed high, got {value!r}")
    return (low, high)
