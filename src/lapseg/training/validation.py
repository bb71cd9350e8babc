"""Validation during training: fixed tiles of the validation images, scored like the results.

:class:`ValidationSet` cuts the validation images once into at most :data:`MAX_PIXELS` pixels
of fixed tiles (whole images when they fit), so every epoch's validation costs the same and
stays a small fraction of the training time. :func:`validate` predicts them and measures:

- ``val_loss``: the training loss on the tiles;
- ``val_dice`` / ``val_iou``: pooled over all pixels, of the foreground (cells) for binary and
  instance tasks (a 3-class model's interior + boundary), class-averaged for class maps;
- for binary and instance tasks, the cell measures of StemNet's evaluation averaged over the
  tiles (:func:`lapseg.metrics.pixel.stemnet_measures`: its rules for tiles without cells):
  ``val_error_rate`` (percent), ``val_f1``, ``val_false_white``, ``val_white_pixel_accuracy``,
  ``val_precision``, ``val_recall`` and ``val_accuracy``;
- for instance tasks, the measures users publish, on the instance label images the run's
  post-processing makes: ``val_seg`` (CTC SEG), ``val_ap50`` (TP / (TP + FP + FN) at
  IoU > 0.5) and their mean ``val_seg_ap`` (the default model-selection measure).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from lapseg.config import LapsegConfig, PostprocessConfig
from lapseg.data.samples import Sample
from lapseg.data.targets import REGRESSION_CHANNELS
from lapseg.inference.engines import predict_logits
from lapseg.inference.instances import instances_from_probabilities
from lapseg.inference.outputs import (
    argmax_classes,
    foreground_probability,
    probabilities_from_logits,
)
from lapseg.metrics.instance import aggregate_matches, aggregate_seg, match_instances, seg_measure
from lapseg.metrics.pixel import STEMNET_KEYS, MetricAccumulator

__all__ = ["MAX_PIXELS", "PER_TILE_KEYS", "ValidationSet", "instance_scores", "validate"]

PER_TILE_KEYS = STEMNET_KEYS[:7]
"""StemNet's measures recorded as ``val_<key>`` (the pixel count ``false_white_pixels`` is not)."""

MAX_PIXELS = 2_500_000
"""Pixels of validation tiles per epoch (about 1 s of bfloat16 prediction on 2 CPU cores)."""


@dataclass(frozen=True)
class ValidationSet:
    """Fixed validation tiles: images ``(C, h, w)``, targets ``(h, w)``, instance labels.

    ``instances`` holds ``(h, w)`` label images for instance tasks (else None per tile);
    ``maps`` the ``(M, h, w)`` regression targets of ``data.target=distance`` (else empty, or
    None per tile).
    """

    images: list[np.ndarray]
    targets: list[np.ndarray]
    instances: list[np.ndarray | None]
    maps: list[np.ndarray | None] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.images)

    @classmethod
    def from_samples(
        cls, samples: Sequence[Sample], *, tile: int, max_pixels: int = MAX_PIXELS
    ) -> ValidationSet:
        """Whole samples while they fit in ``max_pixels``; else one ``tile`` x ``tile`` crop
        per sample (centred on its foreground), in sample order, until the pixels run out.
        Samples are read one at a time (a long movie's validation frames are never all loaded).
        """
        images: list[np.ndarray] = []
        targets: list[np.ndarray] = []
        instances: list[np.ndarray | None] = []
        maps: list[np.ndarray | None] = []
        used = 0
        crop = False
        for index in range(len(samples)):
            sample = samples[index]
            crop = crop or used + sample.target.size > max_pixels
            window = _foreground_window(sample.target, tile) if crop else (slice(None),) * 2
            target = sample.target[window]
            if images and used + target.size > max_pixels:
                break
            used += target.size
            images.append(np.ascontiguousarray(sample.image[(slice(None), *window)]))
            targets.append(np.ascontiguousarray(target))
            labels = sample.instances
            instances.append(None if labels is None else np.ascontiguousarray(labels[window]))
            sample_maps = sample.maps
            maps.append(
                None
                if sample_maps is None
                else np.ascontiguousarray(sample_maps[(slice(None), *window)])
            )
        return cls(images, targets, instances, maps)


def _foreground_window(target: np.ndarray, tile: int) -> tuple[slice, slice]:
    """A ``tile``-sized window (clipped to the image) centred on the foreground's centroid."""
    ys, xs = np.nonzero(target)
    centre = (
        (target.shape[0] // 2, target.shape[1] // 2)
        if ys.size == 0
        else (
            int(ys.mean()),
            int(xs.mean()),
        )
    )
    window = []
    for c, n in zip(centre, target.shape, strict=True):
        size = min(tile, n)
        start = min(max(c - size // 2, 0), n - size)
        window.append(slice(start, start + size))
    return window[0], window[1]


def instance_scores(
    truths: Sequence[np.ndarray], predictions: Sequence[np.ndarray]
) -> dict[str, float]:
    """``seg``, ``ap50`` and their mean ``seg_ap`` of predicted against reference labels.

    SEG averages the Jaccard index over every reference object of every image; AP@0.5 sums
    TP, FP and FN over the images (as the shared protocols do).
    """
    segs = [seg_measure(t, p) for t, p in zip(truths, predictions, strict=True)]
    matches = [
        match_instances(t, p, thresholds=[0.5]) for t, p in zip(truths, predictions, strict=True)
    ]
    seg = aggregate_seg(segs)["seg"]
    (record,) = aggregate_matches(matches)
    seg = 0.0 if not math.isfinite(seg) else float(seg)
    ap = float(record.ap) if math.isfinite(record.ap) else 0.0
    return {"seg": seg, "ap50": ap, "seg_ap": (seg + ap) / 2}


@torch.inference_mode()
def predict_tiles(
    model: nn.Module,
    tiles: ValidationSet,
    config: LapsegConfig,
    *,
    device: torch.device,
    precision: torch.dtype | None = None,
) -> list[torch.Tensor]:
    """Logits ``(K, h, w)`` of every tile (sliding window inside large tiles)."""
    model.eval()
    return [
        predict_logits(
            model, torch.from_numpy(image).to(device), config.predict, precision=precision
        )
        for image in tiles.images
    ]


def validate(
    model: nn.Module,
    tiles: ValidationSet,
    loss_fn: nn.Module,
    config: LapsegConfig,
    *,
    device: torch.device,
    precision: torch.dtype | None = None,
    object_area: float | None = None,
) -> dict[str, float]:
    """One validation pass over ``tiles``; the row values named in the module docstring."""
    logits = predict_tiles(model, tiles, config, device=device, precision=precision)
    losses = []
    semantic = config.data.task == "semantic"
    accumulator = MetricAccumulator(num_classes=config.model.outputs if semantic else 2)
    probabilities = []
    regressed = REGRESSION_CHANNELS.get(config.data.target, 0)
    tile_maps = tiles.maps or [None] * len(tiles)
    for tile_logits, target, maps in zip(logits, tiles.targets, tile_maps, strict=True):
        target_t = torch.from_numpy(target).to(device)
        extra = {} if maps is None else {"maps": torch.from_numpy(maps[None]).to(device)}
        with torch.inference_mode():
            losses.append(float(loss_fn(tile_logits[None], target_t[None], **extra)))
        prob = probabilities_from_logits(tile_logits, regressed=regressed).float().cpu().numpy()
        probabilities.append(prob)
        if semantic:
            accumulator.update(target, argmax_classes(prob))
        else:
            foreground = foreground_probability(prob, target=config.data.target) > 0.5
            accumulator.update((target > 0).astype(np.int64), foreground.astype(np.int64))
    pooled = accumulator.pooled()
    row = {
        "val_loss": float(np.mean(losses)),
        "val_dice": float(pooled.get("dice", pooled.get("mean_f1", math.nan))),
        "val_iou": float(pooled.get("iou", pooled.get("mean_iou", math.nan))),
    }
    if not semantic:
        means = accumulator.stemnet_means()
        row.update({f"val_{key}": means[key] for key in PER_TILE_KEYS})
    if config.data.task == "instances":
        row.update(
            {
                f"val_{k}": v
                for k, v in score_postprocessing(
                    probabilities, tiles, config.postprocess, object_area
                ).items()
            }
        )
    return row


def score_postprocessing(
    probabilities: Sequence[np.ndarray],
    tiles: ValidationSet,
    postprocess: PostprocessConfig,
    object_area: float | None,
) -> dict[str, float]:
    """:func:`instance_scores` of the labels ``postprocess`` makes from ``probabilities``.

    ``postprocess.remove_border`` is not applied: a tile's edges are not the image's border.
    """
    truths = [t for t in tiles.instances if t is not None]
    if len(truths) != len(probabilities):
        raise ValueError("instance validation needs the instance labels of every tile")
    if postprocess.remove_border is not False:
        postprocess = postprocess.replace(remove_border=False)
    predictions = [
        instances_from_probabilities(prob, postprocess, object_area=object_area)
        for prob in probabilities
    ]
    return instance_scores(truths, predictions)
