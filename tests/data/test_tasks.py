"""What the masks are, and therefore the task: detection rules and their overrides."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.draw import disk

from lapseg.config import load_config
from lapseg.data.tasks import border_convention, border_statistics, resolve_task, survey_masks
from lapseg.errors import LapsegInputError


def touching_labels(dtype: type = np.uint16, *, hole: bool = False) -> np.ndarray:
    """Three cells, two of them touching, labelled 3, 7, 12 (not 1..N)."""
    labels = np.zeros((64, 64), dtype)
    labels[disk((20, 20), 10, shape=labels.shape)] = 3
    labels[disk((20, 38), 10, shape=labels.shape)] = 7  # touches 3 (drawn over its edge)
    labels[disk((48, 44), 9, shape=labels.shape)] = 12
    if hole:
        labels[18:22, 18:22] = 0  # a hole inside cell 3
    return labels


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int32])
@pytest.mark.parametrize("hole", [False, True])
def test_label_images_are_instances(dtype: type, hole: bool) -> None:
    survey = survey_masks([touching_labels(dtype, hole=hole), np.zeros((64, 64), dtype)])
    assert survey.kind == "instance"
    assert survey.n_masks == 2 and survey.n_empty == 1
    assert survey.objects_per_mask == (3, 3)
    assert survey.single_piece_fraction == 1.0


@pytest.mark.parametrize("foreground", [1, 255, True])
def test_binary_masks_stay_binary(foreground: int) -> None:
    labels = touching_labels()
    dtype = np.bool_ if foreground is True else np.uint8
    mask = (labels > 0).astype(dtype) * (1 if foreground is True else foreground)
    assert survey_masks([mask.astype(dtype)]).kind == "binary"


def test_class_maps_are_semantic() -> None:
    classes = np.zeros((64, 64), np.uint8)
    classes[::8, :] = 1  # class 1: many separate stripes
    classes[:, ::8] = 2
    classes[40:50, 40:50] = 0
    survey = survey_masks([classes, classes.T])
    assert survey.kind == "classes"
    assert survey.max_value == 2


def test_empty_and_missing_masks_are_errors() -> None:
    with pytest.raises(LapsegInputError, match="no masks"):
        survey_masks([])
    with pytest.raises(LapsegInputError, match="all 2 mask"):
        survey_masks([np.zeros((4, 4), np.uint8)] * 2)


def test_resolved_task_sets_target_and_outputs() -> None:
    survey = survey_masks([touching_labels()])
    config, decision = resolve_task(load_config(), survey)
    assert (decision.task, decision.mask_kind, decision.target) == (
        "instances",
        "instance",
        "three_class",
    )
    assert config.model.out_channels == 3 and config.data.task == "instances"
    assert "looked at" in decision.reason and "instance label images" in decision.summary()
    binary, _ = resolve_task(load_config(), survey_masks([touching_labels() > 0]))
    assert binary.data.target == "binary" and binary.model.out_channels == 1
    classes = np.zeros((16, 16), np.uint8)
    classes[::4] = 1
    classes[:, ::4] = 3
    semantic, _ = resolve_task(load_config(), survey_masks([classes]))
    assert semantic.data.task == "semantic" and semantic.model.out_channels == 4


def test_explicit_settings_win_over_the_survey() -> None:
    survey = survey_masks([touching_labels()])
    config, decision = resolve_task(load_config(None, ["data.task=binary"]), survey)
    assert config.data.target == "binary" and decision.reason.startswith("data.task")
    config, _ = resolve_task(load_config(None, ["data.mask_kind=binary"]), survey)
    assert config.data.task == "binary"
    stemnet, _ = resolve_task(load_config(None, ["model.preset=stemnet", "data.task=binary"]), None)
    assert stemnet.model.out_channels == 2  # the preset's softmax over 2 classes
    with pytest.raises(LapsegInputError, match="needs instance masks"):
        resolve_task(load_config(None, ["data.task=binary", "data.target=three_class"]), None)


def test_the_distance_target_needs_four_outputs_and_no_border_weights():
    survey = survey_masks([touching_labels()])
    config, decision = resolve_task(load_config(None, ["data.target=distance"]), survey)
    assert (decision.task, decision.target, decision.out_channels) == ("instances", "distance", 4)
    assert config.model.out_channels == 4
    assert config.loss.border_weights is False  # auto: the border map belongs to three_class
    with pytest.raises(LapsegInputError, match="out_channels=4"):
        load_config(None, ["data.target=distance", "model.out_channels=3"])
    with pytest.raises(LapsegInputError, match="needs instance masks"):
        resolve_task(load_config(None, ["data.task=binary", "data.target=distance"]), None)


def scattered_cells(rng: np.random.Generator, *, keep_border: bool, n: int = 40) -> np.ndarray:
    """``n`` discs of radius 6 at uniform positions overlapping a 128 x 128 field of view;
    ``keep_border=False`` erases the ones touching the border (as some annotators do)."""
    labels = np.zeros((128, 128), np.uint16)
    for i in range(1, n + 1):
        centre = rng.uniform(-5, 133, 2)
        labels[disk(tuple(centre), 6, shape=labels.shape)] = i
    if not keep_border:
        edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
        labels[np.isin(labels, edge[edge > 0])] = 0
    return labels


def test_expected_border_count_matches_simulation() -> None:
    """The expected number of border objects equals the mean count of random placements."""
    rng = np.random.default_rng(0)
    observed = expected = 0.0
    for _ in range(200):
        mask = np.zeros((64, 80), np.uint8)
        y0, x0 = rng.integers(-9, 64), rng.integers(-14, 80)  # every overlapping position
        mask[max(y0, 0) : y0 + 10, max(x0, 0) : x0 + 15] = 1
        _, touching, _ = border_statistics(mask)
        observed += touching
        # expected for the unclipped 10 x 15 box, as border_statistics computes it
        expected += 1 - (64 - 10 - 1) / (64 + 10 - 1) * (80 - 15 - 1) / (80 + 15 - 1)
    assert abs(observed - expected) / expected < 0.15


def test_border_convention_is_read_off_the_masks() -> None:
    rng = np.random.default_rng(1)
    kept = survey_masks([scattered_cells(rng, keep_border=True) for _ in range(4)])
    left_out = survey_masks([scattered_cells(rng, keep_border=False) for _ in range(4)])
    assert left_out.border_objects == 0 and left_out.expected_border_objects > 20
    assert kept.border_objects > 0.5 * kept.expected_border_objects
    config, decision = resolve_task(load_config(), left_out)
    assert config.postprocess.remove_border is True and decision.remove_border
    assert "leave them out" in decision.summary()
    config, decision = resolve_task(load_config(), kept)
    assert config.postprocess.remove_border is False
    assert "annotated and kept" in decision.border_reason
    few = survey_masks([scattered_cells(rng, keep_border=False, n=5)])
    assert border_convention(few) == (False, border_convention(few)[1])
    assert "too few" in border_convention(few)[1]


def test_explicit_remove_border_wins_and_binary_tasks_keep_border() -> None:
    rng = np.random.default_rng(2)
    left_out = survey_masks([scattered_cells(rng, keep_border=False) for _ in range(4)])
    config, decision = resolve_task(
        load_config(None, ["postprocess.remove_border=false"]), left_out
    )
    assert config.postprocess.remove_border is False and decision.border_reason == ""
    binary, _ = resolve_task(load_config(None, ["data.task=binary"]), left_out)
    assert binary.postprocess.remove_border is False
    stored, decision = resolve_task(load_config(None, ["data.task=instances"]), None)
    assert stored.postprocess.remove_border is False and "no instance masks" in decision.summary()
