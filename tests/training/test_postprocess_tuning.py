"""Post-processing tuned on validation tiles finds the settings a known case calls for."""

from __future__ import annotations

import numpy as np
import pytest

from lapseg.config import PostprocessConfig
from lapseg.data.targets import distance_maps
from lapseg.inference.instances import instances_from_probabilities
from lapseg.metrics.instance import seg_measure
from lapseg.training.postprocess_tuning import candidate_settings, tune_postprocessing
from lapseg.training.validation import ValidationSet, instance_scores


def known_case() -> tuple[np.ndarray, np.ndarray]:
    """Labels with two touching cells and one apart, and 3-class probabilities built so that
    exactly one (interior, foreground) threshold pair per column gives them back:

    - interiors have P(interior) = 0.65, the pixels joining the two touching interiors 0.55:
      interior thresholds <= 0.5 merge the pair, >= 0.7 find no seed, 0.6 is right;
    - cells have foreground probability 0.8 and a 2-pixel ring around them 0.45: foreground
      thresholds 0.3 / 0.4 grow every outline by the ring, 0.5-0.7 give the cells exactly.
    """
    labels = np.zeros((64, 64), np.int32)
    labels[10:30, 10:30] = 1
    labels[10:30, 30:50] = 2  # touches cell 1 along column 29/30
    labels[40:56, 10:26] = 3
    cells = labels > 0
    ring = np.zeros_like(cells)
    for dy in range(-2, 3):
        for dx in range(-2, 3):
            ring |= np.roll(cells, (dy, dx), axis=(0, 1))
    ring &= ~cells
    foreground = np.where(cells, 0.8, np.where(ring, 0.45, 0.05))
    interior = np.zeros_like(foreground)
    for index in (1, 2, 3):
        rows, cols = np.nonzero(labels == index)
        inner = (slice(rows.min() + 2, rows.max() - 1), slice(cols.min() + 2, cols.max() - 1))
        interior[inner] = 0.65
    interior[14:26, 28:32] = 0.55  # the bridge between the touching interiors
    prob = np.stack([1 - foreground, interior, foreground - interior]).astype(np.float32)
    return labels, prob


def test_known_case_has_the_stated_answer() -> None:
    labels, prob = known_case()
    config = PostprocessConfig(min_size=0, min_seed_size=0)
    right = instances_from_probabilities(
        prob, config.replace(interior_threshold=0.6, foreground_threshold=0.5)
    )
    assert seg_measure(labels, right)["seg"] == pytest.approx(1.0)
    merged = instances_from_probabilities(
        prob, config.replace(interior_threshold=0.5, foreground_threshold=0.5)
    )
    assert merged.max() == 2
    grown = instances_from_probabilities(
        prob, config.replace(interior_threshold=0.6, foreground_threshold=0.4)
    )
    assert (grown > 0).sum() > (labels > 0).sum()


def test_tuning_finds_the_known_best_thresholds() -> None:
    labels, prob = known_case()
    tiles = ValidationSet(images=[prob[:1]], targets=[labels > 0], instances=[labels])
    base = PostprocessConfig(min_size=0, min_seed_size=0, tune_for="seg")
    result = tune_postprocessing([prob], tiles, base, target="three_class", object_area=None)
    assert result.postprocess.interior_threshold == 0.6
    # 0.5, 0.6 and 0.7 are equally right; ties keep the first one tried
    assert result.postprocess.foreground_threshold == 0.5
    assert result.value == pytest.approx(1.0)
    assert result.default_value < 0.9  # the defaults (0.5, 0.5) merge the touching pair
    assert result.tried == result.of == len(candidate_settings("three_class")) == 49


def test_tuning_a_distance_model_finds_the_foreground_threshold_that_fits_the_outlines() -> None:
    """Perfect distance maps and a weak (0.45) foreground ring around the cells: foreground
    thresholds 0.3 / 0.4 grow every outline by the ring, 0.5 and above give the cells."""
    labels, prob3 = known_case()
    cells = labels > 0
    foreground = 1 - prob3[0]  # 0.8 on the cells, 0.45 on the ring, 0.05 elsewhere
    prob = np.concatenate([np.stack([1 - foreground, foreground]), distance_maps(labels)])
    prob = prob.astype(np.float32)
    tiles = ValidationSet(images=[prob[:1]], targets=[cells], instances=[labels])
    base = PostprocessConfig(min_size=0, min_seed_size=0, tune_for="seg", foreground_threshold=0.3)
    result = tune_postprocessing([prob], tiles, base, target="distance", object_area=None)
    assert result.default_value < 0.9  # the ring makes every outline too large
    assert result.value == pytest.approx(1.0)
    assert result.postprocess.foreground_threshold >= 0.5
    assert result.tried == result.of == len(candidate_settings("distance")) == 49
    seeds = {c["interior_threshold"] for c in candidate_settings("distance")}
    assert min(seeds) < 0.3  # cell minus neighbour distance: seeds need low thresholds too


def test_tuning_stops_at_the_deadline_and_keeps_the_defaults_scored() -> None:
    labels, prob = known_case()
    tiles = ValidationSet(images=[prob[:1]], targets=[labels > 0], instances=[labels])
    base = PostprocessConfig(min_size=0, min_seed_size=0)
    result = tune_postprocessing(
        [prob], tiles, base, target="three_class", object_area=None, deadline=0.0
    )
    assert result.tried == 0 and result.postprocess == base
    assert result.value == result.default_value


def test_instance_scores_by_hand() -> None:
    truth = np.zeros((20, 20), np.int32)
    truth[2:8, 2:8], truth[10:16, 10:16] = 1, 2
    pred = np.zeros_like(truth)
    pred[2:8, 2:8] = 5  # exact
    pred[10:16, 10:13] = 7  # half of object 2: IoU 0.5 is not a match (strictly greater)
    scores = instance_scores([truth], [pred])
    assert scores["seg"] == pytest.approx((1.0 + 0.0) / 2)  # SEG needs > half of the reference
    assert scores["ap50"] == pytest.approx(1 / 3)  # TP 1, FP 1, FN 1
    assert scores["seg_ap"] == pytest.approx((0.5 + 1 / 3) / 2)


def test_tiles_are_scored_without_border_removal_and_the_setting_is_kept() -> None:
    """A validation tile's edges are not the image border: a model that drops border objects
    is scored (and tuned) on every object of the tile, and keeps its setting."""
    labels, prob = known_case()
    shifted_labels = np.roll(labels, -10, axis=0)  # cells 1 and 2 now touch the top edge
    shifted_prob = np.roll(prob, -10, axis=1)
    tiles = ValidationSet(
        images=[shifted_prob[:1]], targets=[shifted_labels > 0], instances=[shifted_labels]
    )
    base = PostprocessConfig(min_size=0, min_seed_size=0, tune_for="seg", remove_border=True)
    result = tune_postprocessing(
        [shifted_prob], tiles, base, target="three_class", object_area=None
    )
    assert result.value == pytest.approx(1.0)
    assert result.postprocess.remove_border is True
    dropped = instances_from_probabilities(
        shifted_prob, result.postprocess.replace(interior_threshold=0.6)
    )
    assert dropped.max() == 1  # on a whole image the two border cells go
