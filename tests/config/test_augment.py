"""Augmentation configuration: presets, validation, dict round trip, curriculum stages."""

from __future__ import annotations

import pytest

from lapseg.config import (
    AUGMENTATION_PRESETS,
    TRANSFORM_NAMES,
    AugmentationConfig,
    CropConfig,
    CurriculumStage,
    ElasticConfig,
    GridElasticConfig,
    RotationConfig,
    augmentation_preset,
    config_for_stage,
)
from lapseg.errors import LapsegInputError


def active(config: AugmentationConfig) -> set[str]:
    return {t for t in TRANSFORM_NAMES if config.transform(t).probability > 0}


def test_presets_cover_the_seed_systems() -> None:
    assert set(AUGMENTATION_PRESETS) == {
        "default",
        "none",
        "seed002",
        "cryo-sem-004",
        "ronneberger2015",
    }
    assert AUGMENTATION_PRESETS["default"] == AugmentationConfig()
    assert active(AUGMENTATION_PRESETS["none"]) == set()
    assert active(AUGMENTATION_PRESETS["cryo-sem-004"]) == {"crop", "flip", "rot90"}
    assert AUGMENTATION_PRESETS["cryo-sem-004"].crop.fraction == (0.5, 0.5)
    seed002 = AUGMENTATION_PRESETS["seed002"]
    assert seed002.elastic.alpha == (0.0, 50.0) and seed002.elastic.sigma == 4.0
    (stage,) = seed002.curriculum
    assert stage.transforms == ("elastic",)
    assert (stage.when_metric, stage.threshold) == ("val_iou", 0.7)
    ronneberger = AUGMENTATION_PRESETS["ronneberger2015"]
    assert ronneberger.grid_elastic.grid == (3, 3) and ronneberger.grid_elastic.std == 10.0
    for name, preset in AUGMENTATION_PRESETS.items():
        assert preset.preset == name


def test_unknown_preset_lists_valid_names() -> None:
    with pytest.raises(LapsegInputError, match="valid presets: default, none, seed002"):
        augmentation_preset("elastic")


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: RotationConfig(probability=1.5), "augment.rotation.probability"),
        (lambda: RotationConfig(degrees=(10.0, -10.0)), "augment.rotation.degrees"),
        (lambda: CropConfig(fraction=(0.0, 0.5)), "augment.crop.fraction"),
        (lambda: CropConfig(fraction=(0.5, 1.5)), "augment.crop.fraction"),
        (lambda: ElasticConfig(sigma=0.0), "augment.elastic.sigma"),
        (lambda: ElasticConfig(alpha=(-1.0, 5.0)), "augment.elastic.alpha"),
        (lambda: GridElasticConfig(grid=(1, 3)), "augment.grid_elastic.grid"),
        (lambda: AugmentationConfig(preset="strong"), "augment.preset"),
    ],
)
def test_invalid_values_name_the_field(build: object, field: str) -> None:
    with pytest.raises(LapsegInputError, match=field.replace(".", r"\.")):
        build()  # type: ignore[operator]


@pytest.mark.parametrize(
    ("stage", "message"),
    [
        ({"transforms": [], "after_epoch": 1}, "transforms: empty"),
        ({"transforms": ["warp"], "after_epoch": 1}, "unknown name"),
        ({"transforms": ["elastic"]}, "no trigger"),
        ({"transforms": ["elastic"], "when_metric": "val_iou"}, "both"),
        ({"transforms": ["elastic"], "after_epoch": -1}, "after_epoch"),
        ({"transforms": ["noise"], "after_epoch": 2}, "noise.probability is 0"),
    ],
)
def test_invalid_curriculum(stage: dict, message: str) -> None:
    values = {"elastic": {"probability": 0.5}, "curriculum": [stage]}
    with pytest.raises(LapsegInputError, match=r"augment\.curriculum\[0\]") as info:
        AugmentationConfig.from_dict(values)
    assert message in str(info.value)
    with pytest.raises(LapsegInputError, match=message):
        CurriculumStage(**stage) if message != "noise.probability is 0" else (
            AugmentationConfig(elastic=ElasticConfig(probability=0.5), curriculum=(stage,))
        )


def test_a_transform_enabled_twice_is_rejected() -> None:
    stage = CurriculumStage(transforms=("elastic",), after_epoch=1)
    with pytest.raises(LapsegInputError, match="already enabled"):
        AugmentationConfig(elastic=ElasticConfig(probability=0.5), curriculum=(stage, stage))


def test_from_dict_starts_from_the_preset_and_merges_nested_keys() -> None:
    config = AugmentationConfig.from_dict({"preset": "seed002", "elastic": {"alpha": [0, 60]}})
    assert config.elastic.alpha == (0.0, 60.0)
    assert config.elastic.sigma == 4.0 and config.elastic.probability == 1.0
    assert config.curriculum == AUGMENTATION_PRESETS["seed002"].curriculum
    assert AugmentationConfig.from_dict({}) == AUGMENTATION_PRESETS["default"]


def test_dict_round_trip_of_every_preset() -> None:
    for preset in AUGMENTATION_PRESETS.values():
        assert AugmentationConfig.from_dict(preset.to_dict()) == preset


def test_from_dict_rejects_unknown_and_mistyped_keys() -> None:
    with pytest.raises(LapsegInputError, match=r"augment\.elastic\.alhpa"):
        AugmentationConfig.from_dict({"elastic": {"alhpa": [0, 1]}})
    with pytest.raises(LapsegInputError, match=r"augment\.elastc"):
        AugmentationConfig.from_dict({"elastc": {"probability": 1.0}})
    with pytest.raises(LapsegInputError, match=r"augment\.flip\.probability"):
        AugmentationConfig.from_dict({"flip": {"probability": "often"}})
    with pytest.raises(LapsegInputError, match="valid presets: default"):
        AugmentationConfig.from_dict({"preset": "nope"})


def test_config_for_stage() -> None:
    seed002 = AUGMENTATION_PRESETS["seed002"]
    start = config_for_stage(seed002, 0)
    assert start.elastic.probability == 0.0 and start.curriculum == ()
    assert start.flip == seed002.flip and start.elastic.alpha == seed002.elastic.alpha
    assert config_for_stage(seed002, 1).elastic.probability == 1.0
    assert config_for_stage(seed002, None) == config_for_stage(seed002, 1)
    with pytest.raises(ValueError, match="outside"):
        config_for_stage(seed002, 2)
