"""``configs/pancreas-keras.yaml`` holds seed 001's numbers: one row per number, naming where
the report says so (section numbers and Fig 3, the code snippet of its U-Net)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from lapseg.config import AugmentationConfig, LapsegConfig, load_config
from lapseg.data.dataset import PatchDataset
from lapseg.data.samples import Sample
from lapseg.models.registry import create_model

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "pancreas-keras.yaml"

# (dotted key, the seed's value, where the seed says so)
ROWS: list[tuple[str, Any, str]] = [
    ("data.layout", "sequences", "8.2: a 4D array (time, depth, height, width)"),
    ("data.axes", "TZYX", "8.2: axes (time, depth, height, width)"),
    ("data.test_fraction", 0.25, "8.2: 100 images, 75 for training and 25 for testing"),
    ("data.val_fraction", 0.0, "8.2: a training and a test set, no validation set"),
    ("model.base_features", 16, "8.2: convolution layers with 16 different filters"),
    ("model.depth", 4, "8.2: done 4 layers down; Fig 3: c1..c4 pooled, c5 the bottom"),
    ("model.convs_per_level", 2, "Fig 3: conv2d_block, two Conv2D (second layer)"),
    ("model.kernel_size", 3, "Fig 3: conv2d_block(kernel_size=3)"),
    ("model.padding", "same", "Fig 3: Conv2D(padding='same')"),
    ("model.norm", "batch", "8.2 and Fig 3: BatchNormalization() after every Conv2D"),
    ("model.init", "he", "Fig 3: kernel_initializer='he_normal'"),
    ("model.dropout", 0.5, "Fig 3: get_unet(..., dropout=0.5)"),
    ("model.dropout_where", "pool_concat", "Fig 3: Dropout after p1..p4 and u6..u9"),
    ("model.upsampling", "transpose", "Fig 3: Conv2DTranspose"),
    ("model.up_kernel_size", 3, "Fig 3: Conv2DTranspose(n, (3, 3), strides=(2, 2))"),
    ("model.skip_connections", True, "Fig 3: concatenate([u6, c4]) ..."),
    ("loss.name", "ce", "4.1: binary cross-entropy"),
    ("augment.preset", "none", "8.2: the data are loaded and fitted as they are"),
    ("train.epochs", 100, "7: around 10 minutes with 100 epochs"),
    ("train.patches_per_epoch", "pass", "8.2: the model is fitted on the training images"),
    ("train.patch_size", (528, 832), "3: each 2D image is 821x523, whole (16-pixel grid)"),
    ("predict.threshold_method", "fixed", "8.2: a threshold is applied to the predictions"),
    ("predict.threshold", 0.5, "8.2: the intuitive threshold of 0.5 is chosen"),
]


@pytest.fixture(scope="module")
def config() -> LapsegConfig:
    return load_config(CONFIG)


def _value(config: LapsegConfig, key: str) -> Any:
    section, name = key.split(".")
    return getattr(getattr(config, section), name)


@pytest.mark.parametrize(("key", "expected", "where"), ROWS, ids=[row[0] for row in ROWS])
def test_config_holds_the_seeds_number(
    config: LapsegConfig, key: str, expected: Any, where: str
) -> None:
    assert _value(config, key) == expected, f"seed 001 {where}"


def test_no_augmentation_at_all(config: LapsegConfig) -> None:
    # 8.2 trains on the images as loaded: every transform off, not just a lighter preset
    assert config.augment == AugmentationConfig(preset="none")


def test_the_network_is_figure_3(config: LapsegConfig) -> None:
    model = create_model(config.model)
    assert model.head.out_channels == 1  # Fig 3: Conv2D(1, (1, 1), activation='sigmoid')
    assert [m.conv.out_channels for m in model.up] == [128, 64, 32, 16]  # type: ignore[union-attr]
    assert isinstance(model.up[0].conv, nn.ConvTranspose2d)  # type: ignore[union-attr]
    assert model.up[0].conv.kernel_size == (3, 3)  # type: ignore[union-attr]
    assert [m.p for m in model.pool_drop] == [0.25, 0.5, 0.5, 0.5]  # type: ignore[attr-defined]
    # a whole 523 x 821 frame padded to the patch goes through: 4 poolings of 528 x 832
    assert model.valid_input_size(523) == 528 and model.valid_input_size(821) == 832
    with torch.no_grad():
        assert model.eval()(torch.zeros(1, 1, 528, 832)).shape == (1, 1, 528, 832)


def test_an_epoch_is_every_whole_frame_once(config: LapsegConfig) -> None:
    rng = np.random.default_rng(0)
    frames = [
        Sample(
            name=f"f{i}",
            image=rng.normal(size=(1, 523, 821)).astype(np.float32),
            target=(rng.random((523, 821)) > 0.9).astype(np.int64),
        )
        for i in range(3)
    ]
    dataset = PatchDataset(
        frames,
        patch_size=config.train.patch_size,
        patches_per_epoch=config.train.patches_per_epoch,
        foreground_probability=config.train.foreground_probability,
        augment=config.augment,
        seed=0,
    )
    items = [dataset[i] for i in range(len(dataset))]
    assert len(items) == 3
    found = sorted(
        next(
            i for i, f in enumerate(frames) if np.array_equal(item["image"][:, :523, :821], f.image)
        )
        for item in items
    )
    assert found == [0, 1, 2]  # each whole frame once, padded at the end to the patch
