"""Curriculum state: stage switches at a metric threshold and after an epoch count."""

from __future__ import annotations

import math

import pytest

from lapseg.config import (
    AUGMENTATION_PRESETS,
    AugmentationConfig,
    CurriculumStage,
    ElasticConfig,
    NoiseConfig,
)
from lapseg.transforms.curriculum import CurriculumState


def two_stage_config() -> AugmentationConfig:
    return AugmentationConfig(
        elastic=ElasticConfig(0.5),
        noise=NoiseConfig(0.5),
        curriculum=(
            CurriculumStage(name="elastic", transforms=("elastic",), after_epoch=3),
            CurriculumStage(transforms=("noise",), when_metric="val_loss", threshold=0.3),
        ),
    )


def test_switch_fires_at_the_metric_threshold() -> None:
    state = CurriculumState(AUGMENTATION_PRESETS["seed002"])
    assert state.active_config().elastic.probability == 0.0
    assert state.stage_name == "start"
    assert not state.update({"epoch": 1, "val_iou": 0.69})
    assert not state.update({"epoch": 2})  # no validation this epoch
    assert not state.update({"epoch": 3, "val_iou": math.nan})
    assert state.stage == 0
    assert state.update({"epoch": 4, "val_iou": 0.7})
    assert (state.stage, state.entered_at, state.stage_name) == (1, [4], "elastic")
    assert state.active_config().elastic.probability == 1.0
    assert not state.update({"epoch": 5, "val_iou": 0.9})  # no further stage


def test_after_epoch_then_loss_threshold() -> None:
    state = CurriculumState(two_stage_config())
    assert not state.update({"epoch": 1, "val_loss": 0.2})  # stage 1 comes first
    assert not state.update({"epoch": 2, "val_loss": 0.2})
    assert state.update({"epoch": 3, "val_loss": 0.31})
    assert state.stage == 1
    active = state.active_config()
    assert active.elastic.probability == 0.5 and active.noise.probability == 0.0
    assert not state.update({"epoch": 4, "val_loss": 0.31})  # loss: fires at <= threshold
    assert state.update({"epoch": 5, "val_loss": 0.3})
    assert state.stage == 2 and state.stage_name == "stage2"
    assert state.active_config().noise.probability == 0.5


def test_several_stages_in_one_update() -> None:
    state = CurriculumState(two_stage_config())
    assert state.update({"epoch": 3, "val_loss": 0.1})
    assert state.stage == 2 and state.entered_at == [3, 3]


def test_state_dict_round_trip() -> None:
    config = two_stage_config()
    state = CurriculumState(config)
    state.update({"epoch": 3})
    restored = CurriculumState.from_state_dict(config, state.state_dict())
    assert (restored.stage, restored.entered_at) == (1, [3])
    assert CurriculumState.from_state_dict(config, None).stage == 0
    with pytest.raises(ValueError, match="does not exist"):
        CurriculumState.from_state_dict(config, {"stage": 3})


def test_no_curriculum_never_changes() -> None:
    state = CurriculumState(AUGMENTATION_PRESETS["default"])
    assert not state.update({"epoch": 100, "val_iou": 1.0})
    assert state.active_config() == AUGMENTATION_PRESETS["default"]


def test_after_epoch_needs_the_epoch_column() -> None:
    with pytest.raises(ValueError, match="epoch"):
        CurriculumState(two_stage_config()).update({"val_loss": 0.1})
