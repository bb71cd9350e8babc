"""Tests of lapseg.models.unet and lapseg.models.blocks: one shared tester applied to every preset."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from lapseg.config import UNetConfig
from lapseg.errors import LapsegInputError
from lapseg.models.blocks import Upsample, center_crop
from lapseg.models.registry import PRESETS, create_model
from lapseg.models.unet import UNet, fuse_batchnorm

TINY = 4  # base features used to keep every preset fast


def _tiny(name: str, **overrides: object) -> UNet:
    torch.manual_seed(0)
    return create_model(name, base_features=TINY, **overrides)


def _input(model: UNet, batch: int = 2, n: int = 32) -> torch.Tensor:
    size = model.valid_input_size(max(n, model.size_multiple))
    return torch.randn(batch, model.config.in_channels, size, size)


@pytest.mark.parametrize("name", list(PRESETS))
@pytest.mark.parametrize(("in_channels", "out_channels"), [(1, 1), (3, 3), (5, 3)])
def test_forward_backward_every_preset(name: str, in_channels: int, out_channels: int) -> None:
    model = _tiny(name, in_channels=in_channels, out_channels=out_channels).train()
    x = _input(model)
    out = model(x)
    n_out = x.shape[-1] - 2 * model.output_margin
    assert out.shape == (2, out_channels, n_out, n_out)
    out.square().mean().backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, pname
        assert torch.isfinite(p.grad).all(), pname
    assert any(p.grad.abs().sum() > 0 for p in model.parameters() if p.grad is not None)


def test_same_padding_rejects_sizes_with_helpful_message() -> None:
    model = _tiny("default")
    assert model.size_multiple == 16
    assert model.output_margin == 0
    with pytest.raises(LapsegInputError, match=r"pad to a multiple of 16: \(32, 48\)"):
        model(torch.randn(1, 1, 30, 33))
    assert model.valid_input_size(33) == 48
    assert model.valid_input_size(48) == 48


def test_wrong_channels_or_rank_rejected() -> None:
    model = _tiny("default")
    with pytest.raises(LapsegInputError, match=r"\(B, 1, Y, X\)"):
        model(torch.randn(1, 3, 32, 32))
    with pytest.raises(LapsegInputError, match="expects"):
        model(torch.randn(1, 32, 32))


def test_ronneberger_valid_padding_572_to_388() -> None:
    model = _tiny("ronneberger2015").eval()
    assert model.output_margin == 92
    assert model.valid_input_size(570) == 572
    assert model.valid_input_size(573) == 588  # next size that stays even before each pooling
    assert model.output_size(572) == 388
    with torch.inference_mode():
        out = model(torch.randn(1, 1, 572, 572))
    assert out.shape == (1, 2, 388, 388)
    for n in (188, 204):  # smallest valid size 188 -> 4
        assert model.output_size(n) == n - 2 * 92
    with pytest.raises(LapsegInputError, match=r"pad or crop to \(204, 188\)"):
        model(torch.randn(1, 1, 190, 187))


def test_skip_connections_off() -> None:
    with_skip = _tiny("default")
    model = _tiny("default", skip_connections=False)
    x = _input(model)
    assert model(x).shape == (2, 1, 32, 32)
    first_dec = model.decoder[0][0].conv
    assert first_dec.in_channels == with_skip.decoder[0][0].conv.in_channels // 2
    assert model.decoder[-1][0].conv.in_channels == TINY


def test_dropout_train_vs_eval() -> None:
    model = _tiny("stemnet")  # dropout 0.25 after every conv
    n_drop = sum(isinstance(m, nn.Dropout) for m in model.modules())
    assert n_drop == 2 * 6 + 1  # one conv per level: 7 encoder + 6 decoder convs
    x = _input(model, n=64)
    model.train()
    assert not torch.equal(model(x), model(x))
    model.eval()
    with torch.inference_mode():
        assert torch.equal(model(x), model(x))
    bottleneck = _tiny("pancreas-keras", dropout_where="bottleneck")
    assert isinstance(bottleneck.bottleneck_drop, nn.Dropout)
    assert bottleneck.bottleneck_drop.p == 0.5
    assert sum(isinstance(m, nn.Dropout) for m in bottleneck.modules()) == 1
    assert not any(isinstance(m, nn.Dropout) for m in _tiny("default").modules())


@pytest.mark.parametrize("init", ["he", "xavier"])
def test_init_statistics(init: str) -> None:
    torch.manual_seed(0)
    model = UNet(UNetConfig(depth=1, base_features=32, init=init))
    conv = model.encoder[1][1].conv  # 64 -> 64, 3x3: 36,864 weights
    fan_in = fan_out = 64 * 9  # He and Xavier differ by sqrt(2) here: 3 % tolerance separates them
    expected = math.sqrt(2 / fan_in) if init == "he" else math.sqrt(2 / (fan_in + fan_out))
    assert conv.weight.std().item() == pytest.approx(expected, rel=0.03)
    assert conv.weight.mean().item() == pytest.approx(0.0, abs=0.03 * expected)
    assert torch.count_nonzero(model.head.bias) == 0


def test_state_dict_round_trip(tmp_path) -> None:
    model = _tiny("pancreas-keras", in_channels=3).eval()
    x = _input(model)
    path = tmp_path / "model.pt"
    torch.save({"config": model.config.to_dict(), "state_dict": model.state_dict()}, path)
    blob = torch.load(path, weights_only=True)
    loaded = UNet(UNetConfig.from_dict(blob["config"]))
    loaded.load_state_dict(blob["state_dict"])
    loaded.eval()
    with torch.inference_mode():
        assert torch.equal(model(x), loaded(x))


def test_fuse_batchnorm_same_output() -> None:
    model = _tiny("default", in_channels=2, out_channels=3)
    x = _input(model, batch=4)
    model.train()
    for _ in range(3):  # move running statistics away from (0, 1)
        model(x * 3 + 1)
    model.eval()
    fused = fuse_batchnorm(model)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fused.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())  # input untouched
    assert not fused.training
    with torch.inference_mode():
        torch.testing.assert_close(fused(x), model(x), atol=1e-5, rtol=1e-5)


def test_channels_last_matches_contiguous() -> None:
    model = _tiny("default", upsampling="bilinear").eval()
    x = _input(model)
    with torch.inference_mode():
        ref = model(x)
        model_cl = model.to(memory_format=torch.channels_last)
        out = model_cl(x.to(memory_format=torch.channels_last))
    assert out.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kernel_size", [2, 3])
def test_transposed_upsample_is_exactly_2x(kernel_size: int) -> None:
    up = Upsample(4, 2, mode="transpose", kernel_size=kernel_size)
    assert up(torch.randn(1, 4, 5, 7)).shape == (1, 2, 10, 14)


def test_bilinear_upsample_equals_interpolate_then_conv() -> None:
    torch.manual_seed(0)
    up = Upsample(3, 2, mode="bilinear")
    x = torch.randn(2, 3, 5, 6)
    ref = up.conv(nn.functional.interpolate(x, scale_factor=2.0, mode="bilinear"))
    torch.testing.assert_close(up(x), ref, atol=1e-6, rtol=1e-6)


def test_center_crop() -> None:
    x = torch.arange(36.0).reshape(1, 1, 6, 6)
    out = center_crop(x, (2, 4))
    assert torch.equal(out[0, 0], x[0, 0, 2:4, 1:5])
    assert center_crop(x, (6, 6)) is x


@pytest.mark.parametrize(
    ("field", "value", "allowed"),
    [
        ("kernel_size", 4, "3 or 5"),
        ("padding", "reflect", "'same' or 'valid'"),
        ("norm", "layer", "'batch', 'group', 'instance' or 'none'"),
        ("dropout", 1.0, "less than 1"),
        ("dropout_where", "decoder", "'all' or 'pool_concat'"),
        ("upsampling", "cubic", "'max_unpool' or 'learned_bilinear'"),
        ("up_kernel_size", 4, "2 or 3"),
        ("init", "orthogonal", "'he', 'xavier', 'default' or 'stemnet'"),
        ("depth", -1, "greater than or equal to 0"),
        ("base_features", 0, "greater than or equal to 1"),
        ("in_channels", 1.5, "valid integer"),
        ("max_features", 0, "greater than or equal to 1"),
        ("skip_connections", 1, "valid boolean"),
        ("convs_per_level", True, "valid integer"),
    ],
)
def test_config_rejects_bad_values(field: str, value: object, allowed: str) -> None:
    with pytest.raises(LapsegInputError) as info:
        UNetConfig(**{field: value})
    message = str(info.value)
    assert f"model.{field}={value!r}" in message
    assert "\n" not in message
    assert allowed in message


def test_config_dict_round_trip_and_unknown_keys() -> None:
    config = UNetConfig(in_channels=5, max_features=64, dropout=0.25)
    data = config.to_dict()
    assert all(isinstance(v, int | float | str | bool | type(None)) for v in data.values())
    assert UNetConfig.from_dict(data) == config
    with pytest.raises(LapsegInputError, match=r"unknown key model\.depht; valid keys.*depth"):
        UNetConfig.from_dict({**data, "depht": 3})
    with pytest.raises(LapsegInputError, match="must be a section"):
        UNetConfig.from_dict([("depth", 3)])  # type: ignore[arg-type]


def test_max_features_caps_levels() -> None:
    config = UNetConfig(base_features=16, depth=4, max_features=64)
    assert [config.features(i) for i in range(5)] == [16, 32, 64, 64, 64]
    model = UNet(config)
    assert model.encoder[4][0].conv.out_channels == 64
