"""Evaluate a folder of predicted instance label images against ground-truth label images.

Files are paired by exact stem with :func:`lapseg.metrics.evaluate.pair_predictions`. When the
prediction folder holds a ``labels/`` subfolder (what ``lapseg predict`` writes for instance
models: ``OUT/labels/<stem>.tif``) the label images are read from there.

Both sides are read with :func:`lapseg.io.images.read_mask` and made instances with
:func:`lapseg.data.masks.to_instances`: label images keep their objects (0 = background), while a
binary mask (values in {0, 1} or {0, 255}) is split into 4-connected components, so the masks of
a binary model can be scored as instances directly.

Outputs of :func:`evaluate_instance_folders` when ``out_dir`` is given:

* ``instances_per_image.csv``: one row per image: ``name``, ``n_true``, ``n_pred``, ``seg``,
  the split/merge counts, tp/fp/fn, precision, recall, f1, ap, mean_matched_iou and
  panoptic_quality at IoU 0.5 (``*@0.5``), ``ap@t`` at every threshold and ``ap_mean``;
* ``instances_summary.json``: the dataset SEG (every reference object counts once), the
  matching records summed over images at every threshold, the split/merge totals, ``ap_mean``,
  ``n_images``, ``unmatched_predictions`` and the ``definitions``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from lapseg.errors import LapsegInputError
from lapseg.io.files import write_csv, write_text
from lapseg.io.labels import to_instances
from lapseg.metrics.instance import (
    DEFAULT_THRESHOLDS,
    MatchRecord,
    aggregate_matches,
    aggregate_seg,
    match_instances,
    seg_measure,
    split_merge_counts,
)
from lapseg.metrics.pairing import pair_frames

__all__ = [
    "INSTANCE_DEFINITIONS",
    "InstanceEvaluation",
    "evaluate_instance_folders",
    "format_instance_table",
    "write_instance_evaluation",
]

INSTANCE_DEFINITIONS: dict[str, str] = {
    "seg": (
        "Cell Tracking Challenge SEG: per reference object the Jaccard index with the predicted "
        "object covering more than half of it (0 if none); the dataset value averages over all "
        "reference objects of all images"
    ),
    "matching": (
        "one-to-one pairs with IoU > threshold by optimal assignment (most pairs, then highest "
        "total IoU); tp, fp, fn are summed over images before the ratios (StarDist "
        "matching_dataset)"
    ),
    "ap": "tp / (tp + fp + fn) (the DSB 2018 'average precision' of StarDist and Cellpose)",
    "f1": "2 tp / (2 tp + fp + fn)",
    "panoptic_quality": "sum of matched IoU / (tp + fp / 2 + fn / 2) = SQ x RQ",
    "ap_mean": "mean of the dataset ap over the IoU thresholds",
    "merges": "predicted objects covering more than half of each of two or more reference objects",
    "splits": "reference objects holding more than half of each of two or more predicted objects",
    "empty": "a ratio 0 / 0 is 1 when an image has no object in truth nor prediction, else 0",
}
"""The ``definitions`` entry of ``instances_summary.json``."""

_LABEL_SUBFOLDER = "labels"
_SPLIT_MERGE_KEYS = ("merges", "merged_objects", "splits", "split_pieces")
_AT_KEYS = (
    "tp",
    "fp",
    "fn",
    "precision",
    "recall",
    "f1",
    "ap",
    "mean_matched_iou",
    "panoptic_quality",
)


@dataclass(frozen=True)
class InstanceEvaluation:
    """Instance metrics of one prediction folder against its ground truth.

    Attributes
    ----------
    per_image : list of dict
        One row per image (the columns of ``instances_per_image.csv``).
    seg : dict
        Dataset SEG: ``seg``, ``n_objects``, ``jaccard_sum`` (:func:`aggregate_seg`).
    matching : list of MatchRecord
        Dataset matching at each threshold (sums over images).
    split_merge : dict of str to int
        Split and merge counts summed over images.
    n_images : int
        Evaluated image pairs.
    unmatched_predictions : int
        Prediction files without a ground-truth file, skipped.
    """

    per_image: list[dict[str, Any]]
    seg: dict[str, Any]
    matching: list[MatchRecord]
    split_merge: dict[str, int]
    n_images: int
    unmatched_predictions: int

    @property
    def ap_mean(self) -> float:
        """Mean of the dataset ``ap`` over the thresholds."""
        return float(np.mean([r.ap for r in self.matching]))

    def at(self, threshold: float) -> MatchRecord:
        """The dataset record at ``threshold`` (e.g. 0.5)."""
        for record in self.matching:
            if math.isclose(record.threshold, threshold, abs_tol=1e-9):
                return record
        raise LapsegInputError(
            f"no matching at IoU threshold {threshold}; evaluated: "
            f"{', '.join(f'{r.threshold:g}' for r in self.matching)}"
        )


def _tag(threshold: float) -> str:
    return f"{threshold:.2f}".rstrip("0").rstrip(".") if threshold else "0"


def _image_row(
    name: str,
    seg: dict[str, Any],
    records: list[MatchRecord],
    counts: dict[str, int],
    main: int,
) -> dict[str, Any]:
    head = records[main]
    row: dict[str, Any] = {
        "name": name,
        "n_true": head.n_true,
        "n_pred": head.n_pred,
        "seg": seg["seg"],
        **counts,
    }
    tag = _tag(head.threshold)
    row.update({f"{key}@{tag}": getattr(head, key) for key in _AT_KEYS})
    row.update({f"ap@{_tag(r.threshold)}": r.ap for r in records})
    row["ap_mean"] = float(np.mean([r.ap for r in records]))
    return row


def evaluate_instance_folders(
    pred_dir: str | Path,
    truth_dir: str | Path,
    *,
    thresholds: ArrayLike = DEFAULT_THRESHOLDS,
    out_dir: str | Path | None = None,
) -> InstanceEvaluation:
    """SEG, matching (AP, F1, PQ) and split/merge counts of every predicted label image.

    Parameters
    ----------
    pred_dir : str or Path
        Folder of predicted label images, or a ``lapseg predict`` output folder (its
        ``labels/`` subfolder is used when present, else ``masks/`` as in
        :func:`pair_predictions`).
    truth_dir : str or Path
        Folder of ground-truth label images (0 = background).
    thresholds : sequence of float, optional
        IoU thresholds; the per-image CSV details the one closest to 0.5.
    out_dir : str or Path, optional
        If given, write ``instances_per_image.csv`` and ``instances_summary.json`` there.

    Returns
    -------
    result : InstanceEvaluation

    Raises
    ------
    LapsegInputError
        For the pairing errors of :func:`pair_predictions`, unreadable masks, or a prediction
        whose shape differs from its ground truth.
    """
    pairs, unmatched = pair_frames(pred_dir, truth_dir, prefer="labels")
    values = [float(t) for t in np.atleast_1d(np.asarray(thresholds, dtype=float))]
    main = int(np.argmin([abs(t - 0.5) for t in values])) if values else 0
    rows, segs, records = [], [], []
    totals = dict.fromkeys(_SPLIT_MERGE_KEYS, 0)
    for pair in pairs:
        truth = to_instances(pair.read_truth())
        pred = to_instances(pair.read_prediction())
        if truth.shape != pred.shape:
            raise LapsegInputError(
                f"prediction shape {pred.shape} differs from ground truth {pair.truth} "
                f"shape {truth.shape}",
                path=pair.prediction,
            )
        seg = seg_measure(truth, pred)
        matched = match_instances(truth, pred, thresholds=values)
        counts = split_merge_counts(truth, pred)
        for key in totals:
            totals[key] += counts[key]
        segs.append(seg)
        records.append(matched)
        rows.append(_image_row(pair.name, seg, matched, counts, main))
    result = InstanceEvaluation(
        per_image=rows,
        seg=aggregate_seg(segs),
        matching=aggregate_matches(records),
        split_merge=totals,
        n_images=len(pairs),
        unmatched_predictions=unmatched,
    )
    if out_dir is not None:
        write_instance_evaluation(result, out_dir)
    return result


def _json_safe(value: Any) -> Any:
    """NaN (SEG of an image without reference objects) becomes null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def write_instance_evaluation(result: InstanceEvaluation, out_dir: str | Path) -> dict[str, Path]:
    """Write ``instances_per_image.csv`` and ``instances_summary.json`` atomically.

    Returns
    -------
    paths : dict of str to Path
        ``{"per_image": ..., "summary": ...}``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "per_image": out_dir / "instances_per_image.csv",
        "summary": out_dir / "instances_summary.json",
    }
    write_csv(paths["per_image"], result.per_image, float_format=None)
    summary = {
        "n_images": result.n_images,
        "unmatched_predictions": result.unmatched_predictions,
        "seg": result.seg,
        "ap_mean": result.ap_mean,
        "split_merge": result.split_merge,
        "matching": [r.as_dict() for r in result.matching],
        "definitions": INSTANCE_DEFINITIONS,
    }
    write_text(paths["summary"], json.dumps(_json_safe(summary), indent=2, allow_nan=False) + "\n")
    return paths


def format_instance_table(result: InstanceEvaluation) -> str:
    """Plain-text summary: SEG, split/merge counts, then one matching row per threshold.

    Parameters
    ----------
    result : InstanceEvaluation

    Returns
    -------
    table : str
        Lines without trailing newline, e.g. ``SEG 0.7712 over 97 reference objects`` followed
        by ``IoU  TP  FP  FN  precision  recall  F1  AP  mIoU  PQ`` rows.
    """
    seg = result.seg
    seg_text = "n/a" if not math.isfinite(seg["seg"]) else f"{seg['seg']:.4f}"
    sm = result.split_merge
    lines = [
        f"{result.n_images} image(s) evaluated, "
        f"{result.unmatched_predictions} prediction(s) without ground truth skipped",
        f"SEG {seg_text} over {seg['n_objects']} reference object(s)",
        f"merges {sm['merges']} ({sm['merged_objects']} objects), "
        f"splits {sm['splits']} ({sm['split_pieces']} pieces), "
        f"AP mean over thresholds {result.ap_mean:.4f}",
    ]
    header = ("IoU", "TP", "FP", "FN", "precision", "recall", "F1", "AP", "mIoU", "PQ")
    table: list[tuple[str, ...]] = [header]
    for r in result.matching:
        table.append(
            (
                f"{r.threshold:.2f}",
                str(r.tp),
                str(r.fp),
                str(r.fn),
                *(
                    f"{v:.4f}"
                    for v in (
                        r.precision,
                        r.recall,
                        r.f1,
                        r.ap,
                        r.mean_matched_iou,
                        r.panoptic_quality,
                    )
                ),
            )
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines += [
        "  ".join(f"{cell:>{w}}" for cell, w in zip(row, widths, strict=True)) for row in table
    ]
    return "\n".join(lines)
