"""Tests for lapseg.metrics.instance against hand-computed values and independent references."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import tifffile

from lapseg.errors import LapsegInputError
from lapseg.metrics.instance import (
    DEFAULT_THRESHOLDS,
    aggregate_matches,
    aggregate_seg,
    match_instances,
    overlap_matrix,
    seg_measure,
    split_merge_counts,
)

# --------------------------------------------------------------------------- references


def _reference_seg(truth: np.ndarray, pred: np.ndarray) -> list[float]:
    """Straightforward per-object loop of the CTC definition."""
    values = []
    for t in np.unique(truth[truth > 0]):
        obj = truth == t
        best = 0.0
        for p in np.unique(pred[obj]):
            if p == 0:
                continue
            other = pred == p
            inter = np.sum(obj & other)
            if inter > 0.5 * obj.sum():
                best = inter / np.sum(obj | other)
        values.append(float(best))
    return values


def _reference_tp(truth: np.ndarray, pred: np.ndarray, threshold: float) -> int:
    """Largest one-to-one matching with IoU > threshold, by trying every assignment."""
    ts = [t for t in np.unique(truth) if t]
    ps = [p for p in np.unique(pred) if p]
    iou = np.zeros((len(ts), len(ps)))
    for i, t in enumerate(ts):
        for j, p in enumerate(ps):
            a, b = truth == t, pred == p
            iou[i, j] = np.sum(a & b) / np.sum(a | b)
    best = 0
    small, large = (ts, ps) if len(ts) <= len(ps) else (ps, ts)
    for perm in itertools.permutations(range(len(large)), len(small)):
        pairs = zip(range(len(small)), perm, strict=True)
        if len(ts) <= len(ps):
            count = sum(iou[i, j] > threshold for i, j in pairs)
        else:
            count = sum(iou[j, i] > threshold for i, j in pairs)
        best = max(best, count)
    return best


def _random_labels(rng: np.random.Generator, shape=(24, 24), n=5) -> np.ndarray:
    labels = np.zeros(shape, dtype=np.int32)
    for k in range(1, n + 1):
        y, x = rng.integers(0, shape[0] - 4, size=2)
        labels[y : y + rng.integers(3, 9), x : x + rng.integers(3, 9)] = k
    return labels


# --------------------------------------------------------------------------- overlaps


def test_overlap_matrix_by_hand_with_sparse_labels():
    truth = np.array([[0, 5, 5], [0, 9, 9]])
    pred = np.array([[3, 3, 0], [0, 0, 7]])
    overlap, t_ids, p_ids = overlap_matrix(truth, pred)
    np.testing.assert_array_equal(t_ids, [5, 9])
    np.testing.assert_array_equal(p_ids, [3, 7])
    np.testing.assert_array_equal(overlap, [[1, 1, 0], [1, 1, 0], [1, 0, 1]])


def test_overlap_matrix_huge_label_values():
    truth = np.array([[0, 2**40, 2**40], [1, 1, 0]], dtype=np.int64)
    overlap, t_ids, _ = overlap_matrix(truth, truth)
    np.testing.assert_array_equal(t_ids, [1, 2**40])
    np.testing.assert_array_equal(np.diag(overlap), [2, 2, 2])


# --------------------------------------------------------------------------- SEG


def test_seg_by_hand():
    truth = np.zeros((4, 8), dtype=np.uint16)
    truth[:, 0:4] = 1  # 16 px
    truth[:, 4:8] = 2  # 16 px
    pred = np.zeros_like(truth)
    pred[:, 0:3] = 4  # 12 px inside cell 1: covers 75 % -> J = 12 / 16
    pred[0:2, 4:8] = 6  # 8 px = exactly half of cell 2: not more than half -> 0
    result = seg_measure(truth, pred)
    assert result["jaccard"] == [0.75, 0.0]
    assert result["matched"] == [4, 0]
    assert result["labels"] == [1, 2]
    assert result["n_objects"] == 2
    assert result["seg"] == pytest.approx(0.375)
    assert result["jaccard_sum"] == pytest.approx(0.75)


def test_seg_ignores_unannotated_predictions_and_handles_empty():
    truth = np.zeros((6, 6), np.uint8)
    truth[0:3, 0:3] = 1
    pred = truth.copy()
    pred[4:6, 4:6] = 2  # a cell missing from partial ground truth costs nothing
    assert seg_measure(truth, pred)["seg"] == 1.0
    assert np.isnan(seg_measure(np.zeros((3, 3), np.uint8), pred[:3, :3])["seg"])
    assert seg_measure(truth, np.zeros_like(truth))["seg"] == 0.0


@pytest.mark.parametrize("seed", range(5))
def test_seg_matches_per_object_reference(seed):
    rng = np.random.default_rng(seed)
    truth = _random_labels(rng)
    pred = np.where(rng.random(truth.shape) < 0.9, truth, 0)
    pred = np.roll(pred, rng.integers(-2, 3), axis=1) * 3  # shifted, relabelled
    np.testing.assert_allclose(seg_measure(truth, pred)["jaccard"], _reference_seg(truth, pred))


def test_aggregate_seg_counts_every_object_once():
    a = {"n_objects": 3, "jaccard_sum": 2.4}
    b = {"n_objects": 1, "jaccard_sum": 0.0}
    assert aggregate_seg([a, b])["seg"] == pytest.approx(0.6)  # not (0.8 + 0) / 2
    assert np.isnan(aggregate_seg([])["seg"])


# --------------------------------------------------------------------------- SEG vs py-ctcmetrics


def _ctc_seg(tmp_path: Path, truth: np.ndarray, pred: np.ndarray) -> float:
    representations = pytest.importorskip("ctc_metrics.utils.representations")
    seg_module = pytest.importorskip("ctc_metrics.metrics.technical.seg")
    ref_path, comp_path = tmp_path / "ref.tif", tmp_path / "comp.tif"
    tifffile.imwrite(ref_path, truth.astype(np.uint16))
    tifffile.imwrite(comp_path, pred.astype(np.uint16))
    labels_ref, _, _, _, iou = representations.match(str(ref_path), str(comp_path))
    return float(seg_module.seg([labels_ref], [iou]))


@pytest.mark.parametrize("seed", range(3))
def test_seg_equals_py_ctcmetrics_on_synthetic(tmp_path, seed):
    rng = np.random.default_rng(seed)
    truth = _random_labels(rng, shape=(32, 32), n=6)
    pred = np.where(rng.random(truth.shape) < 0.85, truth, 0)
    pred = np.roll(pred, 1, axis=0)
    pred[pred == 2] = 0  # a missed cell
    pred[25:30, 25:30] = 9  # a false positive
    ours = seg_measure(truth, pred)["seg"]
    assert ours == pytest.approx(_ctc_seg(tmp_path, truth, pred), abs=1e-12)


@pytest.mark.shared_data
def test_seg_equals_py_ctcmetrics_on_ctc_hela(shared_data, tmp_path):
    root = shared_data / "ctc-DIC-C2DH-HeLa"
    frames = sorted((root / "02_GT" / "SEG").glob("man_seg*.tif"))[:3]
    if not frames:
        pytest.skip("DIC-C2DH-HeLa ground truth not available")
    for gt_path in frames:
        st_path = root / "02_ST" / "SEG" / gt_path.name
        truth, pred = tifffile.imread(gt_path), tifffile.imread(st_path)
        ours = seg_measure(truth, pred)
        assert 0.9 < ours["seg"] < 1.0  # silver truth: a good segmentation of the same cells
        assert ours["seg"] == pytest.approx(_ctc_seg(tmp_path, truth, pred), abs=1e-12)


# --------------------------------------------------------------------------- matching


def test_match_by_hand_and_record_fields():
    truth = np.zeros((4, 12), np.uint8)
    truth[:, 0:4] = 1  # 16 px
    truth[:, 4:8] = 2  # 16 px
    truth[:, 8:12] = 3  # 16 px, missed
    pred = np.zeros_like(truth)
    pred[:, 0:4] = 1  # IoU 1
    pred[:, 5:8] = 2  # 12 px inside cell 2: IoU 0.75
    pred[0, 0] = 0  # cell 1 now IoU 15/16
    rec50, rec80, rec95 = match_instances(truth, pred, thresholds=[0.5, 0.8, 0.95])
    assert (rec50.tp, rec50.fp, rec50.fn) == (2, 0, 1)
    assert rec50.precision == 1.0
    assert rec50.recall == pytest.approx(2 / 3)
    assert rec50.f1 == pytest.approx(0.8)
    assert rec50.ap == pytest.approx(2 / 3)
    assert rec50.mean_matched_iou == pytest.approx((15 / 16 + 0.75) / 2)
    assert rec50.panoptic_quality == pytest.approx((15 / 16 + 0.75) / (2 + 0.5))
    assert rec50.panoptic_quality == pytest.approx(rec50.mean_matched_iou * rec50.f1)
    assert (rec80.tp, rec80.fp, rec80.fn) == (1, 1, 2)
    assert rec80.ap == pytest.approx(1 / 4)
    assert rec95.tp == 0 and rec95.mean_matched_iou == 0.0 and rec95.ap == 0.0
    assert rec50.as_dict()["threshold"] == 0.5


def test_iou_exactly_at_threshold_does_not_match():
    truth = np.array([[1, 1, 0, 0]])
    pred = np.array([[1, 0, 0, 0]])  # IoU 0.5
    assert match_instances(truth, pred, thresholds=[0.5])[0].tp == 0
    assert match_instances(truth, pred, thresholds=[0.45])[0].tp == 1


def test_low_threshold_needs_optimal_assignment():
    # greedy by IoU pairs T1-P2 (0.6) and leaves T2 and P1 unmatched; the optimum pairs both
    truth = np.array([[1, 1, 1, 1, 1, 2, 2, 0, 0, 0]])
    pred = np.array([[1, 1, 0, 2, 2, 2, 0, 0, 0, 0]])
    # IoU(T1,P1)=2/5, IoU(T1,P2)=2/6, IoU(T2,P2)=1/4, IoU(T2,P1)=0
    rec = match_instances(truth, pred, thresholds=[0.2])[0]
    assert rec.tp == 2 == _reference_tp(truth, pred, 0.2)
    assert rec.sum_matched_iou == pytest.approx(2 / 5 + 1 / 4)


@pytest.mark.parametrize("seed", range(6))
def test_tp_equals_brute_force_on_random_cases(seed):
    rng = np.random.default_rng(seed)
    truth = _random_labels(rng, n=4)
    pred = _random_labels(rng, n=4)
    pred = np.where(rng.random(truth.shape) < 0.5, truth, pred)
    for threshold in (0.1, 0.3, 0.5, 0.7):
        got = match_instances(truth, pred, thresholds=[threshold])[0].tp
        assert got == _reference_tp(truth, pred, threshold)


def test_empty_images_conventions():
    empty = np.zeros((5, 5), np.uint8)
    rec = match_instances(empty, empty, thresholds=[0.5])[0]
    assert (rec.tp, rec.fp, rec.fn) == (0, 0, 0)
    assert rec.precision == rec.recall == rec.f1 == rec.ap == rec.panoptic_quality == 1.0
    cells = empty.copy()
    cells[1:3, 1:3] = 1
    missed = match_instances(cells, empty, thresholds=[0.5])[0]
    assert (missed.fn, missed.precision, missed.recall, missed.ap) == (1, 0.0, 0.0, 0.0)
    spurious = match_instances(empty, cells, thresholds=[0.5])[0]
    assert (spurious.fp, spurious.precision, spurious.recall) == (1, 0.0, 0.0)


def test_default_thresholds_and_identity():
    assert DEFAULT_THRESHOLDS == (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)
    labels = _random_labels(np.random.default_rng(3))
    records = match_instances(labels, labels * 2)
    assert [r.threshold for r in records] == list(DEFAULT_THRESHOLDS)
    assert all(r.ap == 1.0 and r.mean_matched_iou == 1.0 for r in records)


def test_aggregate_matches_sums_counts_over_images():
    truth_a = np.zeros((4, 8), np.uint8)
    truth_a[:, :4] = 1
    truth_a[:, 4:] = 2
    truth_b = np.zeros((4, 24), np.uint8)
    for k in range(6):
        truth_b[:, 4 * k : 4 * k + 3] = k + 1
    a = match_instances(truth_a, truth_a, thresholds=[0.5, 0.9])  # ap 1 (2 tp)
    b = match_instances(truth_b, np.zeros_like(truth_b), thresholds=[0.5, 0.9])  # ap 0 (6 fn)
    total = aggregate_matches([a, b])
    assert [r.threshold for r in total] == [0.5, 0.9]
    assert (total[0].tp, total[0].fp, total[0].fn) == (2, 0, 6)
    assert total[0].ap == pytest.approx(2 / 8)  # summed counts, not the mean 0.5 of images
    assert total[0].mean_matched_iou == 1.0
    assert total[0].n_true == 8 and total[0].n_pred == 2
    with pytest.raises(LapsegInputError):
        aggregate_matches([a, match_instances(truth_a, truth_a, thresholds=[0.5])])
    with pytest.raises(LapsegInputError):
        aggregate_matches([])


# --------------------------------------------------------------------------- splits / merges


def test_split_and_merge_counts_by_hand():
    truth = np.zeros((4, 16), np.uint8)
    truth[:, 0:4] = 1
    truth[:, 4:8] = 2  # cells 1 and 2 merged by prediction 1
    truth[:, 8:16] = 3  # cell 3 split into predictions 2, 3, 4
    pred = np.zeros_like(truth)
    pred[:, 0:8] = 1
    pred[:, 8:11] = 2
    pred[:, 11:14] = 3
    pred[:, 14:16] = 4
    counts = split_merge_counts(truth, pred)
    assert counts == {"merges": 1, "merged_objects": 2, "splits": 1, "split_pieces": 3}
    assert split_merge_counts(truth, truth) == {
        "merges": 0,
        "merged_objects": 0,
        "splits": 0,
        "split_pieces": 0,
    }


@pytest.mark.parametrize(
    ("truth", "pred"),
    [
        (np.zeros((3, 3), np.uint8), np.zeros((3, 4), np.uint8)),
        (np.zeros((3, 3), np.float32), np.zeros((3, 3), np.uint8)),
        (-np.ones((3, 3), np.int32), np.zeros((3, 3), np.int32)),
    ],
)
def test_bad_input(truth, pred):
    with pytest.raises(LapsegInputError):
        seg_measure(truth, pred)
    with pytest.raises(LapsegInputError):
        match_instances(truth, pred)


def test_bad_thresholds():
    labels = np.ones((2, 2), np.uint8)
    for thresholds in ([], [1.0], [-0.1], [[0.5]]):
        with pytest.raises(LapsegInputError):
            match_instances(labels, labels, thresholds=thresholds)
