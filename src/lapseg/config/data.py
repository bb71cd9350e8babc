"""Sections about the data: where it is and how to read it (``data``), intensity normalisation
(``normalization``) and time-lapse context (``temporal``)."""

from __future__ import annotations

from typing import Annotated, Literal, get_args

from pydantic import Field, model_validator

from lapseg.config.base import Fraction, Int, Positive, Section, Size

__all__ = [
    "BACKGROUND_MODES",
    "EDGE_MODES",
    "INSTANCE_TARGETS",
    "LAYOUTS",
    "MASK_KINDS",
    "NORMALIZATION_MODES",
    "SPLIT_MODES",
    "TARGETS",
    "TARGET_OUTPUTS",
    "TASKS",
    "TRUTH_SOURCES",
    "DataConfig",
    "NormalizationConfig",
    "TemporalConfig",
]

Layout = Literal["auto", "folders", "sample-folders", "list", "sequences", "ctc"]
Task = Literal["auto", "instances", "semantic", "binary"]
MaskKind = Literal["auto", "binary", "instance", "classes"]
Target = Literal["auto", "binary", "three_class", "distance"]
NormalizationMode = Literal[
    "percentile", "percentile+meanstd", "meanstd", "mean-only", "mean-image", "none"
]
EdgeMode = Literal["replicate", "reflect"]
BackgroundMode = Literal["none", "median"]
TruthSource = Literal["GT", "ST", "GT+ST"]
SplitMode = Literal["sequence", "time_blocks"]

LAYOUTS: tuple[str, ...] = get_args(Layout)[1:]
"""The concrete layouts ("auto" resolves to one of them)."""
TASKS: tuple[str, ...] = get_args(Task)
MASK_KINDS: tuple[str, ...] = get_args(MaskKind)[1:]
"""The concrete mask kinds ("auto" resolves to one of them)."""
TARGETS: tuple[str, ...] = get_args(Target)[1:]
INSTANCE_TARGETS: tuple[str, ...] = ("three_class", "distance")
"""Targets that learn instances; the first is the default for instance masks."""
TARGET_OUTPUTS: dict[str, int] = {"three_class": 3, "distance": 4}
"""Network output channels each instance target needs (``distance``: background and foreground
logits, then the cell and neighbour distance)."""
NORMALIZATION_MODES: tuple[str, ...] = get_args(NormalizationMode)
EDGE_MODES: tuple[str, ...] = get_args(EdgeMode)
BACKGROUND_MODES: tuple[str, ...] = get_args(BackgroundMode)
TRUTH_SOURCES: tuple[str, ...] = get_args(TruthSource)
SPLIT_MODES: tuple[str, ...] = get_args(SplitMode)


class DataConfig(Section):
    """Where the images and masks are and how to read them."""

    SECTION = "data"

    layout: Layout = "auto"
    """``folders`` (``images/`` + ``masks/`` paired by file stem), ``sample-folders`` (one
    folder per sample holding ``image_name`` and ``mask_name``), ``list`` (a CSV/JSON file as
    the data path), ``sequences`` or ``ctc`` (time-lapse, see docs/timelapse.md); ``auto``
    recognises them (and says which in the run log)."""
    images_subdir: str = "images"
    """Image folder of the ``folders`` layout."""
    masks_subdir: str = "masks"
    """Mask folder of the ``folders`` layout."""
    mask_suffix: str = ""
    """Suffix of mask stems in the ``folders`` layout (``cell1_mask.tif`` for ``_mask``)."""
    image_name: str = "raw.tif"
    """Image file name inside each sample folder (``sample-folders`` layout)."""
    mask_name: str = "instances_ids.png"
    """Mask file name inside each sample folder (``sample-folders`` layout)."""
    axes: str | None = None
    """Axes of the image files (``YX``, ``YXC``, ``CYX``, ``TYX``...); null = from the file's
    metadata, ``YX`` for 2D arrays, ``YXC`` for RGB PNG/JPEG. Never guessed otherwise."""
    channels: tuple[Annotated[Int, Field(ge=0)], ...] | Literal["mean"] | None = None
    """Channels of multi-channel images the network sees: indices (0-based, in this order,
    e.g. [1, 0]), ``mean`` (their average: one channel) or null (every channel as read).
    Stored with the model, so prediction picks the same ones (``predict --channels``
    overrides). ``model.in_channels`` follows the images."""
    pixel_size: tuple[Positive, Positive] | None = None
    """Pixel size (Y, X) in micrometres of the training images; null: from their metadata.
    Recorded in the model; prediction rescales images of another pixel size to it
    (``predict.rescale``)."""
    task: Task = "auto"
    """``instances`` (separate objects: label images out), ``binary`` (foreground masks) or
    ``semantic`` (class maps); ``auto`` decides from the masks (instance label images ->
    instances, 0/1 or 0/255 masks -> binary, class-index images -> semantic) and says why."""
    mask_kind: MaskKind = "auto"
    """``binary`` (any nonzero is foreground), ``instance`` (label images), ``classes``
    (class-index images) or ``auto`` (detected from the masks, see ``task``)."""
    target: Target = "auto"
    """What the network learns: ``binary`` (foreground, or the classes of class masks),
    ``three_class`` (background / interior / boundary from instance labels), ``distance``
    (background / foreground plus each cell's distance to its outline and to its neighbours,
    regressed; instances grow from seeds where the first is high and the second low) or
    ``auto`` (the default representation of the task: ``three_class`` for instances, chosen
    by measurement in docs/instances.md)."""
    empty_masks: Literal["unannotated", "empty"] = "unannotated"
    """An all-zero mask (or frame of a mask stack) means ``unannotated`` (skipped; a movie
    with a few annotated frames) or ``empty`` (an image without objects, trained on). The run
    log counts them either way."""
    annotated_frames: str | None = None
    """A CSV file (columns ``sequence,frame``: sequence name and frame name or index) listing
    the annotated frames of time-lapse data; the other frames are context only."""
    boundary_width: Int = Field(2, ge=1)
    """Width in pixels of the boundary class of the 3-class target."""
    val_fraction: Fraction = 0.2
    """Fraction of the samples held out for validation (model selection, tuning)."""
    test_fraction: Fraction = 0.0
    """Fraction held out for a final test, evaluated at the end of training."""
    split_file: str | None = None
    """A JSON split (``{"train": [...], "val": [...], "test": [...]}``) instead of a random one."""
    resize: Size | None = None
    """Resize every image to (Y, X) before the network (e.g. 512x512); predictions are resized
    back to each input's size."""
    crop_or_pad: Size | None = None
    """Centre crop/pad every image to (Y, X) (e.g. 1024x1024); predictions are mapped back."""

    @model_validator(mode="after")
    def _consistent(self) -> DataConfig:
        if self.target in INSTANCE_TARGETS and self.mask_kind == "classes":
            raise ValueError(
                f"data.target={self.target} needs instance (or binary) masks, not "
                "data.mask_kind=classes"
            )
        if self.val_fraction + self.test_fraction >= 1.0:
            raise ValueError("data.val_fraction + data.test_fraction must be < 1")
        if self.resize is not None and self.crop_or_pad is not None:
            raise ValueError("set at most one of data.resize and data.crop_or_pad")
        if isinstance(self.channels, tuple) and not self.channels:
            raise ValueError("data.channels needs at least one channel index (or null)")
        return self


class NormalizationConfig(Section):
    """Intensity normalisation; its statistics come from the training split only and are stored
    with the model."""

    SECTION = "normalization"

    mode: NormalizationMode = "percentile"
    """``percentile`` (per image and channel: p_low -> 0, p_high -> 1), ``percentile+meanstd``
    (then the training set's mean/std), ``meanstd`` (training mean/std only), ``mean-only``
    (minus the training mean per channel), ``mean-image`` (minus the pixel-wise mean image of
    the training set: all images of one size) or ``none``."""
    low_percentile: float = Field(1.0, ge=0.0, le=100.0)
    """Percentile mapped to 0."""
    high_percentile: float = Field(99.8, ge=0.0, le=100.0)
    """Percentile mapped to 1."""

    @model_validator(mode="after")
    def _ordered(self) -> NormalizationConfig:
        if not self.low_percentile < self.high_percentile:
            raise ValueError(
                "normalization percentiles must satisfy low_percentile < high_percentile"
            )
        return self


class TemporalConfig(Section):
    """Time-lapse options (``data.layout`` ``sequences`` or ``ctc``)."""

    SECTION = "temporal"

    context: Int = Field(0, ge=0)
    """k: the network sees frames t-k .. t+k as 2k+1 input channels (k = 0: one frame, k = 2:
    five frames); ``model.in_channels`` follows automatically."""
    edge_mode: EdgeMode = "replicate"
    """At sequence ends, ``replicate`` the edge frame or ``reflect``."""
    background: BackgroundMode = "none"
    """``median`` subtracts each sequence's temporal median (per pixel) before normalisation."""
    median_frames: Int | None = Field(None, ge=1)
    """Set by training when ``background`` is ``median``: the fewest frames a training
    sequence's median was taken over. Prediction warns when a movie's median would come from
    fewer than half as many (cells that move little then stay in the median and are subtracted
    with the background)."""
    truth: TruthSource = "GT+ST"
    """Cell Tracking Challenge annotations to train on: ``GT`` (gold, sparse), ``ST`` (silver,
    every frame) or ``GT+ST`` (gold where present, silver elsewhere)."""
    split: SplitMode = "sequence"
    """``sequence`` (whole sequences go to train or validation) or ``time_blocks``
    (contiguous blocks of one sequence separated by ``gap`` unused frames)."""
    gap: Int = Field(5, ge=0)
    """Unused frames between time blocks of different subsets."""
