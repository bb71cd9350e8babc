"""The seed configurations hold the seeds' numbers: one row per number, naming where it is."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lapseg.config import LapsegConfig, load_config
from lapseg.training.schedules import lr_factor

CONFIGS = Path(__file__).resolve().parents[2] / "configs"

N1, N5, N5_T2, C002 = "stemnet-n1", "stemnet-n5", "stemnet-n5-table2", "compact-unet-002"
STEMNET = (N1, N5, N5_T2)

# (configuration, dotted key, the seed's value, where the seed says so)
ROWS: list[tuple[tuple[str, ...], str, Any, str]] = [
    # 000 StemNet: Tables 1-2 and the code of appendix 18.1
    (STEMNET, "model.preset", "stemnet-exact", "18.1.4 stemnet.py, 18.1.3 wrappers.py"),
    (STEMNET, "model.depth", 6, "stemnet.py: layers = 7 (pooling after the first six)"),
    (STEMNET, "model.convs_per_level", 1, "stemnet.py: one conv2d per layer"),
    (STEMNET, "model.kernel_size", 5, "Table 1: convolution 5x5; stemnet.py patch_size = 5"),
    (STEMNET, "model.base_features", 16, "stemnet.py: features_init = 16"),
    (STEMNET, "model.up_kernel_size", 2, "Table 1: deconvolution 2x2, stride 2"),
    (STEMNET, "model.out_channels", 2, "section 9: softmax over 2 classes; n_class = 2"),
    (STEMNET, "model.norm", "none", "13.1: no batch normalisation (batch of one image)"),
    (STEMNET, "model.dropout", 0.25, "Table 1: dropout 0.25 (train_and_eval.py keep 0.75)"),
    (STEMNET, "model.dropout_where", "all", "wrappers.py conv2d: dropout on every conv"),
    (STEMNET, "model.dropout_before_bias", True, "wrappers.py conv2d, then relu(conv + bias)"),
    (STEMNET, "model.up_activation", True, "stemnet.py: relu(deconv + bias_d)"),
    (STEMNET, "model.head_activation", "relu", "stemnet.py: output = relu(conv + bias)"),
    (STEMNET, "model.init", "stemnet", "stemnet.py stddev sqrt(2 / (5^2 n)); bias 0.1"),
    (STEMNET, "data.crop_or_pad", (1024, 1024), "6.4: cropped or padded to 1024x1024"),
    (STEMNET, "temporal.background", "median", "6.4, eq. 3: temporal median removed"),
    (STEMNET, "temporal.edge_mode", "replicate", "18.1.1 data_handler.py: frame t at the ends"),
    (STEMNET, "normalization.mode", "none", "data_handler.py: frame - 127, nothing else"),
    (STEMNET, "augment.preset", "none", "13.1 and data_handler.py: no augmentation"),
    (STEMNET, "loss.name", "ce", "13.1: weighted cross-entropy"),
    (STEMNET, "loss.class_weights", (1.0, 3.0), "stemnet.py weighted_cost: 1 + 2 y"),
    (STEMNET, "loss.params", {"normalize": "pixels"}, "stemnet.py: tf.reduce_mean"),
    (STEMNET, "train.optimizer", "sgd", "Table 1: momentum optimiser"),
    (STEMNET, "train.momentum", 0.2, "Table 1: momentum 0.2"),
    ((N1, N5), "train.lr", 0.15, "Table 1: learning rate 0.15"),
    ((N5_T2,), "train.lr", 0.1, "Table 2: learning rate 0.1"),
    (STEMNET, "train.schedule", "exponential", "Tables 1-2: with decay"),
    (STEMNET, "train.decay_rate", 0.95, "Table 1: decay rate 0.95"),
    (STEMNET, "train.decay_epochs", 1.0, "train_and_eval.py: decay_steps = training_iters"),
    (STEMNET, "train.batch_size", 1, "13.1 and train_and_eval.py: batch_size = 1"),
    (STEMNET, "train.patch_size", (1024, 1024), "data_handler.py: whole 1024x1024 frames"),
    (STEMNET, "train.patches_per_epoch", "pass", "train_and_eval.py: every training frame"),
    (STEMNET, "train.epochs", 20, "train_and_eval.py: epochs = 20"),
    ((N1,), "temporal.context", 0, "section 9: Network1, one frame"),
    ((N5, N5_T2), "temporal.context", 2, "section 9: Network5, frames t-2 .. t+2"),
    ((N5, N5_T2), "model.in_channels", 5, "section 9: 5 input channels"),
    # 002 compact U-Net: the project report
    ((C002,), "data.task", "instances", "Introduction: separating touching cells"),
    ((C002,), "data.target", "three_class", "Our Architecture: three classes"),
    ((C002,), "model.out_channels", 3, "Our Architecture: three classes"),
    ((C002,), "model.norm", "batch", "Our Architecture: BatchNorm before the activation"),
    ((C002,), "model.linear_last", 2, "Note: last two layers linear, without BatchNorm"),
    ((C002,), "loss.name", "ce", "Training: weighted cross entropy"),
    ((C002,), "loss.border_weights", True, "Introduction: the weight map w(x)"),
    ((C002,), "loss.w0", 10.0, "Introduction: w0 ~ 10"),
    ((C002,), "loss.sigma", 5.0, "Introduction: sigma ~ 5"),
    ((C002,), "train.optimizer", "adam", "Training specifications: Adam"),
    ((C002,), "train.epochs", 400, "Training specifications: 400 epochs"),
    ((C002,), "train.batch_size", 4, "Experiment 1: batch size = 4"),
    ((C002,), "train.patches_per_epoch", 24, "Training: 6 training steps per epoch"),
    ((C002,), "train.early_stopping_patience", 10, "Training: 10 consecutive epochs"),
    ((C002,), "train.monitor", "val_iou", "Training: our measure of accuracy is IOU"),
    ((C002,), "augment.elastic.alpha", (0.0, 50.0), "Experiment 1: alpha ~ Uniform(0, 50)"),
    ((C002,), "augment.elastic.sigma", 4.0, "Fig. 4: sigma = 4"),
    ((C002,), "augment.curriculum[0].when_metric", "val_iou", "Experiment 1: IOU in validation"),
    ((C002,), "augment.curriculum[0].threshold", 0.7, "Experiment 1: IOU accuracy of 0.7"),
]


def _config(name: str) -> LapsegConfig:
    return load_config(CONFIGS / f"{name}.yaml")


def _value(config: LapsegConfig, key: str) -> Any:
    value: Any = config
    for part in key.split("."):
        name, _, index = part.partition("[")
        value = getattr(value, name)
        if index:
            value = value[int(index.rstrip("]"))]
    return value


@pytest.mark.parametrize(
    ("name", "key", "expected", "where"),
    [(name, key, expected, where) for names, key, expected, where in ROWS for name in names],
    ids=lambda v: v if isinstance(v, str) and "/" not in v and len(v) < 40 else "",
)
def test_seed_number(name: str, key: str, expected: Any, where: str) -> None:
    assert _value(_config(name), key) == expected, where


@pytest.mark.parametrize(
    ("epoch", "lr"),
    [
        (1, 1e-3),
        (20, 1e-3),
        (21, 5e-4),
        (100, 5e-4),
        (101, 1e-4),
        (151, 5e-5),
        (201, 1e-5),
        (251, 5e-6),
        (400, 5e-6),
    ],
)
def test_compact_unet_learning_rate_table(epoch: int, lr: float) -> None:
    """002, Training: the piecewise table (epochs counted from 1)."""
    train = _config(C002).train
    assert train.lr * lr_factor(epoch - 1, train) == pytest.approx(lr)


@pytest.mark.parametrize("name", STEMNET)
def test_stemnet_decays_once_per_epoch(name: str) -> None:
    """000, train_and_eval.py: exponential_decay(staircase=True, decay_steps=one epoch)."""
    train = _config(name).train
    assert [round(lr_factor(e, train), 6) for e in range(3)] == [1.0, 0.95, 0.9025]


def test_the_three_stemnet_runs_differ_only_where_the_seed_does() -> None:
    n1, n5, n5_t2 = (_config(n).to_dict() for n in STEMNET)
    assert n5["train"] == {**n1["train"], "lr": n5["train"]["lr"]} == n5_t2["train"] | {"lr": 0.15}
    assert n1["loss"] == n5["loss"] == n5_t2["loss"]
    assert {**n5["temporal"], "context": 0} == n1["temporal"]
