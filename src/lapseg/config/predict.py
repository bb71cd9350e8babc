"""Sections about prediction: tiling and thresholds (``predict``) and instance label images
from probabilities (``postprocess``)."""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import Field

from lapseg.config.base import Bool, Fraction, Int, Positive, Section, Size

__all__ = [
    "BLENDS",
    "ENGINES",
    "THRESHOLD_METHODS",
    "PostprocessConfig",
    "PredictConfig",
]

Blend = Literal["gaussian", "constant", "crop"]
ThresholdMethod = Literal["fixed", "otsu", "tuned"]
Engine = Literal["torch", "onnx"]

BLENDS: tuple[str, ...] = get_args(Blend)
THRESHOLD_METHODS: tuple[str, ...] = get_args(ThresholdMethod)
ENGINES: tuple[str, ...] = get_args(Engine)


class PredictConfig(Section):
    """Sliding-window prediction and thresholding."""

    SECTION = "predict"

    tile_size: Size = (512, 512)
    """Input tile size (Y, X) of the sliding window (shrunk for smaller images)."""
    overlap: Fraction = 0.25
    """Fraction of a tile shared with its neighbours."""
    blend: Blend = "gaussian"
    """How overlapping tiles are combined: ``gaussian`` (nnU-Net's window), ``constant``
    (plain average) or ``crop`` (each pixel from the tile that owns it)."""
    batch_size: Int = Field(4, ge=1)
    """Tiles per forward pass."""
    threshold_method: ThresholdMethod = "fixed"
    """``fixed`` (``threshold``), ``otsu`` (per image) or ``tuned`` (the threshold maximising
    validation Dice, found at the end of training and stored in the model)."""
    threshold: float = Field(0.5, gt=0.0, lt=1.0)
    """Foreground probability threshold of binary models."""
    engine: Engine = "torch"
    """``torch`` (eager PyTorch) or ``onnx`` (ONNX Runtime on the CPU; the ``onnx`` extra)."""
    rescale: Bool = True
    """Bring images whose pixel size differs by more than 5% from the training images' to the
    training scale (and the results back to the image's grid), as nnU-Net does with spacing.
    Images or models without a pixel size are used as they are (the log says so)."""
    scale: Positive | None = None
    """Zoom every image by this factor before the network (results mapped back), instead of
    the pixel-size rule: 0.5 when the objects are twice as large in pixels as in training."""


class PostprocessConfig(Section):
    """How probability maps become instance label images (``lapseg predict`` writes them)."""

    SECTION = "postprocess"

    interior_threshold: float = Field(0.5, gt=0.0, lt=1.0)
    """A pixel seeds an instance when P(interior) exceeds it (3-class models), or its cell
    distance minus its neighbour distance does (``distance`` models)."""
    foreground_threshold: float = Field(0.5, gt=0.0, lt=1.0)
    """Pixels with 1 - P(background) above it belong to a cell (3-class and ``distance``
    models; binary models use ``predict.threshold``)."""
    min_size: Int = Field(16, ge=0)
    """Objects with fewer pixels are removed (after hole filling)."""
    min_seed_size: Int = Field(0, ge=0)
    """Interior components with fewer pixels seed nothing (3-class models)."""
    fill_holes: Bool = True
    """Fill background fully enclosed by one object with that object."""
    remove_border: Literal["auto"] | Bool = "auto"
    """Drop objects touching the image border. ``auto``: decided at training from the
    instance masks — on when they leave border objects out (fewer than 15 % of the expected
    number touch the border), off otherwise; the decision is logged and stored with the model
    (``lapseg.data.tasks.border_convention``)."""
    watershed: Bool = False
    """Binary models: split touching cells by a distance-transform watershed instead of plain
    connected components."""
    min_distance: Int = Field(7, ge=1)
    """Binary models with ``watershed``: minimum distance in pixels between two seeds."""
    min_size_fraction: Fraction = 0.1
    """Scale-aware ``min_size``: objects smaller than this fraction of the median object area
    of the training masks (stored with the model) are removed; the larger limit applies."""
    min_seed_fraction: Fraction = 0.05
    """Scale-aware ``min_seed_size``, as a fraction of the median training object area."""
    tune_for: Literal["seg_ap", "seg", "ap50", "none"] = "seg_ap"
    """After training, tune the thresholds on the validation split for this measure (CTC SEG,
    AP@0.5 or their mean) and store them in the model; ``none`` keeps the values above."""
