"""One training epoch, readable in one sitting (validation: :mod:`lapseg.training.validation`)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from lapseg.device import autocast_context
from lapseg.losses import deep_supervision_loss


def train_one_epoch(
    model: nn.Module,
    loader: torch.utils.data.DataLoader,
    loss_fn: nn.Module,
    optimizer: torch.optim.Optimizer,
    *,
    device: torch.device,
    precision: torch.dtype | None = None,
    scaler: torch.amp.GradScaler | None = None,
    use_pixel_weights: bool = False,
    keep_probability: float = 1.0,
    on_batch: Callable[[float], bool] | None = None,
) -> dict[str, float]:
    """Train ``model`` for one pass over ``loader``; returns ``{"train_loss": mean loss}``.

    ``precision`` autocasts the forward pass (:func:`lapseg.device.mixed_precision`); the loss
    is computed in float32. ``scaler`` scales float16 gradients (CUDA). ``keep_probability``
    < 1: a random loss mask, each target pixel kept with that probability (``valid_mask`` of
    the loss, drawn from torch's generator). ``on_batch(loss)`` is called after every step
    (progress bar, time budget); returning ``False`` ends the epoch. Batches with ``maps``
    (regression targets, ``data.target=distance``) hand them to the loss. A model with deep
    supervision returns several outputs in training mode; the loss then covers them all.
    """
    model.train()
    total, count = 0.0, 0
    for batch in loader:
        image = batch["image"].to(device, non_blocking=True)
        if device.type != "mps":  # channels_last speeds up CPU and CUDA convolutions
            image = image.contiguous(memory_format=torch.channels_last)
        target = batch["target"].to(device, non_blocking=True)
        weights = batch["weights"].to(device, non_blocking=True) if use_pixel_weights else None
        maps = {"maps": batch["maps"].to(device, non_blocking=True)} if "maps" in batch else {}
        keep = None
        if keep_probability < 1.0:
            keep = torch.rand(target.shape, device=target.device) < keep_probability
        optimizer.zero_grad(set_to_none=True)
        with autocast_context(device, precision):
            logits = model(image)
        outputs = logits if isinstance(logits, tuple) else (logits,)
        loss = deep_supervision_loss(
            loss_fn, outputs, target, pixel_weights=weights, valid_mask=keep, **maps
        )
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        value = float(loss.detach())
        total += value * image.shape[0]
        count += image.shape[0]
        if on_batch is not None and on_batch(value) is False:
            break
    return {"train_loss": total / max(count, 1)}
