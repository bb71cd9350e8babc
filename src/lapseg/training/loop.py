"""The epoch skeleton: one training epoch and one validation pass, readable in one sitting."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from lapseg.config import PredictConfig
from lapseg.data.dataset import Sample
from lapseg.inference.engines import Predictor, torch_predictor
from lapseg.inference.sliding_window import predict_sliding_window
from lapseg.metrics.pixel import MetricAccumulator


def select_device(name: str = "auto") -> torch.device:
    """``"auto"`` picks CUDA, then Apple MPS, then the CPU; anything else is used as given."""
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def autocast_context(device: torch.device, enabled: bool) -> contextlib.AbstractContextManager:
    """Mixed precision (float16 autocast) on CUDA only; a no-op elsewhere."""
    if enabled and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.float16)
    return contextlib.nullcontext()


def train_one_epoch(
    model: nn.Module,
    loader: torch.utils.data.DataLoader,
    loss_fn: nn.Module,
    optimizer: torch.optim.Optimizer,
    *,
    device: torch.device,
    scaler: torch.amp.GradScaler | None = None,
    use_pixel_weights: bool = False,
    on_batch: Callable[[float], bool] | None = None,
) -> dict[str, float]:
    """Train ``model`` for one pass over ``loader``; returns ``{"train_loss": mean loss}``.

    ``on_batch(loss)`` is called after every step (progress bar, time budget); returning
    ``False`` ends the epoch early.
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
        with autocast_context(device, scaler is not None):
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


def predict_logits(
    model: nn.Module,
    image: torch.Tensor,
    predict: PredictConfig,
    *,
    amp: bool = False,
    predictor: Predictor | None = None,
) -> torch.Tensor:
    """Sliding-window logits ``(K, Y, X)`` of ``model`` for one ``(C, Y, X)`` image tensor.

    ``predictor`` (default: eager PyTorch on ``model``) runs each batch of tiles; pass an ONNX
    or test-time-augmentation predictor built for the same model.
    """
    if predictor is None:
        predictor = torch_predictor(model, amp=amp)
    return predict_sliding_window(
        predictor,
        image,
        tile_size=tuple(predict.tile_size),
        overlap=predict.overlap,
        blend=predict.blend,
        batch_size=predict.batch_size,
        size_multiple=int(getattr(model, "size_multiple", 1)),
        output_margin=int(getattr(model, "output_margin", 0)),
    )


def logits_to_labels(logits: torch.Tensor, *, threshold: float = 0.5) -> torch.Tensor:
    """Class map ``(Y, X)`` int64 from logits ``(K, Y, X)``: sigmoid > threshold for K == 1,
    argmax otherwise."""
    if logits.shape[0] == 1:
        return (torch.sigmoid(logits[0]) > threshold).long()
    return logits.argmax(dim=0)


@torch.inference_mode()
def validate(
    model: nn.Module,
    samples: Sequence[Sample],
    loss_fn: nn.Module,
    *,
    predict: PredictConfig,
    device: torch.device,
    num_classes: int,
    amp: bool = False,
) -> dict[str, float]:
    """Whole-image validation: mean loss per image and pooled Dice/IoU over all pixels.

    ``num_classes`` counts background (2 for a binary sigmoid model).
    """
    model.eval()
    accumulator = MetricAccumulator(num_classes=num_classes)
    losses = []
    for sample in samples:
        image = torch.from_numpy(sample.image).to(device)
        logits = predict_logits(model, image, predict, amp=amp)
        target = torch.from_numpy(sample.target).to(device)
        losses.append(float(loss_fn(logits[None], target[None])))
        labels = logits_to_labels(logits).cpu().numpy()
        accumulator.update(sample.target, labels)
    pooled = accumulator.pooled()
    dice = pooled.get("dice", pooled.get("mean_f1", float("nan")))
    iou = pooled.get("iou", pooled.get("mean_iou", float("nan")))
    return {"val_loss": float(np.mean(losses)), "val_dice": float(dice), "val_iou": float(iou)}
