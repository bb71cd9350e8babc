"""Cell shapes and their placement: star-shaped cells and how they are scattered in an image.

A :class:`Cell` is an ellipse whose radius is modulated by smooth harmonics; :func:`random_cell`
draws one, :func:`cell_boundary_radius` and :func:`cell_distance` evaluate it, and
:func:`place_cells` scatters several, some of them in contact with another.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

__all__ = ["Cell", "cell_boundary_radius", "cell_distance", "place_cells", "random_cell"]

_N_HARMONICS = 4  # radial perturbation uses harmonics 2 .. 2 + _N_HARMONICS - 1


@dataclass(frozen=True)
class Cell:
    """One star-shaped cell: an ellipse whose radius is modulated by smooth harmonics.

    Attributes
    ----------
    center : (float, float)
        Centre ``(y, x)`` in pixels.
    radius : float
        Mean radius in pixels (geometric mean of the ellipse semi-axes).
    elongation : float
        Ratio of the major to the minor semi-axis, >= 1.
    angle : float
        Orientation of the major axis, radians, counter-clockwise from +x.
    harmonics : tuple of (float, float)
        ``(amplitude, phase)`` of radial harmonics 2, 3, ...; amplitudes sum below 1.
    """

    center: tuple[float, float]
    radius: float
    elongation: float
    angle: float
    harmonics: tuple[tuple[float, float], ...]

    @property
    def extent(self) -> float:
        """Radius of a disc around the centre that contains the whole cell."""
        wobble = 1.0 + sum(abs(a) for a, _ in self.harmonics)
        return self.radius * math.sqrt(self.elongation) * wobble


def random_cell(
    center: tuple[float, float],
    *,
    radius: tuple[float, float],
    roughness: float = 0.12,
    rng: np.random.Generator | int | None = None,
) -> Cell:
    """Draw a cell with random size, elongation, orientation and boundary wobble.

    Parameters
    ----------
    center : (float, float)
        Centre ``(y, x)``.
    radius : (float, float)
        Range of the mean radius.
    roughness : float
        Amplitude of the second harmonic; higher harmonics get ``roughness / (k - 1)``.
    rng : Generator, int or None
        Source of randomness.
    """
    rng = np.random.default_rng(rng)
    r = rng.uniform(*radius)
    harmonics = tuple(
        (float(rng.uniform(0.0, roughness / (k - 1))), float(rng.uniform(0.0, 2 * np.pi)))
        for k in range(2, 2 + _N_HARMONICS)
    )
    return Cell(
        center=(float(center[0]), float(center[1])),
        radius=float(r),
        elongation=float(rng.uniform(1.0, 1.8)),
        angle=float(rng.uniform(0.0, np.pi)),
        harmonics=harmonics,
    )


def _scaled_radius(cell: Cell, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Perturbation ``p(theta)`` and the inverse ellipse radius along cell-frame angle theta."""
    a = cell.radius * math.sqrt(cell.elongation)
    b = cell.radius / math.sqrt(cell.elongation)
    wobble = np.ones_like(theta)
    for k, (amp, phase) in enumerate(cell.harmonics, start=2):
        wobble = wobble + amp * np.cos(k * theta + phase)
    inv_ellipse = np.sqrt((np.cos(theta) / a) ** 2 + (np.sin(theta) / b) ** 2)
    return wobble, inv_ellipse


def cell_boundary_radius(cell: Cell, phi: np.ndarray | float) -> np.ndarray:
    """Distance from the centre to the boundary along image direction ``phi``.

    Parameters
    ----------
    cell : Cell
    phi : (N,) ndarray or float
        Direction ``atan2(dy, dx)`` in radians.

    Returns
    -------
    radius : (N,) ndarray
        Boundary distance in pixels.
    """
    wobble, inv_ellipse = _scaled_radius(cell, np.asarray(phi, dtype=float) - cell.angle)
    return wobble / inv_ellipse


def cell_distance(cell: Cell, yy: np.ndarray, xx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Evaluate a cell on pixel coordinates.

    Parameters
    ----------
    cell : Cell
    yy, xx : ndarray
        Broadcastable pixel coordinates (e.g. from ``np.ogrid``).

    Returns
    -------
    normalized : ndarray
        Distance to the centre divided by the boundary distance in that direction: 0 at the
        centre, 1 on the boundary, > 1 outside.
    outside : ndarray
        Approximate distance in pixels to the boundary for outside pixels, 0 inside.
    """
    dy, dx = yy - cell.center[0], xx - cell.center[1]
    dist = np.hypot(dy, dx)
    wobble, inv_ellipse = _scaled_radius(cell, np.arctan2(dy, dx) - cell.angle)
    normalized = dist * inv_ellipse / wobble
    outside = np.maximum(dist - wobble / inv_ellipse, 0.0)
    return normalized, outside


def _fits(cell: Cell, others: list[Cell], *, overlap: float, skip: int = -1) -> bool:
    """Whether ``cell`` keeps clear of ``others``.

    ``overlap == 0``: the enclosing discs are 2 px apart (no contact at all); otherwise the
    boundaries may overlap by that fraction along the line joining the centres.
    """
    for index, other in enumerate(others):
        if index == skip:
            continue
        dy, dx = other.center[0] - cell.center[0], other.center[1] - cell.center[1]
        if overlap == 0:
            reach = cell.extent + other.extent + 2.0
        else:
            phi = math.atan2(dy, dx)
            along = cell_boundary_radius(cell, phi) + cell_boundary_radius(other, phi + np.pi)
            reach = (1.0 - overlap) * float(along)
        if math.hypot(dy, dx) < reach:
            return False
    return True


def place_cells(
    shape: tuple[int, int],
    *,
    n: int,
    radius: tuple[float, float],
    touching_fraction: float,
    rng: np.random.Generator | int | None = None,
    attempts: int = 60,
) -> list[Cell]:
    """Scatter ``n`` cells with centres inside the image; some touch an earlier cell.

    ``ceil(touching_fraction * n)`` cells (at most ``n - 1``) are placed against a random earlier
    cell, overlapping it slightly so that the label partition gives them a shared boundary. The
    others are placed clear of all cells when possible; in crowded images a cell that does not
    fit is squeezed in anyway, and after many failures it is left out.

    Returns
    -------
    cells : list of Cell
    """
    rng = np.random.default_rng(rng)
    height, width = shape
    n_touch = min(max(n - 1, 0), math.ceil(touching_fraction * n - 1e-9))
    touching = np.zeros(n, dtype=bool)
    if n_touch:
        touching[1 + rng.permutation(n - 1)[:n_touch]] = True
    margin = 0.25 * radius[0]

    def random_centre() -> tuple[float, float]:
        return (rng.uniform(margin, height - 1 - margin), rng.uniform(margin, width - 1 - margin))

    def inside(cell: Cell) -> bool:
        (cy, cx) = cell.center
        return margin <= cy <= height - 1 - margin and margin <= cx <= width - 1 - margin

    cells: list[Cell] = []
    for wants_contact in touching:
        template = random_cell((0.0, 0.0), radius=radius, rng=rng)
        placed = None
        for _ in range(attempts if wants_contact else 0):
            target = int(rng.integers(len(cells)))
            candidate = _in_contact(template, cells[target], rng=rng)
            if inside(candidate) and _fits(candidate, cells, overlap=0.1, skip=target):
                placed = candidate
                break
        for overlap in (0.0, 0.35, 0.7):
            for _ in range(attempts if placed is None else 0):
                candidate = replace(template, center=random_centre())
                if _fits(candidate, cells, overlap=overlap):
                    placed = candidate
                    break
        if placed is not None:
            cells.append(placed)
    return cells


def _in_contact(cell: Cell, target: Cell, *, rng: np.random.Generator) -> Cell:
    """Move ``cell`` next to ``target`` in a random direction, overlapping it by 8-20 %."""
    phi = rng.uniform(0.0, 2 * np.pi)
    reach = cell_boundary_radius(target, phi) + cell_boundary_radius(cell, phi + np.pi)
    step = float(reach) * rng.uniform(0.8, 0.92)
    center = (target.center[0] + step * math.sin(phi), target.center[1] + step * math.cos(phi))
    return replace(cell, center=center)
