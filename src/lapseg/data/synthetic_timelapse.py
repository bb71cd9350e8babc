"""Synthetic time-lapse sequences where only motion tells cells from look-alikes.

Every frame is drawn with the pieces of :mod:`lapseg.data.synthetic`:

- **moving cells** (labelled): a random walk with a per-cell drift, a slowly changing shape
  (harmonic phases and elongation drift) and divisions (a cell splits into two smaller daughters
  that move apart); each frame re-draws their texture and nucleus, as living cells change;
- **static decoys** (not labelled): objects drawn exactly like cells but fixed in place with a
  fixed appearance (dead cells, debris clumps) — in one frame they are indistinguishable from
  cells; plus small dark debris and the bright rim of a microwell, also static;
- slowly varying uneven illumination (blending two fields over the sequence), a
  phase-contrast-like bright halo around every object, and camera noise.

So a single frame cannot tell a moving cell from a decoy, and frames ``t-k .. t+k`` can: the
generator behind the test that temporal context (k = 2) beats a single frame (k = 0).
:func:`write_synthetic_timelapse` writes the ``"sequences"`` layout
(``root/<seq>/frames/t000.tif`` and ``root/<seq>/masks/t000.tif``).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import tifffile
from scipy import ndimage as ndi

from lapseg.data.synthetic import (
    BACKGROUND_LEVEL,
    DEBRIS_LEVEL,
    Cell,
    _to_dtype,
    add_noise,
    atomic_dataset_folder,
    debris_map,
    illumination_field,
    place_cells,
    render_cells,
    render_labels,
)
from lapseg.errors import LapsegInputError


@dataclass(frozen=True)
class TimelapseConfig:
    """Options of the synthetic time-lapse generator; ranges are ``(low, high)``.

    shape : frame size (Y, X).
    n_frames : frames per sequence.
    n_cells, n_decoys : number of moving cells / static look-alikes at the first frame.
    radius : mean cell radius range, pixels.
    speed : drift speed of each cell, pixels per frame (random direction).
    jitter : standard deviation of the random-walk step, pixels per frame.
    division_probability : chance per cell and frame to divide (daughters have 1/sqrt(2) radius).
    shape_change : per-frame change of the shape harmonics' phases (radians) and elongation.
    n_debris : small dark static debris pieces.
    microwell : draw the static bright rim of a microwell across the frame.
    illumination_strength : amplitude of the uneven illumination, in [0, 1).
    noise_std : camera noise standard deviation (intensities in [0, 1]).
    dtype : "uint16", "uint8" or "float32".
    """

    shape: tuple[int, int] = (96, 96)
    n_frames: int = 16
    n_cells: tuple[int, int] = (3, 5)
    n_decoys: tuple[int, int] = (3, 5)
    radius: tuple[float, float] = (6.0, 9.0)
    speed: float = 2.0
    jitter: float = 0.7
    division_probability: float = 0.02
    shape_change: float = 0.15
    n_debris: tuple[int, int] = (2, 4)
    microwell: bool = True
    illumination_strength: float = 0.3
    noise_std: float = 0.03
    dtype: str = "uint16"

    def __post_init__(self) -> None:
        if min(self.shape) < 32:
            raise LapsegInputError(f"TimelapseConfig.shape {self.shape} must be at least 32x32")
        if self.n_frames < 1:
            raise LapsegInputError(f"TimelapseConfig.n_frames={self.n_frames} must be >= 1")
        for name in ("n_cells", "n_decoys", "n_debris", "radius"):
            low, high = getattr(self, name)
            if not 0 <= low <= high:
                raise LapsegInputError(f"TimelapseConfig.{name}={getattr(self, name)} is invalid")
        if self.radius[0] < 2 or self.radius[1] > min(self.shape) / 4:
            raise LapsegInputError(f"TimelapseConfig.radius={self.radius} must lie in [2, Y/4]")
        if self.speed < 0 or self.jitter < 0 or self.noise_std < 0:
            raise LapsegInputError("TimelapseConfig speed, jitter and noise_std must be >= 0")
        if not 0 <= self.division_probability <= 1:
            raise LapsegInputError("TimelapseConfig.division_probability must be in [0, 1]")
        if not 0 <= self.illumination_strength < 1:
            raise LapsegInputError("TimelapseConfig.illumination_strength must be in [0, 1)")
        if self.dtype not in ("uint16", "uint8", "float32"):
            raise LapsegInputError(f"TimelapseConfig.dtype={self.dtype!r} is not supported")


@dataclass(frozen=True)
class SyntheticSequence:
    """A generated sequence.

    frames : (T, Y, X) ndarray in ``config.dtype``.
    labels : (T, Y, X) int32; moving cells only, 0 elsewhere (a label per cell and frame).
    static : (Y, X) bool; where the static decoys, debris and microwell rim are.
    """

    frames: np.ndarray
    labels: np.ndarray
    static: np.ndarray


@dataclass
class _Mover:
    cell: Cell
    velocity: np.ndarray


def _step(
    mover: _Mover, shape: tuple[int, int], config: TimelapseConfig, rng: np.random.Generator
) -> _Mover:
    """One frame of motion (bouncing off the borders) and shape change."""
    cell = mover.cell
    position = np.asarray(cell.center) + mover.velocity + rng.normal(0.0, config.jitter, 2)
    velocity = mover.velocity.copy()
    for axis in range(2):
        low, high = cell.radius, shape[axis] - 1 - cell.radius
        if position[axis] < low or position[axis] > high:
            velocity[axis] = -velocity[axis]
            position[axis] = min(max(position[axis], low), high)
    harmonics = tuple((a, p + rng.normal(0.0, config.shape_change)) for a, p in cell.harmonics)
    elongation = float(np.clip(cell.elongation + rng.normal(0.0, config.shape_change / 3), 1, 1.8))
    angle = cell.angle + rng.normal(0.0, config.shape_change)
    moved = replace(
        cell,
        center=(float(position[0]), float(position[1])),
        harmonics=harmonics,
        elongation=elongation,
        angle=angle,
    )
    return _Mover(moved, velocity)


def _divide(mover: _Mover, rng: np.random.Generator) -> list[_Mover]:
    cell = mover.cell
    phi = rng.uniform(0, 2 * np.pi)
    offset = 0.55 * cell.radius * np.array([math.sin(phi), math.cos(phi)])
    radius = cell.radius / math.sqrt(2)
    out = []
    for sign in (1.0, -1.0):
        center = np.asarray(cell.center) + sign * offset
        daughter = replace(
            cell, center=(float(center[0]), float(center[1])), radius=radius, elongation=1.2
        )
        out.append(_Mover(daughter, mover.velocity + sign * offset / max(cell.radius, 1.0)))
    return out


def _microwell_rim(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Intensity offset of a bright rim (with a dark inner band) of a large circular well."""
    height, width = shape
    radius = rng.uniform(1.2, 2.0) * max(shape)
    angle = rng.uniform(0, 2 * np.pi)
    centre = (
        height / 2 + (radius - 0.3 * height) * math.sin(angle),
        width / 2 + (radius - 0.3 * width) * math.cos(angle),
    )
    yy, xx = np.ogrid[:height, :width]
    distance = np.hypot(yy - centre[0], xx - centre[1]) - radius
    return 0.35 * np.exp(-((distance / 2.0) ** 2)) - 0.12 * np.exp(-(((distance + 5) / 2.5) ** 2))


def synthetic_sequence(
    config: TimelapseConfig = TimelapseConfig(), *, rng: np.random.Generator | int | None = None
) -> SyntheticSequence:
    """Generate one sequence (see the module docstring)."""
    rng = np.random.default_rng(rng)
    height, width = config.shape
    shape = (height, width)
    n_cells = int(rng.integers(config.n_cells[0], config.n_cells[1] + 1))
    n_decoys = int(rng.integers(config.n_decoys[0], config.n_decoys[1] + 1))
    objects = place_cells(
        shape, n=n_cells + n_decoys, radius=config.radius, touching_fraction=0.0, rng=rng
    )
    order = rng.permutation(len(objects))
    decoys = [objects[i] for i in order[:n_decoys]]
    movers = []
    for i in order[n_decoys:]:
        direction = rng.uniform(0, 2 * np.pi)
        velocity = config.speed * np.array([math.sin(direction), math.cos(direction)])
        movers.append(_Mover(objects[i], velocity))
    # the static scene: decoys drawn once, debris, microwell rim
    decoy_labels, decoy_outside = render_labels(decoys, shape)
    decoy_image = render_cells(decoys, decoy_labels, decoy_outside, rng=rng)
    static = decoy_labels > 0
    debris = debris_map(
        shape, n=int(rng.integers(config.n_debris[0], config.n_debris[1] + 1)), rng=rng
    )
    static |= debris > 0
    rim = _microwell_rim(shape, rng) if config.microwell else np.zeros(shape)
    static |= np.abs(rim) > 0.05
    fields = [
        illumination_field(shape, strength=config.illumination_strength, rng=rng) for _ in (0, 1)
    ]
    frames = np.empty((config.n_frames, *shape), dtype=np.float32)
    labels = np.zeros((config.n_frames, *shape), dtype=np.int32)
    for t in range(config.n_frames):
        if t:
            movers = [_step(m, shape, config, rng) for m in movers]
            divided: list[_Mover] = []
            for mover in movers:
                split = rng.random() < config.division_probability and mover.cell.radius > 5
                divided.extend(_divide(mover, rng) if split else [mover])
            movers = divided
        cells = [m.cell for m in movers]
        cell_labels, cell_outside = render_labels(cells, shape)
        cell_image = render_cells(cells, cell_labels, cell_outside, rng=rng)
        moving = cell_labels > 0
        # moving cells pass over the static scene; the background level is shared
        image = np.where(moving, cell_image, decoy_image + (cell_image - BACKGROUND_LEVEL))
        image = np.clip(image + rim, 0.0, 1.0)
        image = ndi.gaussian_filter(image, 1.0)
        image = image * (1.0 - debris) + DEBRIS_LEVEL * debris
        weight = t / max(config.n_frames - 1, 1)
        field = (1 - weight) * fields[0] + weight * fields[1]
        image = image * field / (1.0 + config.illumination_strength)
        frames[t] = add_noise(image, std=config.noise_std, rng=rng)
        labels[t] = cell_labels
    return SyntheticSequence(frames=_to_dtype(frames, config.dtype), labels=labels, static=static)


def write_synthetic_timelapse(
    root: str | os.PathLike[str],
    *,
    n_sequences: int,
    config: TimelapseConfig = TimelapseConfig(),
    annotate_every: int = 1,
    rng: np.random.Generator | int | None = None,
) -> list[str]:
    """Write ``root/seq00/frames/t000.tif`` and ``root/seq00/masks/t000.tif`` (uint16 labels).

    Parameters
    ----------
    root : path
        Must not exist or be empty; written via a temporary sibling folder then renamed.
    n_sequences : int
    config : TimelapseConfig
    annotate_every : int
        Write a mask for every ``annotate_every``-th frame only (sparse ground truth).
    rng : Generator, int or None

    Returns
    -------
    names : list of str
        Sequence names.
    """
    root = Path(root)
    if n_sequences < 1 or annotate_every < 1:
        raise LapsegInputError("n_sequences and annotate_every must be >= 1", path=root)
    rng = np.random.default_rng(rng)
    names = [f"seq{i:02d}" for i in range(n_sequences)]
    width = max(3, len(str(config.n_frames - 1)))
    with atomic_dataset_folder(root) as tmp:
        for name in names:
            sequence = synthetic_sequence(config, rng=rng)
            (tmp / name / "frames").mkdir(parents=True)
            (tmp / name / "masks").mkdir()
            for t in range(config.n_frames):
                stem = f"t{t:0{width}d}"
                tifffile.imwrite(tmp / name / "frames" / f"{stem}.tif", sequence.frames[t])
                if t % annotate_every == 0:
                    mask = sequence.labels[t].astype(np.uint16)
                    tifffile.imwrite(tmp / name / "masks" / f"{stem}.tif", mask)
    return names
