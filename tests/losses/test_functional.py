"""Tests for lapseg.losses.functional: hand-computed values, conventions and bad input."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F

from lapseg.losses import functional as LF


def _binary_logits(values: list[list[float]]) -> torch.Tensor:
    """(1, 1, Y, X) logits from a nested list."""
    return torch.tensor(values, dtype=torch.float32)[None, None]


def _target(values: list[list[int]]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.int64)[None]


def _random_case(k: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, k, 5, 6, generator=gen)
    target = torch.randint(0, max(k, 2), (2, 5, 6), generator=gen)
    return logits, target


OVERLAP_LOSSES = [LF.soft_dice_loss, LF.jaccard_loss, LF.tversky_loss]


# ------------------------------------------------------------------------------ cross-entropy
@pytest.mark.parametrize("k", [2, 4])
def test_cross_entropy_matches_torch_with_class_weights(k: int) -> None:
    logits, target = _random_case(k)
    weights = torch.linspace(0.5, 3.0, k)
    expected = F.cross_entropy(logits, target, weight=weights)
    got = LF.cross_entropy(logits, target, class_weights=weights)
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(LF.cross_entropy(logits, target), F.cross_entropy(logits, target))


def test_binary_cross_entropy_hand_formula() -> None:
    logits = _binary_logits([[2.0, -1.0]])
    target = _target([[1, 0]])
    # -log sigmoid(2) for the cell pixel (weight 2), -log(1 - sigmoid(-1)) for background (1)
    expected = (2 * math.log1p(math.exp(-2)) + 1 * math.log1p(math.exp(-1))) / 3
    got = LF.cross_entropy(logits, target, class_weights=(1.0, 2.0))
    assert got.item() == pytest.approx(expected, rel=1e-6)


def test_binary_model_equals_two_class_softmax_with_zero_background_logit() -> None:
    logits, target = _random_case(1)
    two = torch.cat([torch.zeros_like(logits), logits], dim=1)  # sigmoid(z) = softmax(0, z)[1]
    torch.testing.assert_close(LF.cross_entropy(logits, target), LF.cross_entropy(two, target))
    torch.testing.assert_close(
        LF.soft_dice_loss(logits, target, include_background=True),
        LF.soft_dice_loss(two, target, include_background=True),
    )
    torch.testing.assert_close(
        LF.focal_loss(logits, target, gamma=2.0), LF.focal_loss(two, target, gamma=2.0)
    )


def test_pixel_weights_reduce_as_weighted_mean() -> None:
    logits, target = _random_case(3)
    per_pixel = F.cross_entropy(logits, target, reduction="none")
    weights = torch.rand(target.shape, generator=torch.Generator().manual_seed(1)) + 0.1
    expected = (weights * per_pixel).sum() / weights.sum()
    got = LF.cross_entropy(logits, target, pixel_weights=weights)
    torch.testing.assert_close(got, expected)
    # a constant weight is a no-op under the normalised-mean convention
    twos = torch.full(target.shape, 2.0)
    torch.testing.assert_close(
        LF.cross_entropy(logits, target, pixel_weights=twos), LF.cross_entropy(logits, target)
    )


def test_valid_mask_ignores_pixels_entirely() -> None:
    logits, target = _random_case(3)
    valid = torch.ones(target.shape, dtype=torch.bool)
    valid[0, :2] = False
    changed_logits = logits.clone()
    changed_logits[0, :, :2] = 50.0 * torch.randn(3, 2, 6)
    changed_target = target.clone()
    changed_target[0, :2] = 99  # out-of-range labels in ignored pixels are fine
    expected_ce = F.cross_entropy(logits.permute(0, 2, 3, 1)[valid], target[valid])
    for fn in (LF.cross_entropy, LF.focal_loss, LF.soft_dice_loss, LF.dice_ce_loss):
        a = fn(logits, target, valid_mask=valid)
        b = fn(changed_logits, changed_target, valid_mask=valid)
        torch.testing.assert_close(a, b)
    torch.testing.assert_close(LF.cross_entropy(logits, target, valid_mask=valid), expected_ce)


def test_no_valid_pixel_gives_zero_loss_with_gradient() -> None:
    logits, target = _random_case(2)
    logits.requires_grad_(True)
    loss = LF.cross_entropy(logits, target, valid_mask=torch.zeros(target.shape, dtype=torch.bool))
    loss.backward()
    assert loss.item() == 0.0
    assert logits.grad is not None and torch.all(logits.grad == 0)


# ------------------------------------------------------------------------------ focal
def test_focal_with_gamma_zero_is_cross_entropy() -> None:
    logits, target = _random_case(3)
    alpha = [0.2, 1.0, 3.0]
    torch.testing.assert_close(
        LF.focal_loss(logits, target, gamma=0.0, alpha=alpha),
        LF.cross_entropy(logits, target, class_weights=alpha),
    )


def test_binary_focal_hand_values() -> None:
    logits = _binary_logits([[0.0, 2.0]])
    target = _target([[1, 0]])
    sig2 = 1 / (1 + math.exp(-2))
    l_fg = 0.25 * math.log(2)  # p_t = 0.5: (0.5)^2 * log 2
    l_bg = sig2**2 * math.log1p(math.exp(2))  # p_t = sigmoid(-2): (1 - p_t) = sigmoid(2)
    got = LF.focal_loss(logits, target, gamma=2.0)
    assert got.item() == pytest.approx((l_fg + l_bg) / 2, rel=1e-6)
    # scalar alpha = 0.25 weighs foreground 0.25 and background 0.75 (weights sum to 1 here)
    got_alpha = LF.focal_loss(logits, target, gamma=2.0, alpha=0.25)
    assert got_alpha.item() == pytest.approx(0.25 * l_fg + 0.75 * l_bg, rel=1e-6)


# ------------------------------------------------------------------------------ overlap losses
def test_dice_family_hand_values_binary() -> None:
    logits = _binary_logits([[0.0, 0.0], [0.0, 0.0]])  # p = 0.5 everywhere
    target = _target([[1, 1], [1, 0]])  # tp = 1.5, fp = 0.5, fn = 1.5
    assert LF.soft_dice_loss(logits, target, smooth=0).item() == pytest.approx(1 - 3 / 5)
    assert LF.soft_dice_loss(logits, target, smooth=1).item() == pytest.approx(1 - 4 / 6)
    assert LF.jaccard_loss(logits, target, smooth=0).item() == pytest.approx(1 - 1.5 / 3.5)
    got = LF.tversky_loss(logits, target, alpha=0.3, beta=0.7, smooth=0).item()
    assert got == pytest.approx(1 - 1.5 / (1.5 + 0.3 * 0.5 + 0.7 * 1.5))
    # background pair (1 - p, 1 - g): tp = 0.5, fp = 1.5, fn = 0.5 -> Dice 1 / 3
    got_bg = LF.soft_dice_loss(logits, target, smooth=0, include_background=True).item()
    assert got_bg == pytest.approx(1 - (3 / 5 + 1 / 3) / 2)


def test_dice_softmax_hand_values_and_include_background() -> None:
    logits = torch.zeros(1, 2, 2, 2)  # softmax 0.5 / 0.5
    target = _target([[1, 1], [1, 0]])
    assert LF.soft_dice_loss(logits, target, smooth=0).item() == pytest.approx(1 - 3 / 5)
    got = LF.soft_dice_loss(logits, target, smooth=0, include_background=True).item()
    assert got == pytest.approx(1 - (3 / 5 + 1 / 3) / 2)


def test_batch_dice_versus_per_image_dice() -> None:
    logits = torch.zeros(2, 1, 2, 2)
    target = torch.tensor([[[1, 1], [1, 1]], [[1, 0], [0, 0]]])
    # image 1: tp 2, fp 0, fn 2 -> 2/3; image 2: tp .5, fp 1.5, fn .5 -> 1/3; batch: 5/9
    per_image = LF.soft_dice_loss(logits, target, smooth=0, batch_dice=False).item()
    batch = LF.soft_dice_loss(logits, target, smooth=0, batch_dice=True).item()
    assert per_image == pytest.approx(0.5)
    assert batch == pytest.approx(4 / 9)


@pytest.mark.parametrize("fn", [*OVERLAP_LOSSES, LF.dice_ce_loss, LF.cross_entropy])
@pytest.mark.parametrize("k", [1, 3])
def test_perfect_prediction_has_near_zero_loss(fn: Callable[..., torch.Tensor], k: int) -> None:
    _, target = _random_case(k)
    onehot = F.one_hot(target, max(k, 2)).permute(0, 3, 1, 2).float()
    logits = 30.0 * (2 * onehot - 1)
    if k == 1:
        logits = logits[:, 1:]
    assert fn(logits, target).item() == pytest.approx(0.0, abs=1e-5)


def test_tversky_special_cases_equal_dice_and_jaccard() -> None:
    logits, target = _random_case(3)
    kwargs = {"include_background": True, "batch_dice": False}
    torch.testing.assert_close(
        LF.tversky_loss(logits, target, alpha=0.5, beta=0.5, smooth=0.0, **kwargs),
        LF.soft_dice_loss(logits, target, smooth=0.0, **kwargs),
    )
    torch.testing.assert_close(
        LF.tversky_loss(logits, target, alpha=0.5, beta=0.5, smooth=0.5, **kwargs),
        LF.soft_dice_loss(logits, target, smooth=1.0, **kwargs),
    )
    torch.testing.assert_close(
        LF.tversky_loss(logits, target, alpha=1.0, beta=1.0, smooth=1.0, **kwargs),
        LF.jaccard_loss(logits, target, smooth=1.0, **kwargs),
    )


def test_dice_ce_is_weighted_sum_and_applies_pixel_weights_to_ce() -> None:
    logits, target = _random_case(3)
    weights = torch.rand(target.shape, generator=torch.Generator().manual_seed(2))
    expected = 0.3 * LF.soft_dice_loss(logits, target) + 2.0 * LF.cross_entropy(
        logits, target, class_weights=[1, 2, 3], pixel_weights=weights
    )
    got = LF.dice_ce_loss(
        logits,
        target,
        dice_weight=0.3,
        ce_weight=2.0,
        class_weights=[1, 2, 3],
        pixel_weights=weights,
    )
    torch.testing.assert_close(got, expected)


# ------------------------------------------------------------------------------ numerics
@pytest.mark.parametrize(
    "fn",
    [
        LF.cross_entropy,
        LF.focal_loss,
        lambda lo, t: LF.focal_loss(lo, t, gamma=0.5),
        *OVERLAP_LOSSES,
        LF.dice_ce_loss,
    ],
)
@pytest.mark.parametrize("k", [1, 3])
def test_gradients_finite_for_extreme_logits(fn: Callable[..., torch.Tensor], k: int) -> None:
    _, target = _random_case(k)
    sign = torch.where(
        torch.rand(2, k, 5, 6, generator=torch.Generator().manual_seed(3)) > 0.5, 1, -1
    )
    logits = (1e4 * sign).float().requires_grad_(True)
    loss = fn(logits, target)
    loss.backward()
    assert torch.isfinite(loss)
    assert logits.grad is not None and torch.isfinite(logits.grad).all()


def test_low_precision_logits_are_computed_in_float32() -> None:
    logits, target = _random_case(3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        half = logits.bfloat16()
        loss = LF.dice_ce_loss(half, target)
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss, LF.dice_ce_loss(half.float(), target))


# ------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    ("logits", "target", "match"),
    [
        (torch.zeros(1, 2, 4, 4), torch.zeros(1, 4, 5, dtype=torch.long), "target must be"),
        (torch.zeros(2, 4, 4), torch.zeros(2, 4, 4, dtype=torch.long), "logits must be"),
        (torch.zeros(1, 2, 2, 2), torch.full((1, 2, 2), 2), r"\[0, 2\)"),
        (torch.zeros(1, 3, 2, 2), torch.full((1, 2, 2), -1), r"\[0, 3\)"),
        (torch.zeros(1, 1, 2, 2), torch.full((1, 2, 2), 2), "targets must be 0 or 1"),
        (torch.zeros(1, 2, 2, 2), torch.zeros(1, 2, 2), "integer class indices"),
        (torch.zeros(1, 2, 2, 2, dtype=torch.long), torch.zeros(1, 2, 2), "floating-point"),
    ],
)
@pytest.mark.parametrize("fn", [LF.cross_entropy, LF.soft_dice_loss, LF.focal_loss])
def test_bad_inputs_raise_value_error(
    fn: Callable[..., torch.Tensor], logits: torch.Tensor, target: torch.Tensor, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        fn(logits, target)


def test_bad_options_raise_value_error() -> None:
    logits, target = _random_case(3)
    with pytest.raises(ValueError, match="one weight per class"):
        LF.cross_entropy(logits, target, class_weights=[1.0, 2.0])
    with pytest.raises(ValueError, match="non-negative"):
        LF.cross_entropy(logits, target, class_weights=[1.0, -2.0, 1.0])
    with pytest.raises(ValueError, match="pixel_weights must be"):
        LF.cross_entropy(logits, target, pixel_weights=torch.ones(2, 5))
    with pytest.raises(ValueError, match="bool tensor"):
        LF.cross_entropy(logits, target, valid_mask=torch.ones(2, 5, 6))
    with pytest.raises(ValueError, match="gamma"):
        LF.focal_loss(logits, target, gamma=-1.0)
    with pytest.raises(ValueError, match="scalar alpha"):
        LF.focal_loss(logits, target, alpha=0.25)
    with pytest.raises(ValueError, match="smooth"):
        LF.soft_dice_loss(logits, target, smooth=-1.0)
    with pytest.raises(ValueError, match="alpha and beta"):
        LF.tversky_loss(logits, target, alpha=0.0, beta=0.0)
