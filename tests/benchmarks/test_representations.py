"""The representation benchmark's pieces: round trips of every representation, a smoke run, the
table (the accuracy runs themselves are benchmarks, not tests).

Round trip: ``post(ideal(target(labels)))``, the labels a perfect network would lead to. What
each representation gives back, on synthetic label images:

- ``three_class``, ``three_class_plain``, ``contour``: the labels exactly (up to renumbering)
  when touching cells meet along straight contacts, cells lie inside cells, or touch the image
  border. Where three cells meet or contacts run obliquely, the boundary class / contour band
  does not say which cell a contact pixel belongs to: the watershed hands it to the cell whose
  flood reaches it first, so some *contact pixels* (a cell's pixels next to another cell,
  diagonals included) change cell; objects stay one to one.
- ``distance``: the contact-pixel limitation even along straight contacts: at the ends of a
  contact line and between cells of different depth the flood down the (per-cell normalised)
  cell distance reaches some contact pixels from the neighbour first. Separate cells are exact.
- ``binary``: the 4-connected components of the foreground, so touching cells merge (the
  default post-processing; the watershed options of its grid only approximate a split).
  Separate cells are exact.
- every representation fills background holes inside one object (the post-processing fills
  holes, as lapseg's does by default): an object with a hole comes back filled.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import bench_representations
import protocol_arrays
from bench_representations import Settings, format_table, load_records, mean_ranks
from lapseg.data.synthetic import SyntheticConfig, synthetic_image
from lapseg.inference.instances import fill_label_holes
from lapseg.metrics.instance import match_instances, seg_measure
from protocol_arrays import MissingSharedDataError, Split, load_protocol, normalise
from representations import REPRESENTATIONS, create_representation

EXACT = ("three_class", "three_class_plain", "contour")
"""Representations that round-trip touching cells with straight contacts exactly."""


# --------------------------------------------------------------------------- label images


def touching_cells() -> np.ndarray:
    """Pairs of cells touching along straight lines, a lone disc, a cell cut by the border."""
    yy, xx = np.mgrid[:64, :64]
    labels = np.zeros((64, 64), np.int32)
    labels[4:20, 4:18], labels[4:20, 18:34] = 1, 2  # side by side
    labels[24:34, 4:22], labels[34:44, 4:22] = 3, 4  # one above the other
    disc = np.hypot(yy - 47, xx - 47) <= 11  # a round cell divided in two
    labels[disc & (yy < 47)], labels[disc & (yy >= 47)] = 5, 6
    labels[np.hypot(yy - 54, xx - 12) <= 6] = 7
    labels[0:12, 44:64] = 8
    return labels


def separate_cells() -> np.ndarray:
    """Cells that touch nothing but the image border."""
    yy, xx = np.mgrid[:64, :64]
    labels = np.zeros((64, 64), np.int32)
    labels[4:20, 4:30] = 1
    labels[np.hypot(yy - 40, xx - 40) <= 10] = 2
    labels[50:60, 3:12] = 3
    labels[0:6, 50:64] = 4
    return labels


def ring(inner: str) -> np.ndarray:
    """A ring-shaped cell around a hole of background (``inner="hole"``) or another cell."""
    yy, xx = np.mgrid[:48, :48]
    radius = np.hypot(yy - 24, xx - 24)
    labels = np.zeros((48, 48), np.int32)
    labels[radius <= 16] = 1
    labels[radius <= 7] = 2 if inner == "cell" else 0
    labels[2:10, 2:10] = 3
    return labels


def crowded_cells(seed: int) -> np.ndarray:
    """Random cells, most of them in clusters with oblique contacts and triple junctions."""
    config = SyntheticConfig(
        shape=(128, 128), n_cells=(8, 14), radius=(6.0, 14.0), touching_fraction=0.8
    )
    return synthetic_image(config, rng=seed)[1].astype(np.int32)


# --------------------------------------------------------------------------- helpers


def round_trip(name: str, labels: np.ndarray, **params: object) -> np.ndarray:
    rep = create_representation(name)
    return rep.post(rep.ideal(rep.target(labels)), min_size=16, **params)


def assert_same_up_to_renumbering(truth: np.ndarray, pred: np.ndarray) -> None:
    pairs = {(int(t), int(p)) for t, p in zip(truth.ravel(), pred.ravel(), strict=True)}
    assert len(pairs) == len(np.unique(truth)) == len(np.unique(pred))
    assert (0, 0) in pairs or not (truth == 0).any()
    assert seg_measure(truth, pred)["seg"] == 1.0


def contact_pixels(labels: np.ndarray) -> np.ndarray:
    """Pixels of a cell with a pixel of another cell among their 8 neighbours."""
    square = ndimage.generate_binary_structure(2, 2)
    high = ndimage.maximum_filter(labels, footprint=square)
    low = ndimage.minimum_filter(np.where(labels > 0, labels, labels.max() + 1), footprint=square)
    return (labels > 0) & ((high != labels) | (low != labels))


def assert_only_contact_pixels_move(truth: np.ndarray, pred: np.ndarray) -> None:
    """Objects one to one (all matched at IoU 0.5); differences only at contact pixels."""
    (record,) = match_instances(truth, pred, thresholds=[0.5])
    assert record.fp == record.fn == 0
    assert np.array_equal(truth > 0, pred > 0)
    mapped = np.zeros_like(truth)
    for label in range(1, int(pred.max()) + 1):
        mapped[pred == label] = np.bincount(truth[pred == label]).argmax()
    assert not np.any((mapped != truth) & ~contact_pixels(truth))


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("name", EXACT)
def test_touching_cells_round_trip_exactly_with_every_grid_setting(name: str) -> None:
    labels = touching_cells()
    rep = create_representation(name)
    for params in [{}, *rep.grid()]:
        assert_same_up_to_renumbering(labels, round_trip(name, labels, **params))


@pytest.mark.parametrize("name", EXACT)
def test_a_cell_inside_a_ring_cell_round_trips(name: str) -> None:
    labels = ring("cell")
    assert_same_up_to_renumbering(labels, round_trip(name, labels))


@pytest.mark.parametrize("name", list(REPRESENTATIONS))
def test_separate_cells_round_trip_exactly(name: str) -> None:
    labels = separate_cells()
    assert_same_up_to_renumbering(labels, round_trip(name, labels))


@pytest.mark.parametrize("name", ["distance", *EXACT])
@pytest.mark.parametrize("seed", [0, 3])
def test_crowded_cells_keep_their_identity_and_only_contact_pixels_move(
    name: str, seed: int
) -> None:
    labels = crowded_cells(seed)
    pred = round_trip(name, labels)
    assert_only_contact_pixels_move(labels, pred)
    assert seg_measure(labels, pred)["seg"] > 0.95


def test_distance_moves_contact_pixels_at_straight_contacts_too() -> None:
    labels = touching_cells()
    pred = round_trip("distance", labels)
    assert_only_contact_pixels_move(labels, pred)
    assert 0.98 < seg_measure(labels, pred)["seg"] < 1.0
    assert_only_contact_pixels_move(ring("cell"), round_trip("distance", ring("cell")))


def test_binary_gives_the_connected_components_of_the_foreground() -> None:
    for labels in (touching_cells(), ring("cell"), crowded_cells(0)):
        expected, _ = ndimage.label(fill_label_holes(labels) > 0)
        pred = round_trip("binary", labels)
        assert_same_up_to_renumbering(expected.astype(np.int32), pred)
        assert pred.max() < labels.max()  # touching cells merged


@pytest.mark.parametrize("name", list(REPRESENTATIONS))
def test_background_holes_are_filled(name: str) -> None:
    labels = ring("hole")
    assert_same_up_to_renumbering(fill_label_holes(labels), round_trip(name, labels))


@pytest.mark.parametrize("name", list(REPRESENTATIONS))
def test_targets_ideal_maps_and_grid_are_consistent(name: str) -> None:
    rep = create_representation(name)
    labels = touching_cells()
    before = labels.copy()
    targets = rep.target(labels)
    assert np.array_equal(labels, before)  # the input is never changed
    assert all(t.shape == labels.shape for t in targets.values())
    ideal = rep.ideal(targets)
    assert ideal.shape == (rep.out_channels, *labels.shape) and ideal.dtype == np.float32
    assert ideal.min() >= 0.0 and ideal.max() <= 1.0
    assert rep.grid() and all(isinstance(p, dict) for p in rep.grid())


def test_unknown_representation_lists_the_valid_names() -> None:
    with pytest.raises(ValueError, match="three_class_plain"):
        create_representation("stardist")


# --------------------------------------------------------------------------- smoke run


@pytest.fixture(scope="module")
def tiny_split() -> Split:
    config = SyntheticConfig(shape=(64, 64), n_cells=(3, 6), radius=(5.0, 9.0), n_debris=(0, 1))
    pairs = []
    for seed in range(8):
        image, labels = synthetic_image(config, rng=seed)
        pairs.append((normalise(image), labels.astype(np.int32)))
    return Split(pairs[:4], pairs[4:6], pairs[6:])


@pytest.mark.parametrize("name", list(REPRESENTATIONS))
def test_smoke_run_gives_a_complete_record(name: str, tiny_split: Split) -> None:
    settings = Settings(steps=3, batch_size=2, patch_size=32, base_features=4, tile_size=64)
    rep = create_representation(name)
    record = bench_representations.run_representation(tiny_split, rep, settings)
    assert record["rep"] == name and record["steps"] == 3 and record["minutes"] is None
    assert record["best_params"] in rep.grid()
    assert math.isfinite(record["final_loss"]) and record["final_loss"] > 0
    assert all(record[k] >= 0 for k in ("t_prep", "t_train", "t_pred", "t_tune"))
    n_test = sum(int(labels.max()) for _, labels in tiny_split.test)
    for part in ("val", "test_default", "test_tuned"):
        scores = record[part]
        assert set(scores) == {"seg", "ap50", "tp", "fp", "fn", "area_ratio"}
        assert 0.0 <= scores["seg"] <= 1.0 and 0.0 <= scores["ap50"] <= 1.0
        assert min(scores["tp"], scores["fp"], scores["fn"]) >= 0
        assert math.isnan(scores["area_ratio"]) or scores["area_ratio"] > 0
    assert record["test_tuned"]["tp"] + record["test_tuned"]["fn"] == n_test
    json.dumps(record)  # a JSON line


def test_a_minutes_budget_stops_on_time(tiny_split: Split) -> None:
    settings = Settings(
        steps=None, minutes=0.005, batch_size=2, patch_size=32, base_features=4, tile_size=64
    )
    record = bench_representations.run_representation(
        tiny_split, create_representation("contour"), settings
    )
    assert record["steps"] >= 1 and record["minutes"] == 0.005
    assert record["t_train"] < 5


def test_settings_need_exactly_one_budget() -> None:
    with pytest.raises(ValueError, match="exactly one budget"):
        Settings(steps=10, minutes=1.0)
    with pytest.raises(ValueError, match="exactly one budget"):
        Settings(steps=None)


def test_learning_rate_decays_from_base_to_one_percent() -> None:
    assert bench_representations.learning_rate(1e-3, 0.0) == pytest.approx(1e-3)
    assert bench_representations.learning_rate(1e-3, 1.0) == pytest.approx(1e-5)


# --------------------------------------------------------------------------- table


def _record(protocol: str, rep: str, seg: float, ap: float, **extra: object) -> dict:
    scores = {"seg": seg, "ap50": ap, "tp": 1, "fp": 0, "fn": 0, "area_ratio": 1.0}
    return {
        "protocol": protocol,
        "rep": rep,
        "steps": 1000,
        "t_train": 600.0,
        "test_tuned": scores,
        "test_default": scores,
        **extra,
    }


def test_mean_rank_over_protocols(tmp_path: Path) -> None:
    records = [
        _record("hela", "binary", 0.5, 0.5),
        _record("hela", "three_class", 0.9, 0.8),
        _record("hela", "distance", 0.9, 0.8),  # tie with three_class: both rank 1.5
        _record("psc", "binary", 0.7, 0.6),
        _record("psc", "three_class", 0.9, 0.9),
        _record("psc", "distance", 0.1, 0.1),
        _record("usiigaci", "binary", 0.9, 0.9),  # not every representation ran: not ranked
        _record("hela", "binary", 0.3, 0.3, context=2, ctxmode="diff"),  # another variant
        _record("usiigaci", "binary", 0.2, 0.2, context=-1),  # the campaign's "no context"
    ]
    path = tmp_path / "results.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    runs = load_records([path])
    assert set(runs) == {
        "hela, 1000 steps",
        "psc, 1000 steps",
        "usiigaci, 1000 steps",
        "hela k=2 diff, 1000 steps",
    }
    assert runs["usiigaci, 1000 steps"]["binary"]["test_tuned"]["seg"] == 0.2  # later wins
    ranks = mean_ranks(runs)
    assert ranks["three_class"]["objective"] == pytest.approx((1.5 + 1.0) / 2)
    assert ranks["distance"]["objective"] == pytest.approx((1.5 + 3.0) / 2)
    assert ranks["binary"]["objective"] == pytest.approx((3.0 + 2.0) / 2)
    assert ranks["binary"]["n"] == 2
    table = format_table(runs)
    assert "| hela, 1000 steps | three_class | 0.900 | 0.800 |" in table
    assert table.index("| three_class | 1.25 |") < table.index("| binary | 2.50 |")
    assert "left out, not every representation ran: hela k=2 diff, 1000 steps; usiigaci" in table
    assert "Mean rank" in table


def test_table_mode_prints_the_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "results.jsonl"
    path.write_text(json.dumps(_record("psc", "contour", 0.8, 0.7)) + "\n")
    assert bench_representations.main(["--table", str(path)]) == 0
    assert "| psc, 1000 steps | contour | 0.800 | 0.700 |" in capsys.readouterr().out


# --------------------------------------------------------------------------- shared data


def test_missing_shared_data_skips_cleanly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(protocol_arrays, "SHARED", tmp_path / "no-shared-data")
    with pytest.raises(MissingSharedDataError, match="no-shared-data"):
        load_protocol("hela")
    out = tmp_path / "results.jsonl"
    argv = ["psc", "binary", "--steps", "3", "--out", str(out)]
    assert bench_representations.main(argv) == 0
    assert "skipped" in capsys.readouterr().out and not out.exists()


def test_context_needs_a_time_lapse_protocol() -> None:
    with pytest.raises(ValueError, match="hela, psc"):
        load_protocol("usiigaci", context=1)


@pytest.mark.slow
@pytest.mark.shared_data
def test_shared_splits_have_the_campaign_sizes(shared_data: Path) -> None:
    isbi = load_protocol("isbi")
    assert (len(isbi.train), len(isbi.val), len(isbi.test)) == (21, 3, 6)
    assert set(np.unique(isbi.train[0][1])) == {0, 1}
    psc = load_protocol("psc", context=1, mode="diff")
    assert (len(psc.train), len(psc.val), len(psc.test)) == (76, 6, 1)
    image = psc.test[0][0]
    assert image.shape[0] == 3 and image.dtype == np.float32
    frame = normalise(tifffile.imread(shared_data / "ctc-PhC-C2DL-PSC-02" / "02" / "t182.tif"))
    assert np.array_equal(image[0], frame)  # channel 0 is frame t, the others differences


def test_command_line_run_prints_machine_and_budget_and_appends_a_record(
    tiny_split: Split,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(bench_representations, "load_protocol", lambda *a, **k: tiny_split)
    out = tmp_path / "results.jsonl"
    argv = ["hela", "three_class,contour", "--steps", "3", "--batch-size", "2"]
    argv += ["--patch-size", "32", "--base-features", "4", "--threads", "1", "--out", str(out)]
    assert bench_representations.main(argv) == 0
    printed = capsys.readouterr().out
    assert "# cpu:" in printed and "# budget: 3 steps" in printed
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["rep"] for r in records] == ["three_class", "contour"]
    assert records[0]["protocol"] == "hela" and records[0]["context"] is None
    assert "| hela, 3 steps | contour |" in printed and "Mean rank" in printed
