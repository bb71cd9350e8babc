"""The seed code's cost functions: StemNet's weighted cost (1 + 2y, mean over pixels) and its
Dice coefficient, against the formulas of its TensorFlow code written out by hand."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lapseg.errors import LapsegInputError
from lapseg.losses import create_loss
from lapseg.losses.functional import cross_entropy, soft_dice_loss


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 2, 4, 5, generator=generator)
    target = (torch.rand(2, 4, 5, generator=generator) > 0.7).long()
    return logits, target


def test_weighted_cost_is_one_plus_two_y_averaged_over_pixels() -> None:
    logits, target = _batch()
    ce = F.cross_entropy(logits, target, reduction="none")  # softmax_cross_entropy_with_logits
    expected = ((1.0 + 2.0 * target.float()) * ce).mean()  # tf.reduce_mean(weight_pos * ce)
    loss = create_loss("ce", class_weights=[1.0, 3.0], normalize="pixels")
    assert loss(logits, target) == pytest.approx(float(expected), rel=1e-6)
    # the default normalisation divides by the weights' sum instead
    weighted = cross_entropy(logits, target, class_weights=[1.0, 3.0])
    assert weighted == pytest.approx(float(expected * target.numel() / (1 + 2 * target).sum()))


def test_pixel_normalisation_counts_valid_pixels_only() -> None:
    logits, target = _batch()
    valid = torch.ones_like(target, dtype=torch.bool)
    valid[0] = False
    ce = F.cross_entropy(logits[1:], target[1:], reduction="none")
    got = cross_entropy(logits, target, valid_mask=valid, normalize="pixels")
    assert got == pytest.approx(float(ce.mean()), rel=1e-6)


def test_stemnet_dice_coefficient() -> None:
    logits, target = _batch()
    prediction = torch.softmax(logits, dim=1)
    onehot = F.one_hot(target, 2).permute(0, 3, 1, 2).float()
    intersection = (prediction * onehot).sum()  # over batch, pixels and both classes
    union = (prediction * prediction).sum() + (onehot * onehot).sum()
    expected = 1 - 2 * intersection / union
    loss = create_loss(
        "dice",
        squared=True,
        pool_classes=True,
        include_background=True,
        batch_dice=True,
        smooth=0.0,
    )
    assert loss(logits, target) == pytest.approx(float(expected), rel=1e-6)


def test_default_dice_unchanged_by_the_new_options() -> None:
    logits, target = _batch()
    tp = (torch.softmax(logits, 1)[:, 1] * target).sum()
    p, g = torch.softmax(logits, 1)[:, 1].sum(), target.sum()
    assert soft_dice_loss(logits, target) == pytest.approx(float(1 - (2 * tp + 1) / (p + g + 1)))


def test_bad_normalisation_is_one_line() -> None:
    with pytest.raises(LapsegInputError, match="normalize must be"):
        create_loss("ce", normalize="batch")
    with pytest.raises(ValueError, match="normalize must be"):
        cross_entropy(*_batch(), normalize="batch")
