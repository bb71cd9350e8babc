"""Instance metrics: CTC SEG, matching at IoU thresholds (AP, F1, PQ), splits and merges.

Everything starts from one overlap matrix built with a single ``np.bincount`` over
``truth * (n_pred + 1) + pred`` (labels made consecutive first), so an image with hundreds of
objects costs a few array passes.

Definitions (``T`` a reference object, ``P`` a predicted object, ``|.|`` pixel counts):

SEG (Cell Tracking Challenge)
    For each reference object ``T``: the Jaccard index ``|T ∩ P| / |T ∪ P|`` with the predicted
    object ``P`` that covers *more than half* of it (``|T ∩ P| > 0.5 |T|``; at most one can),
    or 0 when none does. SEG averages this over reference objects only, so unannotated cells in
    partial ground truth cost nothing. A dataset's SEG is the sum over all its reference objects
    divided by their number (as the CTC computes it), not a mean of per-image means.
Matching at a threshold ``t`` (DSB 2018, StarDist, Cellpose)
    One-to-one pairs ``(T, P)`` with ``IoU > t``, chosen by ``scipy.optimize.linear_sum_assignment``
    to maximise first the number of pairs, then their total IoU (as StarDist's ``matching.py``;
    for ``t >= 0.5`` the pairs are unique anyway). StarDist accepts ``IoU >= t``; lapseg uses the
    strict ``>`` for which uniqueness at 0.5 holds — they differ only at exact ties.
    ``tp`` = pairs, ``fp = n_pred - tp``, ``fn = n_true - tp``; precision ``tp / n_pred``,
    recall ``tp / n_true``, f1 ``2 tp / (2 tp + fp + fn)``, ap ``tp / (tp + fp + fn)``,
    mean_matched_iou (= panoptic segmentation quality SQ) ``sum of matched IoU / tp``,
    panoptic_quality ``SQ x RQ = sum of matched IoU / (tp + fp / 2 + fn / 2)`` (RQ = f1).
    A ratio whose denominator is 0 is 1.0 when the image has no object in truth nor prediction
    (a perfect answer), else 0.0 (as in :mod:`lapseg.metrics.pixel`).
    A dataset sums tp, fp, fn and the matched IoU over images before taking the ratios
    (StarDist's ``matching_dataset``).
Splits and merges (threshold-free, each decided by a "more than half" rule, so unambiguous)
    A *merge* is a predicted object that covers more than half of each of two or more reference
    objects; ``merged_objects`` counts those reference objects. A *split* is a reference object
    that contains more than half of each of two or more predicted objects; ``split_pieces``
    counts those predicted objects.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import linear_sum_assignment

from lapseg.errors import LapsegInputError

__all__ = [
    "DEFAULT_THRESHOLDS",
    "MatchRecord",
    "aggregate_matches",
    "aggregate_seg",
    "match_instances",
    "overlap_matrix",
    "seg_measure",
    "split_merge_counts",
]

DEFAULT_THRESHOLDS: tuple[float, ...] = tuple(round(0.5 + 0.05 * k, 2) for k in range(10))
"""IoU thresholds 0.5, 0.55, ..., 0.95."""


@dataclass(frozen=True)
class MatchRecord:
    """Matching of one image (or a dataset) at one IoU threshold; see the module docstring."""

    threshold: float
    n_true: int
    n_pred: int
    tp: int
    fp: int
    fn: int
    precision: float
    recall: float
    f1: float
    ap: float
    mean_matched_iou: float
    panoptic_quality: float
    sum_matched_iou: float

    def as_dict(self) -> dict[str, Any]:
        """The record as a plain dict (JSON-ready)."""
        return asdict(self)


# --------------------------------------------------------------------------- overlaps


def _check_pair(truth: ArrayLike, pred: ArrayLike) -> tuple[NDArray[Any], NDArray[Any]]:
    arrays = []
    for name, value in (("truth", truth), ("pred", pred)):
        array = np.asarray(value)
        if array.dtype == np.bool_:
            array = array.astype(np.uint8)
        if array.ndim < 1 or not np.issubdtype(array.dtype, np.integer):
            raise LapsegInputError(
                f"{name} must be an integer label image, got shape {array.shape}, "
                f"dtype {array.dtype}"
            )
        if array.size and array.min() < 0:
            raise LapsegInputError(f"{name} has negative labels (0 is background)")
        arrays.append(array)
    if arrays[0].shape != arrays[1].shape:
        raise LapsegInputError(
            f"truth shape {arrays[0].shape} differs from prediction shape {arrays[1].shape}"
        )
    return arrays[0], arrays[1]


def _consecutive(labels: NDArray[Any]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Labels mapped to ``0..n`` (0 stays background) and the original id of each ``1..n``."""
    flat = labels.ravel()
    top = int(flat.max(initial=0))
    if top <= 4 * flat.size + 1024:  # lookup table; huge ids fall back to a sort
        present = np.bincount(flat, minlength=top + 1) > 0
        present[0] = False
        ids = np.flatnonzero(present)
        lut = np.zeros(top + 1, dtype=np.int64)
        lut[ids] = np.arange(1, ids.size + 1)
        return lut[flat], ids.astype(np.int64)
    ids, inverse = np.unique(flat, return_inverse=True)
    if ids.size and ids[0] == 0:
        return inverse.astype(np.int64), ids[1:].astype(np.int64)
    return inverse.astype(np.int64) + 1, ids.astype(np.int64)


def overlap_matrix(
    truth: ArrayLike, pred: ArrayLike
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
    """Pixel counts of every (truth label, predicted label) pair.

    Parameters
    ----------
    truth, pred : (Y, X) integer ndarray
        Label images of the same shape (any dimensionality works), 0 = background.

    Returns
    -------
    overlap : (n_true + 1, n_pred + 1) int64 ndarray
        ``overlap[i, j]`` pixels labelled with the i-th truth and j-th predicted object; row
        and column 0 are the background.
    truth_ids, pred_ids : (n_true,) and (n_pred,) int64 ndarray
        The original label of each row ``1..n_true`` and column ``1..n_pred``.
    """
    truth, pred = _check_pair(truth, pred)
    t, truth_ids = _consecutive(truth)
    p, pred_ids = _consecutive(pred)
    n_true, n_pred = truth_ids.size, pred_ids.size
    counts = np.bincount(t * (n_pred + 1) + p, minlength=(n_true + 1) * (n_pred + 1))
    return counts.reshape(n_true + 1, n_pred + 1).astype(np.int64), truth_ids, pred_ids


def _iou(overlap: NDArray[np.int64]) -> NDArray[np.float64]:
    """IoU of every object pair (background row and column dropped)."""
    area_true = overlap.sum(axis=1, keepdims=True)[1:]
    area_pred = overlap.sum(axis=0, keepdims=True)[:, 1:]
    inter = overlap[1:, 1:].astype(np.float64)
    union = area_true + area_pred - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


# --------------------------------------------------------------------------- SEG


def seg_measure(truth: ArrayLike, pred: ArrayLike) -> dict[str, Any]:
    """The Cell Tracking Challenge SEG measure of one image.

    Parameters
    ----------
    truth, pred : (Y, X) integer ndarray
        Reference and predicted label images, 0 = background.

    Returns
    -------
    result : dict
        ``seg`` (mean Jaccard over reference objects; NaN when there is none),
        ``n_objects`` (reference objects), ``jaccard_sum`` (sum of their Jaccard indices:
        datasets aggregate by summing this and ``n_objects``, see :func:`aggregate_seg`),
        ``labels`` (reference labels), ``jaccard`` (their Jaccard indices, in the same order)
        and ``matched`` (the predicted label covering more than half of each, 0 if none).
    """
    overlap, truth_ids, pred_ids = overlap_matrix(truth, pred)
    iou = _iou(overlap)
    inter = overlap[1:, 1:]
    area_true = overlap.sum(axis=1)[1:]
    rows = np.arange(truth_ids.size)
    jaccard = np.zeros(truth_ids.size)
    matched = np.zeros(truth_ids.size, dtype=np.int64)
    if pred_ids.size:
        # a prediction covering more than half of T has the largest overlap; at most one exists
        best = inter.argmax(axis=1)
        covered = 2 * inter[rows, best] > area_true
        jaccard[covered] = iou[rows[covered], best[covered]]
        matched[covered] = pred_ids[best[covered]]
    n = int(truth_ids.size)
    total = float(jaccard.sum())
    return {
        "seg": total / n if n else float("nan"),
        "n_objects": n,
        "jaccard_sum": total,
        "labels": truth_ids.tolist(),
        "jaccard": jaccard.astype(float).tolist(),
        "matched": [int(m) for m in matched],
    }


def aggregate_seg(results: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Dataset SEG from per-image :func:`seg_measure` results (every reference object counts once).

    Returns
    -------
    result : dict
        ``seg`` (NaN when the dataset has no reference object), ``n_objects``, ``jaccard_sum``.
    """
    n, total = 0, 0.0
    for result in results:
        n += int(result["n_objects"])
        total += float(result["jaccard_sum"])
    return {"seg": total / n if n else float("nan"), "n_objects": n, "jaccard_sum": total}


# --------------------------------------------------------------------------- matching


def _ratio(num: float, den: float, *, empty: bool) -> float:
    if den:
        return float(num) / float(den)
    return 1.0 if empty else 0.0


def _record(threshold: float, n_true: int, n_pred: int, tp: int, sum_iou: float) -> MatchRecord:
    fp, fn = n_pred - tp, n_true - tp
    empty = n_true == 0 and n_pred == 0
    return MatchRecord(
        threshold=float(threshold),
        n_true=int(n_true),
        n_pred=int(n_pred),
        tp=int(tp),
        fp=int(fp),
        fn=int(fn),
        precision=_ratio(tp, n_pred, empty=empty),
        recall=_ratio(tp, n_true, empty=empty),
        f1=_ratio(2 * tp, 2 * tp + fp + fn, empty=empty),
        ap=_ratio(tp, tp + fp + fn, empty=empty),
        mean_matched_iou=_ratio(sum_iou, tp, empty=empty),
        panoptic_quality=_ratio(sum_iou, tp + fp / 2 + fn / 2, empty=empty),
        sum_matched_iou=float(sum_iou),
    )


def _check_thresholds(thresholds: ArrayLike) -> list[float]:
    values = np.atleast_1d(np.asarray(thresholds, dtype=float))
    if values.ndim != 1 or values.size == 0 or not np.all((values >= 0) & (values < 1)):
        raise LapsegInputError(f"thresholds must be IoU values in [0, 1), got {thresholds!r}")
    return [float(v) for v in values]


def _match_count(iou: NDArray[np.float64], threshold: float) -> tuple[int, float]:
    """Number of one-to-one pairs with IoU > threshold (maximal), and their total IoU."""
    candidates = iou > threshold
    rows = np.flatnonzero(candidates.any(axis=1))
    cols = np.flatnonzero(candidates.any(axis=0))
    if rows.size == 0:
        return 0, 0.0
    sub = iou[np.ix_(rows, cols)]
    ok = sub > threshold
    # count first (each pair is worth 1), then IoU (all IoUs together are worth < 1)
    cost = -ok.astype(float) - sub / (2.0 * min(sub.shape))
    r, c = linear_sum_assignment(cost)
    keep = ok[r, c]
    return int(keep.sum()), float(sub[r, c][keep].sum())


def match_instances(
    truth: ArrayLike, pred: ArrayLike, *, thresholds: ArrayLike = DEFAULT_THRESHOLDS
) -> list[MatchRecord]:
    """One-to-one matching of predicted to reference objects at each IoU threshold.

    Parameters
    ----------
    truth, pred : (Y, X) integer ndarray
        Reference and predicted label images, 0 = background.
    thresholds : sequence of float, optional
        IoU thresholds in ``[0, 1)``; a pair matches when its IoU is strictly greater.

    Returns
    -------
    records : list of MatchRecord
        One per threshold, in the given order (definitions in the module docstring).
    """
    values = _check_thresholds(thresholds)
    overlap, truth_ids, pred_ids = overlap_matrix(truth, pred)
    iou = _iou(overlap)
    records = []
    for threshold in values:
        tp, sum_iou = _match_count(iou, threshold)
        records.append(_record(threshold, truth_ids.size, pred_ids.size, tp, sum_iou))
    return records


def aggregate_matches(per_image: Sequence[Sequence[MatchRecord]]) -> list[MatchRecord]:
    """Dataset records: tp, fp, fn and matched IoU summed over images, then the ratios.

    Parameters
    ----------
    per_image : sequence of list of MatchRecord
        :func:`match_instances` results of every image, all at the same thresholds.

    Returns
    -------
    records : list of MatchRecord
        One per threshold.
    """
    if not per_image:
        raise LapsegInputError("no images to aggregate")
    thresholds = [r.threshold for r in per_image[0]]
    if any([r.threshold for r in image] != thresholds for image in per_image):
        raise LapsegInputError("all images must be matched at the same thresholds")
    records = []
    for k, threshold in enumerate(thresholds):
        column = [image[k] for image in per_image]
        records.append(
            _record(
                threshold,
                sum(r.n_true for r in column),
                sum(r.n_pred for r in column),
                sum(r.tp for r in column),
                sum(r.sum_matched_iou for r in column),
            )
        )
    return records


# --------------------------------------------------------------------------- splits / merges


def split_merge_counts(truth: ArrayLike, pred: ArrayLike) -> dict[str, int]:
    """Merges and splits by the "more than half" rules of the module docstring.

    Returns
    -------
    counts : dict of str to int
        ``merges`` (predicted objects covering > 50 % of each of >= 2 reference objects),
        ``merged_objects`` (the reference objects involved), ``splits`` (reference objects
        holding > 50 % of each of >= 2 predicted objects), ``split_pieces`` (the predicted
        objects involved).
    """
    overlap, _, _ = overlap_matrix(truth, pred)
    inter = overlap[1:, 1:]
    area_true = overlap.sum(axis=1)[1:, None]
    area_pred = overlap.sum(axis=0)[None, 1:]
    covers_truth = 2 * inter > area_true  # P holds more than half of T
    inside_truth = 2 * inter > area_pred  # more than half of P lies in T
    per_pred = covers_truth.sum(axis=0)
    per_truth = inside_truth.sum(axis=1)
    return {
        "merges": int((per_pred >= 2).sum()),
        "merged_objects": int(per_pred[per_pred >= 2].sum()),
        "splits": int((per_truth >= 2).sum()),
        "split_pieces": int(per_truth[per_truth >= 2].sum()),
    }
