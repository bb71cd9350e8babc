"""Does an exported model keep the run's accuracy? Both models scored on the validation split.

:func:`compare_on_samples` predicts every validation sample with a reference model (the float
network) and a candidate (e.g. its INT8 quantisation), turns the probabilities into what
``lapseg predict`` writes (the model's mask rule, and instance labels for instance models) and
scores both against the ground truth with the measures training reports:

- ``dice``: pooled over all pixels of all samples; the foreground (cells) of binary and instance
  models, the mean over the foreground classes of class maps;
- ``seg``: the Cell Tracking Challenge SEG of the instance labels (instance models only).

The candidate passes when no measure drops by more than ``max_drop`` (an improvement never
fails). Samples are prepared training samples (:class:`lapseg.data.samples.Sample`): normalised,
on the network's pixel grid, as the run's validation saw them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from lapseg.data.samples import Sample
from lapseg.data.targets import REGRESSION_CHANNELS
from lapseg.inference.engines import predict_logits
from lapseg.inference.outputs import probabilities_from_logits
from lapseg.inference.predict import LoadedModel, model_instances, model_mask
from lapseg.metrics.instance import aggregate_seg, seg_measure
from lapseg.metrics.pixel import MetricAccumulator

__all__ = ["MAX_ACCURACY_DROP", "AccuracyComparison", "compare_on_samples"]

MAX_ACCURACY_DROP = 0.005
"""Largest drop of validation Dice / SEG an approximated (e.g. INT8) model may show."""


@dataclass(frozen=True)
class AccuracyComparison:
    """Validation measures of a reference and a candidate model on the same samples.

    ``reference`` and ``candidate`` map a measure name (``dice``, ``seg``) to its value;
    ``max_probability_difference`` is the largest ``|p_candidate - p_reference|`` of any pixel.
    """

    n_images: int
    reference: dict[str, float]
    candidate: dict[str, float]
    max_drop: float
    max_probability_difference: float

    def drops(self) -> dict[str, float]:
        """``reference - candidate`` per measure (negative: the candidate is better)."""
        return {key: self.reference[key] - self.candidate[key] for key in self.reference}

    @property
    def passed(self) -> bool:
        """No measure dropped by more than ``max_drop``."""
        return all(drop <= self.max_drop + 1e-12 for drop in self.drops().values())

    def summary(self) -> str:
        """One line, e.g. ``dice 0.9310 -> 0.9305 (-0.0005), seg ... on 4 validation image(s)``."""
        parts = [
            f"{key} {self.reference[key]:.4f} -> {self.candidate[key]:.4f} "
            f"({self.candidate[key] - self.reference[key]:+.4f})"
            for key in self.reference
        ]
        return (
            f"{', '.join(parts)} on {self.n_images} validation image(s); largest probability "
            f"difference {self.max_probability_difference:.3f}; allowed drop {self.max_drop}"
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values (stored in the exported file's metadata)."""
        return {
            "n_images": self.n_images,
            "reference": dict(self.reference),
            "candidate": dict(self.candidate),
            "max_drop": self.max_drop,
            "max_probability_difference": self.max_probability_difference,
            "passed": self.passed,
        }


@torch.inference_mode()
def _probabilities(loaded: LoadedModel, image: np.ndarray) -> np.ndarray:
    """``(K, Y, X)`` probabilities of one normalised ``(C, Y, X)`` image (sliding window)."""
    tensor = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).to(loaded.device)
    logits = predict_logits(loaded.model, tensor, loaded.config.predict, predictor=loaded.predictor)
    regressed = REGRESSION_CHANNELS.get(loaded.config.data.target, 0)
    return probabilities_from_logits(logits, regressed=regressed).float().cpu().numpy()


class _Scores:
    """Confusion counts and SEG results of one model over the samples."""

    def __init__(self, loaded: LoadedModel) -> None:
        self.loaded = loaded
        config = loaded.config
        self.semantic = config.data.task == "semantic"
        self.instances = config.data.task == "instances"
        self.pixels = MetricAccumulator(num_classes=config.model.outputs if self.semantic else 2)
        self.segs: list[dict[str, Any]] = []

    def add(self, prob: np.ndarray, sample: Sample) -> None:
        mask = model_mask(self.loaded, prob)
        if self.semantic:
            self.pixels.update(sample.target, mask.astype(np.int64))
        else:
            self.pixels.update((sample.target > 0).astype(np.int64), (mask > 0).astype(np.int64))
        if self.instances and sample.instances is not None:
            self.segs.append(seg_measure(sample.instances, model_instances(self.loaded, prob)))

    def measures(self) -> dict[str, float]:
        pooled = self.pixels.pooled()
        values = {"dice": float(pooled["dice"])}
        if self.instances:
            seg = float(aggregate_seg(self.segs)["seg"])
            if math.isfinite(seg):  # NaN: no reference object in the validation split
                values["seg"] = seg
        return values


def compare_on_samples(
    reference: LoadedModel,
    candidate: LoadedModel,
    samples: Sequence[Sample],
    *,
    max_drop: float = MAX_ACCURACY_DROP,
) -> AccuracyComparison:
    """Score ``reference`` and ``candidate`` on ``samples`` (see the module docstring).

    Parameters
    ----------
    reference, candidate : LoadedModel
        Two models of the same run (same configuration, normalisation, thresholds).
    samples : sequence of Sample
        Prepared validation samples: normalised ``(C, Y, X)`` images, targets, instance labels.
    max_drop : float
        Largest allowed drop of any measure.
    """
    if not len(samples):
        raise ValueError("no sample to compare on")
    scores = [_Scores(reference), _Scores(candidate)]
    largest = 0.0
    for index in range(len(samples)):
        sample = samples[index]
        probs = [_probabilities(model, sample.image) for model in (reference, candidate)]
        largest = max(largest, float(np.abs(probs[1] - probs[0]).max()))
        for score, prob in zip(scores, probs, strict=True):
            score.add(prob, sample)
    return AccuracyComparison(
        n_images=len(samples),
        reference=scores[0].measures(),
        candidate=scores[1].measures(),
        max_drop=float(max_drop),
        max_probability_difference=largest,
    )
