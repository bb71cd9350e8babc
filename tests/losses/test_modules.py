"""Tests for lapseg.losses.modules: wrappers, pixel-weight policy and the create_loss registry."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from lapseg.errors import LapsegInputError
from lapseg.losses import functional as LF
from lapseg.losses.modules import LOSSES, DiceCELoss, create_loss


def _case() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 4, 5, generator=gen)
    target = torch.randint(0, 3, (2, 4, 5), generator=gen)
    weights = torch.rand(2, 4, 5, generator=gen) + 0.5
    valid = torch.rand(2, 4, 5, generator=gen) > 0.3
    return logits, target, weights, valid


def test_registry_names() -> None:
    assert set(LOSSES) == {"ce", "dice", "jaccard", "tversky", "focal", "dice_ce"}


@pytest.mark.parametrize(
    ("name", "params", "reference"),
    [
        (
            "ce",
            {"class_weights": [1, 2, 3]},
            lambda lo, t, v: LF.cross_entropy(lo, t, class_weights=[1, 2, 3], valid_mask=v),
        ),
        ("focal", {"gamma": 1.5}, lambda lo, t, v: LF.focal_loss(lo, t, gamma=1.5, valid_mask=v)),
        (
            "dice",
            {"smooth": 0.5},
            lambda lo, t, v: LF.soft_dice_loss(lo, t, smooth=0.5, valid_mask=v),
        ),
        (
            "jaccard",
            {"include_background": True},
            lambda lo, t, v: LF.jaccard_loss(lo, t, include_background=True, valid_mask=v),
        ),
        (
            "tversky",
            {"alpha": 0.3, "beta": 0.7},
            lambda lo, t, v: LF.tversky_loss(lo, t, alpha=0.3, beta=0.7, valid_mask=v),
        ),
        (
            "dice_ce",
            {"ce_weight": 0.5},
            lambda lo, t, v: LF.dice_ce_loss(lo, t, ce_weight=0.5, valid_mask=v),
        ),
    ],
)
def test_modules_match_functional(
    name: str, params: dict, reference: Callable[..., torch.Tensor]
) -> None:
    logits, target, _, valid = _case()
    loss = create_loss(name, **params)
    torch.testing.assert_close(
        loss(logits, target, valid_mask=valid), reference(logits, target, valid)
    )
    for key, value in params.items():
        assert loss.config[key] == value
    assert name in repr(loss) or type(loss).__name__ in repr(loss)


@pytest.mark.parametrize("name", ["dice", "jaccard", "tversky"])
def test_overlap_losses_refuse_pixel_weights(name: str) -> None:
    logits, target, weights, _ = _case()
    loss = create_loss(name)
    assert loss.supports_pixel_weights is False
    with pytest.raises(ValueError, match="cannot use pixel_weights"):
        loss(logits, target, pixel_weights=weights)


@pytest.mark.parametrize("name", ["ce", "focal", "dice_ce"])
def test_pixel_weight_losses_use_them(name: str) -> None:
    logits, target, weights, _ = _case()
    loss = create_loss(name)
    assert loss.supports_pixel_weights is True
    assert not torch.allclose(loss(logits, target, weights), loss(logits, target))


def test_dice_ce_applies_pixel_weights_to_ce_part_only() -> None:
    logits, target, weights, _ = _case()
    loss = DiceCELoss(dice_weight=2.0, class_weights=[1.0, 1.0, 4.0])
    expected = 2.0 * LF.soft_dice_loss(logits, target) + LF.cross_entropy(
        logits, target, class_weights=[1.0, 1.0, 4.0], pixel_weights=weights
    )
    torch.testing.assert_close(loss(logits, target, weights), expected)


def test_gradients_flow_through_module() -> None:
    logits, target, weights, _ = _case()
    logits.requires_grad_(True)
    create_loss("dice_ce")(logits, target, weights).backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()
    assert logits.grad.abs().sum() > 0


def test_unknown_name_lists_valid_names() -> None:
    with pytest.raises(LapsegInputError, match=r"unknown loss 'dicee'.*dice, dice_ce, focal"):
        create_loss("dicee")


def test_unknown_parameter_names_it_and_the_accepted_ones() -> None:
    with pytest.raises(LapsegInputError, match=r"gama.*accepted: gamma, alpha"):
        create_loss("focal", gama=2.0)


@pytest.mark.parametrize(
    ("name", "params", "match"),
    [
        ("dice", {"smooth": -1.0}, "smooth"),
        ("tversky", {"alpha": -0.1}, "alpha and beta"),
        ("focal", {"gamma": -2.0}, "gamma"),
        ("focal", {"alpha": 1.5}, "alpha"),
        ("ce", {"class_weights": [1.0, -1.0]}, "class weights"),
        ("ce", {"class_weights": [1.0]}, "class weights"),
        ("dice_ce", {"ce_weight": -1.0}, "ce_weight"),
    ],
)
def test_bad_parameter_values_raise_input_error(name: str, params: dict, match: str) -> None:
    with pytest.raises(LapsegInputError, match=match) as info:
        create_loss(name, **params)
    assert "\n" not in str(info.value)
