"""Inference engines: the per-tile predictor callables that sliding-window prediction calls.

- ``"torch"`` (default): the model in eval mode, channels_last on CPU/CUDA, float16 autocast on
  CUDA when asked.
- ``"onnx"``: the model exported once to ONNX (in memory) and run by ONNX Runtime on the CPU;
  about 2x faster than eager PyTorch on the 2-core benchmark machine (docs/performance.md), equal
  to it within 1e-4. Needs the ``onnx`` extra (``pip install "lapseg[onnx]"``); asking for it
  without onnxruntime installed is an error, never a silent fallback.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
import torch
from torch import nn

from lapseg.config import PredictConfig
from lapseg.device import autocast_context
from lapseg.errors import LapsegInputError
from lapseg.inference.sliding_window import Predictor, predict_sliding_window

ENGINES = ("torch", "onnx")


def torch_predictor(model: nn.Module, *, precision: torch.dtype | None = None) -> Predictor:
    """Eager PyTorch predictor (the model must already be on the tiles' device, in eval mode);
    ``precision`` (from :func:`lapseg.device.mixed_precision`) autocasts the forward pass."""

    def predict(batch: torch.Tensor) -> torch.Tensor:
        if batch.device.type != "mps":  # channels_last speeds up CPU and CUDA convolutions
            batch = batch.contiguous(memory_format=torch.channels_last)
        with autocast_context(batch.device, precision):
            return model(batch).float()

    return predict


def export_onnx(model: nn.Module, *, in_channels: int, example_size: int = 64) -> bytes:
    """Export ``model`` (eval mode, CPU copy) to ONNX bytes with dynamic batch, height, width.

    ``example_size`` must be a valid input size of the model (a multiple of its size multiple).
    """
    cpu_model = model.to("cpu").eval()
    example = torch.zeros(1, in_channels, example_size, example_size)
    buffer = io.BytesIO()
    dynamic = {0: "batch", 2: "height", 3: "width"}
    with warnings.catch_warnings():
        # The TorchScript-based exporter warns that it is legacy; it exports U-Nets exactly and
        # needs no extra packages, unlike the dynamo exporter.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            cpu_model,
            (example,),
            buffer,  # type: ignore[arg-type]  # torch.onnx.export writes file-like objects
            input_names=["tiles"],
            output_names=["logits"],
            dynamic_axes={"tiles": dynamic, "logits": dynamic},
            opset_version=17,
            dynamo=False,
        )
    return buffer.getvalue()


def onnx_predictor(model: nn.Module, *, in_channels: int, threads: int | None = None) -> Predictor:
    """ONNX Runtime predictor on the CPU (tiles are moved to the CPU and back)."""
    try:
        import onnxruntime
    except ImportError:
        raise LapsegInputError(
            "predict.engine=onnx needs onnxruntime: pip install 'lapseg[onnx]'"
        ) from None
    multiple = int(getattr(model, "size_multiple", 16))
    margin = int(getattr(model, "output_margin", 0))
    size = multiple * max(1, -(-(64 + 2 * margin) // multiple))
    valid_input_size = getattr(model, "valid_input_size", None)
    if margin and callable(valid_input_size):
        size = int(valid_input_size(size))
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.log_severity_level = 3
    session = onnxruntime.InferenceSession(
        export_onnx(model, in_channels=in_channels, example_size=size),
        options,
        providers=["CPUExecutionProvider"],
    )

    def predict(batch: torch.Tensor) -> torch.Tensor:
        array = np.ascontiguousarray(batch.detach().cpu().numpy(), dtype=np.float32)
        (logits,) = session.run(None, {"tiles": array})
        return torch.from_numpy(logits).to(batch.device)

    return predict


def make_predictor(
    model: nn.Module, *, engine: str, in_channels: int, precision: torch.dtype | None = None
) -> Predictor:
    """The predictor callable of ``engine`` for ``model``."""
    if engine == "torch":
        return torch_predictor(model, precision=precision)
    if engine == "onnx":
        device = next(model.parameters()).device
        if device.type != "cpu":
            raise LapsegInputError("predict.engine=onnx runs on the CPU; use --device cpu")
        return onnx_predictor(model, in_channels=in_channels)
    raise LapsegInputError(f"predict.engine={engine!r} is not one of {', '.join(ENGINES)}")


def predict_logits(
    model: nn.Module,
    image: torch.Tensor,
    predict: PredictConfig,
    *,
    precision: torch.dtype | None = None,
    predictor: Predictor | None = None,
) -> torch.Tensor:
    """Sliding-window logits ``(K, Y, X)`` of ``model`` for one ``(C, Y, X)`` image tensor.

    ``predictor`` (default: eager PyTorch on ``model``) runs each batch of tiles; pass an ONNX
    or test-time-augmentation predictor built for the same model.
    """
    if predictor is None:
        predictor = torch_predictor(model, precision=precision)
    return predict_sliding_window(
        predictor,
        image,
        tile_size=predict.tile_size,
        overlap=predict.overlap,
        blend=predict.blend,
        batch_size=predict.batch_size,
        size_multiple=int(getattr(model, "size_multiple", 1)),
        output_margin=int(getattr(model, "output_margin", 0)),
    )
