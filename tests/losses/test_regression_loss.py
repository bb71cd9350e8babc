"""ClassesAndMapsLoss: the class loss plus the weighted MSE of the regressed maps."""

from __future__ import annotations

import pytest
import torch

from lapseg.losses import ClassesAndMapsLoss, create_loss


def _inputs(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, 4, 5, 6, generator=generator)
    target = torch.randint(0, 2, (2, 5, 6), generator=generator)
    maps = torch.rand(2, 2, 5, 6, generator=generator)
    return logits, target, maps


def test_value_is_the_class_loss_plus_weighted_mse_per_map():
    logits, target, maps = _inputs()
    base = create_loss("dice_ce")
    loss = ClassesAndMapsLoss(base, channels=2, weight=10.0)
    squared = (torch.sigmoid(logits[:, 2:]) - maps) ** 2
    expected = base(logits[:, :2], target) + 10.0 * (squared[:, 0].mean() + squared[:, 1].mean())
    torch.testing.assert_close(loss(logits, target, maps=maps), expected)


def test_hand_computed_regression_term():
    logits = torch.zeros(1, 4, 2, 2)  # sigmoid 0.5 everywhere
    target = torch.zeros(1, 2, 2, dtype=torch.long)
    maps = torch.zeros(1, 2, 2, 2)
    base = create_loss("ce")
    loss = ClassesAndMapsLoss(base, channels=2, weight=3.0)
    # per map 0.25, two maps, weight 3
    assert float(loss(logits, target, maps=maps) - base(logits[:, :2], target)) == pytest.approx(
        1.5
    )


def test_valid_mask_excludes_pixels_from_both_terms():
    logits, target, maps = _inputs(1)
    keep = torch.zeros(2, 5, 6, dtype=torch.bool)
    keep[:, :2] = True
    loss = ClassesAndMapsLoss(create_loss("ce"), channels=2, weight=1.0)
    changed = maps.clone()
    changed[:, :, 2:] = 1 - changed[:, :, 2:]  # only masked-out pixels differ
    torch.testing.assert_close(
        loss(logits, target, valid_mask=keep, maps=maps),
        loss(logits, target, valid_mask=keep, maps=changed),
    )
    assert float(loss(logits, target, maps=maps)) != pytest.approx(
        float(loss(logits, target, maps=changed))
    )


def test_gradients_reach_every_channel_and_pixel_weights_pass_through():
    logits, target, maps = _inputs(2)
    logits.requires_grad_(True)
    loss = ClassesAndMapsLoss(create_loss("ce"), channels=2, weight=1.0)
    assert loss.supports_pixel_weights
    loss(logits, target, pixel_weights=torch.ones(2, 5, 6), maps=maps).backward()
    assert logits.grad is not None
    assert (logits.grad.abs().sum(dim=(0, 2, 3)) > 0).all()
    assert not ClassesAndMapsLoss(
        create_loss("dice"), channels=2, weight=1.0
    ).supports_pixel_weights


def test_missing_or_mismatched_maps_are_errors():
    logits, target, maps = _inputs()
    loss = ClassesAndMapsLoss(create_loss("ce"), channels=2, weight=1.0)
    with pytest.raises(ValueError, match="maps"):
        loss(logits, target)
    with pytest.raises(ValueError, match="do not fit"):
        loss(logits, target, maps=maps[:, :1])
    with pytest.raises(ValueError, match="channels"):
        ClassesAndMapsLoss(create_loss("ce"), channels=0, weight=1.0)
