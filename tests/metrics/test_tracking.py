"""CTC DET / TRA: hand-computed AOGM cases and a cross-check against py-ctcmetrics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lapseg.errors import LapsegInputError
from lapseg.io.ctc import read_ctc_truth, write_ctc_masks, write_ctc_result, write_track_table
from lapseg.metrics.tracking import AOGMWeights, match_objects, tracking_scores
from lapseg.tracking import moving_discs

# --- tiny hand-made trackings: one 2x2 square per object, frames of 4 x 8 pixels -------------


def _square(stack: np.ndarray, t: int, column: int, label: int) -> None:
    stack[t, 1:3, column : column + 2] = label


def _one_track() -> tuple[np.ndarray, np.ndarray]:
    """Track 1 in frames 0-2: 3 vertices, 2 edges; AOGM_0 = 30 + 3 = 33, AOGM-D_0 = 30."""
    stack = np.zeros((3, 4, 8), dtype=np.uint16)
    for t in range(3):
        _square(stack, t, 0, 1)
    return stack, np.array([[1, 0, 2, 0]])


def _two_tracks() -> tuple[np.ndarray, np.ndarray]:
    """Tracks 1 (left) and 2 (right) in frames 0-2: 6 vertices, 4 edges; AOGM_0 = 66."""
    stack, _ = _one_track()
    for t in range(3):
        _square(stack, t, 5, 2)
    return stack, np.array([[1, 0, 2, 0], [2, 0, 2, 0]])


def test_match_objects_needs_more_than_half_of_the_reference() -> None:
    ref = np.array([[1, 1, 1, 1, 0, 2, 2, 3]])
    res = np.array([[4, 4, 4, 0, 0, 4, 0, 0]])
    # 4 covers 3/4 of object 1 and 1/2 of object 2 (not more); nothing covers 3
    np.testing.assert_array_equal(match_objects(ref, res), [[1, 4]])


def test_match_objects_one_result_object_may_cover_several_references() -> None:
    ref = np.array([[1, 1, 2, 2, 0]])
    res = np.array([[9, 9, 9, 9, 9]])
    np.testing.assert_array_equal(match_objects(ref, res), [[1, 9], [2, 9]])


def test_identical_tracking_scores_one() -> None:
    ref, table = _two_tracks()
    scores = tracking_scores(ref, table, ref, table)
    assert (scores.det, scores.tra) == (1.0, 1.0)
    assert (scores.n_vertices, scores.n_edges, scores.aogm_0, scores.aogm_d0) == (6, 4, 66.0, 60.0)


def test_relabelled_result_scores_one() -> None:
    ref, table = _two_tracks()
    res = np.where(ref == 1, 7, np.where(ref == 2, 3, 0)).astype(np.uint16)
    scores = tracking_scores(ref, table, res, np.array([[7, 0, 2, 0], [3, 0, 2, 0]]))
    assert (scores.det, scores.tra) == (1.0, 1.0)


def test_missing_object_costs_a_false_negative_and_a_missing_edge() -> None:
    ref, table = _one_track()
    res = ref.copy()
    res[2] = 0
    scores = tracking_scores(ref, table, res, np.array([[1, 0, 1, 0]]))
    assert (scores.fn, scores.ea, scores.fp, scores.ns, scores.ed, scores.ec) == (1, 1, 0, 0, 0, 0)
    assert scores.aogm == 11.5  # 10 FN + 1.5 EA
    assert scores.tra == pytest.approx(1 - 11.5 / 33)
    assert scores.det == pytest.approx(1 - 10 / 30)


def test_extra_object_costs_a_false_positive() -> None:
    ref, table = _one_track()
    res = ref.copy()
    _square(res, 1, 5, 7)
    scores = tracking_scores(ref, table, res, np.vstack([table, [[7, 1, 1, 0]]]))
    assert (scores.fp, scores.aogm, scores.aogm_d) == (1, 1.0, 1.0)
    assert scores.tra == pytest.approx(1 - 1 / 33)
    assert scores.det == pytest.approx(1 - 1 / 30)


def test_broken_track_without_parent_misses_an_edge() -> None:
    ref, table = _one_track()
    res = ref.copy()
    res[1:][res[1:] == 1] = 2
    scores = tracking_scores(ref, table, res, np.array([[1, 0, 0, 0], [2, 1, 2, 0]]))
    assert (scores.ea, scores.ed, scores.ec) == (1, 0, 0)
    assert scores.tra == pytest.approx(1 - 1.5 / 33)
    assert scores.det == 1.0


def test_parent_link_instead_of_track_link_is_a_semantic_change() -> None:
    ref, table = _one_track()
    res = ref.copy()
    res[1:][res[1:] == 1] = 2
    scores = tracking_scores(ref, table, res, np.array([[1, 0, 0, 0], [2, 1, 2, 1]]))
    assert (scores.ea, scores.ed, scores.ec) == (0, 0, 1)
    assert scores.tra == pytest.approx(1 - 1 / 33)


def test_swapped_identities_cost_redundant_and_missing_edges() -> None:
    ref, table = _two_tracks()
    res = ref.copy()
    res[2] = np.where(ref[2] == 1, 2, np.where(ref[2] == 2, 1, 0))
    scores = tracking_scores(ref, table, res, table)
    assert (scores.ed, scores.ea, scores.ec, scores.fn, scores.fp) == (2, 2, 0, 0, 0)
    assert scores.tra == pytest.approx(1 - (2 * 1 + 2 * 1.5) / 66)
    assert scores.det == 1.0


def test_one_result_object_over_two_references_needs_a_split() -> None:
    ref, table = _two_tracks()
    res = ref.copy()
    res[0][ref[0] == 2] = 1  # frame 0: object 1 covers both references
    res_table = np.array([[1, 0, 2, 0], [2, 1, 2, 0]])
    scores = tracking_scores(ref, table, res, res_table)
    # edge 1(0)->1(1) starts at a non-unique match: left out, so both frame-0 edges are missing
    assert (scores.ns, scores.fn, scores.fp, scores.ea, scores.ed) == (1, 0, 0, 2, 0)
    assert scores.det == pytest.approx(1 - 5 / 60)
    assert scores.tra == pytest.approx(1 - (5 + 2 * 1.5) / 66)


def test_empty_result_scores_zero() -> None:
    ref, table = _one_track()
    scores = tracking_scores(ref, table, np.zeros_like(ref), np.zeros((0, 4), dtype=int))
    assert (scores.fn, scores.ea, scores.det, scores.tra) == (3, 2, 0.0, 0.0)


def test_scores_are_clipped_at_zero() -> None:
    ref = np.zeros((2, 4, 8), dtype=np.uint16)
    _square(ref, 0, 0, 1)
    res = np.zeros_like(ref)
    res[1, 0, :] = np.arange(1, 9)  # 8 false positives in frame 1
    res[1, 3, :3] = [9, 10, 11]  # 3 more
    res_table = np.array([[k, 1, 1, 0] for k in range(1, 12)])
    scores = tracking_scores(ref, [[1, 0, 0, 0]], res, res_table)
    assert scores.aogm == 21.0 > scores.aogm_0 == 10.0
    assert (scores.det, scores.tra) == (0.0, 0.0)


def test_custom_weights() -> None:
    ref, table = _one_track()
    res = ref.copy()
    res[2] = 0
    scores = tracking_scores(ref, table, res, [[1, 0, 1, 0]], weights=AOGMWeights(fn=1.0, ea=1.0))
    assert scores.aogm == 2.0
    assert scores.tra == pytest.approx(1 - 2 / (3 + 2))


def test_inputs_are_not_modified() -> None:
    ref, table = _two_tracks()
    res = ref.copy()
    res[2] = 0
    res_table = np.array([[1, 0, 1, 0], [2, 0, 1, 0]])
    copies = [a.copy() for a in (ref, table, res, res_table)]
    tracking_scores(ref, table, res, res_table)
    for before, after in zip(copies, (ref, table, res, res_table), strict=True):
        np.testing.assert_array_equal(before, after)


def test_bad_inputs_say_what_is_wrong() -> None:
    ref, table = _one_track()
    with pytest.raises(LapsegInputError, match="differ in shape"):
        tracking_scores(ref, table, ref[:2], table)
    with pytest.raises(LapsegInputError, match=r"^result: track 1 should be in frame 2"):
        tracking_scores(ref, table, np.where(np.arange(3)[:, None, None] < 2, ref, 0), table)
    with pytest.raises(LapsegInputError, match=r"^reference: label 1 in frame 0"):
        tracking_scores(ref, [[1, 1, 2, 0]], ref, table)
    empty = np.zeros_like(ref)
    with pytest.raises(LapsegInputError, match="reference has no objects"):
        tracking_scores(empty, np.zeros((0, 4), dtype=int), ref, table)


# --- cross-check against py-ctcmetrics -------------------------------------------------------


def _perturb(labels: np.ndarray, table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A valid result with every kind of error: a track removed, a track split with and without
    a parent link, identities swapped in one frame, one object merged into another (a split
    needed), a false positive."""
    labels = labels.copy()
    rows = {int(r[0]): [int(v) for v in r] for r in table}
    fresh = iter(range(int(labels.max()) + 1, 65535))
    long = [L for L, (_, B, E, _) in sorted(rows.items()) if E - B >= 4]

    def split(L: int, t: int, parent_link: bool) -> int:
        new = next(fresh)
        labels[t:][labels[t:] == L] = new
        _, _, E, _ = rows[L]
        rows[L][2] = t - 1
        for row in rows.values():
            if row[3] == L:
                row[3] = new
        rows[new] = [new, t, E, L if parent_link else 0]
        return new

    def present(t: int) -> list[int]:
        return [L for L, (_, B, E, _) in sorted(rows.items()) if B <= t <= E]

    removed = long[0]  # 1. a whole track removed
    labels[labels == removed] = 0
    del rows[removed]
    for row in rows.values():
        if row[3] == removed:
            row[3] = 0
    split(long[1], rows[long[1]][1] + 2, parent_link=True)  # 2. split, parent link (EC)
    split(long[2], rows[long[2]][1] + 2, parent_link=False)  # 3. split, no parent (EA)
    t = rows[long[3]][1] + 1  # 4. identities swapped in frame t (ED, EA)
    other = next(label for label in present(t) if label != long[3])
    frame = labels[t].copy()
    labels[t][frame == long[3]] = other
    labels[t][frame == other] = long[3]
    merged = long[4]  # 5. frame t: merged's object carries another label (NS)
    t = rows[merged][1] + 2
    into = next(label for label in present(t) if label != merged)
    split(merged, t + 1, parent_link=True)
    labels[t][labels[t] == merged] = into
    rows[merged][2] = t - 1
    fp = next(fresh)  # 6. a false positive
    ys, xs = np.nonzero(labels[0] == 0)
    labels[0, ys[0], xs[0]] = fp
    rows[fp] = [fp, 0, 0, 0]
    return labels, np.array(sorted(rows.values()), dtype=np.int64)


def _assert_same_as_py_ctcmetrics(
    tmp_path: Path, ref: np.ndarray, ref_table: np.ndarray, res: np.ndarray, res_table: np.ndarray
) -> None:
    from ctc_metrics.scripts.evaluate import evaluate_sequence

    gt = tmp_path / "01_GT"
    write_ctc_masks(gt / "TRA", ref, prefix="man_track")
    write_track_table(gt / "TRA" / "man_track.txt", ref_table)
    write_ctc_result(tmp_path / "01_RES", res, res_table)
    theirs = evaluate_sequence(str(tmp_path / "01_RES"), str(gt), ["DET", "TRA"], threads=1)
    ours = tracking_scores(ref, ref_table, res, res_table)
    assert ours.det == pytest.approx(theirs["DET"], abs=1e-6)
    assert ours.tra == pytest.approx(theirs["TRA"], abs=1e-6)
    assert ours.aogm == pytest.approx(theirs["AOGM"], abs=1e-9)
    got = (ours.ns, ours.fn, ours.fp, ours.ed, ours.ea, ours.ec)
    expected = tuple(int(theirs[f"AOGM_{k}"]) for k in ("NS", "FN", "FP", "ED", "EA", "EC"))
    assert got == expected


def test_perturbation_makes_every_kind_of_error() -> None:
    truth = moving_discs(n_frames=12, grid=(3, 3), n_divisions=3, rng=0)
    res, res_table = _perturb(truth.labels, truth.table)
    scores = tracking_scores(truth.labels, truth.table, res, res_table)
    assert min(scores.ns, scores.fn, scores.fp, scores.ed, scores.ea, scores.ec) >= 1
    assert 0.5 < scores.tra < scores.det < 1.0


@pytest.mark.parametrize("seed", [0, 1])
def test_synthetic_scores_equal_py_ctcmetrics(tmp_path: Path, seed: int) -> None:
    truth = moving_discs(n_frames=12, grid=(3, 3), n_divisions=3, rng=seed)
    res, res_table = _perturb(truth.labels, truth.table)
    _assert_same_as_py_ctcmetrics(tmp_path, truth.labels, truth.table, res, res_table)


@pytest.fixture
def hela_tra(shared_data: Path) -> tuple[np.ndarray, np.ndarray]:
    folder = shared_data / "ctc-DIC-C2DH-HeLa" / "01_GT" / "TRA"
    if not folder.is_dir():
        pytest.skip(f"{folder} is not available")
    return read_ctc_truth(folder)


@pytest.mark.slow
@pytest.mark.shared_data
def test_dic_hela_ground_truth_against_itself(
    tmp_path: Path, hela_tra: tuple[np.ndarray, np.ndarray]
) -> None:
    labels, table = hela_tra
    scores = tracking_scores(labels, table, labels, table)
    assert (scores.det, scores.tra) == (1.0, 1.0)
    assert (scores.n_vertices, scores.n_edges) == (1120, 1100)
    _assert_same_as_py_ctcmetrics(tmp_path, labels, table, labels, table)


@pytest.mark.slow
@pytest.mark.shared_data
def test_dic_hela_perturbed_equals_py_ctcmetrics(
    tmp_path: Path, hela_tra: tuple[np.ndarray, np.ndarray]
) -> None:
    labels, table = hela_tra
    res, res_table = _perturb(labels, table)
    scores = tracking_scores(labels, table, res, res_table)
    assert min(scores.ns, scores.fn, scores.fp, scores.ed, scores.ea, scores.ec) >= 1
    _assert_same_as_py_ctcmetrics(tmp_path, labels, table, res, res_table)
