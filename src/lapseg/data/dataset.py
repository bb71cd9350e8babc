"""Random training patches from prepared samples, with paired augmentation.

The samples (:class:`lapseg.data.samples.Sample`) are read and prepared once per image (the
datasets lapseg targets — tens to a few hundred images — fit in memory; every patch then costs
only a slice and a flip). ``PatchDataset`` draws random patches with foreground oversampling and
paired augmentation; its randomness is a pure function of ``(seed, epoch, index)``, so
DataLoader workers and resumed runs draw the same patches.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from lapseg.config import AugmentationConfig
from lapseg.data.geometry import pad_to_at_least, sample_patch_origin
from lapseg.data.samples import Sample
from lapseg.errors import LapsegInputError
from lapseg.transforms.pipeline import augment_sample_with_maps

__all__ = ["DEFAULT_CACHE_BYTES", "PatchDataset", "tile_starts"]

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
