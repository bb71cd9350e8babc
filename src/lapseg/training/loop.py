"""The epoch skeleton: one training epoch and one validation pass, readable in one sitting."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from lapseg.config import PredictConfig
from lapseg.data.dataset import Sample
from lapseg.device import autocast_context
from lapseg.inference.engines import predict_logits
from lapseg.inference.outputs import argmax_classes, threshold_probabilities
from lapseg.metrics.pixel import MetricAccumulator


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
    on_batch: Callable[[float], bool] | None = None,
) -> dict[str, float]:
    """Train ``model`` for one pass over ``loader``; returns ``{"train_loss": mean loss}``.

    ``precision`` autocasts the forward pass (:func:`lapseg.device.mixed_precision`); the loss
    is computed in float32. ``scaler`` scales float16 gradients (CUDA). ``on_batch(loss)`` is
    called after every step (progress bar, time budget); returning ``False`` ends the epoch.
    """
    model.train()
    total, count = 0.0, 0
    for batch in loader:
        image = batch["image"].to(device, non_blocking=True)
        if device.type != "mps":  # channels_last speeds up CPU and CUDA convolutions
            image = image.contiguous(memory_format=torch.channels_last)
        target = batch["target"].to(device, non_blocking=True)
        weights = batch["weights"].to(device, non_blocking=True) if use_pixel_weights else None
        optimizer.zero_grad(set_to_none=True)
        with autocast_context(device, precision):
            logits = model(image)
        loss = loss_fn(logits.float(), target, pixel_weights=weights)
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


@torch.inference_mode()
def validate(
    model: nn.Module,
    samples: Sequence[Sample],
    loss_fn: nn.Module,
    *,
    predict: PredictConfig,
    device: torch.device,
    num_classes: int,
    precision: torch.dtype | None = None,
) -> dict[str, float]:
    """Whole-image validation: mean loss per image and pooled Dice/IoU over all pixels.

    ``num_classes`` counts background (2 for a binary sigmoid model).
    """
    model.eval()
    accumulator = MetricAccumulator(num_classes=num_classes)
    losses = []
    for sample in samples:
        image = torch.from_numpy(sample.image).to(device)
        logits = predict_logits(model, image, predict, precision=precision)
        target = torch.from_numpy(sample.target).to(device)
        losses.append(float(loss_fn(logits[None], target[None])))
        labels = _classes(logits)
        accumulator.update(sample.target, labels)
    pooled = accumulator.pooled()
    dice = pooled.get("dice", pooled.get("mean_f1", float("nan")))
    iou = pooled.get("iou", pooled.get("mean_iou", float("nan")))
    return {"val_loss": float(np.mean(losses)), "val_dice": float(dice), "val_iou": float(iou)}


def _classes(logits: torch.Tensor) -> np.ndarray:
    """Class map ``(Y, X)`` of one image's logits ``(K, Y, X)`` (sigmoid > 0.5 for K == 1)."""
    if logits.shape[0] == 1:
        return threshold_probabilities(torch.sigmoid(logits[0]).float().cpu().numpy())
    return argmax_classes(logits)
