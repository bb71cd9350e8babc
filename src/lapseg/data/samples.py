"""From files to prepared samples: reading an image and its mask, normalisation, targets and
weight maps, once per image.

:func:`prepare_sample` turns a raw image/mask pair into a :class:`Sample` (the network's input
and everything the loss needs); :class:`RunData` holds a run's training and validation samples
with the normalisation fitted on the training split. Random patches are drawn from the samples
by :class:`lapseg.data.dataset.PatchDataset`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from collections.abc import Sequence as SequenceABC
from dataclasses import dataclass
from typing import overload

import numpy as np

from lapseg.config import INSTANCE_TARGETS, DataConfig, LapsegConfig
from lapseg.data.channels import select_channels
from lapseg.data.geometry import center_crop_or_pad, resize_to
from lapseg.data.masks import mask_to_target
from lapseg.data.normalization import NormalizationStats, apply_normalization
from lapseg.data.targets import distance_maps, three_class_target, three_class_weight_map
from lapseg.data.tasks import TaskDecision
from lapseg.data.weightmap import border_weight_map
from lapseg.errors import LapsegInputError
from lapseg.io.discovery import SamplePaths
from lapseg.io.images import read_image, read_mask
from lapseg.io.labels import to_instances

__all__ = [
    "LazySamples",
    "RunData",
    "Sample",
    "border_weights",
    "prepare_sample",
    "read_raw_sample",
    "reshape_for_network",
    "spread",
]


@dataclass(frozen=True)
class Sample:
    """One prepared training/validation image.

    image : (C, Y, X) float32, normalised.
    target : (Y, X) int64 class indices.
    instances : (Y, X) int32 instance labels or None (for the border weight map).
    weights : (Y, X) float32 pixel weights or None.
    maps : (M, Y, X) float32 regression targets or None (``data.target=distance``: the cell
        and neighbour distance, :func:`lapseg.data.targets.distance_maps`).
    """

    name: str
    image: np.ndarray
    target: np.ndarray
    instances: np.ndarray | None = None
    weights: np.ndarray | None = None
    maps: np.ndarray | None = None


def reshape_for_network(image: np.ndarray, data: DataConfig, *, order: int) -> np.ndarray:
    """Apply the configured fixed-size resize or crop/pad to a (C, Y, X) or (Y, X) array."""
    if data.resize is not None:
        return resize_to(image, data.resize, order=order)
    if data.crop_or_pad is not None:
        mode = "reflect" if order > 0 else "constant"
        return center_crop_or_pad(image, data.crop_or_pad, mode=mode)[0]
    return image


def read_raw_sample(paths: SamplePaths, config: LapsegConfig) -> tuple[np.ndarray, np.ndarray]:
    """Read one image ``(C, Y, X)`` and its mask ``(Y, X)``, checking that they match."""
    if paths.mask is None:
        raise LapsegInputError("image has no mask", path=paths.image)
    image = read_image(paths.image, axes=config.data.axes).array
    image = select_channels(image, config.data.channels, path=paths.image)
    mask = read_mask(paths.mask)
    if image.shape[-2:] != mask.shape:
        raise LapsegInputError(
            f"mask shape {mask.shape} differs from image shape {image.shape[-2:]} ({paths.image})",
            path=paths.mask,
        )
    return image, mask


def prepare_sample(
    paths: SamplePaths,
    image: np.ndarray,
    mask: np.ndarray,
    *,
    config: LapsegConfig,
    stats: NormalizationStats,
) -> Sample:
    """Normalise, reshape and convert a raw image/mask pair into a :class:`Sample`."""
    if image.shape[0] != config.model.in_channels:
        raise LapsegInputError(
            f"image has {image.shape[0]} channel(s) but model.in_channels="
            f"{config.model.in_channels} (the first image's); pick the same channels of every "
            "image with data.channels",
            path=paths.image,
        )
    data = config.data
    normalised = apply_normalization(image, stats)
    normalised = reshape_for_network(normalised, data, order=1).astype(np.float32)
    instances = None
    border = config.loss.border_weights is True  # "auto" is resolved with the task
    if data.task == "instances" or data.target in INSTANCE_TARGETS or border:
        if data.mask_kind == "classes":
            raise LapsegInputError(
                "loss.border_weights needs binary or instance masks, not class-index masks"
            )
        # reshape before deriving targets, so widths are in network pixels
        instances = reshape_for_network(to_instances(mask), data, order=0).astype(np.int32)
    maps = None
    if instances is not None and data.target == "three_class":
        target = three_class_target(instances, boundary_width=data.boundary_width)
    elif instances is not None and data.target == "distance":
        target = (instances > 0).astype(np.int64)
        maps = distance_maps(instances)
    else:
        num_classes = max(config.model.outputs, 2)
        target = mask_to_target(mask, kind=data.mask_kind, num_classes=num_classes)
        target = reshape_for_network(target, data, order=0)
    weights = None
    if border:
        if instances is None:  # kept above whenever border weights are on
            raise ValueError("border weights need instance labels")
        weights = border_weights(instances, config)
    return Sample(
        name=paths.name,
        image=normalised,
        target=target.astype(np.int64),
        instances=instances,
        weights=weights,
        maps=maps,
    )


def border_weights(instances: np.ndarray, config: LapsegConfig) -> np.ndarray:
    """The U-Net border weight map of one mask (``loss.w0``, ``loss.sigma``), class-balanced
    unless the loss weighs the classes itself.

    For the 3-class target the pixels between touching cells are "boundary", not background:
    they are weighed by the distances to the two nearest cell interiors.
    """
    loss = config.loss
    balance = "balanced" if loss.class_weighting == "none" else None
    if config.data.target == "three_class":
        return three_class_weight_map(
            instances,
            boundary_width=config.data.boundary_width,
            w0=loss.w0,
            sigma=loss.sigma,
            class_weights=balance,
        )
    return border_weight_map(instances, w0=loss.w0, sigma=loss.sigma, class_weights=balance)


class LazySamples(SequenceABC[Sample]):
    """Samples built on demand by ``build(name)`` (frames of long movies are never all loaded).

    Indexing builds the sample each time; :class:`PatchDataset` keeps its own bounded cache.
    """

    def __init__(self, names: Sequence[str], build: Callable[[str], Sample]) -> None:
        self.names = list(names)
        self._build = build

    def __len__(self) -> int:
        return len(self.names)

    @overload
    def __getitem__(self, index: int) -> Sample: ...

    @overload
    def __getitem__(self, index: slice) -> list[Sample]: ...

    def __getitem__(self, index: int | slice) -> Sample | list[Sample]:
        if isinstance(index, slice):
            return [self._build(name) for name in self.names[index]]
        return self._build(self.names[index])


def spread(samples: Sequence[Sample], n: int) -> list[Sample]:
    """At most ``n`` samples evenly spread over ``samples`` (all of them if there are fewer)."""
    if len(samples) <= n:
        return list(samples)
    return [samples[round(i * (len(samples) - 1) / (n - 1))] for i in range(n)]


@dataclass(frozen=True)
class RunData:
    """Prepared samples of a run, its split, the normalisation fitted on its training split, and
    the run's configuration with its task resolved from the masks (and how)."""

    train: Sequence[Sample]
    val: Sequence[Sample]
    split: dict[str, list[str]]
    stats: NormalizationStats
    config: LapsegConfig
    task: TaskDecision
