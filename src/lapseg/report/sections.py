"""What the run report shows: each section's content gathered from the files of a run.

Every builder returns plain data (tables of values, data URIs, captions) or ``None`` when its
inputs are missing; :func:`lapseg.report.html.build_report` decides the page order and the
template ``templates/report.html.j2`` turns the data into markup.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lapseg.errors import LapsegInputError
from lapseg.io.discovery import discover_images, natural_sort_key
from lapseg.io.images import read_image, read_mask
from lapseg.report.embed import Figure, Gallery, file_uri, plot_uri
from lapseg.report.plots import (
    grey_rgb,
    heatmap_rgb,
    overlay_rgb,
    save_boxplots,
    save_learning_curves,
)

__all__ = [
    "FeatureMapsView",
    "MetricsView",
    "OverlayRow",
    "Table",
    "boxplot_uri",
    "curves_uri",
    "data_tables",
    "feature_maps_view",
    "flat_items",
    "images_by_stem",
    "metrics_view",
    "overlay_choice",
    "overlay_rows",
    "ranking_tables",
    "read_csv",
    "read_json",
    "with_context",
]

RANKED = 5
"""Images listed as the worst and as the best by Dice."""


@dataclass(frozen=True)
class Table:
    """A table whose first column names the row; numbers keep their exact value on the page."""

    id: str
    header: tuple[str, ...]
    rows: Sequence[Sequence[Any]]


@dataclass(frozen=True)
class MetricsView:
    """Pixel metrics (pooled, mean and std per image) and, when evaluated, instance metrics."""

    n_images: Any
    pixel: Table
    instances: Table | None


@dataclass(frozen=True)
class OverlayRow:
    """The figures of one image: input, ground truth, probability, contours."""

    stem: str
    figures: list[Figure]


@dataclass(frozen=True)
class FeatureMapsView:
    """One panel per U-Net level for one input image, cropped to a size the U-Net accepts."""

    image_name: str
    crop_shape: tuple[int, int]
    uri: str


# --------------------------------------------------------------------------- run files


def read_json(path: Path | None) -> Any:
    """The parsed JSON file, or ``None`` when ``path`` is ``None`` or not a file."""
    if path is None or not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise LapsegInputError(f"cannot read JSON ({exc})", path=path) from exc


def read_csv(path: Path | None) -> list[dict[str, Any]]:
    """Rows of a CSV file with numbers parsed (empty cells are NaN); ``[]`` when absent."""
    if path is None or not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return [{k: _number(v) for k, v in row.items()} for row in rows]


def _number(text: str | None) -> Any:
    if text is None or text == "":
        return math.nan
    try:
        return float(text)
    except ValueError:
        return text


def flat_items(data: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """``(dotted.key, value)`` of every scalar in nested mappings; number lists as ``key[i]``."""
    out: list[tuple[str, Any]] = []
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.extend(flat_items(value, f"{name}."))
        elif isinstance(value, list) and all(isinstance(v, int | float) for v in value):
            out.extend((f"{name}[{i}]", v) for i, v in enumerate(value))
        elif isinstance(value, str | int | float | bool) or value is None:
            out.append((name, value))
    return out


def images_by_stem(folder: Path | None) -> dict[str, Path]:
    """The images of ``folder`` by file stem; ``{}`` when there is no such folder."""
    if folder is None or not folder.is_dir():
        return {}
    return {p.stem: p for p in discover_images(folder)}


# --------------------------------------------------------------------------- sections


def data_tables(split: Any, truths: Mapping[str, Path]) -> list[Table] | None:
    """Images per subset (``split.json``) and the size and class balance of the masks."""
    tables = []
    if isinstance(split, Mapping):
        counts = [(k, len(v)) for k, v in split.items() if isinstance(v, list)]
        tables.append(Table("split-counts", ("subset", "images"), counts))
    if truths:
        masks = [read_mask(p) for p in truths.values()]
        fractions = [float(np.mean(m != 0)) for m in masks]
        pooled = sum(int(np.count_nonzero(m)) for m in masks) / sum(m.size for m in masks)
        shapes = sorted({m.shape for m in masks})
        rows = [
            ("ground-truth masks", len(masks)),
            ("sizes (Y x X)", ", ".join(f"{y}x{x}" for y, x in shapes[:6])),
            ("foreground fraction (pooled)", pooled),
            ("foreground fraction (mean per image)", float(np.mean(fractions))),
        ]
        tables.append(Table("class-balance", ("evaluation data", "value"), rows))
    return tables or None


def curves_uri(run_dir: Path) -> str | None:
    """Learning curves re-plotted from ``history.csv``, else the run's ``curves.png``."""
    history_path, curves_path = run_dir / "history.csv", run_dir / "curves.png"
    if history_path.is_file():
        history = read_csv(history_path)
        columns = list(history[0]) if history else []
        losses = [c for c in columns if c.endswith("_loss")]
        metrics = [c for c in columns if c.startswith("val_") and c not in losses]
        try:
            return plot_uri(
                lambda p: save_learning_curves(history, p, loss_keys=losses, metric_keys=metrics)
            )
        except ValueError:
            pass
    return file_uri(curves_path) if curves_path.is_file() else None


def metrics_view(summary: Mapping[str, Any], instances: Any) -> MetricsView:
    """``summary.json`` of ``lapseg evaluate`` and ``instances_summary.json`` (or ``None``)."""
    pooled, mean, std = summary.get("pooled", {}), summary.get("mean", {}), summary.get("std", {})
    keys = [k for k in pooled if isinstance(pooled[k], int | float)]
    rows = [(k, pooled[k], mean.get(k, math.nan), std.get(k, math.nan)) for k in keys]
    header = ("metric", "pooled", "mean per image", "std per image")
    instance_table = None
    if instances is not None:
        items = flat_items(instances) if isinstance(instances, Mapping) else []
        instance_table = Table("instance-metrics", ("metric", "value"), items)
    return MetricsView(
        n_images=summary.get("n_images", "?"),
        pixel=Table("pixel-metrics", header, rows),
        instances=instance_table,
    )


def boxplot_uri(per_image: list[dict[str, Any]]) -> str | None:
    """One box per pixel metric of ``per_image.csv``; ``None`` without such columns."""
    keys = [k for k in ("dice", "iou", "precision", "recall") if per_image and k in per_image[0]]
    if not keys:
        return None
    return plot_uri(lambda p: save_boxplots(per_image, keys, p))


def ranking_tables(per_image: list[dict[str, Any]]) -> tuple[Table, Table] | None:
    """The :data:`RANKED` worst and best images by Dice (ties by natural name order)."""
    if not per_image:
        return None
    scored = [r for r in per_image if isinstance(r.get("dice"), float) and math.isfinite(r["dice"])]
    scored.sort(key=lambda r: (r["dice"], natural_sort_key(str(r["name"]))))
    k = min(RANKED, len(scored))
    worst = [(r["name"], r["dice"]) for r in scored[:k]]
    best = [(r["name"], r["dice"]) for r in reversed(scored[-k:])]
    return Table("worst", ("image", "dice"), worst), Table("best", ("image", "dice"), best)


def overlay_choice(stems: list[str], per_image: list[dict[str, Any]], limit: int) -> list[str]:
    """Up to ``limit`` stems spread over the Dice ranking (worst and best included)."""
    dice = {str(r["name"]): r.get("dice") for r in per_image}
    ranked = sorted(
        stems,
        key=lambda s: (
            dice.get(s) if isinstance(dice.get(s), float) else math.inf,
            natural_sort_key(s),
        ),
    )
    if len(ranked) <= limit:
        return ranked
    picks = np.unique(np.round(np.linspace(0, len(ranked) - 1, limit)).astype(int))
    return [ranked[i] for i in picks]


def overlay_rows(
    stems: list[str],
    images: Mapping[str, Path],
    truths: Mapping[str, Path],
    preds: Mapping[str, Path],
    probs: Mapping[str, Path],
    gallery: Gallery,
) -> list[OverlayRow] | None:
    """Input, ground truth, probability heat map and contours (truth yellow, prediction red)."""
    rows = []
    for stem in stems:
        image = read_image(images[stem]).array.astype(np.float64).mean(axis=0)
        truth = read_mask(truths[stem]) if stem in truths else None
        pred = read_mask(preds[stem])
        figures = [gallery.figure(grey_rgb(image), f"{stem}: input", "overlays")]
        if truth is not None:
            shown = (truth != 0).astype(np.uint8) * 255
            figures.append(
                gallery.figure(np.repeat(shown[..., None], 3, -1), "ground truth", "overlays")
            )
        if stem in probs:
            prob = read_image(probs[stem]).array.astype(np.float64)
            foreground = prob[0] if prob.shape[0] == 1 else 1.0 - prob[0]
            figures.append(gallery.figure(heatmap_rgb(foreground), "probability", "overlays"))
        figures.append(
            gallery.figure(
                overlay_rgb(image, truth, pred), "truth yellow, prediction red", "overlays"
            )
        )
        rows.append(OverlayRow(stem, figures))
    return rows or None


def feature_maps_view(run_dir: Path, image_path: Path) -> FeatureMapsView:
    """The most varied channel of every U-Net level of ``run_dir/best.pt`` for one image."""
    from lapseg.data.normalization import apply_normalization
    from lapseg.inference.predict import load_model
    from lapseg.models.unet import UNet
    from lapseg.report.feature_maps import capture_feature_maps, crop_to_valid, save_feature_maps

    loaded = load_model(run_dir, device="cpu")
    model = loaded.model
    if not isinstance(model, UNet):
        raise LapsegInputError(f"feature maps need a lapseg UNet, got {type(model).__name__}")
    frame = read_image(image_path).array
    image = apply_normalization(
        with_context(frame, model.config.in_channels, path=image_path), loaded.stats
    ).astype(np.float32)
    crop = crop_to_valid(model, image, max_size=256)
    maps = capture_feature_maps(model, crop)
    shown = crop[: frame.shape[0]].mean(axis=0)  # the frame itself, not its replicas
    uri = plot_uri(lambda p: save_feature_maps(maps, p, image=shown))
    return FeatureMapsView(image_path.name, (crop.shape[-2], crop.shape[-1]), uri)


def with_context(frame: np.ndarray, in_channels: int, *, path: Path | None = None) -> np.ndarray:
    """``frame`` ``(C, Y, X)`` as the input of a model with temporal context: a single image
    has no neighbours, so it stands for all ``2k + 1`` frames (edge frames replicated, as at a
    sequence end; StemNet's Network5 predicts single frames so). Unchanged when the channels
    already match.

    Raises
    ------
    LapsegInputError
        If ``in_channels`` is not a multiple of the frame's channels.
    """
    channels = frame.shape[0]
    if channels == in_channels:
        return frame
    if in_channels % channels:
        raise LapsegInputError(
            f"the model takes {in_channels} channel(s), the image has {channels}", path=path
        )
    return np.concatenate([frame] * (in_channels // channels), axis=0)
