"""Which channels of a multi-channel image the network sees (``data.channels``).

Cellpose users pick channels per run (``--chan``); lapseg stores the choice with the model, so
training and prediction see the same channels in the same order, and ``lapseg predict
--channels`` can adapt a model to images whose channels are laid out differently.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lapseg.errors import LapsegInputError

__all__ = ["ChannelSpec", "channel_count", "parse_channels", "select_channels"]

ChannelSpec = tuple[int, ...] | str | None
"""Indices (0-based, in order), ``"mean"``, or None (every channel)."""


def select_channels(
    image: np.ndarray, channels: ChannelSpec, *, path: Path | None = None
) -> np.ndarray:
    """The channels ``channels`` of a ``(C, Y, X)`` image.

    Parameters
    ----------
    image : (C, Y, X) ndarray
    channels : tuple of int, "mean" or None
        Indices (0-based, in this order), ``"mean"`` (the average of all channels, float32) or
        None (the image unchanged).
    path : Path, optional
        Named in the error when an index is missing.

    Returns
    -------
    (C', Y, X) ndarray
        ``C' = len(channels)``, 1 for ``"mean"``; the input dtype except for ``"mean"``.

    >>> image = np.stack([np.zeros((2, 2)), np.ones((2, 2)), np.full((2, 2), 5.0)])
    >>> select_channels(image, (2, 0))[:, 0, 0]
    array([5., 0.])
    >>> select_channels(image, "mean")[:, 0, 0]
    array([2.], dtype=float32)
    """
    if channels is None:
        return image
    if channels == "mean":
        return image.mean(axis=0, keepdims=True, dtype=np.float64).astype(np.float32)
    if isinstance(channels, str):
        raise LapsegInputError(f"channels must be indices or 'mean', not {channels!r}")
    missing = [c for c in channels if not 0 <= c < image.shape[0]]
    if missing:
        raise LapsegInputError(
            f"channel {missing[0]} was asked for, but the image has {image.shape[0]} channel(s) "
            f"(0-{image.shape[0] - 1})",
            path=path,
        )
    return image[list(channels)]


def channel_count(channels_in_file: int, channels: ChannelSpec) -> int:
    """How many channels :func:`select_channels` gives for an image with ``channels_in_file``.

    >>> channel_count(3, (0,)), channel_count(3, "mean"), channel_count(3, None)
    (1, 1, 3)
    """
    if channels is None:
        return channels_in_file
    if channels == "mean":
        return 1
    return len(channels)


def parse_channels(text: str) -> tuple[int, ...] | str:
    """``--channels`` text: ``"1,0"`` -> ``(1, 0)``, ``"mean"`` -> ``"mean"``.

    >>> parse_channels("2, 0"), parse_channels("mean")
    ((2, 0), 'mean')
    """
    text = text.strip()
    if text == "mean":
        return "mean"
    parts: Sequence[str] = [p.strip() for p in text.split(",")]
    if not parts or not all(p.isdigit() for p in parts):
        raise LapsegInputError(
            f"--channels takes 0-based indices such as 0 or 1,0, or 'mean'; got {text!r}"
        )
    return tuple(int(p) for p in parts)
