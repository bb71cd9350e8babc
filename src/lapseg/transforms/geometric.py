"""Paired geometric transforms composed into one coordinate map and resampled once.

Every geometric transform of a sample (flips, quarter turns, rotation, scaling, translation,
random crop, elastic deformations, quadrant mirroring) is expressed as a map from each output
pixel to the input position it reads from. The map is built once and every array of the sample
(all image channels, the target, the weight map) is resampled from it once (:func:`warp`,
torch ``grid_sample`` on the CPU) with mirror boundaries (``d c b | a b c d | c b a``, the same
reflection as ``np.pad(mode="reflect")``): images and weight maps with linear interpolation,
targets with nearest-neighbour interpolation, so labels stay labels. A sample
drawn with only flips and quarter turns skips the resampling (exact numpy index operations).

Coordinates are pixel centres; the map is ``in = q(c + M (r + d(r)) + t)`` where ``r`` is the
output position relative to the patch centre ``c``, ``d`` the elastic displacement,
``M = crop * D R / zoom`` (dihedral ``D``, rotation ``R``), ``t`` the translation and crop
offset, and ``q`` the quadrant mirroring (applied to the source, i.e. last in the map).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy import ndimage

from lapseg.config import AugmentationConfig


def dihedral_transform(
    array: np.ndarray, *, k_rot90: int, flip_y: bool, flip_x: bool
) -> np.ndarray:
    """Apply flips then ``k_rot90`` quarter turns to the last two axes of ``array``.

    Parameters
    ----------
    array : (..., Y, X) ndarray
    k_rot90 : int
        Number of counter-clockwise quarter turns (0-3).
    flip_y, flip_x : bool
        Mirror along the rows / columns first.

    Returns
    -------
    out : (..., Y', X') ndarray
        A contiguous copy (``Y' = X``, ``X' = Y`` for odd ``k_rot90``).
    """
    out = array
    if flip_y:
        out = out[..., ::-1, :]
    if flip_x:
        out = out[..., :, ::-1]
    if k_rot90 % 4:
        out = np.rot90(out, k=k_rot90 % 4, axes=(-2, -1))
    return np.ascontiguousarray(out)


@dataclass(frozen=True, eq=False)
class GeometryParams:
    """One drawn geometric transform (the identity by default).

    flip_y, flip_x : mirror rows / columns. k_rot90 : counter-clockwise quarter turns.
    angle : rotation in degrees (counter-clockwise, like ``np.rot90``). zoom : magnification.
    shift : (dy, dx) in input pixels. crop_fraction, crop_offset : side of the cropped window
    relative to the patch and its centre's offset from the patch centre (input pixels).
    displacement : (2, Y, X) elastic displacement (pixels) on the output grid, or None.
    quadrant : (qy, qx) in {0, 1}: the quarter mirrored into the whole patch, or None.
    """

    flip_y: bool = False
    flip_x: bool = False
    k_rot90: int = 0
    angle: float = 0.0
    zoom: float = 1.0
    shift: tuple[float, float] = (0.0, 0.0)
    crop_fraction: float = 1.0
    crop_offset: tuple[float, float] = (0.0, 0.0)
    displacement: np.ndarray | None = field(default=None, repr=False)
    quadrant: tuple[int, int] | None = None

    @property
    def needs_resampling(self) -> bool:
        """False when only flips and quarter turns were drawn (exact index operations)."""
        return not (
            self.angle == 0.0
            and self.zoom == 1.0
            and self.shift == (0.0, 0.0)
            and self.crop_fraction == 1.0
            and self.crop_offset == (0.0, 0.0)
            and self.displacement is None
            and self.quadrant is None
        )

    @property
    def is_identity(self) -> bool:
        """True when the transform changes nothing."""
        dihedral = self.flip_y or self.flip_x or self.k_rot90 % 4
        return not dihedral and not self.needs_resampling


def elastic_displacement(
    shape: tuple[int, int], *, alpha: float, sigma: float, rng: np.random.Generator
) -> np.ndarray:
    """Simard et al. (2003) displacement field: U(-1, 1) per pixel, Gaussian-smoothed, times alpha.

    Parameters
    ----------
    shape : (Y, X)
    alpha : float
        Scale of the field (pixels).
    sigma : float
        Standard deviation of the Gaussian smoothing (pixels).
    rng : numpy.random.Generator

    Returns
    -------
    displacement : (2, Y, X) ndarray of float32
        (dy, dx) per pixel. Away from the border its standard deviation is close to
        ``alpha / (2 sigma sqrt(3 pi))`` (the continuous-kernel limit).
    """
    field_ = rng.uniform(-1.0, 1.0, size=(2, *shape)).astype(np.float32)
    out = np.empty_like(field_)
    for axis in range(2):
        ndimage.gaussian_filter(field_[axis], sigma, output=out[axis], mode="reflect")
    out *= np.float32(alpha)
    return out


def grid_displacement(
    shape: tuple[int, int], *, grid: tuple[int, int], std: float, rng: np.random.Generator
) -> np.ndarray:
    """Ronneberger et al. (2015) deformation: N(0, std) displacements on a coarse grid, smoothed.

    The grid nodes are spread evenly over the patch with the outer nodes on its corners; the
    per-pixel field is their cubic spline interpolation, which passes through the node values.

    Parameters
    ----------
    shape : (Y, X)
    grid : (gy, gx)
        Number of nodes per axis (3 x 3 in the paper).
    std : float
        Standard deviation of the node displacements (pixels; 10 in the paper).
    rng : numpy.random.Generator

    Returns
    -------
    displacement : (2, Y, X) ndarray of float32
    """
    nodes = rng.normal(0.0, std, size=(2, *grid))
    weights_y = _spline_matrix(grid[0], shape[0])
    weights_x = _spline_matrix(grid[1], shape[1])
    return np.stack([weights_y @ nodes[a] @ weights_x.T for a in range(2)]).astype(np.float32)


def _spline_matrix(n_nodes: int, n_points: int) -> np.ndarray:
    """(n_points, n_nodes) matrix evaluating the cubic spline through ``n_nodes`` values.

    The nodes are spread evenly from the first to the last point (mirror boundary). A 2D tensor
    spline is separable, so ``W_y @ nodes @ W_x.T`` equals the 2D spline at a fraction of the cost.
    """
    where = np.linspace(0.0, n_nodes - 1.0, n_points)[None, :]
    unit = np.eye(n_nodes)
    return np.stack(
        [ndimage.map_coordinates(unit[j], where, order=3, mode="mirror") for j in range(n_nodes)],
        axis=1,
    )


def random_geometry(
    shape: tuple[int, int], config: AugmentationConfig, rng: np.random.Generator
) -> GeometryParams:
    """Draw one geometric transform for a ``(Y, X)`` patch (transforms at probability 0 draw nothing).

    Quarter turns of non-square patches are restricted to half turns (the shape is kept).
    """
    ny, nx = shape
    kwargs: dict[str, object] = {}

    def fires(probability: float) -> bool:
        return probability > 0 and bool(rng.random() < probability)

    if fires(config.flip.probability):
        kwargs["flip_y"] = True
    if fires(config.flip.probability):
        kwargs["flip_x"] = True
    if fires(config.rot90.probability):
        kwargs["k_rot90"] = int(rng.integers(1, 4)) if ny == nx else 2
    if fires(config.rotation.probability):
        kwargs["angle"] = float(rng.uniform(*config.rotation.degrees))
    if fires(config.scale.probability):
        kwargs["zoom"] = float(rng.uniform(*config.scale.factor))
    if fires(config.translation.probability):
        fy, fx = rng.uniform(*config.translation.fraction, size=2)
        kwargs["shift"] = (float(fy * ny), float(fx * nx))
    if fires(config.crop.probability):
        fraction = float(rng.uniform(*config.crop.fraction))
        room = (1.0 - fraction) * (np.array(shape) - 1.0) / 2.0
        oy, ox = rng.uniform(-room, room)
        kwargs["crop_fraction"] = fraction
        kwargs["crop_offset"] = (float(oy), float(ox))
    displacement = None
    if fires(config.elastic.probability):
        alpha = float(rng.uniform(*config.elastic.alpha))
        displacement = elastic_displacement(shape, alpha=alpha, sigma=config.elastic.sigma, rng=rng)
    if fires(config.grid_elastic.probability):
        grid = grid_displacement(
            shape, grid=config.grid_elastic.grid, std=config.grid_elastic.std, rng=rng
        )
        displacement = grid if displacement is None else displacement + grid
    if displacement is not None:
        kwargs["displacement"] = displacement
    if fires(config.quadrant_mirror.probability):
        qy, qx = rng.integers(0, 2, size=2)
        kwargs["quadrant"] = (int(qy), int(qx))
    return GeometryParams(**kwargs)  # type: ignore[arg-type]


def _linear_part(params: GeometryParams) -> np.ndarray:
    """2x2 matrix from output offsets (y, x) to input offsets: crop * D R / zoom."""
    turn = np.array([[0.0, 1.0], [-1.0, 0.0]])  # inverse map of one np.rot90 (CCW) turn
    dihedral = np.linalg.matrix_power(turn, params.k_rot90 % 4)
    dihedral = np.diag([-1.0 if params.flip_y else 1.0, -1.0 if params.flip_x else 1.0]) @ dihedral
    theta = math.radians(params.angle)
    rotation = np.array([[math.cos(theta), math.sin(theta)], [-math.sin(theta), math.cos(theta)]])
    return params.crop_fraction / params.zoom * dihedral @ rotation


def _fold_mirror(coords: np.ndarray, n: int) -> np.ndarray:
    """Map coordinates into [0, n - 1] by mirror reflection about the edge pixel centres."""
    if n == 1:
        return np.zeros_like(coords)
    period = 2.0 * (n - 1)
    coords = np.mod(coords, period)
    return np.where(coords > n - 1, period - coords, coords)


def _quadrant_map(coords: np.ndarray, n: int, q: int) -> np.ndarray:
    """Seed 002's mirroring: positions in [0, n - 1] read from one half of length ceil(n / 2)."""
    half = -(-n // 2)
    origin = q * (n - half)
    centre = half - 0.5
    return origin + centre - np.abs(_fold_mirror(coords, n) - centre)


def coordinate_map(shape: tuple[int, int], params: GeometryParams) -> np.ndarray:
    """The input position read by every output pixel of a ``(Y, X)`` patch.

    Returns
    -------
    coords : (2, Y, X) ndarray of float64
        ``coords[:, y, x]`` is the (row, column) position in the input (see :func:`warp`).
    """
    ny, nx = shape
    centre = np.array([(ny - 1) / 2.0, (nx - 1) / 2.0])
    ry = np.arange(ny, dtype=np.float64) - centre[0]
    rx = np.arange(nx, dtype=np.float64) - centre[1]
    matrix = _linear_part(params)
    offset = centre + np.asarray(params.shift) + np.asarray(params.crop_offset)
    if params.displacement is None:  # separable: two outer sums instead of a full product
        coords = np.empty((2, ny, nx))
        for a in range(2):
            coords[a] = matrix[a, 0] * ry[:, None] + matrix[a, 1] * rx[None, :] + offset[a]
    else:
        if params.displacement.shape != (2, ny, nx):
            raise ValueError(
                f"displacement shape {params.displacement.shape} does not match (2, {ny}, {nx})"
            )
        dy = ry[:, None] + params.displacement[0]
        dx = rx[None, :] + params.displacement[1]
        coords = np.stack([matrix[a, 0] * dy + matrix[a, 1] * dx + offset[a] for a in range(2)])
    if params.quadrant is not None:
        coords[0] = _quadrant_map(coords[0], ny, params.quadrant[0])
        coords[1] = _quadrant_map(coords[1], nx, params.quadrant[1])
    return coords


def warp(array: np.ndarray, coords: np.ndarray, *, order: int) -> np.ndarray:
    """Resample the last two axes of ``array`` at ``coords`` (mirror boundary).

    Uses :func:`torch.nn.functional.grid_sample` on the CPU (``align_corners=True`` with
    ``padding_mode="reflection"`` reflects about the edge pixel centres, like scipy's
    ``mode="mirror"``); it is ~4x faster than :func:`scipy.ndimage.map_coordinates` on one
    thread (``benchmarks/bench_augmentation.py``). Arithmetic is float32: labels up to 2**24
    are exact, and positions on the pixel grid give values within float32 rounding.

    Parameters
    ----------
    array : (..., Y, X) ndarray
    coords : (2, Y', X') ndarray
        Input (row, column) position of every output pixel.
    order : int
        0 (nearest neighbour: labels stay labels) or 1 (linear).

    Returns
    -------
    out : (..., Y', X') ndarray
        Same dtype as ``array``.
    """
    if order not in (0, 1):
        raise ValueError(f"order={order} must be 0 (nearest) or 1 (linear)")
    ny, nx = array.shape[-2:]
    is_labels = not np.issubdtype(array.dtype, np.floating)
    if is_labels and array.size and max(abs(int(array.max())), abs(int(array.min()))) > 2**24:
        raise ValueError("label values beyond 2**24 cannot be resampled exactly in float32")
    scale = np.array([2.0 / max(ny - 1, 1), 2.0 / max(nx - 1, 1)])
    normalised = coords.reshape(2, -1).T[:, ::-1] * scale[::-1] - 1.0  # (x, y) in [-1, 1]
    grid = torch.from_numpy(normalised.astype(np.float32).reshape(1, *coords.shape[1:], 2))
    planes = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32).reshape(1, -1, ny, nx))
    with torch.inference_mode():
        out = torch.nn.functional.grid_sample(
            planes,
            grid,
            mode="nearest" if order == 0 else "bilinear",
            padding_mode="reflection",
            align_corners=True,
        )[0].numpy()
    if is_labels:
        out = np.rint(out)
    return out.reshape(*array.shape[:-2], *coords.shape[1:]).astype(array.dtype, copy=False)


def apply_geometry(
    arrays: Sequence[np.ndarray | None], params: GeometryParams, *, orders: Sequence[int]
) -> list[np.ndarray | None]:
    """Apply one geometric transform to several ``(..., Y, X)`` arrays of the same ``(Y, X)``.

    Parameters
    ----------
    arrays : sequence of (..., Y, X) ndarray or None
        ``None`` passes through.
    params : GeometryParams
    orders : sequence of int
        Interpolation order per array (0 nearest, 1 linear).

    Returns
    -------
    out : list of (..., Y, X) ndarray or None
        New arrays (the inputs are never modified).
    """
    present = [a for a in arrays if a is not None]
    if not present:
        return list(arrays)
    shape = present[0].shape[-2:]
    if any(a.shape[-2:] != shape for a in present):
        raise ValueError(
            f"all arrays must share (Y, X); got {[a.shape for a in present]} "
            "(cut the target with the same context margin as the image, crop it afterwards)"
        )
    if params.is_identity:
        return [None if a is None else a.copy() for a in arrays]
    odd_turn_of_rectangle = params.k_rot90 % 2 == 1 and shape[0] != shape[1]
    if not params.needs_resampling and not odd_turn_of_rectangle:
        return [
            None
            if a is None
            else dihedral_transform(
                a, k_rot90=params.k_rot90, flip_y=params.flip_y, flip_x=params.flip_x
            )
            for a in arrays
        ]
    coords = coordinate_map((int(shape[0]), int(shape[1])), params)
    return [
        None if a is None else warp(a, coords, order=order)
        for a, order in zip(arrays, orders, strict=True)
    ]
