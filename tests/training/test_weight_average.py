"""The moving average of the weights (``train.ema_decay``): the update rule, and that a run
validates, stores and predicts with the average."""

import itertools
import json
from pathlib import Path

import pytest
import torch
from torch import nn

from conftest import SMALLEST_TRAINING
from lapseg.config import load_config
from lapseg.errors import LapsegInputError
from lapseg.models.checkpoint import load_checkpoint
from lapseg.training.averaging import average_copy, average_decay, update_average
from lapseg.training.trainer import fit

TINY = SMALLEST_TRAINING


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))


def test_update_moves_parameters_and_float_buffers_by_one_minus_decay():
    model = _net()
    average = average_copy(model)
    before = {k: v.clone() for k, v in average.state_dict().items()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    model.train()
    model(torch.randn(2, 1, 8, 8))  # changes the running statistics and the batch count
    update_average(average, model, decay=0.75)
    after, trained = average.state_dict(), model.state_dict()
    for key, value in after.items():
        if value.dtype.is_floating_point:
            expected = 0.75 * before[key] + 0.25 * trained[key]
            torch.testing.assert_close(value, expected, msg=key)
        else:  # num_batches_tracked is copied
            assert torch.equal(value, trained[key]), key
    weight = after["0.weight"]
    torch.testing.assert_close(weight, before["0.weight"] + 0.25)  # each weight moved 1/4 of 1
    assert not any(p.requires_grad for p in average.parameters())
    assert all(p.requires_grad for p in model.parameters())  # the copy leaves the model alone


def test_decay_warms_up_towards_the_configured_value():
    decays = [average_decay(0.99, t) for t in range(0, 2000, 100)]
    assert decays[0] == pytest.approx(0.1)
    assert all(a <= b for a, b in itertools.pairwise(decays))
    assert decays[-1] == 0.99
    assert average_decay(0.5, 0) == pytest.approx(0.1) and average_decay(0.5, 20) == 0.5


def test_decay_zero_is_off_and_must_be_below_one():
    assert load_config(None, []).train.ema_decay == 0.0
    with pytest.raises(LapsegInputError, match=r"train\.ema_decay=1\.0: input should be less"):
        load_config(None, ["train.ema_decay=1.0"])


def test_a_run_with_averaging_validates_stores_and_predicts_with_the_average(
    tiny_dataset: Path, tmp_path: Path
):
    from lapseg.data.setup import prepare_run_data
    from lapseg.inference.predict import load_model
    from lapseg.models.registry import create_model
    from lapseg.training.setup import _make_loss
    from lapseg.training.validation import ValidationSet, validate

    config = load_config(None, [*TINY, "train.epochs=2", "train.ema_decay=0.9", "train.amp=false"])
    result = fit(config, tiny_dataset, tmp_path / "run", progress=False)
    last = load_checkpoint(result.last_checkpoint)
    assert last["steps_averaged"] == 4  # 2 epochs of 2 steps
    average, trained = last["model_state"], last["trained_model_state"]
    assert any(not torch.equal(average[k], trained[k]) for k in average)

    # the logged validation loss is the average's, recomputed here from the stored weights
    stored = load_config(result.run_dir / "config.yaml", [])
    data = prepare_run_data(stored, tiny_dataset, split=last["split"])
    tiles = ValidationSet.from_samples(data.val, tile=2 * max(stored.train.patch_size))
    run_json = json.loads((result.run_dir / "run.json").read_text())
    loss_fn = _make_loss(stored, run_json["class_weights"])
    losses = {}
    for kind in ("model_state", "trained_model_state"):
        network = create_model(stored.model)
        network.load_state_dict(last[kind])
        row = validate(network, tiles, loss_fn, stored, device=torch.device("cpu"))
        losses[kind] = row["val_loss"]
    logged = result.history[-1]["val_loss"]
    assert losses["model_state"] == pytest.approx(logged, rel=1e-5)
    assert losses["trained_model_state"] != pytest.approx(logged, rel=1e-5)

    # best.pt holds the average of its epoch, and prediction runs it (BatchNorm folded)
    best = load_checkpoint(result.best_checkpoint)
    assert "trained_model_state" in best
    loaded = load_model(result.run_dir)
    image = torch.randn(1, stored.model.in_channels, 64, 64)
    outputs = {}
    for kind in ("model_state", "trained_model_state"):
        network = create_model(stored.model)
        network.load_state_dict(best[kind])
        with torch.no_grad():
            outputs[kind] = network.eval()(image)
    with torch.no_grad():
        predicted = loaded.model.float().cpu()(image)
    torch.testing.assert_close(predicted, outputs["model_state"], rtol=1e-4, atol=1e-4)
    assert not torch.allclose(predicted, outputs["trained_model_state"], atol=1e-4)
