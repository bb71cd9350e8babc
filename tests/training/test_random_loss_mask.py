"""The lecture's (003) random loss mask for full-image training: ``loss.keep_probability``
reaches the loss as its ``valid_mask``, and masked pixels give no gradient."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from lapseg.config import LossConfig
from lapseg.errors import LapsegInputError
from lapseg.losses import create_loss
from lapseg.training.loop import train_one_epoch


class PixelLogits(nn.Module):
    """One free logit per pixel: the gradient of pixel (y, x) comes from its own loss only."""

    def __init__(self, shape: tuple[int, int]) -> None:
        super().__init__()
        self.logits = nn.Parameter(torch.randn(1, 1, *shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits.expand(x.shape[0], -1, -1, -1)


class Recording(nn.Module):
    """A loss that remembers the masks it was given."""

    def __init__(self) -> None:
        super().__init__()
        self.loss = create_loss("ce")
        self.masks: list[torch.Tensor | None] = []
        self.values: list[float] = []

    def forward(self, logits: torch.Tensor, target: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        self.masks.append(kwargs.get("valid_mask"))
        value = self.loss(logits, target, **kwargs)
        self.values.append(float(value.detach()))
        return value


def _one_step(keep: float, seed: int = 0) -> tuple[PixelLogits, Recording, torch.Tensor]:
    torch.manual_seed(seed)
    model = PixelLogits((16, 16))
    target = (torch.rand(1, 16, 16) > 0.5).long()
    batch = {"image": torch.zeros(1, 1, 16, 16), "target": target, "weights": torch.ones(1, 16, 16)}
    loss = Recording()
    before = model.logits.detach().clone()
    train_one_epoch(
        model,
        [batch],  # type: ignore[arg-type]  # any iterable of batches
        loss,
        torch.optim.SGD(model.parameters(), lr=1.0),
        device=torch.device("cpu"),
        keep_probability=keep,
    )
    return model, loss, model.logits.detach() - before


def test_no_mask_by_default() -> None:
    assert LossConfig().keep_probability == 1.0
    _, loss, step = _one_step(1.0)
    assert loss.masks == [None]
    assert bool((step != 0).all())  # every pixel learns


def test_masked_pixels_get_no_gradient() -> None:
    _, loss, step = _one_step(0.5)
    (mask,) = loss.masks
    assert mask is not None and mask.dtype == torch.bool and mask.shape == (1, 16, 16)
    assert 0.3 < float(mask.float().mean()) < 0.7
    moved = step[0, 0] != 0
    assert torch.equal(moved, mask[0])  # exactly the kept pixels changed


def test_the_masked_loss_differs_and_the_mask_is_drawn_anew() -> None:
    _, full, _ = _one_step(1.0)
    _, half, _ = _one_step(0.5)
    assert full.values[0] != pytest.approx(half.values[0], abs=1e-6)
    _, again, _ = _one_step(0.5, seed=1)
    assert not torch.equal(half.masks[0], again.masks[0])  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [0.0, -0.1, 1.5])
def test_keep_probability_range(value: float) -> None:
    with pytest.raises(LapsegInputError, match=r"loss\.keep_probability"):
        LossConfig(keep_probability=value)
