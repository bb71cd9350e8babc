"""A slide or mosaic too large for memory, from its file to an OME-Zarr of instance labels.

:func:`predict_large_image` is what ``lapseg predict-large`` runs: it opens the image lazily
(:func:`lapseg.io.zarr.open_large_image`), takes the percentile normalisation's percentiles
once from windows spread over the whole plane (:func:`reference_pixels`; per-block percentiles
would scale a block of background differently from a crowded one), chooses a halo from the
model's median training object size (:func:`default_halo`), and predicts block by block with
:func:`lapseg.inference.block_run.predict_blocks` (resumable, seam-free labels).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from lapseg.config import PredictConfig
from lapseg.errors import LapsegInputError
from lapseg.inference.block_run import BlockRun, BlockSettings, IfExists, predict_blocks
from lapseg.inference.blocks import halo_for
from lapseg.inference.predict import (
    LoadedModel,
    image_zoom,
    model_instances,
    predict_probabilities,
)
from lapseg.io.zarr import PlaneView, open_large_image

__all__ = ["default_halo", "predict_large_image", "reference_pixels"]

log = logging.getLogger(__name__)

UNKNOWN_OBJECT_DIAMETER = 96
"""Largest object diameter (pixels) assumed when the model does not know its objects' size."""
LARGEST_OBJECT_FACTOR = 3.0
"""The largest object is taken as this many median diameters across."""
REFERENCE_PER_SIDE = 4
""":func:`reference_pixels` reads ``REFERENCE_PER_SIDE ** 2`` windows of the plane."""


def reference_pixels(
    plane: PlaneView, *, per_side: int = REFERENCE_PER_SIDE, window: int = 256
) -> np.ndarray:
    """Windows spread evenly over a ``(C, Y, X)`` plane, stacked along Y: ``(C, n * w, w)``.

    ``per_side ** 2`` windows of ``window`` pixels (smaller when the plane is), on a regular
    grid including the plane's corners; only these regions are read. Their pixels stand for
    the whole plane in :func:`lapseg.data.normalization.percentile_normalize`.

    >>> plane = PlaneView(np.arange(100.0).reshape(10, 10), "YX")
    >>> reference_pixels(plane, per_side=2, window=2).shape
    (1, 8, 2)
    """
    _, ny, nx = plane.shape
    size = min(window, ny, nx)
    starts_y = np.linspace(0, ny - size, per_side).round().astype(int)
    starts_x = np.linspace(0, nx - size, per_side).round().astype(int)
    windows = [np.asarray(plane[:, y : y + size, x : x + size]) for y in starts_y for x in starts_x]
    return np.concatenate(windows, axis=1)


def default_halo(loaded: LoadedModel, predict: PredictConfig) -> tuple[int, str]:
    """The halo for ``loaded``'s objects, and a line saying how it was chosen.

    The largest object is taken as :data:`LARGEST_OBJECT_FACTOR` median diameters of the
    training masks (``2 sqrt(area / pi)``), or :data:`UNKNOWN_OBJECT_DIAMETER` when the model
    does not store its objects' area; see :func:`lapseg.inference.blocks.halo_for`.
    """
    area = loaded.object_area
    if area is not None and area > 0:
        diameter = math.ceil(LARGEST_OBJECT_FACTOR * 2.0 * math.sqrt(area / math.pi))
        why = f"objects up to {diameter} px across (3 x the median training object)"
    else:
        diameter = UNKNOWN_OBJECT_DIAMETER
        why = f"objects up to {diameter} px across (the model stores no object size)"
    halo = halo_for(diameter, predict)
    return halo, f"halo {halo} px: tile context + {why}"


def _check_model(models: Sequence[LoadedModel]) -> LoadedModel:
    first = models[0]
    config = first.config
    if any(m.config.temporal.context > 0 for m in models):
        raise LapsegInputError(
            "predict-large takes single images; a model with temporal context needs "
            "`lapseg predict` on the movie"
        )
    if config.data.task == "semantic" and config.model.outputs > 2:
        raise LapsegInputError(
            "predict-large writes instance labels; a class-map model needs `lapseg predict`",
            path=first.path,
        )
    return first


def predict_large_image(
    models: Sequence[LoadedModel],
    image_path: str | Path,
    output: str | Path,
    *,
    axes: str | None = None,
    t: int = 0,
    z: int = 0,
    block_size: int = 2048,
    halo: int | None = None,
    probabilities: str = "none",
    predict: PredictConfig | None = None,
    if_exists: IfExists = "resume",
    progress: Callable[[int, int], None] | None = None,
) -> BlockRun:
    """Instance labels of one plane of a huge image, block by block, into an OME-Zarr store.

    Parameters
    ----------
    models : sequence of LoadedModel
        One model or an ensemble (averaged probabilities); no temporal context.
    image_path : str or Path
        An OME-Zarr store or a TIFF (read lazily).
    output : str or Path
        The prediction store, e.g. ``slide-labels.zarr`` (:mod:`lapseg.io.zarr_store`).
    axes : str, optional
        Axes of a TIFF without axis metadata.
    t, z : int
        The plane of a time series / z-stack.
    block_size, halo : int
        Block core size; halo of context (default :func:`default_halo`).
    probabilities : {"none", "uint8", "float16"}
        Also store the probabilities.
    predict : PredictConfig, optional
        Tiling settings for this run (default: the model's).
    if_exists : {"resume", "overwrite", "error"}
        What to do with an existing output store.
    progress : callable, optional
        ``progress(blocks_done, blocks_total)``.

    Returns
    -------
    BlockRun
    """
    first = _check_model(models)
    settings = predict if predict is not None else first.config.predict
    image_path, output = Path(image_path), Path(output)
    if output.resolve() == image_path.resolve():
        raise LapsegInputError("the output would overwrite the input; choose another", path=output)
    if probabilities not in ("none", "uint8", "float16"):
        raise LapsegInputError(f"probabilities must be none, uint8 or float16, not {probabilities}")
    if halo is None:
        halo, why = default_halo(first, settings)
        log.info("%s", why)
    with open_large_image(image_path, axes=axes) as image:
        plane = image.plane(t=t, z=z)
        reference = reference_pixels(plane)
        log.info(
            "%s: %d x %d pixels, %d channel(s); percentiles from %d windows over the whole plane",
            image_path,
            plane.shape[1],
            plane.shape[2],
            plane.shape[0],
            REFERENCE_PER_SIDE**2,
        )
        zoom, why = image_zoom(first, image.pixel_size, settings)
        if why:
            log.info("%s: %s", image_path, why)
        if first.config.postprocess.remove_border is True:
            # each block would drop the objects cut by its own edges
            log.info(
                "%s: objects touching the image border are kept (postprocess.remove_border "
                "applies to whole images, not to block-wise prediction)",
                image_path,
            )
            first = first.with_postprocess(remove_border=False)
        return predict_blocks(
            plane,
            output,
            lambda pixels: predict_probabilities(
                models, pixels, predict=settings, reference=reference, pixel_size=image.pixel_size
            ),
            lambda prob: model_instances(first, prob, predict=settings, zoom=zoom),
            settings=BlockSettings(
                block_size=block_size,
                halo=halo,
                probabilities=probabilities,  # type: ignore[arg-type]
            ),
            pixel_size=image.pixel_size,
            if_exists=if_exists,
            progress=progress,
        )
