"""From network outputs to masks: the one owner of logits -> probabilities -> classes / mask.

Probabilities are ``sigmoid`` for one output channel and ``softmax`` otherwise
(:func:`probabilities_from_logits`). The mask of an image (:func:`probabilities_to_mask`)
depends on what the network learnt: a thresholded foreground for binary models, the union of
interior and boundary (``1 - P(background)``) for 3-class instance models, the most probable
class otherwise. A pixel is foreground when its probability is strictly greater than the threshold
(``prob > threshold``, as ``skimage.filters.threshold_otsu`` documents); tuning and applying a
threshold use the same rule.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from skimage.filters import threshold_otsu

from lapseg.config import INSTANCE_TARGETS
from lapseg.errors import LapsegInputError

__all__ = [
    "THRESHOLD_METHODS",
    "argmax_classes",
    "foreground_probability",
    "probabilities_from_logits",
    "probabilities_to_mask",
    "threshold_probabilities",
    "tune_threshold",
]

THRESHOLD_METHODS = ("fixed", "otsu")
DEFAULT_CANDIDATES = np.linspace(0.05, 0.95, 19)


def probabilities_from_logits(logits: torch.Tensor, *, regressed: int = 0) -> torch.Tensor:
    """Turn network logits into probabilities.

    Parameters
    ----------
    logits : (K, Y, X) tensor
        Raw network output for one image.
    regressed : int, optional
        The last ``regressed`` channels are regressed maps in [0, 1] (the ``distance`` target's
        cell and neighbour distance, :data:`lapseg.data.targets.REGRESSION_CHANNELS`): they
        go through a sigmoid, the softmax covers the others.

    Returns
    -------
    (K, Y, X) tensor
        ``sigmoid(logits)`` when ``K == 1`` (foreground probability), else the softmax over
        the ``K`` classes (the ``K - regressed`` classes, then the sigmoid of the maps). Same
        device; floating dtype of the input.

    >>> probabilities_from_logits(torch.zeros(4, 1, 1), regressed=2).flatten().tolist()
    [0.5, 0.5, 0.5, 0.5]
    """
    if not isinstance(logits, torch.Tensor) or logits.ndim != 3 or logits.shape[0] < 1:
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits)
        raise LapsegInputError(f"logits must be a (K, Y, X) tensor, got {shape}")
    if not logits.is_floating_point():
        raise LapsegInputError(f"logits must be floating point, got {logits.dtype}")
    if regressed:
        if not 0 < regressed <= logits.shape[0] - 2:
            raise LapsegInputError(
                f"{regressed} regressed channel(s) need at least {regressed + 2} logit channels, "
                f"got {logits.shape[0]}"
            )
        classes = logits.shape[0] - regressed
        return torch.cat([torch.softmax(logits[:classes], dim=0), torch.sigmoid(logits[classes:])])
    if logits.shape[0] == 1:
        return torch.sigmoid(logits)
    return torch.softmax(logits, dim=0)


def _check_probability_map(prob: np.ndarray, name: str = "probabilities") -> np.ndarray:
    prob = np.asarray(prob)
    if prob.ndim != 2 or prob.size == 0:
        raise LapsegInputError(f"{name} must be a non-empty (Y, X) array, got shape {prob.shape}")
    if not np.issubdtype(prob.dtype, np.floating):
        raise LapsegInputError(f"{name} must be floating point, got {prob.dtype}")
    if np.isnan(prob).any():
        raise LapsegInputError(f"{name} contain NaN")
    return prob


def threshold_probabilities(
    prob: np.ndarray, *, method: str = "fixed", threshold: float = 0.5
) -> np.ndarray:
    """Binary foreground mask from a probability map.

    Parameters
    ----------
    prob : (Y, X) ndarray of float
        Foreground probabilities.
    method : {"fixed", "otsu"}, optional
        ``"fixed"`` uses ``threshold``; ``"otsu"`` uses ``skimage.filters.threshold_otsu`` of
        ``prob`` (``threshold`` is then not used). A constant map has no Otsu threshold: 0.5 is
        used instead.
    threshold : float, optional
        Threshold for ``method="fixed"``.

    Returns
    -------
    mask : (Y, X) ndarray of uint8
        1 where ``prob > threshold``, else 0.
    """
    prob = _check_probability_map(prob)
    if method not in THRESHOLD_METHODS:
        raise LapsegInputError(f"method must be one of {THRESHOLD_METHODS}, got {method!r}")
    if method == "otsu":
        level = 0.5 if prob.min() == prob.max() else float(threshold_otsu(prob))
    else:
        if not isinstance(threshold, int | float | np.floating) or not np.isfinite(threshold):
            raise LapsegInputError(f"threshold must be a finite number, got {threshold!r}")
        level = float(threshold)
    return (prob > level).astype(np.uint8)


def tune_threshold(
    probabilities: Sequence[np.ndarray],
    truths: Sequence[np.ndarray],
    *,
    candidates: Sequence[float] | np.ndarray = DEFAULT_CANDIDATES,
) -> tuple[float, float]:
    """Threshold that maximises the pooled Dice score over validation images.

    True/false positives and false negatives are summed over all images before the Dice score
    ``2 TP / (2 TP + FP + FN)`` is computed. Each image costs one histogram of its pixels over
    the sorted candidates, so the work is O(pixels log candidates), not O(pixels x candidates).

    Parameters
    ----------
    probabilities : sequence of (Y, X) ndarray of float
        Foreground probability maps.
    truths : sequence of (Y, X) ndarray
        Ground-truth masks of the same shapes; nonzero is foreground (label images work).
    candidates : sequence of float, optional
        Thresholds to try (default 0.05, 0.10, ..., 0.95).

    Returns
    -------
    threshold : float
        Best candidate; the smallest one among ties.
    dice : float
        Its pooled Dice score (1.0 when neither truth nor prediction has any foreground).
    """
    cands = np.asarray(candidates, dtype=np.float64)
    if cands.ndim != 1 or cands.size == 0 or not np.isfinite(cands).all():
        raise LapsegInputError("candidates must be a non-empty 1-D sequence of finite numbers")
    if len(probabilities) != len(truths) or len(probabilities) == 0:
        raise LapsegInputError(
            f"need the same non-zero number of probability maps and truths, got "
            f"{len(probabilities)} and {len(truths)}"
        )
    order = np.sort(np.unique(cands))
    n = order.size
    positive = np.zeros(n + 1, dtype=np.int64)  # histogram of truth-foreground pixels
    negative = np.zeros(n + 1, dtype=np.int64)
    for i, (prob, truth) in enumerate(zip(probabilities, truths, strict=True)):
        prob = _check_probability_map(prob, f"probabilities[{i}]")
        truth = np.asarray(truth)
        if truth.shape != prob.shape:
            raise LapsegInputError(
                f"truths[{i}] has shape {truth.shape}, probabilities[{i}] has {prob.shape}"
            )
        # k = number of candidates strictly below p: the pixel is foreground for order[:k]
        k = np.searchsorted(order, prob.ravel(), side="left")
        fg = truth.ravel() != 0
        positive += np.bincount(k[fg], minlength=n + 1)
        negative += np.bincount(k[~fg], minlength=n + 1)
    # foreground for candidate j <=> k > j: reverse cumulative sums from k = j + 1
    tp = np.cumsum(positive[::-1])[::-1][1:]
    fp = np.cumsum(negative[::-1])[::-1][1:]
    fn = positive.sum() - tp
    denominator = 2 * tp + fp + fn
    dice = np.where(denominator > 0, 2 * tp / np.maximum(denominator, 1), 1.0)
    best = int(np.argmax(dice))
    return float(order[best]), float(dice[best])


def argmax_classes(prob: np.ndarray | torch.Tensor) -> np.ndarray:
    """Class map: index of the most probable class at every pixel.

    Parameters
    ----------
    prob : (K, Y, X) ndarray or tensor
        Class probabilities or logits (the argmax is the same).

    Returns
    -------
    classes : (Y, X) ndarray of uint8 (K <= 256) or uint16
        Ties go to the lowest class index.
    """
    shape = tuple(prob.shape) if isinstance(prob, torch.Tensor) else np.shape(prob)
    if len(shape) != 3 or shape[0] < 1:
        raise LapsegInputError(f"prob must be a (K, Y, X) array, got shape {shape}")
    if shape[0] > 65536:
        raise LapsegInputError(f"at most 65536 classes are supported, got {shape[0]}")
    if isinstance(prob, torch.Tensor):
        index = torch.argmax(prob, dim=0).cpu().numpy()
    else:
        index = np.argmax(np.asarray(prob), axis=0)
    return index.astype(np.uint8 if shape[0] <= 256 else np.uint16)


def foreground_probability(prob: np.ndarray, *, target: str = "binary") -> np.ndarray:
    """Probability that a pixel belongs to any object.

    Parameters
    ----------
    prob : (K, Y, X) ndarray
        Probabilities of one image.
    target : {"binary", "three_class", "distance"}
        What the network learnt. The instance targets (``"three_class"``, ``"distance"``):
        ``1 - P(background)``; otherwise the last channel (the sigmoid output of a one-channel
        model, class 1 of a two-class model).

    Returns
    -------
    (Y, X) ndarray of float32
    """
    prob = np.asarray(prob)
    if prob.ndim != 3:
        raise LapsegInputError(f"prob must be a (K, Y, X) array, got shape {prob.shape}")
    if target in INSTANCE_TARGETS:
        return (1.0 - prob[0]).astype(np.float32)
    return prob[-1].astype(np.float32)


def probabilities_to_mask(
    prob: np.ndarray, *, target: str = "binary", method: str = "fixed", threshold: float = 0.5
) -> np.ndarray:
    """The mask of one image from its probabilities.

    Parameters
    ----------
    prob : (K, Y, X) ndarray
    target : {"binary", "three_class", "distance"}
        Instance models (``"three_class"``, ``"distance"``) give the foreground mask
        ``1 - P(background) > threshold``.
    method : {"fixed", "otsu", "tuned"}
        For foreground masks: ``"fixed"`` and ``"tuned"`` use ``threshold``, ``"otsu"`` is per
        image.
    threshold : float

    Returns
    -------
    mask : (Y, X) ndarray
        0/255 uint8 for one-channel and instance models; class indices (uint8/uint16) otherwise.
    """
    prob = np.asarray(prob)
    if prob.ndim == 3 and (prob.shape[0] == 1 or target in INSTANCE_TARGETS):
        binary = threshold_probabilities(
            foreground_probability(prob, target=target),
            method="otsu" if method == "otsu" else "fixed",
            threshold=threshold,
        )
        return binary * np.uint8(255)
    return argmax_classes(prob)
