"""Tiled (sliding-window) prediction of images of any size with any per-tile predictor.

The predictor is a plain callable from a batch of tiles to a batch of outputs, as in MONAI's
inferers and nnU-Net's ``sliding_window_prediction.py``: this module never imports a model.

Geometry (one axis; both axes are independent). A predictor whose 'valid' convolutions lose
``m = output_margin`` pixels per side maps the input window ``[s, s + h)`` of the image padded
by ``m`` to the output pixels ``[s, s + h - 2m)`` of the original image. The image is therefore
padded by ``m`` on each side, then at the end up to a multiple of ``size_multiple``; tile starts
(computed on the output grid with :func:`~lapseg.inference.tiling.tile_starts`) are multiples of
``size_multiple``, so every tile's pooling grid coincides with the whole padded image's. A tile
larger than the padded image is shrunk to it, so a small image is predicted in one call.

What is exact, and what is not:

- The predictor runs on exactly the same pixels as it would on the whole padded image. For a
  network without zero padding ('valid' convolutions, ``output_margin`` > 0) every output pixel
  of every tile therefore equals the whole-image prediction, and so does the blend of any mode.
- For a network with zero ('same') padding, pixels near a tile's edge see zeros instead of the
  neighbouring image. With ``blend="crop"`` each pixel comes from the tile that owns it (the
  middle of the overlap is the border between neighbours), at least
  ``(overlap * out_tile - size_multiple) / 2`` pixels from the tile's inner edges; the result
  equals the whole-image prediction wherever the network's receptive-field radius is smaller than
  that distance. ``"gaussian"`` and ``"constant"`` also average the tile edges in and are only
  approximately equal (the Gaussian down-weights the edges, which is why it is the default).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from lapseg.errors import LapsegInputError
from lapseg.inference.tiling import gaussian_window, tile_starts

__all__ = ["BLEND_MODES", "PAD_MODES", "Predictor", "predict_sliding_window"]

Predictor = Callable[[torch.Tensor], torch.Tensor]
"""Maps a batch of tiles ``(B, C, h, w)`` to outputs ``(B, K, h - 2m, w - 2m)``."""

BLEND_MODES = ("gaussian", "constant", "crop")
PAD_MODES = ("reflect", "symmetric", "edge")

_TileRows = slice | torch.Tensor


@dataclass(frozen=True)
class _AxisPlan:
    """Per-tile index plan along one axis (all lists have one entry per tile)."""

    tile: int  # input tile length actually used (<= the requested one)
    source: list[_TileRows]  # input rows of the tile in the unpadded image: slice or indices
    keep: list[slice]  # part of the tile's output that is written
    target: list[slice]  # where that part goes in the result


def _source_index(start: int, length: int, size: int, mode: str) -> np.ndarray:
    """Indices into ``[0, size)`` of the padded positions ``start .. start + length - 1``.

    Same values as ``np.pad(..., mode)`` for any pad length.
    """
    index = np.arange(start, start + length)
    if mode == "edge" or size == 1:
        return np.clip(index, 0, size - 1)
    if mode == "reflect":
        period = 2 * (size - 1)
        index = np.mod(index, period)
        return np.where(index >= size, period - index, index)
    period = 2 * size  # symmetric
    index = np.mod(index, period)
    return np.where(index >= size, period - 1 - index, index)


def _plan_axis(
    size: int,
    tile: int,
    *,
    overlap: float,
    margin: int,
    align: int,
    blend: str,
    pad_mode: str,
    device: torch.device,
) -> _AxisPlan:
    padded = -(-(size + 2 * margin) // align) * align
    tile = min(tile, padded)
    out_tile = tile - 2 * margin
    out_size = padded - 2 * margin
    if out_size > out_tile and out_tile < align:
        raise LapsegInputError(
            f"tile_size - 2 * output_margin = {out_tile} is smaller than size_multiple "
            f"({align}); use a tile of at least {align + 2 * margin} pixels"
        )
    starts = tile_starts(out_size, out_tile, overlap, align=align)
    if blend == "crop":  # owned region: from the middle of one overlap to the next
        borders = [(a + out_tile + b) // 2 for a, b in itertools.pairwise(starts)]
        lows, highs = [0, *borders], [*borders, size]
    else:
        lows, highs = starts, [start + out_tile for start in starts]
    plan = _AxisPlan(tile=tile, source=[], keep=[], target=[])
    for start, low, high in zip(starts, lows, highs, strict=True):
        low, high = max(low, start), min(high, size)
        if high <= low:  # tile owns nothing inside the image (crop blend, padded end)
            continue
        first = start - margin
        source: _TileRows
        if first >= 0 and first + tile <= size:
            source = slice(first, first + tile)
        else:
            index = _source_index(first, tile, size, pad_mode)
            source = torch.as_tensor(index, dtype=torch.long, device=device)
        plan.source.append(source)
        plan.keep.append(slice(low - start, high - start))
        plan.target.append(slice(low, high))
    return plan


def _fill(dest: torch.Tensor, image: torch.Tensor, rows: _TileRows, cols: _TileRows) -> None:
    """Copy the tile ``image[:, rows, cols]`` (slices or index tensors) into ``dest``."""
    part = image[:, rows] if isinstance(rows, slice) else image.index_select(1, rows)
    part = part[:, :, cols] if isinstance(cols, slice) else part.index_select(2, cols)
    dest.copy_(part)


def _check_options(
    image: torch.Tensor,
    tile_size: tuple[int, int],
    overlap: float,
    blend: str,
    batch_size: int,
    size_multiple: int,
    output_margin: int,
    pad_mode: str,
) -> None:
    if not isinstance(image, torch.Tensor):
        raise LapsegInputError(
            f"image must be a torch.Tensor (C, Y, X), got {type(image).__name__}; "
            "convert it with torch.as_tensor(image, device=...)"
        )
    if image.ndim != 3 or min(image.shape) < 1 or not image.is_floating_point():
        raise LapsegInputError(
            f"image must be a non-empty floating-point (C, Y, X) tensor, "
            f"got shape {tuple(image.shape)} and dtype {image.dtype}"
        )
    for name, value, minimum in (
        ("batch_size", batch_size, 1),
        ("size_multiple", size_multiple, 1),
        ("output_margin", output_margin, 0),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise LapsegInputError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if (
        len(tile_size) != 2
        or not all(isinstance(t, int | np.integer) and not isinstance(t, bool) for t in tile_size)
        or min(tile_size) <= 2 * output_margin
    ):
        raise LapsegInputError(
            f"tile_size must be two integers > 2 * output_margin ({2 * output_margin}), "
            f"got {tile_size!r}"
        )
    if any(t % size_multiple for t in tile_size):
        fixed = tuple(-(-t // size_multiple) * size_multiple for t in tile_size)
        raise LapsegInputError(
            f"tile_size {tuple(tile_size)} must be a multiple of size_multiple "
            f"({size_multiple}); use {fixed}"
        )
    if not 0.0 <= float(overlap) < 1.0:
        raise LapsegInputError(f"overlap must be in [0, 1), got {overlap!r}")
    if blend not in BLEND_MODES:
        raise LapsegInputError(f"blend must be one of {BLEND_MODES}, got {blend!r}")
    if pad_mode not in PAD_MODES:
        raise LapsegInputError(f"pad_mode must be one of {PAD_MODES}, got {pad_mode!r}")


def predict_sliding_window(
    predictor: Predictor,
    image: torch.Tensor,
    *,
    tile_size: tuple[int, int] = (256, 256),
    overlap: float = 0.25,
    blend: str = "gaussian",
    batch_size: int = 4,
    size_multiple: int = 1,
    output_margin: int = 0,
    pad_mode: str = "reflect",
    progress: Callable[[int, int], object] | None = None,
) -> torch.Tensor:
    """Predict an image of any size tile by tile and blend the tiles into one output.

    Parameters
    ----------
    predictor : callable
        ``predictor(tiles (B, C, h, w)) -> (B, K, h - 2m, w - 2m)`` with ``m = output_margin``,
        on the image's device (typically an ``nn.Module`` in eval mode). Gradients are not
        kept: wrap the call in ``torch.inference_mode()`` for speed.
    image : (C, Y, X) tensor
        Floating-point image of any size, on the device the predictor runs on.
    tile_size : (int, int), optional
        Input tile height and width; multiples of ``size_multiple``. Shrunk to the padded image
        when the image is smaller.
    overlap : float, optional
        Fraction of the output tile shared by neighbouring tiles, in ``[0, 1)``.
    blend : {"gaussian", "constant", "crop"}, optional
        ``"gaussian"``: weighted average with nnU-Net's Gaussian window; ``"constant"``: plain
        average (MONAI's default); ``"crop"``: each pixel from the one tile that owns it
        (StarDist-style owned region inside a context halo).
    batch_size : int, optional
        Tiles per predictor call.
    size_multiple : int, optional
        The predictor's input sizes must be multiples of this (``2 ** depth`` for a U-Net);
        tile starts are aligned to it.
    output_margin : int, optional
        Pixels the predictor loses on each side ('valid' convolutions); 0 for 'same' padding.
    pad_mode : {"reflect", "symmetric", "edge"}, optional
        How the image is extended past its borders (``np.pad`` semantics, any pad length).
    progress : callable, optional
        ``progress(n_done, n_total)`` is called with tile counts after each batch.

    Returns
    -------
    (K, Y, X) tensor of float32
        Blended predictor output on the same pixel grid as ``image``, on its device.

    Raises
    ------
    LapsegInputError
        If an option is out of range, or the predictor's output shape does not match
        ``output_margin``.

    Notes
    -----
    Only the result ``(K, Y, X)``, one weight map ``(Y, X)`` (not for ``"crop"``) and one
    batch of tiles are alive at once; the image is never copied whole. See the module
    docstring for which blends reproduce a whole-image prediction exactly.
    """
    _check_options(
        image, tile_size, overlap, blend, batch_size, size_multiple, output_margin, pad_mode
    )
    if progress is not None and not callable(progress):
        raise LapsegInputError(f"progress must be callable or None, got {progress!r}")
    channels, height, width = image.shape
    device = image.device
    plans = [
        _plan_axis(
            length,
            tile,
            overlap=overlap,
            margin=output_margin,
            align=size_multiple,
            blend=blend,
            pad_mode=pad_mode,
            device=device,
        )
        for length, tile in zip((height, width), tile_size, strict=True)
    ]
    rows, cols = plans
    out_shape = (rows.tile - 2 * output_margin, cols.tile - 2 * output_margin)
    tiles = list(itertools.product(range(len(rows.source)), range(len(cols.source))))
    batch = torch.empty(
        (min(batch_size, len(tiles)), channels, rows.tile, cols.tile),
        dtype=image.dtype,
        device=device,
    )
    window = None
    if blend == "gaussian":
        window = torch.from_numpy(gaussian_window(out_shape)).to(device)
    weight = None
    if blend != "crop":
        weight = torch.zeros((height, width), dtype=torch.float32, device=device)
    result: torch.Tensor | None = None

    for first in range(0, len(tiles), batch_size):
        chunk = tiles[first : first + batch_size]
        for i, (r, c) in enumerate(chunk):
            _fill(batch[i], image, rows.source[r], cols.source[c])
        output = predictor(batch[: len(chunk)])
        expected = (len(chunk), *out_shape)
        if (
            not isinstance(output, torch.Tensor)
            or output.ndim != 4
            or (output.shape[0], *output.shape[2:]) != expected
        ):
            got = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output)
            raise LapsegInputError(
                f"predictor returned {got} for tiles {tuple(batch[: len(chunk)].shape)}; "
                f"expected (B, K, {out_shape[0]}, {out_shape[1]}): check output_margin "
                f"({output_margin})"
            )
        output = output.detach()
        if result is not None and output.shape[1] != result.shape[0]:
            raise LapsegInputError(
                f"predictor returned {output.shape[1]} channels, earlier {result.shape[0]}"
            )
        if result is None:
            result = torch.zeros(
                (output.shape[1], height, width), dtype=torch.float32, device=device
            )
        for i, (r, c) in enumerate(chunk):
            keep = (rows.keep[r], cols.keep[c])
            target = (rows.target[r], cols.target[c])
            piece = output[i][:, keep[0], keep[1]]
            if blend == "crop":
                result[:, target[0], target[1]] = piece
            elif window is not None and weight is not None:
                tile_weight = window[keep]
                result[:, target[0], target[1]].addcmul_(piece, tile_weight)
                weight[target] += tile_weight
            elif weight is not None:
                result[:, target[0], target[1]] += piece
                weight[target] += 1.0
        if progress is not None:
            progress(first + len(chunk), len(tiles))
    assert result is not None  # at least one tile always exists
    if weight is not None:
        result.div_(weight)
    return result
