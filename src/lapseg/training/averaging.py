"""An exponential moving average of the network's weights (``train.ema_decay``).

After every optimiser step the average moves towards the trained weights::

    average <- decay_t * average + (1 - decay_t) * weights,   decay_t = min(decay, (1 + t) / (10 + t))

where ``t`` counts the steps averaged so far; the warm-up of ``decay_t`` (as in timm's
``ModelEmaV2`` and TensorFlow's ``ExponentialMovingAverage``) keeps the first steps from
dragging the random initialisation along. Buffers are averaged the same way (BatchNorm's
running statistics), integer buffers copied. With averaging on, validation, the best
checkpoint, the post-processing tuning and prediction all use the average; the optimiser keeps
stepping the trained weights.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

__all__ = ["average_copy", "average_decay", "update_average"]


def average_copy(model: nn.Module) -> nn.Module:
    """A copy of ``model`` to hold the average (same device and layout, no gradients)."""
    average = copy.deepcopy(model)
    average.requires_grad_(False)
    return average


def average_decay(decay: float, steps_averaged: int) -> float:
    """The decay used for the next update after ``steps_averaged`` updates.

    >>> average_decay(0.99, 0), round(average_decay(0.99, 90), 3), average_decay(0.99, 10_000)
    (0.1, 0.91, 0.99)
    """
    return min(decay, (1.0 + steps_averaged) / (10.0 + steps_averaged))


@torch.no_grad()
def update_average(average: nn.Module, model: nn.Module, decay: float) -> None:
    """Move ``average``'s parameters and float buffers towards ``model``'s by ``1 - decay``."""
    averaged = average.state_dict()
    for name, value in model.state_dict().items():
        target = averaged[name]
        if target.dtype.is_floating_point:
            target.lerp_(value.to(target.dtype), 1.0 - decay)
        else:
            target.copy_(value)
