"""``lapseg evaluate --tracks``: DET/TRA of result folders against CTC tracking truth."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile

from lapseg.cli import main
from lapseg.errors import LapsegInputError
from lapseg.io.ctc import write_ctc_masks, write_ctc_result, write_track_table
from lapseg.metrics.evaluate_tracks import evaluate_tracks
from lapseg.tracking import moving_discs


@pytest.fixture
def truth(tmp_path: Path):
    tracks = moving_discs(n_frames=6, grid=(2, 2), radius=5.0, step=2.0, n_divisions=1, rng=2)
    tra = tmp_path / "01_GT" / "TRA"
    write_ctc_masks(tra, tracks.labels, prefix="man_track")
    write_track_table(tra / "man_track.txt", tracks.table)
    return tracks


def test_a_perfect_result_scores_one_in_both_layouts(tmp_path: Path, truth, capsys) -> None:
    write_ctc_result(tmp_path / "01_RES", truth.labels, truth.table)
    scores = evaluate_tracks(tmp_path / "01_RES", tmp_path / "01_GT", out_dir=tmp_path / "e")
    assert scores.tra == 1.0 and scores.det == 1.0
    summary = json.loads((tmp_path / "e" / "tracking_summary.json").read_text())
    consistency = summary["temporal_consistency"]
    assert consistency["result"] == consistency["reference"]
    assert consistency["result"]["flickers"] == 0 and consistency["result"]["gaps"] == 0
    movie = tmp_path / "movie"
    movie.mkdir()
    tifffile.imwrite(movie / "labels.tif", truth.labels, metadata={"axes": "TYX"})
    write_track_table(movie / "res_track.txt", truth.table)
    code = main(["evaluate", "--tracks", "--pred", str(movie), "--truth", str(tmp_path / "01_GT")])
    assert code == 0 and "TRA 1.0000" in capsys.readouterr().out


def test_a_missed_track_lowers_det_and_tra(tmp_path: Path, truth) -> None:
    lost = int(truth.table[0, 0])  # remove a whole track; its daughters lose their parent
    labels = np.where(truth.labels == lost, 0, truth.labels).astype(truth.labels.dtype)
    table = truth.table[truth.table[:, 0] != lost].copy()
    table[table[:, 3] == lost, 3] = 0
    write_ctc_result(tmp_path / "01_RES", labels, table)
    scores = evaluate_tracks(tmp_path / "01_RES", tmp_path / "01_GT")
    assert scores.fn > 0 and scores.det < 1.0 and scores.tra < 1.0
    with pytest.raises(LapsegInputError, match="not a tracking result"):
        evaluate_tracks(tmp_path, tmp_path / "01_GT")
