"""A run's data: discover samples, split them, fit normalisation on the training split, prepare.

``prepare_run_data`` is the one place where a dataset on disk becomes in-memory training and
validation :class:`~lapseg.data.samples.Sample` objects; the layout (``data.layout``) selects the
discovery. Normalisation statistics are computed from the training split only.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lapseg.config import LapsegConfig
from lapseg.data.channels import channel_count
from lapseg.data.checks import check_training_pair
from lapseg.data.normalization import fit_normalization
from lapseg.data.samples import RunData, Sample, prepare_sample, read_raw_sample, spread
from lapseg.data.sources import DatasetSources, dataset_masks, discover_dataset
from lapseg.data.split import read_split, split_random, validate_split
from lapseg.data.targets import REGRESSION_CHANNELS
from lapseg.data.tasks import TaskDecision, resolve_task, survey_masks
from lapseg.data.timelapse import prepare_sequence_run_data
from lapseg.io.images import read_image
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
        num_classes=max(config.model.outputs - REGRESSION_CHANNELS.get(config.data.target, 0), 2),
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
    detected: bool = False,
) -> RunData:
    """Still-image layouts: read the train/val images once, check them
    (:func:`~lapseg.data.checks.check_training_pair`; ``detected``: the mask kind was detected,
    not configured), normalise, build samples."""
    samples = sources.samples
    names = [s.name for s in samples]
    split = validate_split(split, names) if split is not None else make_split(names, config)
    by_name = {s.name: s for s in samples}
    needed = [*split["train"], *split["val"]]
    raw = {name: read_raw_sample(by_name[name], config) for name in needed}
    for name in needed:
        check_training_pair(
            by_name[name],
            *raw[name],
            kind=config.data.mask_kind,
            num_classes=max(config.model.outputs, 2),
            detected=detected,
        )
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
    border_rule = config.postprocess.remove_border == "auto" and config.data.task in (
        "auto",
        "instances",
    )  # the survey also reads whether border objects are annotated
    surveyed = automatic or border_rule
    survey = survey_masks(dataset_masks(sources, _SURVEYED_MASKS)) if surveyed else None
    config, task = resolve_task(config, survey)
    for note in sources.notes:
        log.info(note)
    log.info(task.summary())
    if not sources.is_timelapse and sources.samples:
        config = resolve_image_settings(config, sources.samples[0].image)
    if sources.is_timelapse and sources.sequences and config.temporal.background == "median":
        fewest = min(source.n_frames for source in sources.sequences)
        config = config.replace(temporal=config.temporal.replace(median_frames=fewest))
    return config, sources, task


def resolve_image_settings(config: LapsegConfig, first_image: Path) -> LapsegConfig:
    """``model.in_channels`` from the channels the network will see, and ``data.pixel_size``
    from the first training image's metadata (unless set); both logged."""
    data = config.data
    image = read_image(first_image, axes=data.axes)
    channels = channel_count(image.array.shape[0], data.channels)
    if channels != config.model.in_channels:
        log.info(
            "the images have %d channel(s)%s: model.in_channels=%d (was %d)",
            image.array.shape[0],
            "" if data.channels is None else f", data.channels={data.channels} keeps {channels}",
            channels,
            config.model.in_channels,
        )
        config = config.replace(model=config.model.replace(in_channels=channels))
    elif image.array.shape[0] > 1 and data.channels is None:
        log.info("the images have %d channels; the network sees all of them", channels)
    if data.pixel_size is None and image.pixel_size is not None:
        pixel_size = (float(image.pixel_size[0]), float(image.pixel_size[1]))
        log.info(
            "training pixel size %.4g x %.4g um (from %s); prediction rescales images of "
            "another pixel size to it",
            *pixel_size,
            first_image.name,
        )
        config = config.replace(data=data.replace(pixel_size=pixel_size))
    elif data.pixel_size is None:
        log.info(
            "the training images carry no pixel size: prediction uses images at their own scale "
            "(set data.pixel_size to enable rescaling)"
        )
    return config


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
    detected = config.data.task == "auto" and config.data.mask_kind == "auto"
    config, sources, task = resolve_run_config(config, data_root)
    if sources.is_timelapse:
        data = prepare_sequence_run_data(
            config, sources.sequences, task=task, split=split, cache_dir=cache_dir
        )
    else:
        data = prepare_still_images(config, sources, task=task, split=split, detected=detected)
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
