"""Synthetic microscopy images with instance labels, for the demo, tests and benchmarks.

An image is composed by small pure functions that later generators (time-lapse sequences with
moving or dividing cells) can reuse:

- :func:`random_cell` draws one cell shape (an ellipse with a smooth random radial perturbation);
  :func:`cell_distance` evaluates it on a pixel grid;
- :func:`place_cells` scatters cells, some of them in contact with another;
- :func:`render_labels` turns cells into a label partition (overlaps go to the nearer centre);
- :func:`render_cells` paints cytoplasm, texture, a darker nucleus, contact lines and a halo;
- :func:`debris_map` draws small, dark, sharp specks and fibres that are *not* cells;
- :func:`illumination_field` and :func:`add_noise` degrade the image like a real microscope.

:func:`synthetic_sample` combines them; :func:`synthetic_image` returns ``(image, labels)`` and
:func:`write_synthetic_dataset` writes a folder of TIFF pairs.
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import tifffile
from scipy import ndimage as ndi
from skimage.draw import polygon as draw_polygon

from lapseg.errors import LapsegInputError

BACKGROUND_LEVEL = 0.3
"""Background intensity before illumination and noise (images live in [0, 1])."""
DEBRIS_LEVEL = 0.04
"""Intensity of fully opaque debris: darker than background and cells."""
_DTYPES = ("uint16", "uint8", "float32")
_N_HARMONICS = 4  # radial perturbation uses harmonics 2 .. 2 + _N_HARMONICS - 1


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


def _bad(field: str, problem: str) -> None:
    raise LapsegInputError(f"SyntheticConfig.{field} {problem}")


def _pair(value: object, field: str, *, integer: bool) -> tuple:
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


def _window(cell: Cell, shape: tuple[int, int], margin: float) -> tuple[slice, slice]:
    reach = cell.extent + margin
    (cy, cx), (height, width) = cell.center, shape
    y0, y1 = max(0, math.floor(cy - reach)), min(height, math.ceil(cy + reach) + 1)
    x0, x1 = max(0, math.floor(cx - reach)), min(width, math.ceil(cx + reach) + 1)
    return slice(y0, y1), slice(x0, x1)


def render_labels(
    cells: Sequence[Cell], shape: tuple[int, int], *, halo_width: float = 8.0
) -> tuple[np.ndarray, np.ndarray]:
    """Rasterise cells into an instance partition.

    A pixel inside several cells goes to the cell with the smallest normalised distance (the
    "nearer" centre, scaled by each cell's size), so overlapping cells share a boundary.

    Returns
    -------
    labels : (Y, X) int32 ndarray
        0 for background, ``i + 1`` for ``cells[i]``. A cell hidden entirely by others has no
        pixel; :func:`synthetic_sample` drops such cells so that labels stay consecutive.
    outside : (Y, X) float32 ndarray
        Distance in pixels to the nearest cell boundary for background pixels, up to
        ``halo_width`` (``inf`` beyond), 0 inside cells.
    """
    labels = np.zeros(shape, dtype=np.int32)
    best = np.full(shape, np.inf)
    outside = np.full(shape, np.inf, dtype=np.float32)
    for index, cell in enumerate(cells, start=1):
        win = _window(cell, shape, halo_width)
        yy, xx = np.ogrid[win[0], win[1]]
        normalized, out = cell_distance(cell, yy.astype(float), xx.astype(float))
        owner = (normalized < 1.0) & (normalized < best[win])
        labels[win][owner] = index
        best[win] = np.where(owner, normalized, best[win])
        outside[win] = np.minimum(outside[win], out)
    outside[labels > 0] = 0.0
    return labels, outside


def render_cells(
    cells: Sequence[Cell],
    labels: np.ndarray,
    outside: np.ndarray,
    *,
    rng: np.random.Generator | int | None = None,
) -> np.ndarray:
    """Paint cells: bright textured cytoplasm, a darker nucleus, dark contact lines, a halo.

    Parameters
    ----------
    cells : sequence of Cell
        The cells behind ``labels`` (``labels == i + 1`` is ``cells[i]``, as from
        :func:`render_labels` when no cell was dropped).
    labels : (Y, X) int ndarray
    outside : (Y, X) float ndarray
        Distance to the nearest cell for background pixels.
    rng : Generator, int or None

    Returns
    -------
    image : (Y, X) float32 ndarray
        Noise-free, unblurred intensities in [0, 1].
    """
    rng = np.random.default_rng(rng)
    shape = labels.shape
    levels = np.concatenate([[BACKGROUND_LEVEL], rng.uniform(0.45, 0.8, len(cells))])
    texture = ndi.gaussian_filter(rng.standard_normal(shape), 1.5)
    texture *= 0.07 / max(float(texture.std()), 1e-6)
    inside = labels > 0
    image = levels[np.clip(labels, 0, len(cells))] + np.where(inside, texture, 0.0)
    for index, cell in enumerate(cells, start=1):
        shift = rng.uniform(0.0, 0.25 * cell.radius) * np.exp(1j * rng.uniform(0, 2 * np.pi))
        nucleus = random_cell(
            (cell.center[0] + shift.imag, cell.center[1] + shift.real),
            radius=(0.3 * cell.radius, 0.42 * cell.radius),
            roughness=0.05,
            rng=rng,
        )
        win = _window(nucleus, shape, 1.0)
        yy, xx = np.ogrid[win[0], win[1]]
        normalized, _ = cell_distance(nucleus, yy.astype(float), xx.astype(float))
        contrast = rng.uniform(0.3, 0.5) * (levels[index] - BACKGROUND_LEVEL)  # stays above bg
        depth = contrast * np.clip((1.0 - normalized) / 0.3, 0.0, 1.0)
        image[win] -= np.where(labels[win] == index, depth, 0.0)
    contact = np.zeros(shape, dtype=bool)
    for axis in (0, 1):
        a, b = np.moveaxis(labels, axis, 0)[:-1], np.moveaxis(labels, axis, 0)[1:]
        edge = (a != b) & (a > 0) & (b > 0)
        np.moveaxis(contact, axis, 0)[:-1] |= edge
        np.moveaxis(contact, axis, 0)[1:] |= edge
    image[contact] -= 0.15
    image += np.where(inside, 0.0, 0.08 * np.exp(-outside / 2.0))
    return np.clip(image, 0.0, 1.0).astype(np.float32)


def debris_map(
    shape: tuple[int, int],
    *,
    n: int,
    exclude: np.ndarray | None = None,
    rng: np.random.Generator | int | None = None,
) -> np.ndarray:
    """Draw ``n`` debris pieces: small irregular specks and thin curved fibres.

    Parameters
    ----------
    shape : (int, int)
    n : int
        Number of pieces (about two thirds specks, one third fibres).
    exclude : (Y, X) bool ndarray, optional
        Pixels debris must not cover (cells); a 3-pixel band around them is kept clear too.
    rng : Generator, int or None

    Returns
    -------
    opacity : (Y, X) float32 ndarray
        0 where there is no debris, else the piece's opacity in [0.7, 0.95].
    """
    rng = np.random.default_rng(rng)
    height, width = shape
    opacity = np.zeros(shape, dtype=np.float32)
    for _ in range(n):
        piece = np.zeros(shape, dtype=bool)
        cy, cx = rng.uniform(0, height - 1), rng.uniform(0, width - 1)
        if rng.random() < 0.65:
            k = int(rng.integers(5, 10))
            angles = np.sort(rng.uniform(0, 2 * np.pi, k))
            radii = rng.uniform(1.5, 4.5) * rng.uniform(0.5, 1.0, k)
            rows, cols = draw_polygon(
                cy + radii * np.sin(angles), cx + radii * np.cos(angles), shape
            )
            piece[rows, cols] = True
            piece[min(round(cy), height - 1), min(round(cx), width - 1)] = True
        else:
            steps = int(rng.uniform(24, 90))  # half-pixel steps: 12 to 45 px long
            heading = rng.uniform(0, 2 * np.pi) + np.cumsum(rng.normal(0.0, 0.08, steps))
            ys = np.round(cy + np.cumsum(0.5 * np.sin(heading))).astype(int)
            xs = np.round(cx + np.cumsum(0.5 * np.cos(heading))).astype(int)
            keep = (ys >= 0) & (ys < height) & (xs >= 0) & (xs < width)
            piece[ys[keep], xs[keep]] = True
            if rng.random() < 0.5:
                piece = ndi.binary_dilation(piece, structure=ndi.generate_binary_structure(2, 1))
        opacity[piece] = rng.uniform(0.7, 0.95)
    if exclude is not None:
        opacity[ndi.binary_dilation(exclude, iterations=3)] = 0.0
    return opacity


def illumination_field(
    shape: tuple[int, int], *, strength: float, rng: np.random.Generator | int | None = None
) -> np.ndarray:
    """Smooth multiplicative illumination in ``[1 - strength, 1 + strength]``.

    A random 4 x 4 grid upsampled with a cubic spline: varies over about a third of the image.

    Returns
    -------
    field : (Y, X) float32 ndarray
    """
    rng = np.random.default_rng(rng)
    grid = rng.uniform(-1.0, 1.0, (4, 4))
    smooth = ndi.zoom(grid, (shape[0] / 4, shape[1] / 4), order=3, mode="nearest")
    smooth = smooth[: shape[0], : shape[1]]
    smooth = smooth - smooth.mean()
    smooth /= max(float(np.abs(smooth).max()), 1e-6)
    return (1.0 + strength * smooth).astype(np.float32)


def add_noise(
    image: np.ndarray, *, std: float, rng: np.random.Generator | int | None = None
) -> np.ndarray:
    """Add camera-like noise: read noise (``std / 2``) plus shot noise (``std * sqrt(image)``).

    Parameters
    ----------
    image : (Y, X) float ndarray
        Intensities in about [0, 1].
    std : float
    rng : Generator, int or None

    Returns
    -------
    noisy : (Y, X) float32 ndarray
        Clipped to [0, 1].
    """
    rng = np.random.default_rng(rng)
    sigma = std * np.sqrt(0.25 + np.clip(image, 0.0, None))
    return np.clip(image + sigma * rng.standard_normal(image.shape), 0.0, 1.0).astype(np.float32)


@dataclass(frozen=True)
class SyntheticSample:
    """Everything behind one synthetic image, for tests and composed generators.

    Attributes
    ----------
    image : (Y, X) float32 ndarray
        Final image in [0, 1], before conversion to the configured dtype.
    labels : (Y, X) int32 ndarray
        Instance labels, 0 background.
    debris : (Y, X) float32 ndarray
        Debris opacity (0 where none).
    illumination : (Y, X) float32 ndarray
        Multiplicative illumination field.
    cells : tuple of Cell
    """

    image: np.ndarray
    labels: np.ndarray
    debris: np.ndarray
    illumination: np.ndarray
    cells: tuple[Cell, ...]


def synthetic_sample(
    config: SyntheticConfig = SyntheticConfig(), *, rng: np.random.Generator | int | None = None
) -> SyntheticSample:
    """Generate one image with all of its ingredients; see :func:`synthetic_image`."""
    rng = np.random.default_rng(rng)
    shape = config.shape
    n = int(rng.integers(config.n_cells[0], config.n_cells[1] + 1))
    cells = place_cells(
        shape, n=n, radius=config.radius, touching_fraction=config.touching_fraction, rng=rng
    )
    labels, outside = render_labels(cells, shape)
    present = np.zeros(len(cells) + 1, dtype=bool)
    present[labels] = True
    if not present[1:].all():  # hidden cells own no pixel: dropping them changes no pixel
        cells = [cell for cell, keep in zip(cells, present[1:], strict=True) if keep]
        labels, outside = render_labels(cells, shape)
    image = ndi.gaussian_filter(render_cells(cells, labels, outside, rng=rng), 1.0)
    n_debris = int(rng.integers(config.n_debris[0], config.n_debris[1] + 1))
    debris = debris_map(shape, n=n_debris, exclude=labels > 0, rng=rng)
    image = image * (1.0 - debris) + DEBRIS_LEVEL * debris
    field = illumination_field(shape, strength=config.illumination_strength, rng=rng)
    image = add_noise(
        image * field / (1.0 + config.illumination_strength), std=config.noise_std, rng=rng
    )
    return SyntheticSample(image, labels, debris, field, tuple(cells))


def synthetic_image(
    config: SyntheticConfig = SyntheticConfig(), *, rng: np.random.Generator | int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Generate one synthetic microscopy image and its instance labels.

    Bright textured cells with a darker nucleus and a faint halo, some touching, on a background
    with small dark debris (not labelled), uneven illumination, mild blur and noise.

    Parameters
    ----------
    config : SyntheticConfig
    rng : Generator, int or None
        Seed or generator; the same seed gives the same arrays.

    Returns
    -------
    image : (Y, X) ndarray
        ``config.dtype``: uint16 / uint8 use the full range, float32 lies in [0, 1].
    labels : (Y, X) int32 ndarray
        0 background, 1..n cells; touching cells have distinct labels and share a boundary.
    """
    sample = synthetic_sample(config, rng=rng)
    return _to_dtype(sample.image, config.dtype), sample.labels


def _to_dtype(image: np.ndarray, dtype: str) -> np.ndarray:
    if dtype == "float32":
        return image.astype(np.float32)
    top = np.iinfo(dtype).max
    return np.round(np.clip(image, 0.0, 1.0) * top).astype(dtype)


def _sample_names(n_images: int) -> list[str]:
    """``synth_000``, ``synth_001``, ...: zero-padded so that plain and natural sort agree."""
    width = max(3, len(str(n_images - 1)))
    return [f"synth_{i:0{width}d}" for i in range(n_images)]


def write_synthetic_dataset(
    root: str | os.PathLike[str],
    *,
    n_images: int,
    config: SyntheticConfig = SyntheticConfig(),
    rng: np.random.Generator | int | None = None,
) -> list[str]:
    """Write ``root/images/synth_000.tif`` and ``root/masks/synth_000.tif`` (uint16 labels).

    Files are written into a sibling ``<root>.tmp-<pid>`` folder that is renamed to ``root``
    at the end, so an interrupted run never leaves a half-written dataset.

    Parameters
    ----------
    root : path
        Dataset folder; must not exist or be empty.
    n_images : int
        Number of image / mask pairs, >= 1.
    config : SyntheticConfig
    rng : Generator, int or None

    Returns
    -------
    names : list of str
        Sample names (file stems) in natural order, e.g. ``["synth_000", "synth_001"]``.

    Raises
    ------
    LapsegInputError
        If ``root`` exists and is not an empty folder, or ``n_images`` is not a positive int.
    """
    root = Path(root)
    if isinstance(n_images, bool) or not isinstance(n_images, int | np.integer) or n_images < 1:
        raise LapsegInputError(f"n_images must be a positive integer, got {n_images!r}", path=root)
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise LapsegInputError("exists and is not empty; choose a new folder", path=root)
    rng = np.random.default_rng(rng)
    names = _sample_names(n_images)
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = root.with_name(f"{root.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        (tmp / "images").mkdir(parents=True)
        (tmp / "masks").mkdir()
        for name in names:
            image, labels = synthetic_image(config, rng=rng)
            tifffile.imwrite(tmp / "images" / f"{name}.tif", image)
            tifffile.imwrite(tmp / "masks" / f"{name}.tif", labels.astype(np.uint16))
        if root.exists():
            root.rmdir()
        os.replace(tmp, root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return names
