"""The report's movie section: a few frames of each predicted movie with its labels and tracks.

``lapseg predict`` writes a movie's results to ``NAME/labels.tif`` (one label per track in every
frame it lives) and ``NAME/tracks.csv`` (track id, frame, centroid, area, parent). The section
shows evenly spaced frames of each movie: every cell filled with its track's colour (the same
cell keeps its colour from frame to frame, so identity switches show as colour changes) and
each track's path over the previous frames drawn as a white line ending at the cell.
"""

from __future__ import annotations

import csv
import itertools
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import tifffile
from matplotlib.colors import hsv_to_rgb
from skimage.draw import line

from lapseg.io.discovery import natural_sort_key
from lapseg.report.embed import Gallery
from lapseg.report.plots import grey_rgb
from lapseg.report.sections import OverlayRow

__all__ = ["label_colours", "movie_frames", "movie_rows", "track_paths"]

TAIL_FRAMES = 10
"""Frames of each track's past drawn as its tail."""


def movie_frames(n_frames: int, shown: int) -> list[int]:
    """``shown`` frame indices spread evenly over ``n_frames`` (first and last included).

    >>> movie_frames(10, 4)
    [0, 3, 6, 9]
    >>> movie_frames(2, 4)
    [0, 1]
    """
    if n_frames <= shown:
        return list(range(n_frames))
    return [round(i * (n_frames - 1) / (shown - 1)) for i in range(shown)]


def label_colours(max_label: int) -> np.ndarray:
    """``(max_label + 1, 3)`` uint8 colours: 0 black, label ``l`` a hue spread by the golden ratio
    (neighbouring labels get distant hues), full saturation and value."""
    hues = (np.arange(max_label + 1) * 0.618033988749895) % 1.0
    hsv = np.stack([hues, np.full_like(hues, 0.8), np.full_like(hues, 1.0)], axis=-1)
    colours = (hsv_to_rgb(hsv) * 255).astype(np.uint8)
    colours[0] = 0
    return colours


def track_paths(tracks_csv: Path) -> dict[int, list[tuple[int, float, float]]]:
    """Track id -> ``[(frame, y, x), ...]`` in frame order, from a ``tracks.csv``."""
    paths: dict[int, list[tuple[int, float, float]]] = {}
    with tracks_csv.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            point = (int(row["frame"]), float(row["y"]), float(row["x"]))
            paths.setdefault(int(row["track_id"]), []).append(point)
    return {track: sorted(points) for track, points in paths.items()}


def _frame_rgb(
    labels: np.ndarray,
    colours: np.ndarray,
    background: np.ndarray | None,
    paths: Mapping[int, list[tuple[int, float, float]]],
    t: int,
) -> np.ndarray:
    """One frame: cells in their track colours over the input (or black), tails in white."""
    rgb = np.zeros((*labels.shape, 3), np.uint8) if background is None else grey_rgb(background)
    cells = labels > 0
    mixed = 0.45 * rgb[cells].astype(np.float32) + 0.55 * colours[labels[cells]]
    rgb[cells] = mixed.astype(np.uint8)
    height, width = labels.shape
    for points in paths.values():
        past = [(y, x) for frame, y, x in points if t - TAIL_FRAMES <= frame <= t]
        if len(past) < 2 or past[-1] != next(((y, x) for f, y, x in points if f == t), None):
            continue
        for (y0, x0), (y1, x1) in itertools.pairwise(past):
            rr, cc = line(round(y0), round(x0), round(y1), round(x1))
            keep = (rr >= 0) & (rr < height) & (cc >= 0) & (cc < width)
            rgb[rr[keep], cc[keep]] = 255
    return rgb


def _input_frames(path: Path | None, n_frames: int) -> tifffile.TiffFile | None:
    """The movie's input stack when it has one page per frame (else no background)."""
    if path is None or path.suffix.lower() not in (".tif", ".tiff"):
        return None
    tif = tifffile.TiffFile(path)
    if len(tif.pages) != n_frames:
        tif.close()
        return None
    return tif


def movie_rows(
    pred_dir: Path | None,
    images: Mapping[str, Path],
    gallery: Gallery,
    *,
    frames_shown: int = 4,
    max_movies: int = 3,
) -> list[OverlayRow] | None:
    """Evenly spaced frames of up to ``max_movies`` predicted movies (``*/labels.tif`` under
    ``pred_dir``), with track colours and tails; over the input frames when ``images`` holds
    the movie's stack under its name. ``None`` when ``pred_dir`` holds no movie."""
    if pred_dir is None:
        return None
    stacks = sorted(
        (p for p in pred_dir.rglob("labels.tif") if p.parent != pred_dir),
        key=lambda p: natural_sort_key(str(p.relative_to(pred_dir))),
    )
    rows = []
    for stack in stacks[:max_movies]:
        name = str(stack.parent.relative_to(pred_dir))
        tracks_csv = stack.parent / "tracks.csv"
        paths = track_paths(tracks_csv) if tracks_csv.is_file() else {}
        with tifffile.TiffFile(stack) as tif:
            n_frames = len(tif.pages)
            frames = {
                t: np.asarray(tif.pages[t].asarray())  # type: ignore[union-attr]
                for t in movie_frames(n_frames, frames_shown)
            }
        colours = label_colours(max(int(f.max()) for f in frames.values()))
        source = _input_frames(images.get(stack.parent.name), n_frames)
        figures = []
        try:
            for t, labels in frames.items():
                background = None
                if source is not None:
                    page = np.asarray(source.pages[t].asarray())  # type: ignore[union-attr]
                    background = page if page.shape == labels.shape else None
                rgb = _frame_rgb(labels.astype(np.int64), colours, background, paths, t)
                figures.append(gallery.figure(rgb, f"{name}: frame {t} of {n_frames}", "movies"))
        finally:
            if source is not None:
                source.close()
        rows.append(OverlayRow(name, figures))
    return rows or None
