"""Instance representations compared by ``bench_representations.py`` (issue 10, item 4).

A representation is what the network learns from an instance label image and how its output
becomes instances again:

- ``target(labels)``: the training targets, a dict of ``(Y, X)`` arrays;
- ``loss(logits, targets)``: the training loss of ``(B, K, Y, X)`` logits;
- ``probs(logits)``: the network's output as probability / regression maps;
- ``post(probs, min_size=..., **params)``: instance labels, with the post-processing
  parameters that ``grid()`` lists (tuned on the validation split);
- ``ideal(targets)``: the maps a perfect network would output (``post(ideal(target(labels)))``
  should give ``labels`` back: the round-trip tests).

The five representations:

``binary``
    Foreground (sigmoid, BCE + soft Dice); instances are connected components, or a distance
    transform watershed.
``three_class`` / ``three_class_plain``
    Background / interior / boundary (softmax; lapseg's 3-class target, boundary 2 pixels),
    cross-entropy weighted by lapseg's border weight map with balanced classes (``plain``:
    unweighted) + soft Dice of interior and boundary; interiors seed a watershed of the
    foreground (lapseg's :func:`~lapseg.inference.instances.instances_from_three_class`).
``distance``
    Foreground + cell distance + neighbour distance (KIT-Sch-GE, Cell Tracking Challenge):
    seeds where ``cell - neighbour`` is high, watershed of the cell distance.
``contour``
    Two sigmoid outputs, foreground and a 2-pixel contour band; seeds are foreground minus
    contour, watershed of the contour.

Semantics are those of the campaign that measured them (an experiment script outside the
repository), kept to the bit so its numbers reproduce. Where lapseg has the function it is used;
where lapseg differs, the campaign's version is kept here and the comment says why:

- the binary distance watershed puts one marker on every peak ``peak_local_max`` returns;
  lapseg's ``instances_from_binary(watershed=True)`` merges the peaks of one flat maximum
  (a ridge) into one marker, so it splits elongated cells less often;
- the soft Dice sums ``|P| + |G|`` directly; lapseg's
  :func:`~lapseg.losses.functional.soft_dice_loss` (same formula, batch Dice, smoothing 1)
  gets it as ``2TP + FP + FN``, which changes the last bit of the loss and its gradient, and
  1000 steps amplify that; the cross-entropy is lapseg's (bitwise equal);
- the campaign seeds the 3-class watershed only from interiors of >= 4 pixels
  (``min_seed_size=4``, lapseg's default is 0) and returns int32 labels (lapseg: uint16).

The post-processing parameters carry lapseg's names; the campaign's records abbreviate them
(``t`` threshold, ``ws`` watershed, ``md`` min_distance, ``ti`` interior_threshold, ``tf``
foreground_threshold, ``ts`` seed_threshold). What a perfect network's maps give back is in
tests/benchmarks/test_representations.py: exact for the 3-class and contour representations
except at some contact pixels where three cells meet or contacts are oblique; the same
contact-pixel limit for ``distance`` at straight contacts too; touching cells merge for
``binary``; every representation fills background holes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import ArrayLike, NDArray
from scipy import ndimage
from skimage.feature import peak_local_max
from skimage.segmentation import find_boundaries, relabel_sequential, watershed

from lapseg.data.targets import (
    cell_distance,
    neighbor_distance,
    three_class_target,
    three_class_weight_map,
)
from lapseg.inference.instances import (
    fill_label_holes,
    instances_from_binary,
    instances_from_three_class,
    remove_small_objects,
)
from lapseg.losses.functional import cross_entropy

__all__ = [
    "REPRESENTATIONS",
    "Binary",
    "Contour",
    "Distance",
    "Representation",
    "ThreeClass",
    "cell_distance",
    "contour_band",
    "create_representation",
    "finish",
    "neighbor_distance",
]

Maps = NDArray[np.float32]
"""``(K, Y, X)`` float32 probability / regression maps of one image."""
Labels = NDArray[np.int32]
"""``(Y, X)`` int32 instance labels, 0 = background, objects ``1..N``."""

BOUNDARY_WIDTH = 2
"""Pixels of the 3-class boundary band and of the contour band."""
MIN_SEED_SIZE = 4
"""Seeds (connected components) with fewer pixels are dropped by every seeded watershed."""
THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7)
"""The post-processing grid's thresholds (the 3-class interior threshold also tries 0.8)."""


# --------------------------------------------------------------------------- targets
# (cell_distance and neighbor_distance are lapseg's own: lapseg.data.targets, data.target=distance)


def contour_band(labels: ArrayLike, *, width: int = BOUNDARY_WIDTH) -> Maps:
    """A band of ``width`` pixels along the inside of every outline, as a float32 0/1 map.

    Pixels of a cell 4-adjacent to another label (another cell or the background; not the image
    border) form the outline (``find_boundaries(mode="inner")``); it is dilated ``width - 1``
    times (4-connectivity), staying inside the cells.
    """
    array = np.asarray(labels)
    band = find_boundaries(array, mode="inner")
    if width > 1:
        band = ndimage.binary_dilation(band, iterations=width - 1) & (array > 0)
    return band.astype(np.float32)


# --------------------------------------------------------------------------- post-processing


def finish(labels: NDArray[np.integer], *, min_size: int) -> Labels:
    """Fill each object's holes, drop objects under ``min_size`` pixels, number them ``1..N``."""
    cleaned = remove_small_objects(fill_label_holes(labels), min_size=min_size)
    return relabel_sequential(cleaned)[0].astype(np.int32)


def _seeded_watershed(
    landscape: NDArray[np.floating],
    seed_mask: NDArray[np.bool_],
    foreground: NDArray[np.bool_],
    *,
    min_size: int,
) -> Labels:
    """Grow the 4-connected components of ``seed_mask`` (>= 4 pixels) over the foreground.

    The watershed floods ``landscape`` (low first) within the foreground and the seeds;
    foreground regions no seed reaches stay background.
    """
    seeds, _ = ndimage.label(seed_mask)
    seeds = remove_small_objects(seeds, min_size=MIN_SEED_SIZE)
    labels = watershed(landscape, seeds, mask=foreground | (seeds > 0))
    return finish(labels, min_size=min_size)


def _peak_watershed(foreground: NDArray[np.bool_], min_distance: int) -> NDArray[np.int32]:
    """Split touching round objects: watershed of the negated distance transform.

    One marker per peak of ``peak_local_max`` (the campaign's version; lapseg's
    ``_distance_watershed`` joins the peaks of one flat maximum into one marker). Foreground
    components without a peak keep a label of their own.
    """
    distance = ndimage.distance_transform_edt(foreground)
    components, _ = ndimage.label(foreground)
    peaks = peak_local_max(
        distance, min_distance=min_distance, labels=components, exclude_border=False
    )
    markers = np.zeros(foreground.shape, np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    labels = watershed(-distance, markers, mask=foreground)
    leftover = foreground & (labels == 0)
    if leftover.any():
        extra, _ = ndimage.label(leftover)
        labels = np.where(extra > 0, extra + labels.max(), labels)
    return labels.astype(np.int32)


def _soft_dice(prob: torch.Tensor, target: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """``1 - (2 |P G| + s) / (|P| + |G| + s)`` summed over the whole batch; prob (B, Y, X)."""
    overlap = (prob * target).sum()
    return 1 - (2 * overlap + smooth) / (prob.sum() + target.sum() + smooth)


def _bce_dice(logit: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """BCE + soft Dice of one sigmoid output; logit, target (B, Y, X)."""
    return F.binary_cross_entropy_with_logits(logit, target) + _soft_dice(
        torch.sigmoid(logit), target
    )


# --------------------------------------------------------------------------- representations


class Representation(ABC):
    """What the network learns from instance labels, and how its output becomes instances."""

    name: str
    """The name in :data:`REPRESENTATIONS` (and in the result records)."""
    out_channels: int
    """Network outputs ``K``."""

    @abstractmethod
    def target(self, labels: NDArray[np.integer]) -> dict[str, NDArray[Any]]:
        """Training targets of a ``(Y, X)`` label image: name -> ``(Y, X)`` array."""

    @abstractmethod
    def loss(self, logits: torch.Tensor, targets: dict[str, torch.Tensor]) -> torch.Tensor:
        """Scalar loss of ``(B, K, Y, X)`` logits against batched ``(B, Y, X)`` targets."""

    @abstractmethod
    def probs(self, logits: torch.Tensor) -> torch.Tensor:
        """Probability / regression maps of ``(K, Y, X)`` (or ``(B, K, Y, X)``) logits."""

    @abstractmethod
    def ideal(self, targets: dict[str, NDArray[Any]]) -> Maps:
        """The ``(K, Y, X)`` maps a perfect network would output for these targets."""

    @abstractmethod
    def grid(self) -> list[dict[str, Any]]:
        """Post-processing parameter sets searched on the validation split."""

    @abstractmethod
    def post(self, probs: Maps, *args: Any, **params: Any) -> Labels:
        """Instance labels from ``(K, Y, X)`` maps; keywords ``min_size`` and ``grid()``'s keys."""


class Binary(Representation):
    """Foreground probability; connected components or a distance-transform watershed."""

    name = "binary"
    out_channels = 1

    def target(self, labels: NDArray[np.integer]) -> dict[str, NDArray[Any]]:
        return {"fg": (labels > 0).astype(np.float32)}

    def loss(self, logits: torch.Tensor, targets: dict[str, torch.Tensor]) -> torch.Tensor:
        return _bce_dice(logits[:, 0].float(), targets["fg"])

    def probs(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(logits)

    def ideal(self, targets: dict[str, NDArray[Any]]) -> Maps:
        return targets["fg"][None].astype(np.float32)

    def grid(self) -> list[dict[str, Any]]:
        splits = ((False, 0), (True, 3), (True, 6), (True, 12))
        return [
            {"threshold": t, "watershed": ws, "min_distance": md}
            for t in THRESHOLDS
            for ws, md in splits
        ]

    def post(
        self,
        probs: Maps,
        *,
        min_size: int = 16,
        threshold: float = 0.5,
        watershed: bool = False,
        min_distance: int = 0,
    ) -> Labels:
        """Foreground ``probs[0] > threshold``; 4-connected components, or with ``watershed``
        a watershed of the distance transform from its peaks ``min_distance`` apart."""
        if not watershed:  # lapseg's connected components: identical to the campaign's
            labels = instances_from_binary(probs[0], threshold=threshold, min_size=min_size)
            return labels.astype(np.int32)
        return finish(_peak_watershed(probs[0] > threshold, min_distance), min_size=min_size)


class ThreeClass(Representation):
    """Background / interior / boundary classes (seed 002's method, lapseg's default so far)."""

    out_channels = 3

    def __init__(self, *, weighted: bool = True) -> None:
        self.weighted = weighted
        self.name = "three_class" if weighted else "three_class_plain"

    def target(self, labels: NDArray[np.integer]) -> dict[str, NDArray[Any]]:
        targets: dict[str, NDArray[Any]] = {
            "cls": three_class_target(labels, boundary_width=BOUNDARY_WIDTH).astype(np.int64)
        }
        if self.weighted:
            targets["w"] = three_class_weight_map(
                labels, boundary_width=BOUNDARY_WIDTH, w0=10.0, sigma=5.0, class_weights="balanced"
            )
        return targets

    def loss(self, logits: torch.Tensor, targets: dict[str, torch.Tensor]) -> torch.Tensor:
        logits = logits.float()
        classes = targets["cls"]
        # sum(w * ce) / sum(w), or the mean without weights: bitwise the campaign's expression
        ce = cross_entropy(logits, classes, pixel_weights=targets["w"] if self.weighted else None)
        prob = torch.softmax(logits, dim=1)
        dice = sum(_soft_dice(prob[:, k], (classes == k).float()) for k in (1, 2)) / 2
        return ce + dice

    def probs(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.softmax(logits, dim=-3)

    def ideal(self, targets: dict[str, NDArray[Any]]) -> Maps:
        one_hot = np.eye(3, dtype=np.float32)[targets["cls"]]
        return np.ascontiguousarray(np.moveaxis(one_hot, -1, 0))

    def grid(self) -> list[dict[str, Any]]:
        return [
            {"interior_threshold": ti, "foreground_threshold": tf}
            for ti in (*THRESHOLDS, 0.8)
            for tf in THRESHOLDS
        ]

    def post(
        self,
        probs: Maps,
        *,
        min_size: int = 16,
        interior_threshold: float = 0.5,
        foreground_threshold: float = 0.5,
    ) -> Labels:
        """Interiors ``P(interior) > interior_threshold`` seed a watershed of ``P(background)``
        over ``1 - P(background) > foreground_threshold``."""
        labels = instances_from_three_class(
            probs,
            interior_threshold=interior_threshold,
            foreground_threshold=foreground_threshold,
            min_size=min_size,
            min_seed_size=MIN_SEED_SIZE,
        )
        return labels.astype(np.int32)


class Distance(Representation):
    """Foreground + cell distance + neighbour distance regression, seeded watershed."""

    name = "distance"
    out_channels = 3

    def target(self, labels: NDArray[np.integer]) -> dict[str, NDArray[Any]]:
        return {
            "fg": (labels > 0).astype(np.float32),
            "cd": cell_distance(labels),
            "nd": neighbor_distance(labels),
        }

    def loss(self, logits: torch.Tensor, targets: dict[str, torch.Tensor]) -> torch.Tensor:
        x = logits.float()
        regression = F.mse_loss(torch.sigmoid(x[:, 1]), targets["cd"]) + F.mse_loss(
            torch.sigmoid(x[:, 2]), targets["nd"]
        )
        return _bce_dice(x[:, 0], targets["fg"]) + 10 * regression

    def probs(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(logits)

    def ideal(self, targets: dict[str, NDArray[Any]]) -> Maps:
        return np.stack([targets["fg"], targets["cd"], targets["nd"]]).astype(np.float32)

    def grid(self) -> list[dict[str, Any]]:
        return [
            {"seed_threshold": ts, "foreground_threshold": tf}
            for ts in THRESHOLDS
            for tf in THRESHOLDS
        ]

    def post(
        self,
        probs: Maps,
        *,
        min_size: int = 16,
        seed_threshold: float = 0.5,
        foreground_threshold: float = 0.5,
    ) -> Labels:
        """Seeds ``cell - neighbour > seed_threshold`` grow down the cell distance over the
        foreground ``probs[0] > foreground_threshold``."""
        foreground = probs[0] > foreground_threshold
        seed_mask = (probs[1] - probs[2]) > seed_threshold
        return _seeded_watershed(-probs[1], seed_mask, foreground, min_size=min_size)


class Contour(Representation):
    """Two sigmoid outputs, foreground and contour band; seeds are foreground minus contour."""

    name = "contour"
    out_channels = 2

    def target(self, labels: NDArray[np.integer]) -> dict[str, NDArray[Any]]:
        return {"fg": (labels > 0).astype(np.float32), "ct": contour_band(labels)}

    def loss(self, logits: torch.Tensor, targets: dict[str, torch.Tensor]) -> torch.Tensor:
        x = logits.float()
        loss = _bce_dice(x[:, 0], targets["fg"])
        # added term by term, left to right, as the campaign did (the last bit depends on it)
        bce = F.binary_cross_entropy_with_logits(x[:, 1], targets["ct"])
        return loss + bce + _soft_dice(torch.sigmoid(x[:, 1]), targets["ct"])

    def probs(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(logits)

    def ideal(self, targets: dict[str, NDArray[Any]]) -> Maps:
        return np.stack([targets["fg"], targets["ct"]]).astype(np.float32)

    def grid(self) -> list[dict[str, Any]]:
        return [
            {"seed_threshold": ts, "foreground_threshold": tf}
            for ts in THRESHOLDS
            for tf in THRESHOLDS
        ]

    def post(
        self,
        probs: Maps,
        *,
        min_size: int = 16,
        seed_threshold: float = 0.5,
        foreground_threshold: float = 0.5,
    ) -> Labels:
        """Seeds ``P(fg) (1 - P(contour)) > seed_threshold`` grow up the contour probability
        over the foreground ``probs[0] > foreground_threshold``."""
        foreground = probs[0] > foreground_threshold
        seed_mask = probs[0] * (1 - probs[1]) > seed_threshold
        return _seeded_watershed(probs[1], seed_mask, foreground, min_size=min_size)


REPRESENTATIONS: dict[str, Callable[[], Representation]] = {
    "binary": Binary,
    "three_class": lambda: ThreeClass(weighted=True),
    "three_class_plain": lambda: ThreeClass(weighted=False),
    "distance": Distance,
    "contour": Contour,
}
"""Name -> factory, in the order the tables list them."""


def create_representation(name: str) -> Representation:
    """The representation called ``name``; the error lists the valid names."""
    if name not in REPRESENTATIONS:
        raise ValueError(
            f"unknown representation {name!r}; valid representations: {', '.join(REPRESENTATIONS)}"
        )
    return REPRESENTATIONS[name]()
