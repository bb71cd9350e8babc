"""Train a model from an image layer and a labels layer (no Qt here).

The layers are written as a dataset that ``lapseg train`` reads (:func:`write_training_data`),
so the run is an ordinary lapseg run, reproducible from the command line with
``lapseg train --data OUT/data`` and the same settings:

- a single-channel movie (``TYX``) with its label stack: the ``sequences`` layout
  (``data/NAME.tif`` + ``data/masks/NAME.tif``); frames whose labels are all zero are
  unannotated and serve as temporal context, split into time blocks without leaks;
- a single image, a z-stack or a multi-channel movie: the ``folders`` layout, one image and one
  mask per frame (``data/images/``, ``data/masks/``); all-zero masks are unannotated.

:func:`train_model` runs :func:`lapseg.training.trainer.fit` with the widget's settings and an
``on_epoch_end`` hook that reports each epoch's history row and stops the run when the user
cancels: the hook raises :class:`~lapseg.napari.segment.Cancelled` (a ``KeyboardInterrupt``), so
``fit`` saves ``last.pt`` as on Ctrl-C, and ``best.pt`` of the best epoch so far is kept.
"""

from __future__ import annotations

import shlex
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lapseg.config import LapsegConfig, load_config
from lapseg.data.timelapse import time_block_split
from lapseg.errors import LapsegInputError
from lapseg.io.images import write_tiff
from lapseg.napari.layers import Frames, annotated_frames, safe_name
from lapseg.napari.segment import Cancelled, StopCheck
from lapseg.training.trainer import fit

__all__ = [
    "TrainOutcome",
    "TrainingData",
    "output_folders",
    "parse_settings",
    "train_model",
    "training_config",
    "training_progress",
    "write_training_data",
]

EpochCallback = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class TrainingData:
    """A dataset written from layers.

    Attributes
    ----------
    root : Path
        The folder ``lapseg train --data`` reads.
    overrides : tuple of str
        The ``data.*`` settings that read it (``data.layout=...``).
    annotated : tuple of int
        Frames whose labels hold objects.
    n_frames : int
        All frames (annotated or not).
    """

    root: Path
    overrides: tuple[str, ...]
    annotated: tuple[int, ...]
    n_frames: int


def _label_dtype(labels: np.ndarray) -> type:
    return np.uint16 if int(labels.max(initial=0)) <= np.iinfo(np.uint16).max else np.uint32


def write_training_data(
    frames: Frames, labels: np.ndarray, folder: Path, *, name: str = "layer"
) -> TrainingData:
    """Write ``frames`` and their ``(N, Y, X)`` ``labels`` as a dataset at ``folder``.

    Raises
    ------
    LapsegInputError
        No frame is annotated, or the labels do not match the frames.
    """
    labels = np.asarray(labels)
    if labels.shape != (frames.n_frames, *frames.array.shape[2:]):
        raise LapsegInputError(
            f"labels of shape {labels.shape} do not match {frames.n_frames} frame(s) of "
            f"{frames.array.shape[2:]} pixels"
        )
    annotated = annotated_frames(labels)
    if not annotated:
        raise LapsegInputError("the labels layer is empty: paint some cells first")
    stem = safe_name(name)
    masks: np.ndarray = labels.astype(_label_dtype(labels))
    if frames.axis == "T" and frames.n_frames > 1 and frames.n_channels == 1:
        write_tiff(folder / f"{stem}.tif", frames.array[:, 0], axes="TYX")
        write_tiff(folder / "masks" / f"{stem}.tif", masks, axes="TYX")
        overrides: tuple[str, ...] = ("data.layout=sequences", "data.axes=TYX")
    else:
        width = max(3, len(str(frames.n_frames - 1)))
        prefix = (frames.axis or "").lower()
        for i in range(frames.n_frames):
            sample = stem if frames.n_frames == 1 else f"{stem}_{prefix}{i:0{width}d}"
            write_tiff(folder / "images" / f"{sample}.tif", frames.array[i], axes="CYX")
            write_tiff(folder / "masks" / f"{sample}.tif", masks[i], axes="YX")
        overrides = ("data.layout=folders",)
    return TrainingData(folder, overrides, tuple(annotated), frames.n_frames)


def _next_free(folder: Path, stem: str) -> Path:
    """``folder/stem``, or ``stem-2``, ``stem-3``, ... when taken."""
    candidate, n = folder / stem, 1
    while candidate.exists():
        n += 1
        candidate = folder / f"{stem}-{n}"
    return candidate


def output_folders(folder: str | Path | None) -> tuple[Path, Path]:
    """Where the dataset and the run go: ``folder/data`` and ``folder/run`` (``data-2``,
    ``run-2``, ... when taken); without ``folder``, a new temporary folder."""
    base = Path(tempfile.mkdtemp(prefix="lapseg-napari-")) if folder is None else Path(folder)
    return _next_free(base, "data"), _next_free(base, "run")


def parse_settings(text: str) -> list[str]:
    """The widget's *Settings* field as dotted overrides (``lapseg train --set`` syntax).

    >>> parse_settings("model.base_features=16  train.patch_size=[128,128]")
    ['model.base_features=16', 'train.patch_size=[128,128]']
    """
    try:
        items = shlex.split(text)
    except ValueError as error:
        raise LapsegInputError(f"settings: {error}") from None
    for item in items:
        key, sep, _ = item.partition("=")
        if not sep or not key:
            raise LapsegInputError(
                f"settings: {item!r} is not key=value (e.g. model.base_features=16)"
            )
    return items


def training_config(
    data: TrainingData, *, minutes: float | None, settings: Sequence[str] = ()
) -> tuple[LapsegConfig, list[str]]:
    """The run's configuration and notes for the user: the dataset's ``data.*`` settings, the
    time budget, then the user's settings (which win).

    A movie whose few annotated frames cannot be cut into leak-free time blocks
    (:func:`lapseg.data.timelapse.time_block_split`, ``temporal.gap`` frames apart) trains
    without a validation split, and a note says so, unless the settings name
    ``data.val_fraction`` or ``data.test_fraction`` (then ``lapseg train``'s error stands).
    """
    budget = [f"train.time_budget_minutes={minutes}"] if minutes else []
    config = load_config(None, [*data.overrides, *budget, *settings])
    chosen = {item.partition("=")[0] for item in settings}
    if config.data.layout != "sequences" or chosen & {"data.val_fraction", "data.test_fraction"}:
        return config, []
    try:
        time_block_split(
            data.annotated,
            val_fraction=config.data.val_fraction,
            test_fraction=config.data.test_fraction,
            gap=config.temporal.gap,
        )
    except LapsegInputError:
        no_split = ["data.val_fraction=0", "data.test_fraction=0"]
        config = load_config(None, [*data.overrides, *budget, *no_split, *settings])
        return config, [
            f"{len(data.annotated)} annotated frame(s) are too few for a validation block "
            f"{config.temporal.gap} frames away from the training frames: training without "
            "validation (the post-processing keeps its defaults); annotate frames further apart "
            "for a validated run"
        ]
    return config, []


def training_progress(config: LapsegConfig, epochs_done: int, seconds: float) -> float:
    """The fraction ``[0, 1]`` of the run done: epochs of ``train.epochs``, or time of the
    budget, whichever is further.

    >>> training_progress(load_config(None, ["train.epochs=4"]), 1, 3.0)
    0.25
    """
    train = config.train
    parts = [0.0]
    if train.max_epochs:
        parts.append(epochs_done / train.max_epochs)
    if train.time_budget_minutes:
        parts.append(seconds / (60.0 * train.time_budget_minutes))
    return min(1.0, max(parts))


@dataclass(frozen=True)
class TrainOutcome:
    """A finished or cancelled run."""

    run_dir: Path
    history: list[dict[str, Any]] = field(default_factory=list)
    stopped_because: str = ""
    cancelled: bool = False

    @property
    def checkpoint(self) -> Path | None:
        """``best.pt``, or None when the run was cancelled before its first epoch ended."""
        best = self.run_dir / "best.pt"
        return best if best.is_file() else None


def train_model(
    config: LapsegConfig,
    data: TrainingData,
    run_dir: Path,
    *,
    on_epoch: EpochCallback | None = None,
    should_stop: StopCheck | None = None,
) -> TrainOutcome:
    """:func:`lapseg.training.trainer.fit` on ``data`` into ``run_dir``, reporting epochs.

    ``on_epoch(row)`` gets each epoch's history row; when ``should_stop()`` is true after an
    epoch the run stops there (``last.pt`` saved, ``best.pt`` kept, the post-processing not
    tuned) and the outcome says ``cancelled``.
    """
    history: list[dict[str, Any]] = []

    def hook(row: dict[str, Any]) -> None:
        history.append(dict(row))
        if on_epoch is not None:
            on_epoch(dict(row))
        if should_stop is not None and should_stop():
            raise Cancelled

    try:
        result = fit(config, data.root, run_dir, progress=False, on_epoch_end=hook)
    except Cancelled:
        return TrainOutcome(run_dir, history, "cancelled", cancelled=True)
    return TrainOutcome(run_dir, list(result.history), result.stopped_because)
