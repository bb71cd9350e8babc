"""What a training dataset holds on disk: its layout, its samples or sequences, and which of
them are annotated — decided once per run and said in the run's log.

:func:`discover_dataset` resolves ``data.layout: auto`` (:func:`lapseg.io.layouts.detect_layout`),
finds the still-image samples or the time-lapse sequences, and applies the annotation rule:
all-zero masks are unannotated unless ``data.empty_masks`` is ``empty`` (for movies: also
``data.annotated_frames``). :func:`dataset_masks` gives a spread of the annotated masks (for the
task survey).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np

from lapseg.config import LapsegConfig
from lapseg.data.timelapse import annotated_sequences
from lapseg.errors import LapsegInputError
from lapseg.io.discovery import (
    SamplePaths,
    discover_folder_pairs,
    discover_sample_folders,
)
from lapseg.io.images import read_mask
from lapseg.io.layouts import detect_layout
from lapseg.io.sample_lists import read_sample_list
from lapseg.io.sequences import (
    SEQUENCE_LAYOUTS,
    SequenceSource,
    discover_sequences,
    read_frame_mask,
)

__all__ = ["DatasetSources", "dataset_masks", "discover_dataset", "discover_samples"]

T = TypeVar("T")


@dataclass(frozen=True)
class DatasetSources:
    """The annotated samples (still layouts) or sequences (time-lapse layouts) of a dataset."""

    layout: str
    samples: list[SamplePaths] = field(default_factory=list)
    sequences: list[SequenceSource] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def is_timelapse(self) -> bool:
        """Sequences (frames with temporal neighbours) rather than still images."""
        return self.layout in SEQUENCE_LAYOUTS


def discover_samples(data_root: str | Path, config: LapsegConfig) -> list[SamplePaths]:
    """Every image/mask pair of a still-image dataset, by ``data.layout`` (not ``auto``)."""
    data = config.data
    if data.layout == "folders":
        return discover_folder_pairs(
            data_root,
            images_subdir=data.images_subdir,
            masks_subdir=data.masks_subdir,
            mask_suffix=data.mask_suffix,
        )
    if data.layout == "sample-folders":
        return discover_sample_folders(
            data_root, image_name=data.image_name, mask_name=data.mask_name
        )
    if data.layout == "list":
        return read_sample_list(data_root)
    raise ValueError(f"data.layout={data.layout!r} is not a still-image layout")


def _annotated_samples(
    samples: list[SamplePaths], config: LapsegConfig
) -> tuple[list[SamplePaths], str]:
    """The samples with a mask that counts as annotation, and a line for the log."""
    with_masks = [s for s in samples if s.mask is not None]
    if config.data.empty_masks == "empty":
        kept = with_masks
        why = "all-zero masks count as images without objects"
    else:
        kept = [s for s in with_masks if s.mask is not None and read_mask(s.mask).any()]
        empty = len(with_masks) - len(kept)
        why = (
            f"{empty} all-zero mask(s) treated as unannotated (data.empty_masks=empty trains on "
            "them as images without objects)"
            if empty
            else "every mask has objects"
        )
    if not kept:
        raise LapsegInputError("no annotated image: every mask is missing or all zero")
    return kept, f"{len(kept)} of {len(samples)} image(s) annotated ({why})"


def discover_dataset(
    config: LapsegConfig, data_root: str | Path
) -> tuple[LapsegConfig, DatasetSources]:
    """Resolve the layout and find the annotated samples or sequences of ``data_root``."""
    data = config.data
    notes: list[str] = []
    if data.layout == "auto":
        layout, reason = detect_layout(
            data_root, axes=data.axes, image_name=data.image_name, mask_name=data.mask_name
        )
        config = config.replace(data=data.replace(layout=layout))
        notes.append(f"data layout {layout}: {reason}")
    layout = config.data.layout
    if layout in SEQUENCE_LAYOUTS:
        sequences = discover_sequences(
            data_root, layout=layout, axes=data.axes, truth=config.temporal.truth
        )
        sequences, report = annotated_sequences(sequences, config.data)
        if not any(s.annotated for s in sequences):
            raise LapsegInputError(
                "no annotated frame in any sequence (all masks missing or all zero)",
                path=data_root,
            )
        return config, DatasetSources(layout, sequences=sequences, notes=[*notes, *report])
    samples, line = _annotated_samples(discover_samples(data_root, config), config)
    return config, DatasetSources(layout, samples=samples, notes=[*notes, line])


def _spread(items: Sequence[T], n: int) -> list[T]:
    """At most ``n`` items evenly spread over ``items`` (first and last included)."""
    if len(items) <= n:
        return list(items)
    return [items[round(i * (len(items) - 1) / (n - 1))] for i in range(n)]


def dataset_masks(sources: DatasetSources, n: int = 16) -> Iterator[np.ndarray]:
    """Up to ``n`` annotated masks spread over the dataset."""
    if sources.is_timelapse:
        frames = [(s, t) for s in sources.sequences for t in s.annotated]
        for source, t in _spread(frames, n):
            yield read_frame_mask(source, t)
        return
    for sample in _spread(sources.samples, n):
        if sample.mask is not None:
            yield read_mask(sample.mask)
