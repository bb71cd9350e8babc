"""Sections about optimisation: the loss (``loss``) and the training run (``train``)."""

from __future__ import annotations

from typing import Annotated, Literal, get_args

from pydantic import Field, field_validator, model_validator

from lapseg.config.base import Bool, Int, NonNegative, Positive, Probability, Section, Size

__all__ = [
    "CLASS_WEIGHTING",
    "LOSS_NAMES",
    "MONITORS",
    "OPTIMIZERS",
    "SCHEDULES",
    "LossConfig",
    "TrainConfig",
]

LossName = Literal["ce", "dice", "jaccard", "tversky", "focal", "dice_ce"]
ClassWeighting = Literal["none", "median_frequency", "inverse_frequency", "total_ratio", "fixed"]
Optimizer = Literal["sgd", "adam", "adamw"]
Schedule = Literal["none", "exponential", "piecewise", "cosine", "plateau"]
Monitor = Literal[
    "auto",
    "val_seg_ap",
    "val_seg",
    "val_ap50",
    "val_dice",
    "val_iou",
    "val_loss",
    "val_f1",
    "val_error_rate",
    "val_white_pixel_accuracy",
    "val_false_white",
]

LOSS_NAMES: tuple[str, ...] = get_args(LossName)
CLASS_WEIGHTING: tuple[str, ...] = get_args(ClassWeighting)
OPTIMIZERS: tuple[str, ...] = get_args(Optimizer)
SCHEDULES: tuple[str, ...] = get_args(Schedule)
MONITORS: tuple[str, ...] = get_args(Monitor)


class LossConfig(Section):
    """Loss function and pixel weighting."""

    SECTION = "loss"

    name: LossName = "dice_ce"
    """``ce``, ``dice``, ``jaccard``, ``tversky``, ``focal`` or ``dice_ce`` (Dice + cross-entropy)."""
    class_weighting: ClassWeighting = "none"
    """``median_frequency`` (median of all per-image class pixel counts over each class's total),
    ``inverse_frequency``, ``total_ratio`` (the largest class's pixel total over each class's)
    from the training masks, ``fixed`` (``class_weights`` as given) or ``none``."""
    class_weights: tuple[float, ...] = ()
    """Weights per class for ``class_weighting: fixed`` (e.g. [1, 2]: weight 2 on cells)."""
    border_weights: Literal["auto"] | Bool = "auto"
    """Multiply the pixel losses by the U-Net border weight map (w0, sigma), class-balanced
    unless ``class_weighting`` is set; ``auto``: on for instance masks (the 3-class target),
    off otherwise (chosen by measurement across datasets: docs/instances.md)."""
    w0: NonNegative = 10.0
    """Amplitude of the border weight term."""
    sigma: Positive = 5.0
    """Width (pixels) of the border weight term."""
    regression_weight: NonNegative = 10.0
    """Weight of the mean squared error of the regressed maps (``data.target=distance``: cell
    and neighbour distance) added to the classification loss."""
    keep_probability: float = Field(1.0, gt=0.0, le=1.0)
    """Random loss mask for full-image training (``sum M(x) l(x)``, M a random 0/1 mask):
    each pixel enters the training loss with this probability, drawn anew for every batch, so
    whole images give a stochastic loss like random patches do; 1 = every pixel (no mask).
    Validation losses use every pixel."""
    params: dict[str, Bool | float | str] = Field(default_factory=dict)
    """Extra keyword arguments of the loss (e.g. {alpha: 0.3, beta: 0.7} for Tversky;
    {normalize: pixels} for ``ce`` divides the weighted sum by the pixel count instead of the
    weights' sum; {squared: true, pool_classes: true} for ``dice``: squares in the denominator,
    one ratio over all classes)."""

    @model_validator(mode="after")
    def _weights_given(self) -> LossConfig:
        if self.class_weighting == "fixed" and not self.class_weights:
            raise ValueError("loss.class_weighting=fixed needs loss.class_weights, e.g. [1, 2]")
        return self


DEFAULT_EPOCHS = 100
"""Epochs of a run without ``train.epochs`` and without a time budget."""


class TrainConfig(Section):
    """Optimisation, schedule, patches, budget and reproducibility."""

    SECTION = "train"

    epochs: Int | None = Field(None, ge=1)
    """Maximum number of epochs; null: as many as ``time_budget_minutes`` allows (the schedule
    follows the clock), or 100 without a budget."""
    batch_size: Int = Field(8, ge=1)
    """Patches per optimiser step."""
    patch_size: Size = (256, 256)
    """Training patch size (Y, X)."""
    patches_per_epoch: Annotated[Int, Field(ge=1)] | Literal["pass"] = 128
    """Random patches drawn per epoch (an epoch is this many samples), or ``pass``: an epoch is
    one pass over the training images. Each image is cut into the fewest ``patch_size`` tiles
    that cover it (one tile when the patch is the whole image; the last tile of a row or column
    ends at the image border), and every tile of every training image is used once per epoch, in
    an order shuffled anew each epoch (``foreground_probability`` is unused then)."""
    foreground_probability: Probability = 0.5
    """Chance that a patch is centred on a random foreground pixel (random patches only)."""
    optimizer: Optimizer = "adam"
    """``sgd`` (with ``momentum``), ``adam`` or ``adamw``."""
    lr: Positive = 1e-3
    """Base learning rate."""
    momentum: NonNegative = 0.9
    """SGD momentum."""
    weight_decay: NonNegative = 0.0
    """L2 penalty (decoupled for AdamW)."""
    ema_decay: float = Field(0.0, ge=0.0, lt=1.0)
    """Exponential moving average of the weights, updated after every step with this decay
    (warmed up over the first steps; 0.99 averages about the last 100 steps); validation, the
    best checkpoint and prediction then use the average. 0 = off."""
    schedule: Schedule = "cosine"
    """``none``, ``exponential`` (lr * decay_rate ** (epoch / decay_epochs)), ``piecewise``
    (a table via ``milestones``/``milestone_factors``, or ``gamma`` per milestone),
    ``cosine`` (to 1% of lr over the epochs or the time budget, whichever ends first) or
    ``plateau`` (times ``gamma`` after ``plateau_patience`` epochs without improvement)."""
    decay_rate: Positive = 0.95
    """Factor of the exponential schedule per ``decay_epochs``."""
    decay_epochs: Positive = 1.0
    """Epochs per ``decay_rate`` step of the exponential schedule."""
    milestones: tuple[int, ...] = ()
    """Epochs at which the piecewise schedule steps (increasing)."""
    milestone_factors: tuple[float, ...] = ()
    """Learning-rate factor after each milestone (one per milestone)."""
    milestone_fractions: tuple[float, ...] = ()
    """Milestones as fractions of the run instead of epochs (increasing, in (0, 1)): the step
    comes at epoch ``round(fraction * epochs)`` (or at that fraction of the time budget), so it
    moves with the epoch count (e.g. [0.667]: after 20 of 30 epochs, 93 of 140)."""
    gamma: Positive = 0.1
    """Step factor of the piecewise (without factors) and plateau schedules."""
    plateau_patience: Int = Field(5, ge=1)
    """Epochs without improvement before the plateau schedule reduces the rate."""
    warmup_epochs: Int = Field(0, ge=0)
    """Linear warm-up epochs (multiplies every schedule)."""
    early_stopping_patience: Int | None = Field(None, ge=1)
    """Stop after this many epochs without improvement of ``monitor`` (null: never)."""
    val_every: Int = Field(1, ge=1)
    """Validate every this many epochs (and after the last one)."""
    monitor: Monitor = "auto"
    """Validation value that selects the best checkpoint and drives early stopping; ``auto``:
    ``val_seg_ap`` (mean of SEG and AP@0.5 of the instances) for instance tasks, ``val_dice``
    otherwise. ``val_f1``, ``val_error_rate``, ``val_white_pixel_accuracy`` and
    ``val_false_white`` are cell measures averaged over the validation images (binary and
    instance tasks; see ``lapseg.metrics.pixel.stemnet_measures``)."""
    seed: Int = 0
    """Seed of the split, the patches, augmentation and initialisation."""
    deterministic: Bool = False
    """Same seed + same machine -> same weights (slower; deterministic kernels)."""
    device: str = "auto"
    """``auto`` (CUDA, then MPS, then CPU), ``cpu``, ``cuda``, ``cuda:1``, ``mps``."""
    amp: Bool = True
    """Mixed precision where the device computes it natively: float16 on CUDA, bfloat16 on CPUs
    with AVX512-BF16/AMX (about 2x faster training); false = float32 everywhere."""
    num_workers: Int = Field(0, ge=0)
    """DataLoader worker processes."""
    sample_cache_mib: Int = Field(1024, ge=0)
    """Memory (MiB) for prepared training samples (padded image, target, weight map) kept
    between patches, least recently used dropped first. A long movie's training touches more
    distinct frames, so memory grows with it up to this bound; lower it on small machines
    (each patch then re-reads and re-prepares its frame more often)."""
    time_budget_minutes: Positive | None = None
    """Wall-clock budget of the whole ``lapseg train`` run (reading data, training, tuning the
    post-processing): training stops early enough to finish within it."""
    tensorboard: Bool = True
    """Write TensorBoard events when the package is installed."""

    @field_validator("milestones")
    @classmethod
    def _increasing(cls, milestones: tuple[int, ...]) -> tuple[int, ...]:
        if list(milestones) != sorted(milestones):
            raise ValueError("must be increasing epoch numbers")
        return milestones

    @field_validator("milestone_fractions")
    @classmethod
    def _fractions(cls, fractions: tuple[float, ...]) -> tuple[float, ...]:
        if list(fractions) != sorted(fractions) or not all(0 < f < 1 for f in fractions):
            raise ValueError("must be increasing fractions of the run, each in (0, 1)")
        return fractions

    def monitor_for(self, task: str) -> str:
        """The monitored history column for ``task`` (resolving ``auto``)."""
        if self.monitor != "auto":
            return self.monitor
        return "val_seg_ap" if task == "instances" else "val_dice"

    @property
    def max_epochs(self) -> int | None:
        """The epoch limit: ``epochs``, unlimited (None) with a budget, else 100."""
        if self.epochs is not None:
            return self.epochs
        return None if self.time_budget_minutes is not None else DEFAULT_EPOCHS

    @model_validator(mode="after")
    def _consistent(self) -> TrainConfig:
        if self.milestones and self.milestone_fractions:
            raise ValueError("give train.milestones or train.milestone_fractions, not both")
        steps = self.milestones or self.milestone_fractions
        if self.milestone_factors and len(self.milestone_factors) != len(steps):
            raise ValueError("train.milestone_factors needs one factor per milestone")
        return self
