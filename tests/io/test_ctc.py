"""CTC tracking files: names, track tables, masks, validity, and py-ctcmetrics reading them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from lapseg.errors import LapsegInputError
from lapseg.io import ctc
from lapseg.io.ctc import (
    check_tracks,
    mask_name,
    read_ctc_masks,
    read_ctc_result,
    read_ctc_truth,
    read_track_table,
    write_ctc_masks,
    write_ctc_result,
    write_track_table,
)
from lapseg.tracking import link_instances, moving_discs, scramble_labels


def _stack_and_table() -> tuple[np.ndarray, np.ndarray]:
    """3 frames: track 1 in 0-1 divides into 2 and 3 in frame 2; track 4 in 0-2."""
    labels = np.zeros((3, 8, 8), dtype=np.uint16)
    labels[0:2, 1:3, 1:3] = 1
    labels[2, 1:3, 1:2] = 2
    labels[2, 1:3, 2:3] = 3
    labels[:, 5:7, 5:7] = 4
    table = np.array([[1, 0, 1, 0], [2, 2, 2, 1], [3, 2, 2, 1], [4, 0, 2, 0]])
    return labels, table


def ctc_metrics_scores(res: Path, gt: Path) -> dict:
    """DET and TRA by py-ctcmetrics (res: mask*.tif + res_track.txt; gt: TRA/man_track*)."""
    from ctc_metrics.scripts.evaluate import evaluate_sequence

    return evaluate_sequence(str(res), str(gt), ["DET", "TRA"], threads=1)


def test_mask_name_uses_3_digits_up_to_1000_frames_then_4() -> None:
    assert mask_name(0, 1) == "mask000.tif"
    assert mask_name(999, 1000) == "mask999.tif"
    assert mask_name(1000, 1001) == "mask1000.tif"
    assert mask_name(5, 1001) == "mask0005.tif"
    assert mask_name(12, 84, prefix="man_track") == "man_track012.tif"


def test_track_table_round_trip_and_exact_text(tmp_path: Path) -> None:
    table = np.array([[4, 0, 2, 0], [1, 0, 1, 0], [2, 2, 2, 1]])
    path = write_track_table(tmp_path / "res_track.txt", table)
    assert path.read_text() == "1 0 1 0\n2 2 2 1\n4 0 2 0\n"
    back = read_track_table(path)
    assert back.dtype == np.int64
    np.testing.assert_array_equal(back, table[np.argsort(table[:, 0])])
    assert [p.name for p in tmp_path.iterdir()] == ["res_track.txt"]  # no temporary left


def test_read_track_table_accepts_tabs_and_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "man_track.txt"
    path.write_text("1\t0\t5\t0\n\n2 6 9 1  \n")
    np.testing.assert_array_equal(read_track_table(path), [[1, 0, 5, 0], [2, 6, 9, 1]])


def test_read_track_table_empty_file_gives_no_rows(tmp_path: Path) -> None:
    path = tmp_path / "res_track.txt"
    path.write_text("")
    assert read_track_table(path).shape == (0, 4)


@pytest.mark.parametrize("line", ["1 0 5", "1 0 5 0 3", "1 0 x 0"])
def test_read_track_table_names_the_bad_line(tmp_path: Path, line: str) -> None:
    path = tmp_path / "res_track.txt"
    path.write_text(f"2 0 1 0\n{line}\n")
    with pytest.raises(LapsegInputError, match=r"res_track.txt: line 2 is not 'L B E P'"):
        read_track_table(path)


def test_read_track_table_missing_file(tmp_path: Path) -> None:
    with pytest.raises(LapsegInputError, match="track table not found"):
        read_track_table(tmp_path / "man_track.txt")


def test_write_ctc_masks_writes_uint16_frames_and_reads_back(tmp_path: Path) -> None:
    labels, _ = _stack_and_table()
    paths = write_ctc_masks(tmp_path / "01_RES", labels.astype(np.int32))
    assert [p.name for p in paths] == ["mask000.tif", "mask001.tif", "mask002.tif"]
    assert sorted(p.name for p in (tmp_path / "01_RES").iterdir()) == [p.name for p in paths]
    first = tifffile.imread(paths[0])
    assert first.dtype == np.uint16
    np.testing.assert_array_equal(read_ctc_masks(tmp_path / "01_RES"), labels)


def test_write_ctc_masks_is_atomic_on_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    labels, _ = _stack_and_table()
    write_ctc_masks(tmp_path, labels)
    before = (tmp_path / "mask000.tif").read_bytes()

    def broken(path: Path, data: np.ndarray, **kwargs: object) -> None:
        Path(path).write_bytes(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(ctc.tifffile, "imwrite", broken)
    with pytest.raises(OSError, match="disk full"):
        write_ctc_masks(tmp_path, labels + 1)
    assert (tmp_path / "mask000.tif").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "mask000.tif",
        "mask001.tif",
        "mask002.tif",
    ]


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (np.zeros((4, 4), dtype=np.uint16), r"\(T, Y, X\) with T >= 1"),
        (np.zeros((0, 4, 4), dtype=np.uint16), r"\(T, Y, X\) with T >= 1"),
        (np.zeros((1, 4, 4), dtype=np.float32), "integers"),
        (np.full((1, 4, 4), 70000, dtype=np.int32), "0-65535"),
    ],
)
def test_write_ctc_masks_refuses_bad_stacks(
    tmp_path: Path, labels: np.ndarray, message: str
) -> None:
    with pytest.raises(LapsegInputError, match=message):
        write_ctc_masks(tmp_path, labels)


def test_read_ctc_masks_refuses_a_gap_in_frame_numbers(tmp_path: Path) -> None:
    labels, _ = _stack_and_table()
    write_ctc_masks(tmp_path, labels)
    (tmp_path / "mask001.tif").unlink()
    with pytest.raises(LapsegInputError, match="frame 1 is missing"):
        read_ctc_masks(tmp_path)
    with pytest.raises(LapsegInputError, match=r"no man_trackTTT\.tif files"):
        read_ctc_masks(tmp_path, prefix="man_track")


def test_check_tracks_accepts_a_valid_pair_and_sorts() -> None:
    labels, table = _stack_and_table()
    np.testing.assert_array_equal(check_tracks(labels, table[::-1]), table)


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([[1, 0, 1, 0], [1, 2, 2, 0], [3, 2, 2, 1], [4, 0, 2, 0]], "track 1 appears twice"),
        ([[1, 0, 1, 0], [2, 2, 2, 9], [3, 2, 2, 1], [4, 0, 2, 0]], "parent 9, which is not in"),
        (
            [[1, 0, 2, 0], [2, 2, 2, 1], [3, 2, 2, 1], [4, 0, 2, 0]],
            "begins in frame 2 but its parent 1 ends in frame 2",
        ),
        ([[1, 0, 1, 0], [2, 2, 2, -1], [3, 2, 2, 1], [4, 0, 2, 0]], "negative parent"),
        ([[1, 0, 1, 0], [2, 2, 1, 1], [3, 2, 2, 1], [4, 0, 2, 0]], "track 2 spans frames 2-1"),
        ([[1, 0, 1, 0], [2, 2, 3, 1], [3, 2, 2, 1], [4, 0, 2, 0]], "track 2 spans frames 2-3"),
        (
            [[1, 0, 1, 0], [2, 2, 2, 1], [3, 2, 2, 1], [4, 0, 2, 0], [5, 1, 1, 0]],
            "track 5 should be in frame 1",
        ),
        ([[1, 0, 1, 0], [2, 2, 2, 1], [4, 0, 2, 0]], "label 3 in frame 2 is not a track"),
        ([[0, 0, 1, 0]], "labels must be > 0"),
        ([[1, 0, 1]], r"must be \(N, 4\)"),
    ],
)
def test_check_tracks_names_the_broken_rule(rows: list[list[int]], message: str) -> None:
    labels, _ = _stack_and_table()
    with pytest.raises(LapsegInputError, match=message):
        check_tracks(labels, np.array(rows))


def test_write_ctc_result_refuses_an_invalid_pair_and_writes_nothing(tmp_path: Path) -> None:
    labels, table = _stack_and_table()
    with pytest.raises(LapsegInputError, match="label 3 in frame 2"):
        write_ctc_result(tmp_path / "01_RES", labels, table[[0, 1, 3]])
    assert not (tmp_path / "01_RES").exists()


def test_ctc_result_round_trip(tmp_path: Path) -> None:
    labels, table = _stack_and_table()
    path = write_ctc_result(tmp_path / "01_RES", labels, table)
    assert path == tmp_path / "01_RES" / "res_track.txt"
    back_labels, back_table = read_ctc_result(tmp_path / "01_RES")
    np.testing.assert_array_equal(back_labels, labels)
    np.testing.assert_array_equal(back_table, table)


def test_files_written_from_the_tracker_give_tra_1_in_py_ctcmetrics(tmp_path: Path) -> None:
    truth = moving_discs(n_frames=6, grid=(2, 2), rng=3)
    gt = tmp_path / "01_GT"
    write_ctc_masks(gt / "TRA", truth.labels, prefix="man_track")
    write_track_table(gt / "TRA" / "man_track.txt", truth.table)
    result = link_instances(scramble_labels(truth.labels, rng=3))
    write_ctc_result(tmp_path / "01_RES", result.labels, result.table)
    scores = ctc_metrics_scores(tmp_path / "01_RES", gt)
    assert scores["DET"] == 1.0
    assert scores["TRA"] == 1.0


@pytest.mark.shared_data
def test_read_ctc_truth_on_dic_hela(shared_data: Path) -> None:
    tra = shared_data / "ctc-DIC-C2DH-HeLa" / "01_GT" / "TRA"
    if not tra.is_dir():
        pytest.skip(f"{tra} is not available")
    labels, table = read_ctc_truth(tra)
    assert labels.shape == (84, 512, 512)
    assert labels.dtype == np.uint16
    assert table.shape == (38, 4)
    np.testing.assert_array_equal(table[:3], [[1, 0, 29, 0], [3, 30, 83, 1], [4, 30, 83, 1]])
