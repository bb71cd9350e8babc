"""Feature maps of a U-Net for one input: one channel per encoder/decoder level (000 Fig. 22).

Forward hooks on :attr:`UNet.encoder` and :attr:`UNet.decoder` blocks record each level's output
during one forward pass; the hooks are removed afterwards, whatever happens. The model is run in
``eval`` mode under :func:`torch.inference_mode` and left in the mode it was in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from lapseg.errors import LapsegInputError
from lapseg.io.files import atomic_output
from lapseg.models.unet import UNet

__all__ = ["FeatureMap", "capture_feature_maps", "crop_to_valid", "save_feature_maps"]


@dataclass(frozen=True)
class FeatureMap:
    """One channel of one U-Net level.

    Attributes
    ----------
    name : str
        ``"encoder 0"`` (full resolution) ... ``"encoder <depth>"`` (bottleneck), then
        ``"decoder <level>"`` from the deepest decoder level up to ``"decoder 0"``.
    channel : int
        Which feature channel is shown.
    n_channels : int
        Feature channels at this level.
    array : (Y, X) ndarray of float32
        The channel's activations.
    """

    name: str
    channel: int
    n_channels: int
    array: np.ndarray


def crop_to_valid(model: UNet, image: np.ndarray, *, max_size: int = 512) -> np.ndarray:
    """Centre crop of ``image`` ``(C, Y, X)`` no larger than ``max_size`` that the U-Net accepts.

    Raises
    ------
    LapsegInputError
        If the image is smaller than the smallest valid input size.
    """
    image = np.asarray(image)
    sizes = []
    for n in image.shape[-2:]:
        limit = min(int(n), max_size)
        valid = [s for s in range(limit, 0, -1) if model.valid_input_size(s) == s]
        if not valid:
            raise LapsegInputError(
                f"image {image.shape[-2:]} is too small for the U-Net (needs "
                f"{model.valid_input_size(1)} px)"
            )
        sizes.append(valid[0])
    y0 = (image.shape[-2] - sizes[0]) // 2
    x0 = (image.shape[-1] - sizes[1]) // 2
    return image[..., y0 : y0 + sizes[0], x0 : x0 + sizes[1]]


def capture_feature_maps(
    model: UNet, image: np.ndarray | torch.Tensor, *, channel: int | None = None
) -> list[FeatureMap]:
    """Run one image through ``model`` and keep one channel of every level's output.

    Parameters
    ----------
    model : UNet
        Any device; the input follows the model's device.
    image : (C, Y, X) ndarray or tensor
        Normalised image of a size the model accepts (:func:`crop_to_valid`).
    channel : int, optional
        Channel to keep at every level (clipped to the level's channel count); by default the
        channel with the largest standard deviation (the most structured map).

    Returns
    -------
    maps : list of FeatureMap
        ``2 * depth + 1`` maps in data-flow order (encoder down, decoder up).
    """
    if not isinstance(model, UNet):
        raise LapsegInputError(f"feature maps need a lapseg UNet, got {type(model).__name__}")
    parameter = next(model.parameters())
    tensor = torch.as_tensor(np.asarray(image) if not torch.is_tensor(image) else image)
    if tensor.ndim != 3:
        raise LapsegInputError(f"image must be (C, Y, X), got shape {tuple(tensor.shape)}")
    tensor = tensor[None].to(device=parameter.device, dtype=parameter.dtype)
    outputs: list[tuple[str, torch.Tensor]] = []
    blocks = [(f"encoder {i}", m) for i, m in enumerate(model.encoder)]
    depth = len(model.decoder)
    blocks += [(f"decoder {depth - 1 - i}", m) for i, m in enumerate(model.decoder)]

    def hook_for(name: str) -> Callable[[torch.nn.Module, object, torch.Tensor], None]:
        def hook(_module: torch.nn.Module, _inputs: object, output: torch.Tensor) -> None:
            outputs.append((name, output.detach()))

        return hook

    handles = [block.register_forward_hook(hook_for(name)) for name, block in blocks]
    was_training = model.training
    try:
        model.eval()
        with torch.inference_mode():
            model(tensor)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    maps = []
    for name, output in outputs:
        features = output[0].float().cpu().numpy()
        if channel is None:
            chosen = int(np.argmax(features.reshape(features.shape[0], -1).std(axis=1)))
        else:
            chosen = min(max(int(channel), 0), features.shape[0] - 1)
        maps.append(FeatureMap(name, chosen, features.shape[0], features[chosen]))
    return maps


def save_feature_maps(
    maps: list[FeatureMap], path: str | Path, *, image: np.ndarray | None = None
) -> Path:
    """One panel per level (and the input first when given), written as a PNG."""
    if not maps:
        raise ValueError("no feature maps to draw")
    panels = ([("input", image)] if image is not None else []) + [
        (
            f"{m.name}\nchannel {m.channel + 1}/{m.n_channels}, {m.array.shape[0]}x{m.array.shape[1]}",
            m.array,
        )
        for m in maps
    ]
    columns = min(len(panels), 5)
    rows = -(-len(panels) // columns)
    fig = Figure(figsize=(2.6 * columns, 2.8 * rows))
    FigureCanvasAgg(fig)
    for index, (title, array) in enumerate(panels, start=1):
        ax = fig.add_subplot(rows, columns, index)
        ax.imshow(np.asarray(array), cmap="gray" if title == "input" else "viridis")
        ax.set_title(title, fontsize=8)
        ax.set_axis_off()
    fig.tight_layout()
    path = Path(path)
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    return path
