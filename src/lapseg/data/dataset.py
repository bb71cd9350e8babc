"""From files to training samples: loading, normalisation, targets, and random patches.

``load_samples`` reads and prepares whole images once (the datasets lapseg targets — tens to a few
hundred images — fit in memory; every patch then costs only a slice and a flip). ``PatchDataset``
draws random patches with foreground oversampling and paired augmentation; its randomness is a
pure function of ``(seed, epoch, index)``, so DataLoader workers and resumed runs draw the same
patches.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from collections.abc import Sequence as SequenceABC
from dataclasses import dataclass
from typing import Literal, overload

import numpy as np
import torch

from lapseg.config import INSTANCE_TARGETS, AugmentationConfig, DataConfig, LapsegConfig
from lapseg.data.channels import select_channels
from lapseg.data.geometry import center_crop_or_pad, pad_to_at_least, resize_to, sample_patch_origin
from lapseg.data.masks import mask_to_target
from lapseg.data.normalization import NormalizationStats, apply_normalization
from lapseg.data.targets import distance_maps, three_class_target, three_class_weight_map
from lapseg.data.tasks import TaskDecision
from lapseg.data.weightmap import border_weight_map
from lapseg.errors import LapsegInputError
from lapseg.io.discovery import SamplePaths
from lapseg.io.images import read_image, read_mask
from lapseg.io.labels import to_instances
from lapseg.transforms.pipeline import augment_sample_with_maps


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


DEFAULT_CACHE_BYTES = 1 << 30
"""Memory for prepared samples kept by :class:`PatchDataset` (least recently used dropped);
``train.sample_cache_mib`` sets it for a run."""


class PatchDataset(torch.utils.data.Dataset):
    """Training patches (random, or tiles of one pass over the images) with paired augmentation.

    Each item is a dict with ``image (C, h, w)`` float32, ``target (h', w')`` int64 and
    ``weights (h', w')`` float32 tensors (and ``maps (M, h', w')`` float32 when the samples have
    regression maps), where ``h' = h - 2 * output_margin`` (a 'valid' U-Net sees context around
    the patch it is scored on). Image, target, weights and maps are cut with the context,
    augmented together (one geometric transform for every channel — temporal frames included —
    and the target), then the target, weights and maps are cropped to the output.
    The patches of an epoch are a pure function of ``(seed, epoch, index)``; the curriculum
    ``stage`` selects which augmentations are active.

    ``patches_per_epoch`` random patches (foreground-oversampled), or ``"pass"``: every sample
    cut into the fewest output-sized tiles that cover it (:func:`tile_starts`), each tile once
    per epoch in an order shuffled by ``(seed, epoch)``. ``sample_shapes`` gives the ``(Y, X)``
    target shape of every sample when it is known without reading them (a fixed network grid);
    otherwise a pass reads each sample's shape once.

    ``samples`` may be a list or :class:`LazySamples`; prepared (padded) samples are cached up
    to ``cache_bytes``, so a dataset larger than memory streams from disk.
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        *,
        patch_size: tuple[int, int],
        patches_per_epoch: int | Literal["pass"],
        foreground_probability: float,
        augment: AugmentationConfig,
        seed: int,
        output_margin: int = 0,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        sample_shapes: Sequence[tuple[int, int]] | None = None,
    ) -> None:
        if not len(samples):
            raise LapsegInputError("no training samples")
        self.samples = samples
        self.patch_size = (int(patch_size[0]), int(patch_size[1]))
        self.patches_per_epoch = patches_per_epoch
        self.foreground_probability = foreground_probability
        self.augment = augment
        self.seed = seed
        self.epoch = 0
        self.stage = 0
        self.margin = output_margin
        out_size = (self.patch_size[0] - 2 * output_margin, self.patch_size[1] - 2 * output_margin)
        if min(out_size) < 1:
            raise LapsegInputError(
                f"train.patch_size {self.patch_size} is smaller than the model's context "
                f"(2 x {output_margin} px)"
            )
        self.output_size = out_size
        self.cache_bytes = cache_bytes
        self._cache: OrderedDict[int, _Padded] = OrderedDict()
        self._cached_bytes = 0
        self._shapes = None if sample_shapes is None else list(sample_shapes)
        self._tiles: list[tuple[int, int, int]] | None = None
        self._order: tuple[int, np.ndarray] | None = None

    def tiles(self) -> list[tuple[int, int, int]]:
        """``(sample, y0, x0)`` of the output-sized tiles covering every sample once (a pass)."""
        if self._tiles is None:
            shapes = self._shapes or [
                self.samples[i].target.shape for i in range(len(self.samples))
            ]
            if len(shapes) != len(self.samples):
                raise ValueError("sample_shapes needs one shape per sample")
            self._tiles = [
                (i, y0, x0)
                for i, (ny, nx) in enumerate(shapes)
                for y0 in tile_starts(int(ny), self.output_size[0])
                for x0 in tile_starts(int(nx), self.output_size[1])
            ]
        return self._tiles

    def _tile(self, index: int) -> tuple[int, int, int]:
        """The ``index``-th tile of this epoch's shuffled pass."""
        tiles = self.tiles()
        if self._order is None or self._order[0] != self.epoch:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(len(tiles))
            self._order = (self.epoch, order)
        return tiles[int(self._order[1][index])]

    def _with_context(self, array: np.ndarray) -> np.ndarray:
        m = self.margin
        if m:
            pad = ((0, 0),) * (array.ndim - 2) + ((m, m), (m, m))
            array = np.pad(array, pad, mode="reflect")
        return pad_to_at_least(array, self.patch_size, mode="reflect")[0]

    def _padded(self, which: int) -> _Padded:
        """Sample ``which`` padded once: the context margin around every array, and at least one
        patch in size. Patch origins are drawn on the unpadded-context target: output window
        (y0, x0) there is the context window (y0, x0) of the padded arrays."""
        if which in self._cache:
            self._cache.move_to_end(which)
            return self._cache[which]
        s = self.samples[which]
        padded = _Padded(
            image=self._with_context(s.image),
            target=self._with_context(_compact_classes(s.target)),
            weights=None if s.weights is None else self._with_context(s.weights),
            maps=None if s.maps is None else self._with_context(s.maps),
            origins=pad_to_at_least(s.target != 0, self.output_size, mode="reflect")[0],
        )
        self._cache[which] = padded
        self._cached_bytes += padded.nbytes
        while self._cached_bytes > self.cache_bytes and len(self._cache) > 1:
            _, dropped = self._cache.popitem(last=False)
            self._cached_bytes -= dropped.nbytes
        return padded

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch, which (with the seed) determines every patch drawn."""
        self.epoch = epoch

    def set_stage(self, stage: int) -> None:
        """Select the curriculum stage (which augmentations are active)."""
        self.stage = stage

    def __len__(self) -> int:
        if self.patches_per_epoch == "pass":
            return len(self.tiles())
        return self.patches_per_epoch

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, self.epoch, index])
        if self.patches_per_epoch == "pass":
            which, y0, x0 = self._tile(index)
            sample = self._padded(which)
        else:
            sample = self._padded(int(rng.integers(len(self.samples))))
            y0, x0 = sample_patch_origin(
                sample.origins,
                self.output_size,
                foreground_probability=self.foreground_probability,
                rng=rng,
            )
        window = (slice(y0, y0 + self.patch_size[0]), slice(x0, x0 + self.patch_size[1]))
        image_patch, target_patch, weight_patch, maps_patch = augment_sample_with_maps(
            sample.image[(slice(None), *window)],
            sample.target[window],
            None if sample.weights is None else sample.weights[window],
            None if sample.maps is None else sample.maps[(slice(None), *window)],
            self.augment,
            rng=rng,
            stage=self.stage,
        )
        m = self.margin
        if m:
            target_patch = target_patch[m:-m, m:-m]
            weight_patch = None if weight_patch is None else weight_patch[m:-m, m:-m]
            maps_patch = None if maps_patch is None else maps_patch[:, m:-m, m:-m]
        if weight_patch is None:
            weight_patch = np.ones(target_patch.shape, dtype=np.float32)
        item = {
            "image": torch.from_numpy(np.ascontiguousarray(image_patch, dtype=np.float32)),
            "target": torch.from_numpy(np.ascontiguousarray(target_patch, dtype=np.int64)),
            "weights": torch.from_numpy(np.ascontiguousarray(weight_patch, dtype=np.float32)),
        }
        if maps_patch is not None:
            item["maps"] = torch.from_numpy(np.ascontiguousarray(maps_patch, dtype=np.float32))
        return item


def _compact_classes(target: np.ndarray) -> np.ndarray:
    """``target`` as uint8 when its class indices fit (8x less cache than int64; patches are
    handed to the loss as int64).

    >>> _compact_classes(np.array([[0, 2]], np.int64)).dtype, _compact_classes(np.array([300])).dtype
    (dtype('uint8'), dtype('int64'))
    """
    if target.size and int(target.min()) >= 0 and int(target.max()) < 256:
        return target.astype(np.uint8)
    return target


def tile_starts(n: int, size: int) -> list[int]:
    """Starts of the fewest ``size``-long tiles covering ``0 .. n`` (the last one ends at ``n``).

    >>> tile_starts(11, 5), tile_starts(10, 5), tile_starts(4, 5)
    ([0, 5, 6], [0, 5], [0])
    """
    if n <= size:
        return [0]
    return [*range(0, n - size, size), n - size]


@dataclass(frozen=True)
class _Padded:
    """A sample prepared for patch drawing (see :meth:`PatchDataset._padded`): the target in
    the smallest integer type that holds it, ``origins`` the (bool) foreground that patch
    origins are drawn from."""

    image: np.ndarray
    target: np.ndarray
    weights: np.ndarray | None
    maps: np.ndarray | None
    origins: np.ndarray

    @property
    def nbytes(self) -> int:
        arrays = (self.image, self.target, self.weights, self.maps, self.origins)
        return sum(a.nbytes for a in arrays if a is not None)
