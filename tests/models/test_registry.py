"""Tests of lapseg.models.registry: presets, create_model, parameter counts."""

from __future__ import annotations

import pytest
import torch

from lapseg.config import UNetConfig
from lapseg.errors import LapsegInputError
from lapseg.models.registry import PRESET_DESCRIPTIONS, PRESETS, count_parameters, create_model
from lapseg.models.unet import UNet

# The counts stated in the registry's docstring (1 input channel, presets as configured).
EXPECTED_PARAMETERS = {
    "default": 1_942_289,
    "ronneberger2015": 31_030_658,
    "stemnet": 37_744_002,
    "stemnet-exact": 37_744_002,
    "compact-unet": 466_595,
    "pancreas-keras": 2_159_889,
    "cryo-sem": 31_036_481,
}


def _meta(spec: str | UNetConfig | dict, **overrides: object) -> UNet:
    with torch.device("meta"):  # no memory, no initialisation cost for the 31M-parameter nets
        return create_model(spec, **overrides)


@pytest.mark.parametrize("name", list(PRESETS))
def test_preset_parameter_counts(name: str) -> None:
    assert count_parameters(_meta(name)) == EXPECTED_PARAMETERS[name]


def test_ronneberger_is_the_31_0m_unet() -> None:
    n = count_parameters(_meta("ronneberger2015"))
    assert round(n / 1e6, 1) == 31.0


def test_cryo_sem_matches_seed_004_up_to_biases() -> None:
    # seed 004: 31,044,289 = ours + 5,888 conv biases + 1,920 BatchNorm params after 4 up-convs
    n = count_parameters(_meta("cryo-sem"))
    conv_biases = 2 * (64 + 128 + 256 + 512 + 1024) + 2 * (512 + 256 + 128 + 64)
    assert n + conv_biases + 2 * (512 + 256 + 128 + 64) == 31_044_289


def test_count_parameters_by_hand() -> None:
    model = create_model("default", depth=0, base_features=2, norm="none", in_channels=3)
    # conv 3->2 (3x3): 54 + 2; conv 2->2: 36 + 2; head 1x1 2->1: 2 + 1
    assert count_parameters(model) == 56 + 38 + 3
    model.head.weight.requires_grad_(False)
    assert count_parameters(model) == 56 + 38 + 1


def test_presets_have_descriptions() -> None:
    assert set(PRESET_DESCRIPTIONS) == set(PRESETS)
    assert all(isinstance(PRESETS[name], UNetConfig) for name in PRESETS)


def test_seed_architectures() -> None:
    assert PRESETS["stemnet"].depth == 6 and PRESETS["stemnet"].kernel_size == 5
    assert PRESETS["stemnet"].dropout_where == "all"
    assert PRESETS["pancreas-keras"].up_kernel_size == 3
    assert PRESETS["cryo-sem"].init == "xavier"
    assert PRESETS["ronneberger2015"].padding == "valid"


def test_create_model_from_config_dict_and_overrides() -> None:
    config = UNetConfig(base_features=4, depth=2, out_channels=1)
    assert create_model(config).config == config
    assert create_model(config.to_dict()).config == config
    # out_channels not set (it follows the task when training): a bare network has one output
    assert create_model(config.replace(out_channels=None)).config == config
    model = create_model("pancreas-keras", in_channels=5, out_channels=3, base_features=4)
    assert model.config.in_channels == 5
    assert model.config.out_channels == 3
    assert model.config.up_kernel_size == 3  # the rest of the preset is kept
    assert PRESETS["pancreas-keras"].in_channels == 1  # presets are not modified


def test_unknown_preset_lists_valid_names() -> None:
    with pytest.raises(LapsegInputError, match="unknown model preset 'unet'") as info:
        create_model("unet")
    for name in PRESETS:
        assert name in str(info.value)


def test_unknown_override_lists_fields() -> None:
    with pytest.raises(LapsegInputError, match=r"unknown model option.*'features'") as info:
        create_model("default", features=8)
    assert "base_features" in str(info.value)


def test_bad_override_value_and_bad_spec() -> None:
    with pytest.raises(LapsegInputError, match=r"model\.norm='batchnorm'"):
        create_model("default", norm="batchnorm")
    with pytest.raises(LapsegInputError, match="preset name, UNetConfig or dict"):
        create_model(3)  # type: ignore[arg-type]
    with pytest.raises(LapsegInputError, match=r"unknown key model\.kernel;"):
        create_model({"depth": 2, "kernel": 3})
