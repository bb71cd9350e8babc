"""Deep supervision (``model.deep_supervision``): the extra outputs, their loss, a run with them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import SMALLEST_TRAINING
from lapseg.config import UNetConfig, load_config
from lapseg.errors import LapsegInputError
from lapseg.losses import DiceCELoss, deep_supervision_loss, deep_supervision_weights
from lapseg.models.checkpoint import load_checkpoint
from lapseg.models.unet import UNet
from lapseg.training.loop import train_one_epoch
from lapseg.training.trainer import fit


def test_weights_halve_per_level_and_sum_to_one():
    assert deep_supervision_weights(1) == [1.0]
    weights = deep_supervision_weights(3)
    assert sum(weights) == pytest.approx(1.0)
    assert weights[1] == pytest.approx(weights[0] / 2) and weights[2] == pytest.approx(
        weights[0] / 4
    )
    with pytest.raises(ValueError, match="n_outputs"):
        deep_supervision_weights(0)


def test_one_output_is_the_plain_loss_and_coarse_outputs_count_at_full_resolution():
    torch.manual_seed(0)
    loss_fn = DiceCELoss()
    target = torch.randint(0, 3, (2, 16, 16))
    pixel_weights = torch.rand(2, 16, 16) + 0.5
    full = torch.randn(2, 3, 16, 16)
    plain = loss_fn(full, target, pixel_weights=pixel_weights)
    assert torch.equal(
        deep_supervision_loss(loss_fn, [full], target, pixel_weights=pixel_weights), plain
    )
    # a coarse output constant over the image upsamples to the same constant at full size
    values = torch.tensor([0.3, -1.0, 2.0])
    coarse = values[None, :, None, None].expand(2, 3, 4, 4).contiguous()
    as_full = values[None, :, None, None].expand(2, 3, 16, 16).contiguous()
    expected = (2 / 3) * plain + (1 / 3) * loss_fn(as_full, target, pixel_weights=pixel_weights)
    got = deep_supervision_loss(loss_fn, [full, coarse], target, pixel_weights=pixel_weights)
    torch.testing.assert_close(got, expected)


def test_the_network_adds_coarse_outputs_in_training_only():
    config = UNetConfig(depth=3, base_features=4, out_channels=3, deep_supervision=2, norm="none")
    torch.manual_seed(0)
    net = UNet(config)
    assert len(net.aux_heads) == 2
    x = torch.randn(2, 1, 32, 48)
    net.train()
    outputs = net(x)
    assert isinstance(outputs, tuple)
    assert [tuple(o.shape) for o in outputs] == [(2, 3, 32, 48), (2, 3, 16, 24), (2, 3, 8, 12)]
    net.eval()
    with torch.no_grad():
        logits = net(x)
    assert isinstance(logits, torch.Tensor)
    torch.testing.assert_close(logits, outputs[0].detach())  # no dropout, no BatchNorm
    plain = UNet(config.replace(deep_supervision=0))
    assert not any("aux_heads" in key for key in plain.state_dict())
    assert isinstance(plain.train()(x), torch.Tensor)


def test_a_training_step_takes_the_combined_loss_and_trains_the_coarse_head():
    torch.manual_seed(0)
    image, target = torch.randn(2, 1, 32, 32), torch.randint(0, 3, (2, 32, 32))
    net = UNet(UNetConfig(depth=2, base_features=4, out_channels=3, deep_supervision=1))
    loss_fn = DiceCELoss()
    with torch.no_grad():
        outputs = net.train()(image)
        combined = float(deep_supervision_loss(loss_fn, outputs, target))
        plain = float(loss_fn(outputs[0], target))
    head = net.aux_heads[0].weight.detach().clone()
    optimizer = torch.optim.Adam(net.parameters(), lr=0.01)
    batch = {"image": image, "target": target}
    row = train_one_epoch(net, [batch], loss_fn, optimizer, device=torch.device("cpu"))
    assert row["train_loss"] == pytest.approx(combined, rel=1e-5)
    assert row["train_loss"] != pytest.approx(plain, rel=1e-3)
    assert not torch.equal(net.aux_heads[0].weight, head)  # the coarse loss reached its head


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (["model.depth=2", "model.deep_supervision=2"], "needs model.depth > 2"),
        (
            ["model.preset=ronneberger2015", "model.deep_supervision=1"],
            "needs model.padding=same",
        ),
    ],
)
def test_deep_supervision_must_fit_the_network(settings, message):
    with pytest.raises(LapsegInputError, match=message):
        load_config(None, settings)


def test_a_run_trains_the_coarse_heads_and_predicts_with_the_full_output(
    tiny_dataset: Path, tmp_path: Path
):
    from lapseg.export import export_onnx_file, export_torchscript
    from lapseg.inference.exported import load_exported_model
    from lapseg.inference.predict import load_model, predict_probabilities

    config = load_config(None, [*SMALLEST_TRAINING, "train.epochs=2", "model.deep_supervision=1"])
    torch.manual_seed(config.train.seed)
    result = fit(config, tiny_dataset, tmp_path / "run", progress=False)
    last = load_checkpoint(result.last_checkpoint)
    stored = load_config(result.run_dir / "config.yaml", [])
    assert stored.model.deep_supervision == 1
    assert "aux_heads.0.weight" in last["model_state"]
    loaded = load_model(result.run_dir)
    image = torch.randn(1, stored.model.in_channels, 64, 64)
    with torch.no_grad():
        predicted = loaded.model.float().cpu()(image)
    assert isinstance(predicted, torch.Tensor)
    assert predicted.shape == (1, stored.model.outputs, 64, 64)
    # the exports carry the full-resolution output alone and predict what the run predicts
    picture = np.random.default_rng(0).random((1, 96, 96)).astype(np.float32)  # (C, Y, X)
    expected = predict_probabilities([loaded], picture)
    for name in ("net.pt", "net.onnx"):
        out = tmp_path / name
        (export_onnx_file if name.endswith(".onnx") else export_torchscript)(result.run_dir, out)
        got = predict_probabilities([load_exported_model(out)], picture)
        np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)
