"""``lapseg evaluate --tracks``: CTC DET and TRA of a tracking result on disk.

The result is a CTC result folder (``NN_RES``: ``maskTTT.tif`` + ``res_track.txt``) or a movie
folder written by ``lapseg predict`` (``labels.tif`` + ``res_track.txt``); the reference is a
CTC tracking ground truth (``NN_GT/TRA`` with ``man_trackTTT.tif`` + ``man_track.txt``, or the
``NN_GT`` folder holding it).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import tifffile

from lapseg.errors import LapsegInputError
from lapseg.io.ctc import check_tracks, read_ctc_result, read_ctc_truth, read_track_table
from lapseg.io.files import write_text
from lapseg.metrics.tracking import TrackingScores, tracking_scores
from lapseg.tracking.consistency import temporal_consistency, track_ids_per_frame

__all__ = ["evaluate_tracks", "format_tracking"]

log = logging.getLogger(__name__)


def _result(path: Path) -> tuple[np.ndarray, np.ndarray]:
    if (path / "labels.tif").is_file() and (path / "res_track.txt").is_file():
        labels = np.asarray(tifffile.imread(path / "labels.tif"))
        return labels, check_tracks(labels, read_track_table(path / "res_track.txt"))
    if (path / "res_track.txt").is_file():
        return read_ctc_result(path)
    raise LapsegInputError(
        "not a tracking result: expected maskTTT.tif + res_track.txt (CTC) or labels.tif + "
        "res_track.txt (lapseg predict)",
        path=path,
    )


def evaluate_tracks(
    prediction: str | Path, truth: str | Path, *, out_dir: str | Path | None = None
) -> TrackingScores:
    """DET and TRA of the tracking in ``prediction`` against the reference ``truth``.

    Also logs the temporal consistency (one-frame tracks, gaps) of both; writes everything to
    ``tracking_summary.json`` in ``out_dir`` when given.
    """
    prediction, truth = Path(prediction), Path(truth)
    for path in (prediction, truth):
        if not path.is_dir():
            raise LapsegInputError("folder not found", path=path)
    reference = truth / "TRA" if (truth / "TRA").is_dir() else truth
    ref_labels, ref_tracks = read_ctc_truth(reference)
    labels, tracks = _result(prediction)
    if labels.shape != ref_labels.shape:
        raise LapsegInputError(
            f"the result has shape {labels.shape} (T, Y, X), the reference {ref_labels.shape}",
            path=prediction,
        )
    scores = tracking_scores(ref_labels, ref_tracks, labels, tracks)
    consistency = {
        "result": temporal_consistency(track_ids_per_frame(labels), tracks),
        "reference": temporal_consistency(track_ids_per_frame(ref_labels), ref_tracks),
    }
    for which, measured in consistency.items():
        log.info("%s %s", which, measured.summary())
    if out_dir is not None:
        summary = {
            "prediction": str(prediction),
            "truth": str(reference),
            **scores.as_dict(),
            "temporal_consistency": {k: v.as_dict() for k, v in consistency.items()},
        }
        write_text(Path(out_dir) / "tracking_summary.json", json.dumps(summary, indent=2) + "\n")
    return scores


def format_tracking(scores: TrackingScores) -> str:
    """Plain-text table of DET, TRA and the AOGM error counts."""
    return "\n".join(
        [
            f"DET {scores.det:.4f}   TRA {scores.tra:.4f}",
            f"reference: {scores.n_vertices} objects, {scores.n_edges} links",
            f"errors: {scores.fn} missed (FN), {scores.fp} false (FP), {scores.ns} splits needed "
            f"(NS), {scores.ed} wrong links (ED), {scores.ea} missing links (EA), "
            f"{scores.ec} link type changes (EC)",
        ]
    )
