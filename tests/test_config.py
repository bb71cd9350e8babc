from pathlib import Path

import pytest
import yaml

from lapseg.config import (
    LapsegConfig,
    config_from_dict,
    config_to_dict,
    dump_config,
    load_config,
    merge_overrides,
)
from lapseg.errors import LapsegInputError
from lapseg.models.registry import PRESETS


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
    assert config.model_preset == "stemnet"
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
        ("train.lrr=1", "unknown key(s) train.lrr"),
        ("trian.lr=1", "unknown config section"),
        ("train.epochs=2.5", "must be an integer"),
        ("train.optimizer=rmsprop", "train.optimizer='rmsprop' is not one of"),
        ("model.preset=nope", "valid presets"),
        ("train.patch_size=[64]", "must have 2 entries"),
        ("data.val_fraction=1.5", "data.val_fraction"),
        ("train.amp=maybe", "true or false"),
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


def test_configuration_reference_lists_every_key():
    import dataclasses

    from lapseg.config import SECTIONS

    text = (Path(__file__).resolve().parents[1] / "docs" / "configuration.md").read_text()
    for name, cls in SECTIONS.items():
        assert f"## `{name}`" in text, name
        for f in dataclasses.fields(cls):
            assert f"| `{f.name}` |" in text, f"{name}.{f.name}"


def test_every_shipped_configuration_loads():
    from lapseg.tuning.search import load_search_space

    configs = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))
    assert len(configs) >= 8
    for path in configs:
        if path.name.startswith("search-"):
            assert load_search_space(path), path  # a search space, not a run configuration
        else:
            load_config(path)
