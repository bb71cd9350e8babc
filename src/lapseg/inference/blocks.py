"""Out-of-core prediction of huge 2D images, block by block, with seam-free instance labels.

The image is cut into square **cores** of ``block_size`` pixels (a regular grid, the last row and
column smaller); each core is read with a **halo** of context (``halo`` pixels on every side,
clipped at the image border). For each block, in raster order:

1. ``probabilities((C, h, w) pixels) -> (K, h, w)`` and ``labels_of(prob) -> (h, w) labels`` run
   on the core plus halo (any tiling happens inside ``probabilities``);
2. the block **owns** the objects whose bounding-box centre lies in its core; an owned object is
   written whole, also where it reaches into the neighbours' cores, so no object is ever cut by
   a block border. Every other object is left to the block that owns it, which sees it whole
   with its own context (the halo is what makes this true: see :func:`halo_for`);
3. owned objects get the next global ids (a counter carried from block to block) and are
   written only into pixels no earlier object holds (first writer wins); an object more than
   half of which is stored already is the same cell seen by two blocks whose views differ
   slightly, and is dropped: never duplicated. A block also writes the objects it sees whole
   whose centre lies in an *earlier* block's core, if they are still missing (that block's view
   put their centre elsewhere), so a disagreement about the owner never loses an object;
4. the core's probabilities and pixels (both optional) are written, and then the progress
   (blocks done, next id) is recorded in the store.

Only one block's arrays are alive at a time, so memory does not grow with the image. An
interrupted run leaves the store marked incomplete; rerunning the same call resumes after the
last recorded block. Labels a half-finished block had already written carry ids from the recorded
counter on and are cleared when that block is redone, so the resumed output equals an
uninterrupted one.

What is exact: when ``labels_of`` sees every object the same way in the owner's block as in the
whole image (true for connected components of probabilities that are computed locally, and for
objects well inside the halo), the block-wise labels equal the whole-image labels up to a
renumbering. Objects wider than about twice the halo can be cut (they touch the halo's outer edge
in their owner's view); they are counted in :attr:`BlockRun.oversized` and logged.

What is not: a labelling that is not quite local (a watershed breaks ties by the order it floods
the whole connected cluster) may place a boundary pixel between two touching cells differently
in two blocks; such a pixel goes to one of them, or rarely stays background.

This follows the idea of StarDist's ``big.py`` (each object taken from one responsible block that
sees it whole), with a regular core grid, centre ownership and an overlap check instead of
StarDist's overlapping blocks with bounding-box rules. The run itself (settings, the output store,
resuming) is :func:`lapseg.inference.block_run.predict_blocks`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage
from skimage.segmentation import relabel_sequential

from lapseg.config import PredictConfig
from lapseg.errors import LapsegInputError

__all__ = ["Block", "Stitched", "block_grid", "halo_for", "stitch_block"]


# --------------------------------------------------------------------------- geometry


@dataclass(frozen=True)
class Block:
    """One block: its core (owned, written) and its region (core plus halo, read).

    Attributes
    ----------
    index : int
        Position in raster order.
    core, region : (slice, slice)
        Global rows and columns.
    cut : (bool, bool, bool, bool)
        Whether the region's top, bottom, left and right edges lie inside the image (the image
        goes on beyond them) rather than on its border.
    size : int
        The block size of the grid (cores of the last row and column may be smaller).
    """

    index: int
    core: tuple[slice, slice]
    region: tuple[slice, slice]
    cut: tuple[bool, bool, bool, bool]
    size: int

    @property
    def core_in_region(self) -> tuple[slice, slice]:
        """The core in the region's own coordinates."""
        return tuple(  # type: ignore[return-value]
            slice(c.start - r.start, c.stop - r.start)
            for c, r in zip(self.core, self.region, strict=True)
        )


def block_grid(shape: tuple[int, int], *, block_size: int, halo: int) -> list[Block]:
    """The blocks covering a ``(Y, X)`` image, in raster order.

    >>> [b.core for b in block_grid((5, 3), block_size=4, halo=1)]
    [(slice(0, 4, None), slice(0, 3, None)), (slice(4, 5, None), slice(0, 3, None))]
    """
    if block_size < 1 or halo < 0:
        raise LapsegInputError(f"block_size must be >= 1 and halo >= 0, got {block_size}, {halo}")
    ny, nx = shape
    blocks: list[Block] = []
    for y0 in range(0, ny, block_size):
        for x0 in range(0, nx, block_size):
            y1, x1 = min(y0 + block_size, ny), min(x0 + block_size, nx)
            ry0, ry1 = max(y0 - halo, 0), min(y1 + halo, ny)
            rx0, rx1 = max(x0 - halo, 0), min(x1 + halo, nx)
            blocks.append(
                Block(
                    index=len(blocks),
                    core=(slice(y0, y1), slice(x0, x1)),
                    region=(slice(ry0, ry1), slice(rx0, rx1)),
                    cut=(ry0 > 0, ry1 < ny, rx0 > 0, rx1 < nx),
                    size=block_size,
                )
            )
    return blocks


def halo_for(max_object_diameter: int, predict: PredictConfig | None = None) -> int:
    """A halo wide enough for objects up to ``max_object_diameter`` pixels.

    The tile overlap of sliding-window prediction (its context) plus the object diameter: an
    owned object (centre in the core) then lies whole in the region, at least one tile overlap
    away from the region's edge, where predictions lack context. Rounded up to a multiple of 16.

    >>> halo_for(40, PredictConfig(tile_size=(256, 256), overlap=0.25))
    112
    """
    predict = predict if predict is not None else PredictConfig()
    context = math.ceil(max(predict.tile_size) * predict.overlap)
    return 16 * math.ceil((context + max_object_diameter) / 16)


# --------------------------------------------------------------------------- stitching


@dataclass(frozen=True)
class Stitched:
    """The labels of a block's region after stitching (see :func:`stitch_block`)."""

    labels: NDArray[np.integer]
    new_objects: int
    oversized: int


def _claimed(boxes: list[Any], block: Block, shape: tuple[int, int]) -> tuple[np.ndarray, int]:
    """The objects a block may write, and how many of its own are cut by the region's edge.

    A block claims the objects whose bounding-box centre lies in its core, and the objects it
    sees whole whose centre lies in the core of an earlier block (in case that block's view of
    them differed and placed their centre elsewhere: they are written only if still missing).
    """
    claimed = np.zeros(len(boxes) + 1, dtype=bool)
    (y0, x0), (h, w), size = (s.start for s in block.region), shape, block.size
    here = (block.core[0].start // size, block.core[1].start // size)
    top, bottom, left, right = block.cut
    oversized = 0
    for index, box in enumerate(boxes, start=1):
        if box is None:
            continue
        rows, cols = box
        centre = (
            (y0 + (rows.start + rows.stop - 1) // 2),
            (x0 + (cols.start + cols.stop - 1) // 2),
        )
        owner = (centre[0] // size, centre[1] // size)
        cut = (
            (top and rows.start == 0)
            or (bottom and rows.stop == h)
            or (left and cols.start == 0)
            or (right and cols.stop == w)
        )
        claimed[index] = owner == here or (owner < here and not cut)
        oversized += bool(owner == here and cut)
    return claimed, oversized


def stitch_block(
    labels: np.ndarray, existing: np.ndarray, block: Block, *, first_id: int, max_id: int
) -> Stitched:
    """Merge a block's own labelling into the labels already stored for its region.

    Parameters
    ----------
    labels : (h, w) integer ndarray
        ``labels_of`` of the block's region (any ids, 0 = background).
    existing : (h, w) integer ndarray
        The stored labels of the region. Ids ``>= first_id`` are leftovers of an interrupted
        attempt at this very block and are cleared.
    block : Block
    first_id : int
        The id of the first new object.
    max_id : int
        The largest id the store's dtype holds.

    Returns
    -------
    Stitched
        ``labels``: ``existing`` plus the objects the block claims (its own: centre in its core)
        that are not stored yet (more than half of their pixels free), written into the free
        pixels with ids ``first_id, first_id + 1, ...`` in the order of ``labels``' ids;
        ``new_objects``; ``oversized``: own objects touching the region's inner edge.

    Raises
    ------
    LapsegInputError
        The new ids would exceed ``max_id``.
    """
    labels, existing = np.asarray(labels), np.asarray(existing)
    if labels.shape != existing.shape:
        raise ValueError(f"labels {labels.shape} and existing {existing.shape} differ in shape")
    if labels.size and int(labels.max()) > labels.size:  # sparse ids: keep the tables small
        labels = relabel_sequential(labels)[0]
    stored = np.where(existing >= first_id, 0, existing).astype(np.uint32)
    claimed, oversized = _claimed(ndimage.find_objects(labels), block, labels.shape)
    candidate = claimed[labels]
    sizes = np.bincount(labels[candidate], minlength=claimed.size)
    free = np.bincount(labels[candidate & (stored == 0)], minlength=claimed.size)
    claimed &= 2 * free > sizes  # at most half stored already: new; else seen by another block
    kept = np.flatnonzero(claimed)
    if kept.size and first_id + kept.size - 1 > max_id:
        raise LapsegInputError(
            f"more than {max_id} objects do not fit the label dtype; use label_dtype='uint32'"
        )
    lookup = np.zeros(claimed.size, dtype=np.uint32)
    lookup[kept] = np.arange(first_id, first_id + kept.size)
    new = lookup[labels]
    write = (stored == 0) & (new > 0)
    stored[write] = new[write]
    return Stitched(labels=stored, new_objects=int(kept.size), oversized=oversized)
