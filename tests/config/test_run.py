from pathlib import Path

import pytest
import yaml

from lapseg.config import (
    TRANSFORM_NAMES,
    LapsegConfig,
    config_from_dict,
    config_to_dict,
    dump_config,
    load_config,
    merge_overrides,
)
from lapseg.errors import LapsegInputError
from lapseg.models.registry import PRESETS

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"


def test_defaults_round_trip_through_dict_and_yaml():
    config = load_config()
    assert config == LapsegConfig(model=PRESETS["default"])
    again = config_from_dict(yaml.safe_load(dump_config(config)))
    assert again == config


def test_yaml_then_overrides_priority(tmp_path: Path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  lr: 0.01\n  epochs: 3\nmodel:\n  preset: stemnet\n")
    config = load_config(path, ["train.lr=1e-4", "train.patch_size=[64, 96]"])
    assert config.train.lr == pytest.approx(1e-4)
    assert config.train.epochs == 3
    assert config.train.patch_size == (64, 96)
    assert config.model.preset == "stemnet"
    assert config.model == PRESETS["stemnet"]


def test_model_override_changes_one_field_of_the_preset():
    config = load_config(None, ["model.preset=cryo-sem", "model.base_features=8"])
    assert config.model.base_features == 8
    assert config.model.depth == PRESETS["cryo-sem"].depth
    assert config_to_dict(config)["model"]["preset"] == "cryo-sem"


@pytest.mark.parametrize(
    ("override", "fragment"),
    [
        ("train.lr=-1", "train.lr"),
        ("train.lrr=1", "unknown key train.lrr; valid keys in 'train'"),
        ("trian.lr=1", "unknown config section"),
        ("train.epochs=2.5", "valid integer"),
        ("train.optimizer=rmsprop", "train.optimizer='rmsprop': input should be 'sgd'"),
        ("model.preset=nope", "valid presets"),
        ("train.patch_size=[64]", "train.patch_size has too few entries"),
        ("augment.elastic.alfa=3", "unknown key augment.elastic.alfa"),
        (
            "augment.rotation.degrees=[9,-9]",
            "augment.rotation.degrees=[9, -9]: must be a range",
        ),
        ("postprocess.min_size=-1", "postprocess.min_size=-1"),
        ("data.val_fraction=1.5", "data.val_fraction"),
        ("train.amp=maybe", "train.amp='maybe': input should be a valid boolean"),
        ("nodot", "section.key=value"),
    ],
)
def test_bad_values_are_rejected_with_a_named_key(override: str, fragment: str):
    with pytest.raises(LapsegInputError) as info:
        load_config(None, [override])
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


def test_bad_yaml_file_names_the_file(tmp_path: Path):
    path = tmp_path / "broken.yaml"
    path.write_text("train: [unclosed\n")
    with pytest.raises(LapsegInputError, match=r"broken\.yaml"):
        load_config(path)
    with pytest.raises(LapsegInputError, match="not found"):
        load_config(tmp_path / "missing.yaml")


def test_merge_overrides_does_not_mutate_input():
    values = {"train": {"lr": 0.1}}
    merged = merge_overrides(values, ["train.lr=0.2", "loss.params.alpha=0.3"])
    assert values == {"train": {"lr": 0.1}}
    assert merged["train"]["lr"] == 0.2
    assert merged["loss"]["params"] == {"alpha": 0.3}


def test_temporal_context_sets_input_channels_unless_given():
    assert load_config(None, ["temporal.context=2"]).model.in_channels == 5
    assert load_config(None, ["temporal.context=0"]).model.in_channels == 1
    assert load_config(None, ["temporal.context=1", "model.in_channels=6"]).model.in_channels == 6


def test_configuration_reference_is_generated_and_current():
    from lapseg.config import SECTIONS
    from lapseg.config.reference import configuration_reference

    text = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert text == configuration_reference(), "regenerate: lapseg config --reference"
    for name, cls in SECTIONS.items():
        assert f"## `{name}`" in text, name
        for key, field in cls.model_fields.items():
            if key in TRANSFORM_NAMES:
                assert f"### `augment.{key}`" in text
                continue
            assert f"| `{key}` |" in text, f"{name}.{key}"
            assert field.description, f"{name}.{key} has no meaning documented"


def test_json_schema_describes_every_section():
    from lapseg.config.reference import json_schema

    schema = json_schema()
    assert set(schema["properties"]) == set(LapsegConfig.model_fields)
    train = schema["$defs"]["TrainConfig"]["properties"]
    assert train["lr"]["exclusiveMinimum"] == 0.0
    assert "description" in train["lr"]
    assert schema["$defs"]["TrainConfig"]["additionalProperties"] is False


@pytest.mark.parametrize("text", ["augment: seed002\n", "model: stemnet\n", "train: 3\n"])
def test_a_string_where_a_section_is_expected_is_one_line(tmp_path: Path, text: str):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(LapsegInputError) as info:
        load_config(path)
    message = str(info.value)
    assert "\n" not in message and "c.yaml" in message
    assert "must be a mapping of keys" in message


def test_a_checkpoint_config_of_version_0_1_still_loads():
    stored = yaml.safe_load((FIXTURES / "checkpoint_v0_1" / "config.yaml").read_text())
    config = config_from_dict(stored)
    assert config.data.target == "three_class"
    assert config.model.out_channels == 3 and config.model.base_features == 4
    assert config.model.preset == "default"
    assert config_from_dict(config_to_dict(config)) == config


def test_every_shipped_configuration_loads():
    from lapseg.tuning.search import load_search_space

    configs = sorted((ROOT / "configs").glob("*.yaml"))
    assert len(configs) >= 8
    for path in configs:
        if path.name.startswith("search-"):
            assert load_search_space(path), path  # a search space, not a run configuration
        else:
            load_config(path)
