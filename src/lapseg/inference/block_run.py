"""The block-by-block run of :mod:`lapseg.inference.blocks`: :func:`predict_blocks` cuts a
``(C, Y, X)`` image of any size into blocks, predicts and stitches them into an OME-Zarr store
(:mod:`lapseg.io.zarr_store`) and resumes an interrupted run where it stopped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from lapseg.errors import LapsegInputError
from lapseg.inference.blocks import block_grid, stitch_block
from lapseg.io.zarr import LazyImage
from lapseg.io.zarr_store import (
    LabelDtype,
    NgffVersion,
    PredictionStore,
    ProbabilityEncoding,
    StoreLayout,
    create_prediction_store,
    open_prediction_store,
)

__all__ = ["BlockRun", "BlockSettings", "predict_blocks"]

log = logging.getLogger(__name__)

ProbabilityFunction = Callable[[np.ndarray], np.ndarray]
"""``(C, h, w)`` pixels -> ``(K, h, w)`` float probabilities."""
LabelFunction = Callable[[np.ndarray], np.ndarray]
"""``(K, h, w)`` probabilities -> ``(h, w)`` integer labels (0 = background)."""
IfExists = Literal["resume", "overwrite", "error"]


@dataclass(frozen=True)
class BlockSettings:
    """How :func:`predict_blocks` cuts the image and what it writes.

    Attributes
    ----------
    block_size : int
        Core size in pixels (Zarr chunks of the output divide it when possible).
    halo : int
        Context on each side (see :func:`halo_for`).
    label_dtype : {"uint32", "uint16"}
    probabilities : {"none", "uint8", "float16"}
        Also store the probabilities, quantised to uint8 (``round(255 p)``) or as float16.
    copy_image : bool
        Store the input pixels as the NGFF image the labels belong to.
    ngff_version : {"0.4", "0.5"}
    """

    block_size: int = 2048
    halo: int = 256
    label_dtype: LabelDtype = "uint32"
    probabilities: Literal["none", "uint8", "float16"] = "none"
    copy_image: bool = True
    ngff_version: NgffVersion = "0.4"

    @property
    def chunk(self) -> int:
        """Output chunk size: 1024, 512 or 256 when it divides the block size, else the block."""
        return next((c for c in (1024, 512, 256) if self.block_size % c == 0), self.block_size)

    def run_record(self) -> dict[str, int]:
        """What a resumed run must share with the store (besides its layout)."""
        return {"block_size": self.block_size, "halo": self.halo}


@dataclass(frozen=True)
class BlockRun:
    """What :func:`predict_blocks` did.

    Attributes
    ----------
    path : Path
        The prediction store.
    blocks : int
        Blocks of the image.
    predicted : int
        Blocks predicted by this call (fewer than ``blocks`` when it resumed a run, 0 when the
        store was already complete).
    objects : int
        Instances in the whole image (ids ``1..objects``).
    oversized : int
        Objects reaching the halo's outer edge in their owner's view (see the module notes).
    seconds : float
        Wall time of this call.
    """

    path: Path
    blocks: int
    predicted: int
    objects: int
    oversized: int
    seconds: float


def _layout(
    settings: BlockSettings,
    image: Any,
    classes: int,
    pixel_size: tuple[float, float] | None,
) -> StoreLayout:
    channels, ny, nx = (int(s) for s in image.shape)
    stored = settings.probabilities != "none"
    encoding: ProbabilityEncoding = (
        "uint8" if settings.probabilities == "none" else settings.probabilities
    )
    return StoreLayout(
        shape=(ny, nx),
        chunk=settings.chunk,
        image_channels=channels if settings.copy_image else 0,
        image_dtype=np.dtype(image.dtype).newbyteorder("=").name,
        label_dtype=settings.label_dtype,
        probability_classes=classes if stored else 0,
        probability_encoding=encoding,
        ngff_version=settings.ngff_version,
        pixel_size=pixel_size,
    )


def _existing_store(output: Path, if_exists: IfExists) -> PredictionStore | None:
    """The store to resume, or None to create one."""
    if not output.exists() or if_exists == "overwrite":
        return None
    if if_exists == "error":
        raise LapsegInputError("output exists; choose another path", path=output)
    return open_prediction_store(output)


def _check_same_run(store: PredictionStore, layout: StoreLayout, settings: BlockSettings) -> None:
    recorded = store.progress().get("run")
    if store.layout != layout or recorded not in (None, settings.run_record()):
        raise LapsegInputError(
            f"output was started with other settings ({store.layout}, {recorded}); rerun with "
            "the same settings to resume it, or overwrite it",
            path=store.path,
        )


def _checked(array: Any, shape: tuple[int, ...], what: str, *, integer: bool = False) -> np.ndarray:
    array = np.asarray(array)
    if array.ndim != len(shape) or array.shape[-2:] != shape[-2:]:
        raise LapsegInputError(f"{what} returned shape {array.shape}, expected {shape}")
    if integer and not np.issubdtype(array.dtype, np.integer):
        raise LapsegInputError(f"{what} must return integer labels, got dtype {array.dtype}")
    return array


def predict_blocks(
    image: Any,
    output: str | Path,
    probabilities: ProbabilityFunction,
    labels_of: LabelFunction,
    *,
    settings: BlockSettings | None = None,
    pixel_size: tuple[float, float] | None = None,
    if_exists: IfExists = "resume",
    progress: Callable[[int, int], None] | None = None,
) -> BlockRun:
    """Predict a ``(C, Y, X)`` image of any size block by block into an OME-Zarr store.

    Parameters
    ----------
    image : (C, Y, X) array-like or LazyImage
        Anything with ``shape``, ``dtype`` and numpy-style slicing ``image[:, rows, cols]``: an
        ndarray, a Zarr array, or :meth:`lapseg.io.zarr.LazyImage.plane` of a lazy OME-Zarr or
        TIFF image (a :class:`~lapseg.io.zarr.LazyImage` itself means its first plane, and
        gives the default ``pixel_size``). Only one block's region is read at a time.
    output : str or Path
        The prediction store (:mod:`lapseg.io.zarr_store`), e.g. ``result.zarr``.
    probabilities : callable
        ``(C, h, w) -> (K, h, w)`` float probabilities, e.g.
        ``lambda x: predict_probabilities([model], x)``.
    labels_of : callable
        ``(K, h, w) -> (h, w)`` instance labels, e.g.
        ``lambda p: instances_from_probabilities(p, config.postprocess)``.
    settings : BlockSettings, optional
    pixel_size : (float, float), optional
        ``(y, x)`` micrometres, written into the NGFF metadata.
    if_exists : {"resume", "overwrite", "error"}, optional
        ``resume``: continue a store started with the same settings (a finished one is
        returned as it is). ``overwrite`` replaces a lapseg store; ``error`` refuses.
    progress : callable, optional
        Called as ``progress(blocks_done, blocks_total)`` after each block.

    Returns
    -------
    BlockRun

    Raises
    ------
    LapsegInputError
        Not a ``(C, Y, X)`` image; the output exists and is not a lapseg store, or was started
        with other settings; a callable returns the wrong shape; ids overflow ``label_dtype``.
    """
    started = time.perf_counter()
    settings = settings if settings is not None else BlockSettings()
    output = Path(output)
    if isinstance(image, LazyImage):
        pixel_size = pixel_size if pixel_size is not None else image.pixel_size
        image = image.plane()
    shape = tuple(int(s) for s in image.shape)
    if len(shape) != 3 or min(shape) < 1:
        raise LapsegInputError(f"image must be (C, Y, X), got shape {shape}")
    blocks = block_grid((shape[1], shape[2]), block_size=settings.block_size, halo=settings.halo)
    state: dict[str, Any] = {"run": settings.run_record(), "done": 0, "next_id": 1, "oversized": 0}
    store = _existing_store(output, if_exists)
    if store is not None:
        classes = store.layout.probability_classes
        _check_same_run(store, _layout(settings, image, classes, pixel_size), settings)
        state.update(store.progress())
    max_id = int(np.iinfo(settings.label_dtype).max)
    predicted = 0
    for block in blocks[state["done"] :]:
        pixels = np.asarray(image[:, block.region[0], block.region[1]])
        prob = _checked(probabilities(pixels), (-1, *pixels.shape[1:]), "probabilities")
        if store is None:
            layout = _layout(settings, image, prob.shape[0], pixel_size)
            store = create_prediction_store(output, layout, overwrite=True)
            store.set_progress(state)
        elif store.probabilities is not None and len(prob) != store.layout.probability_classes:
            raise LapsegInputError(
                f"probabilities returned {len(prob)} classes; the output holds "
                f"{store.layout.probability_classes}",
                path=output,
            )
        labels = _checked(labels_of(prob), pixels.shape[1:], "labels_of", integer=True)
        existing = store.read_labels(*block.region)
        stitched = stitch_block(labels, existing, block, first_id=state["next_id"], max_id=max_id)
        store.write_labels(*block.region, stitched.labels)
        rows, cols = block.core_in_region
        if store.probabilities is not None:
            store.write_probabilities(*block.core, prob[:, rows, cols])
        if store.image is not None:
            store.write_image(*block.core, pixels[:, rows, cols])
        state["done"] = block.index + 1
        state["next_id"] += stitched.new_objects
        state["oversized"] += stitched.oversized
        store.set_progress(state)
        predicted += 1
        if progress is not None:
            progress(block.index + 1, len(blocks))
    if store is None:  # pragma: no cover  (a non-empty image has at least one block)
        raise LapsegInputError("image has no blocks")
    if not store.complete:
        store.mark_complete()
    if state["oversized"]:
        log.warning(
            "%s: %d object(s) reach the halo's outer edge (wider than about 2 x halo = %d px) "
            "and may be cut at block borders; raise the halo",
            output,
            state["oversized"],
            2 * settings.halo,
        )
    return BlockRun(
        path=output,
        blocks=len(blocks),
        predicted=predicted,
        objects=int(state["next_id"]) - 1,
        oversized=int(state["oversized"]),
        seconds=time.perf_counter() - started,
    )
