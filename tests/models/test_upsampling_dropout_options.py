"""The lecture's upsampling options (003) and seed 001's Keras dropout placement change the
network exactly as documented."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lapseg.config import UNetConfig
from lapseg.errors import LapsegInputError
from lapseg.models.blocks import UPSAMPLING_MODES, Upsample, bilinear_kernel
from lapseg.models.registry import count_parameters, create_model
from lapseg.models.unet import UNet

SMALL = {"base_features": 4, "depth": 3}


def _model(**overrides: object) -> UNet:
    torch.manual_seed(0)
    return create_model("default", **{**SMALL, **overrides})


@pytest.mark.parametrize("mode", UPSAMPLING_MODES)
def test_every_upsampling_keeps_the_size_and_trains(mode: str) -> None:
    model = _model(upsampling=mode).train()
    x = torch.randn(2, 1, 24, 40)
    out = model(x)
    assert out.shape == (2, 1, 24, 40)
    out.square().mean().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_parameter_counts_per_upsampling() -> None:
    config = UNetConfig(**SMALL)  # type: ignore[arg-type]
    levels = [(config.features(i + 1), config.features(i)) for i in range(config.depth)]
    counts = {mode: count_parameters(_model(upsampling=mode)) for mode in UPSAMPLING_MODES}
    # the 1x1-conv modes share one count; interpolation and unpooling learn nothing
    assert counts["nearest"] == counts["bilinear"] == counts["max_unpool"]
    # transposed 2x2 conv (f_in * f * 4 weights) instead of the 1x1 conv (f_in * f)
    assert counts["transpose"] - counts["bilinear"] == sum(a * b * 3 for a, b in levels)
    # one depthwise 4x4 filter per output channel, no bias
    assert counts["learned_bilinear"] - counts["bilinear"] == sum(16 * b for _, b in levels)


@pytest.mark.parametrize("shape", [(1, 3, 5, 7), (2, 2, 8, 8), (1, 1, 1, 1)])
def test_learned_bilinear_starts_as_bilinear_interpolation(shape: tuple[int, ...]) -> None:
    up = Upsample(shape[1], shape[1], mode="learned_bilinear")
    x = torch.randn(*shape)
    with torch.no_grad():
        expected = F.interpolate(up.conv(x), scale_factor=2.0, mode="bilinear")
        torch.testing.assert_close(up(x), expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("init", ["he", "xavier", "default", "stemnet"])
def test_learned_bilinear_filters_survive_every_init(init: str) -> None:
    model = _model(upsampling="learned_bilinear", init=init)
    for up in model.up:
        assert isinstance(up, Upsample) and up.learned is not None
        assert up.learned.bias is None and up.learned.groups == up.learned.out_channels
        assert torch.equal(up.learned.weight, bilinear_kernel(up.learned.out_channels))
    # and they are learned: trained with the rest
    assert all(up.learned.weight.requires_grad for up in model.up)  # type: ignore[union-attr]


def test_nearest_repeats_each_value_in_a_2x2_block() -> None:
    up = Upsample(2, 2, mode="nearest")
    x = torch.randn(1, 2, 3, 4)
    with torch.no_grad():
        y = up(x)
        z = up.conv(x)
    assert torch.equal(y, z.repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1))


def test_max_unpool_puts_values_where_the_maxima_were() -> None:
    up = Upsample(3, 3, mode="max_unpool")
    with torch.no_grad():  # identity 1x1 conv: the unpooled values are the pooled ones
        up.conv.weight.copy_(torch.eye(3)[:, :, None, None])
        up.conv.bias.zero_()
        features = torch.randn(2, 3, 6, 8)
        pooled, indices = F.max_pool2d(features, 2, return_indices=True)
        y = up(pooled, indices)
    assert y.shape == features.shape
    at_max = features == F.interpolate(pooled, scale_factor=2.0, mode="nearest")
    assert torch.equal(y[at_max], features[at_max])
    assert not y[~at_max].any()
    with pytest.raises(ValueError, match="pooling indices"):
        up(pooled)


def test_max_unpool_needs_same_padding() -> None:
    with pytest.raises(LapsegInputError, match=r"max_unpool needs model\.padding=same"):
        UNetConfig(upsampling="max_unpool", padding="valid")


def test_keras_dropout_after_pools_and_concatenations() -> None:
    model = create_model("pancreas-keras", depth=4)
    assert model.config.dropout_where == "pool_concat"
    assert [m.p for m in model.pool_drop] == [0.25, 0.5, 0.5, 0.5]  # type: ignore[attr-defined]
    assert [m.p for m in model.concat_drop] == [0.5] * 4  # type: ignore[attr-defined]
    assert isinstance(model.bottleneck_drop, nn.Identity)
    assert not any(isinstance(m, nn.Dropout) for m in model.encoder.modules())
    assert not any(isinstance(m, nn.Dropout) for m in model.decoder.modules())
    # where they sit: after each pooling (pooled maps) and after each concatenation (2f maps)
    seen: list[tuple[int, int]] = []
    hooks = [
        m.register_forward_hook(lambda _m, args, _o: seen.append(tuple(args[0].shape[1:3])))
        for m in [*model.pool_drop, *model.concat_drop]
    ]
    model.eval()(torch.randn(1, 1, 32, 32))
    for hook in hooks:
        hook.remove()
    c = model.config
    pools = [(c.features(i), 32 // 2 ** (i + 1)) for i in range(4)]
    concats = [(2 * c.features(i), 32 // 2**i) for i in reversed(range(4))]
    assert seen == [*pools, *concats]


def test_keras_dropout_is_random_in_training_only() -> None:
    model = _model(dropout=0.5, dropout_where="pool_concat")
    x = torch.randn(1, 1, 16, 16)
    model.eval()
    assert torch.equal(model(x), model(x))
    model.train()
    assert not torch.equal(model(x), model(x))
    # no dropout probability, no dropout modules
    plain = _model(dropout_where="pool_concat")
    assert not any(isinstance(m, nn.Dropout) for m in plain.modules())


def test_keras_placement_keeps_the_parameters() -> None:
    keras = count_parameters(_model(dropout=0.5, dropout_where="pool_concat"))
    assert keras == count_parameters(_model(dropout=0.5, dropout_where="bottleneck"))
