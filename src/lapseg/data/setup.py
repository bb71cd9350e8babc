"""A run's data: discover samples, split them, fit normalisation on the training split, prepare.

``prepare_run_data`` is the one place where a dataset on disk becomes in-memory training and
validation :class:`~lapseg.data.dataset.Sample` objects; the layout (``data.layout``) selects the
discovery. Normalisation statistics are computed from the training split only.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lapseg.config import LapsegConfig
from lapseg.data.dataset import RunData, Sample, prepare_sample, read_raw_sample, spread
from lapseg.data.normalization import fit_normalization
from lapseg.data.sources import DatasetSources, dataset_masks, discover_dataset
from lapseg.data.split import read_split, split_random, validate_split
from lapseg.data.tasks import TaskDecision, resolve_task, survey_masks
from lapseg.data.timelapse import prepare_sequence_run_data
from lapseg.losses.class_weights import (
    class_pixel_counts,
    inverse_frequency_weights,
    median_frequency_weights,
    total_ratio_weights,
)

log = logging.getLogger(__name__)

_SURVEYED_MASKS = 16
"""Masks (spread over the dataset) looked at to decide the task."""


def make_split(names: Sequence[str], config: LapsegConfig) -> dict[str, list[str]]:
    """Random split with the run's seed, or the user's split file."""
    if config.data.split_file is not None:
        return validate_split(read_split(config.data.split_file), names)
    return split_random(
        names,
        val_fraction=config.data.val_fraction,
        test_fraction=config.data.test_fraction,
        rng=config.train.seed,
    )


STATISTICS_SAMPLES = 64
"""Training samples (spread over the data) that class weights and object sizes are taken from."""


def compute_class_weights(samples: Sequence[Sample], config: LapsegConfig) -> list[float] | None:
    """Class weights of the loss from (up to :data:`STATISTICS_SAMPLES` of) the training masks,
    or as given."""
    method = config.loss.class_weighting
    if method == "none":
        return None
    if method == "fixed":
        return [float(w) for w in config.loss.class_weights]
    counts = class_pixel_counts(
        (s.target for s in spread(samples, STATISTICS_SAMPLES)),
        num_classes=max(config.model.outputs, 2),
    )
    functions = {
        "median_frequency": median_frequency_weights,
        "inverse_frequency": inverse_frequency_weights,
        "total_ratio": total_ratio_weights,
    }
    return [float(w) for w in functions[method](counts)]


def prepare_still_images(
    config: LapsegConfig,
    sources: DatasetSources,
    *,
    task: TaskDecision,
    split: dict[str, list[str]] | None = None,
) -> RunData:
    """Still-image layouts: read the train/val images once, normalise, build samples."""
    samples = sources.samples
    names = [s.name for s in samples]
    split = validate_split(split, names) if split is not None else make_split(names, config)
    by_name = {s.name: s for s in samples}
    needed = [*split["train"], *split["val"]]
    raw = {name: read_raw_sample(by_name[name], config) for name in needed}
    norm = config.normalization
    stats = fit_normalization(
        (raw[n][0] for n in split["train"]),
        mode=norm.mode,
        low=norm.low_percentile,
        high=norm.high_percentile,
    )

    def prepared(subset: str) -> list[Sample]:
        return [
            prepare_sample(by_name[n], *raw[n], config=config, stats=stats) for n in split[subset]
        ]

    return RunData(
        train=prepared("train"),
        val=prepared("val"),
        split=split,
        stats=stats,
        config=config,
        task=task,
    )


def resolve_run_config(
    config: LapsegConfig, data_root: str | Path
) -> tuple[LapsegConfig, DatasetSources, TaskDecision]:
    """The configuration with its layout and task decided from the dataset (and the dataset's
    annotated samples or sequences); every decision is logged."""
    config, sources = discover_dataset(config, data_root)
    automatic = config.data.task == "auto" and config.data.mask_kind == "auto"
    survey = survey_masks(dataset_masks(sources, _SURVEYED_MASKS)) if automatic else None
    config, task = resolve_task(config, survey)
    for note in sources.notes:
        log.info(note)
    log.info(task.summary())
    return config, sources, task


def prepare_run_data(
    config: LapsegConfig,
    data_root: str | Path,
    *,
    split: dict[str, list[str]] | None = None,
    cache_dir: str | Path | None = None,
) -> RunData:
    """Resolve layout and task, discover, split (or reuse ``split`` when resuming), normalise
    and prepare a run's data (:class:`RunData` holds the resolved configuration).

    ``cache_dir`` keeps per-sequence temporal-median backgrounds of time-lapse data.
    """
    config, sources, task = resolve_run_config(config, data_root)
    if sources.is_timelapse:
        data = prepare_sequence_run_data(
            config, sources.sequences, task=task, split=split, cache_dir=cache_dir
        )
    else:
        data = prepare_still_images(config, sources, task=task, split=split)
    return data


def median_object_area(samples: Sequence[Sample]) -> float | None:
    """Median area (pixels) of the objects in (up to :data:`STATISTICS_SAMPLES` of) the training
    masks: instance labels when known, else connected components of the foreground. Stored with
    the model so post-processing can scale its size limits to the objects (None when the masks
    hold no object)."""
    from skimage.measure import label

    areas = []
    for sample in spread(samples, STATISTICS_SAMPLES):
        labels = sample.instances if sample.instances is not None else label(sample.target > 0)
        counts = np.bincount(labels.ravel())[1:]
        areas.append(counts[counts > 0])
    all_areas = np.concatenate(areas) if areas else np.zeros(0)
    return float(np.median(all_areas)) if all_areas.size else None
