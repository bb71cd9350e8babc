"""``model.temporal_fusion=conv3d``: the first U-Net level as 3D convolutions over (t, y, x)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from torch import nn

from lapseg.cli import main
from lapseg.config import UNetConfig, load_config
from lapseg.device import place_model
from lapseg.errors import LapsegInputError
from lapseg.models.blocks import TemporalStem, temporal_kernels
from lapseg.models.registry import count_parameters, create_model
from lapseg.models.unet import fuse_batchnorm


def _model(frames: int, **overrides: object) -> nn.Module:
    torch.manual_seed(0)
    return create_model(
        "default",
        base_features=4,
        depth=2,
        in_channels=frames,
        out_channels=3,
        **{"temporal_fusion": "conv3d", **overrides},
    )


@pytest.mark.parametrize("frames", [3, 5, 7])
def test_every_context_gives_centre_logits_and_gradients_on_every_frame(frames: int) -> None:
    model = _model(frames).train()
    x = torch.randn(2, frames, 32, 32, requires_grad=True)
    out = model(x)
    assert out.shape == (2, 3, 32, 32)
    out[:, :, 16, 16].sum().backward()
    assert x.grad is not None
    per_frame = x.grad.abs().sum(dim=(0, 2, 3))
    assert (per_frame > 0).all(), per_frame  # the centre output sees every input frame


def test_one_frame_builds_the_plain_2d_level() -> None:
    single = _model(1)
    assert not any(isinstance(m, TemporalStem | nn.Conv3d) for m in single.modules())
    plain = _model(1, temporal_fusion="early")
    for (name, a), (_, b) in zip(
        single.state_dict().items(), plain.state_dict().items(), strict=True
    ):
        assert a.shape == b.shape, name


def test_stem_parameters_and_kernels() -> None:
    # 5 frames, 2 convolutions: kernels 3 then 3 along t; weights 1*16*3*3*3 + 16*16*3*3*3
    stem = TemporalStem(5, 16, norm="none")
    assert [unit.conv.kernel_size for unit in stem.units] == [(3, 3, 3), (3, 3, 3)]
    assert count_parameters(stem) == 16 * 27 + 16 + 16 * 16 * 27 + 16
    early = count_parameters(_model(5, temporal_fusion="early"))
    conv3d = count_parameters(_model(5))
    # first conv: (1 * 27) vs (5 * 9) weights per filter; second: 27 vs 9 per input map
    assert conv3d - early == 4 * (27 - 45) + 4 * 4 * (27 - 9)
    assert temporal_kernels(9, 3) == [3, 3, 5]


def test_first_convolution_is_one_filter_shared_by_every_frame() -> None:
    """Independent reference: Conv2d of each frame with the 3D kernel's slices, summed over t."""
    torch.manual_seed(1)
    stem = TemporalStem(5, 4, norm="none").eval()
    frames = torch.randn(1, 5, 12, 10)
    first = stem.units[0]
    got = first(frames.unsqueeze(1))  # (1, 4, 3, 12, 10): t-unpadded, y/x same-padded
    weight = first.conv.weight  # (4, 1, 3, 3, 3)
    bias = first.conv.bias
    assert got.shape == (1, 4, 3, 12, 10) and bias is not None
    for tau in range(3):
        expected = sum(
            nn.functional.conv2d(frames[:, tau + d : tau + d + 1], weight[:, :, d], padding=1)
            for d in range(3)
        )
        expected = torch.relu(expected + bias.view(1, -1, 1, 1))
        torch.testing.assert_close(got[:, :, tau], expected, atol=1e-5, rtol=1e-5)


def test_channels_last_placement_and_batchnorm_folding_keep_the_output() -> None:
    model = _model(5).train()
    x = torch.randn(4, 5, 32, 32)
    for _ in range(3):  # move the running statistics away from (0, 1)
        model(x * 2 + 1)
    model.eval()
    with torch.inference_mode():
        reference = model(x)
        fused = fuse_batchnorm(model)
        assert not any(isinstance(m, nn.BatchNorm3d | nn.BatchNorm2d) for m in fused.modules())
        torch.testing.assert_close(fused(x), reference, atol=1e-4, rtol=1e-4)
        placed = place_model(model, torch.device("cpu"))
        conv3d = placed.encoder[0].units[0].conv.weight
        assert conv3d.is_contiguous(memory_format=torch.channels_last_3d)
        out = placed(x.contiguous(memory_format=torch.channels_last))
        torch.testing.assert_close(out, reference, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ({"padding": "valid", "norm": "none"}, "model.padding=valid"),
        ({"init": "stemnet"}, "model.init=stemnet"),
        ({"dropout": 0.2, "dropout_where": "all", "dropout_before_bias": True}, "dropout_before"),
    ],
)
def test_combinations_it_cannot_build_are_refused(override: dict, named: str) -> None:
    with pytest.raises(LapsegInputError, match=named):
        UNetConfig.from_dict({"temporal_fusion": "conv3d", **override})


def test_trains_and_predicts_a_movie_from_the_cli(tmp_path: Path, capsys) -> None:
    from lapseg.data.synthetic_timelapse import TimelapseConfig, write_synthetic_timelapse

    small = TimelapseConfig(n_frames=8, shape=(48, 48), radius=(4.0, 6.0), dtype="float32")
    write_synthetic_timelapse(tmp_path / "data", n_sequences=2, config=small, rng=0)
    settings = [
        "data.layout=sequences",
        "temporal.context=2",
        "model.temporal_fusion=conv3d",
        "model.base_features=4",
        "model.depth=2",
        "train.epochs=1",
        "train.patch_size=[32, 32]",
        "train.patches_per_epoch=4",
        "train.batch_size=4",
        "train.tensorboard=false",
        "predict.tile_size=[48, 48]",
    ]
    sets = [arg for s in settings for arg in ("--set", s)]
    out = tmp_path / "run"
    train = ["train", "--data", str(tmp_path / "data"), "--out", str(out), "--no-progress"]
    assert main([*train, *sets]) == 0
    config = load_config(out / "config.yaml", [])
    assert config.model.temporal_fusion == "conv3d" and config.model.in_channels == 5
    movie = tmp_path / "data" / "seq00" / "frames"
    pred = tmp_path / "pred"
    assert (
        main(
            [
                "predict",
                "--model",
                str(out),
                "--input",
                str(movie),
                "--output",
                str(pred),
                "--no-progress",
            ]
        )
        == 0
    )
    labels = list(pred.rglob("labels.tif"))
    assert len(labels) == 1
    assert tifffile.imread(labels[0]).shape == (8, 48, 48)
    assert np.issubdtype(tifffile.imread(labels[0]).dtype, np.integer)
    capsys.readouterr()
