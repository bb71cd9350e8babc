"""Architecture options of the seed systems: StemNet's TensorFlow layer order and
initialisation (preset ``stemnet-exact``) and the compact U-Net's linear last layers."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from lapseg.config import UNetConfig
from lapseg.errors import LapsegInputError
from lapseg.models.blocks import ConvNormAct
from lapseg.models.registry import create_model
from lapseg.models.unet import UNet


def _small(preset: str, **kw: object) -> UNet:
    torch.manual_seed(0)
    return create_model(preset, depth=2, base_features=8, **kw)


def test_dropout_comes_before_bias_and_relu() -> None:
    unit = ConvNormAct(1, 3, kernel_size=3, norm="none", dropout=0.5, dropout_before_bias=True)
    assert unit.conv.bias is None and unit.bias is not None
    with torch.no_grad():
        unit.bias.fill_(-1.0)
    torch.manual_seed(1)
    x = torch.randn(1, 1, 6, 6)
    unit.train()
    torch.manual_seed(2)
    got = unit(x)
    torch.manual_seed(2)
    expected = torch.relu(nn.functional.dropout(unit.conv(x), 0.5, training=True) - 1.0)
    torch.testing.assert_close(got, expected)


def test_stemnet_exact_relus_after_upsampling_and_on_the_output() -> None:
    model = _small("stemnet-exact").eval()  # eval: dropout off, as keep_prob 1.0

    def unit(x: torch.Tensor, u: nn.Module) -> torch.Tensor:  # relu(conv(x) + bias)
        return torch.relu(nn.functional.conv2d(x, u.conv.weight, padding=2) + u.bias[:, None, None])

    x = torch.randn(1, 1, 16, 16)
    with torch.no_grad():
        out = model(x)
        skips, h = [], x
        for i, stack in enumerate(model.encoder):
            h = unit(model.pool(h) if i else h, stack[0])
            skips.append(h)
        h = skips.pop()
        for up, stack in zip(model.up, model.decoder, strict=True):
            h = unit(torch.cat([skips.pop(), torch.relu(up(h))], dim=1), stack[0])
        torch.testing.assert_close(out, torch.relu(model.head(h)))
    assert (out >= 0).all()


def test_stemnet_initialisation() -> None:
    model = create_model("stemnet-exact", depth=2, base_features=64)
    first = model.encoder[0][0]
    std = math.sqrt(2 / (25 * 64))  # encoder: from the output features
    assert first.conv.weight.std().item() == pytest.approx(std * 0.88, rel=0.1)  # truncated at 2
    assert first.conv.weight.abs().max().item() <= 2 * std + 1e-6
    assert torch.all(first.bias == 0.1)
    decoder = model.decoder[-1][0]  # from the input features (skip + upsampled)
    assert decoder.conv.weight.abs().max().item() <= 2 * math.sqrt(2 / (25 * 128)) + 1e-6
    up = model.up[-1].conv  # from its input features, with the 5x5 kernel's area
    assert up.weight.abs().max().item() <= 2 * math.sqrt(2 / (25 * 128)) + 1e-6
    assert model.head.weight.abs().max().item() <= 0.2 + 1e-6
    assert torch.all(model.head.bias == 0.1)


def test_linear_last_layers() -> None:
    model = _small("compact-unet")
    last = list(model.decoder[-1])
    assert [type(u.act) for u in last] == [nn.Identity, nn.Identity]
    assert [type(u.norm) for u in last] == [nn.Identity, nn.Identity]
    assert all(u.conv.bias is not None for u in last)
    assert isinstance(model.decoder[0][0].norm, nn.BatchNorm2d)
    model = create_model("compact-unet", linear_last=1)
    assert [type(u.act) for u in model.decoder[-1]] == [nn.ReLU, nn.Identity]
    assert model(torch.zeros(1, 1, 16, 16)).shape == (1, 3, 16, 16)


def test_linear_last_larger_than_a_level_is_refused() -> None:
    with pytest.raises(LapsegInputError, match="linear_last"):
        UNetConfig(preset="compact-unet", linear_last=3)
