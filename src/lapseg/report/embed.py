"""Pictures embedded in a self-contained HTML page: PNG data URIs and lightbox figures.

A :class:`Figure` is a small thumbnail linked to a full-resolution copy; the page shows the copy
through a CSS ``:target`` lightbox, so no JavaScript is needed. :class:`Gallery` hands out the
lightbox ids in order and keeps every figure so that the page can append the full-size copies.
"""

from __future__ import annotations

import base64
import math
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import imageio.v3 as iio
import numpy as np

__all__ = ["THUMBNAIL_SIZE", "Figure", "Gallery", "file_uri", "plot_uri", "png_uri"]

THUMBNAIL_SIZE = 256
"""Longest thumbnail edge in pixels (thumbnails keep every ``step``-th pixel, no smoothing)."""


def png_uri(rgb: np.ndarray) -> str:
    """``(Y, X, 3)`` uint8 image as a ``data:image/png;base64,...`` URI."""
    data = iio.imwrite("<bytes>", np.ascontiguousarray(rgb), extension=".png")
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def file_uri(path: Path) -> str:
    """A PNG file as a data URI."""
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def plot_uri(draw: Callable[[Path], Path]) -> str:
    """Run a plotting function that writes a PNG to the given path, and embed the result."""
    with tempfile.TemporaryDirectory() as folder:
        return file_uri(draw(Path(folder) / "plot.png"))


@dataclass(frozen=True)
class Figure:
    """A captioned thumbnail and its full-resolution copy.

    Attributes
    ----------
    box_id : str
        Element id of the full-size lightbox (``full-0``, ``full-1``, ...).
    caption : str
    thumbnail : str
        Data URI of the thumbnail (longest edge at most :data:`THUMBNAIL_SIZE`).
    full : str
        Data URI of the full-resolution image.
    back : str
        Id of the section that closing the lightbox returns to.
    """

    box_id: str
    caption: str
    thumbnail: str
    full: str
    back: str


class Gallery:
    """The figures of one page, in order; each gets a unique lightbox id."""

    def __init__(self) -> None:
        self.figures: list[Figure] = []

    def figure(self, rgb: np.ndarray, caption: str, back: str) -> Figure:
        """Embed ``rgb`` ``(Y, X, 3)`` uint8 as a thumbnail and a full-size copy."""
        step = max(1, math.ceil(max(rgb.shape[:2]) / THUMBNAIL_SIZE))
        figure = Figure(
            box_id=f"full-{len(self.figures)}",
            caption=caption,
            thumbnail=png_uri(rgb[::step, ::step]),
            full=png_uri(rgb),
            back=back,
        )
        self.figures.append(figure)
        return figure
