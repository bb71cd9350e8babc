"""A self-contained HTML report of a run folder (``lapseg report RUN_DIR``).

The report is one file, ``RUN_DIR/report.html``: every picture is embedded as a base64 PNG data
URI, the styling is inline CSS, there is no JavaScript and nothing is fetched from the network,
so it opens from disk in any browser and can be mailed as it is. Thumbnails open at full
resolution on click through a CSS ``:target`` lightbox (click again, or press Back, to close).

Sections, each an element with a fixed id: ``#config`` (``config.yaml``), ``#data``
(``split.json`` counts; sizes and class balance of the ground-truth masks), ``#environment``
(``run.json``), ``#curves`` (re-plotted from ``history.csv``, curriculum stages marked, else
``curves.png``), ``#metrics`` (``summary.json``; ``instances_summary.json`` when present),
``#boxplots``, ``#ranking`` (worst and best images by Dice), ``#overlays`` (input, ground truth,
probability heat map, contours: truth yellow, prediction red) and ``#feature-maps``. A section
whose inputs are missing is left out and listed under ``#omitted`` with the reason. Every metric
value carries its exact JSON value in a ``data-value`` attribute.
"""

from __future__ import annotations

import base64
import csv
import datetime as _dt
import html
import json
import math
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import imageio.v3 as iio
import numpy as np

from lapseg.errors import LapsegInputError
from lapseg.io.discovery import discover_images, natural_sort_key
from lapseg.io.files import write_text
from lapseg.io.images import read_image, read_mask
from lapseg.report.plots import (
    grey_rgb,
    heatmap_rgb,
    overlay_rgb,
    save_boxplots,
    save_learning_curves,
)

__all__ = ["REPORT_NAME", "build_report"]

REPORT_NAME = "report.html"
_THUMB = 256  # longest thumbnail edge in pixels
_RANKED = 5  # worst / best images listed

_CSS = """
body{font-family:system-ui,sans-serif;margin:0 auto;max-width:1200px;padding:0 1em;color:#222}
nav a{margin-right:.8em} section{border-top:1px solid #ccc;padding:.5em 0}
table{border-collapse:collapse;margin:.5em 0} td,th{border:1px solid #ccc;padding:2px 8px}
td.num{text-align:right;font-variant-numeric:tabular-nums} pre{background:#f6f6f6;padding:.6em;
overflow:auto;max-height:30em} figure{display:inline-block;margin:4px;vertical-align:top}
figcaption{font-size:12px;text-align:center} img.thumb{max-width:256px;border:1px solid #999}
img.plot{max-width:100%} .lightbox{display:none;position:fixed;inset:0;background:rgba(0,0,0,.85);
z-index:10;overflow:auto;text-align:center} .lightbox:target{display:block}
.lightbox img{margin:2em auto;image-rendering:pixelated;max-width:none;min-width:min(90vw,768px)}
.note{color:#666;font-style:italic}
"""


def _png_uri(rgb: np.ndarray) -> str:
    data = iio.imwrite("<bytes>", np.ascontiguousarray(rgb), extension=".png")
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _file_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _plot_uri(draw: Callable[[Path], Path]) -> str:
    """Run a plotting function that writes a PNG, and embed the result."""
    with tempfile.TemporaryDirectory() as folder:
        return _file_uri(draw(Path(folder) / "plot.png"))


class _Lightboxes:
    """Thumbnails linked to full-resolution copies shown by the CSS ``:target`` rule."""

    def __init__(self) -> None:
        self.boxes: list[str] = []

    def figure(self, rgb: np.ndarray, caption: str, back: str) -> str:
        box_id = f"full-{len(self.boxes)}"
        step = max(1, math.ceil(max(rgb.shape[:2]) / _THUMB))
        self.boxes.append(
            f'<div class="lightbox" id="{box_id}"><a href="#{back}">'
            f'<img src="{_png_uri(rgb)}" alt="{html.escape(caption)} (full resolution)"></a></div>'
        )
        return (
            f'<figure><a href="#{box_id}"><img class="thumb" src="{_png_uri(rgb[::step, ::step])}"'
            f' alt="{html.escape(caption)}"></a><figcaption>{html.escape(caption)}</figcaption>'
            "</figure>"
        )


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise LapsegInputError(f"cannot read JSON ({exc})", path=path) from exc


def _read_csv(path: Path) -> list[dict[str, Any]]:
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


def _fmt(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return html.escape(str(value))
    if isinstance(value, int):
        return str(value)
    if not math.isfinite(value):
        return "n/a"
    return f"{value:.3e}" if value != 0 and abs(value) < 0.001 else f"{value:.4f}"


def _cell(value: Any) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f'<td class="num" data-value="{value!r}">{_fmt(value)}</td>'
    return f"<td>{_fmt(value)}</td>"


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]], table_id: str = "") -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(_cell(v) if i else f"<th>{_fmt(v)}</th>" for i, v in enumerate(row))
        + "</tr>"
        for row in rows
    )
    attr = f' id="{table_id}"' if table_id else ""
    return f"<table{attr}><tr>{head}</tr>{body}</table>"


def _flat(data: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.extend(_flat(value, f"{name}."))
        elif isinstance(value, list) and all(isinstance(v, int | float) for v in value):
            out.extend((f"{name}[{i}]", v) for i, v in enumerate(value))
        elif isinstance(value, str | int | float | bool) or value is None:
            out.append((name, value))
    return out


def _by_stem(folder: Path | None) -> dict[str, Path]:
    if folder is None or not folder.is_dir():
        return {}
    return {p.stem: p for p in discover_images(folder)}


def _metrics_html(summary: Mapping[str, Any], instances: Any) -> str:
    pooled, mean, std = summary.get("pooled", {}), summary.get("mean", {}), summary.get("std", {})
    keys = [k for k in pooled if isinstance(pooled[k], int | float)]
    rows = [(k, pooled[k], mean.get(k, math.nan), std.get(k, math.nan)) for k in keys]
    parts = [
        f"<p>{summary.get('n_images', '?')} image(s) evaluated. Pooled: every pixel counts once; "
        "mean ± std: every image counts once.</p>",
        _table(("metric", "pooled", "mean per image", "std per image"), rows, "pixel-metrics"),
    ]
    if instances is not None:
        rows = _flat(instances) if isinstance(instances, Mapping) else []
        parts.append("<h3>Instance metrics</h3>")
        parts.append(_table(("metric", "value"), rows, "instance-metrics"))
    return "".join(parts)


def _ranking_html(per_image: list[dict[str, Any]]) -> str:
    scored = [r for r in per_image if isinstance(r.get("dice"), float) and math.isfinite(r["dice"])]
    scored.sort(key=lambda r: (r["dice"], natural_sort_key(str(r["name"]))))
    k = min(_RANKED, len(scored))
    worst = [(r["name"], r["dice"]) for r in scored[:k]]
    best = [(r["name"], r["dice"]) for r in reversed(scored[-k:])]
    return (
        "<h3>Worst by Dice</h3>"
        + _table(("image", "dice"), worst, "worst")
        + "<h3>Best by Dice</h3>"
        + _table(("image", "dice"), best, "best")
    )


def _overlay_choice(stems: list[str], per_image: list[dict[str, Any]], limit: int) -> list[str]:
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


def _overlays_html(
    stems: list[str],
    images: dict[str, Path],
    truths: dict[str, Path],
    preds: dict[str, Path],
    probs: dict[str, Path],
    boxes: _Lightboxes,
) -> str:
    rows = []
    for stem in stems:
        image = read_image(images[stem]).array.astype(np.float64).mean(axis=0)
        truth = read_mask(truths[stem]) if stem in truths else None
        pred = read_mask(preds[stem])
        figures = [boxes.figure(grey_rgb(image), f"{stem}: input", "overlays")]
        if truth is not None:
            shown = (truth != 0).astype(np.uint8) * 255
            figures.append(
                boxes.figure(np.repeat(shown[..., None], 3, -1), "ground truth", "overlays")
            )
        if stem in probs:
            prob = read_image(probs[stem]).array.astype(np.float64)
            foreground = prob[0] if prob.shape[0] == 1 else 1.0 - prob[0]
            figures.append(boxes.figure(heatmap_rgb(foreground), "probability", "overlays"))
        figures.append(
            boxes.figure(
                overlay_rgb(image, truth, pred), "truth yellow, prediction red", "overlays"
            )
        )
        rows.append(
            f'<div class="overlay-row" data-image="{html.escape(stem)}">'
            + "".join(figures)
            + "</div>"
        )
    return "".join(rows)


def _feature_maps_html(run_dir: Path, image_path: Path, boxes: _Lightboxes) -> str:
    from lapseg.data.normalization import apply_normalization
    from lapseg.inference.predict import load_model
    from lapseg.report.feature_maps import capture_feature_maps, crop_to_valid, save_feature_maps

    loaded = load_model(run_dir, device="cpu")
    image = apply_normalization(read_image(image_path).array, loaded.stats).astype(np.float32)
    crop = crop_to_valid(loaded.model, image, max_size=256)
    maps = capture_feature_maps(loaded.model, crop)
    uri = _plot_uri(lambda p: save_feature_maps(maps, p, image=crop.mean(axis=0)))
    return (
        f"<p>One channel (the most varied) per U-Net level for {html.escape(image_path.name)}"
        f" (centre crop {crop.shape[-2]}x{crop.shape[-1]}).</p>"
        f'<img class="plot" src="{uri}" alt="feature maps">'
    )


def _data_html(split: Any, truths: dict[str, Path]) -> str:
    parts = []
    if isinstance(split, Mapping):
        counts = [(k, len(v)) for k, v in split.items() if isinstance(v, list)]
        parts.append(_table(("subset", "images"), counts, "split-counts"))
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
        parts.append(_table(("evaluation data", "value"), rows, "class-balance"))
    return "".join(parts)


def _curves_uri(run_dir: Path) -> str | None:
    history_path, curves_path = run_dir / "history.csv", run_dir / "curves.png"
    if history_path.is_file():
        history = _read_csv(history_path)
        columns = list(history[0]) if history else []
        losses = [c for c in columns if c.endswith("_loss")]
        metrics = [c for c in columns if c.startswith("val_") and c not in losses]
        try:
            return _plot_uri(
                lambda p: save_learning_curves(history, p, loss_keys=losses, metric_keys=metrics)
            )
        except ValueError:
            pass
    return _file_uri(curves_path) if curves_path.is_file() else None


def build_report(
    run_dir: str | Path,
    *,
    evaluation_dir: str | Path | None = None,
    predictions_dir: str | Path | None = None,
    images_dir: str | Path | None = None,
    truth_dir: str | Path | None = None,
    feature_maps: bool = False,
    max_overlays: int = 8,
) -> Path:
    """Write ``run_dir/report.html`` from the files of a run (see the module docstring).

    Parameters
    ----------
    run_dir : str or Path
        Training (or baseline) run folder: ``config.yaml``, ``split.json``, ``run.json``,
        ``history.csv``/``curves.png`` and ``best.pt`` are used when present.
    evaluation_dir : str or Path, optional
        ``lapseg evaluate`` output (``summary.json``, ``per_image.csv``, optionally
        ``instances_summary.json``); default ``run_dir/evaluation`` when it exists.
    predictions_dir : str or Path, optional
        ``lapseg predict`` output (``masks/``, ``probabilities/``); default
        ``run_dir/predictions`` when it exists.
    images_dir, truth_dir : str or Path, optional
        Input images and ground-truth masks (paired by stem) for the overlays and data summary.
    feature_maps : bool, optional
        Add U-Net feature maps of the first overlay image (needs ``best.pt`` and images).
    max_overlays : int, optional
        Most images shown as overlays, spread over the Dice ranking.

    Returns
    -------
    path : Path
        The written report.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise LapsegInputError("run folder does not exist", path=run_dir)
    if isinstance(max_overlays, bool) or not isinstance(max_overlays, int) or max_overlays < 0:
        raise LapsegInputError(f"max_overlays must be an integer >= 0, got {max_overlays!r}")

    def default(given: str | Path | None, name: str) -> Path | None:
        if given is not None:
            folder = Path(given)
            if not folder.is_dir():
                raise LapsegInputError("folder does not exist", path=folder)
            return folder
        return run_dir / name if (run_dir / name).is_dir() else None

    eval_dir = default(evaluation_dir, "evaluation")
    pred_dir = default(predictions_dir, "predictions")
    images = _by_stem(default(images_dir, "images") if images_dir is not None else None)
    truths = _by_stem(default(truth_dir, "truth") if truth_dir is not None else None)
    preds = _by_stem(pred_dir / "masks" if pred_dir and (pred_dir / "masks").is_dir() else pred_dir)
    probs = _by_stem(pred_dir / "probabilities" if pred_dir else None)
    boxes = _Lightboxes()
    sections: list[tuple[str, str, str]] = []
    omitted: list[tuple[str, str]] = []

    def add(section_id: str, title: str, body: Any, reason: str) -> None:
        """Add a section when ``body`` is a non-empty string, else list it as omitted."""
        if body:
            sections.append((section_id, title, str(body)))
        else:
            omitted.append((title, reason))

    config = run_dir / "config.yaml"
    add(
        "config",
        "Configuration",
        config.is_file() and f"<pre>{html.escape(config.read_text(encoding='utf-8'))}</pre>",
        "no config.yaml",
    )
    split = _read_json(run_dir / "split.json") if (run_dir / "split.json").is_file() else None
    add("data", "Data", _data_html(split, truths), "no split.json and no ground truth given")
    run = _read_json(run_dir / "run.json") if (run_dir / "run.json").is_file() else None
    add(
        "environment",
        "Environment and training time",
        isinstance(run, Mapping) and _table(("item", "value"), _flat(run), "run-info"),
        "no run.json",
    )
    curves = _curves_uri(run_dir)
    add(
        "curves",
        "Learning curves",
        curves and f'<img class="plot" src="{curves}" alt="learning curves">',
        "no history.csv or curves.png",
    )

    summary_path = eval_dir / "summary.json" if eval_dir else None
    summary = _read_json(summary_path) if summary_path and summary_path.is_file() else None
    inst_path = eval_dir / "instances_summary.json" if eval_dir else None
    instances = _read_json(inst_path) if inst_path and inst_path.is_file() else None
    add(
        "metrics",
        "Metrics",
        isinstance(summary, Mapping) and _metrics_html(summary, instances),
        "no evaluation summary.json",
    )
    per_image_path = eval_dir / "per_image.csv" if eval_dir else None
    per_image = _read_csv(per_image_path) if per_image_path and per_image_path.is_file() else []
    box_keys = [
        k for k in ("dice", "iou", "precision", "recall") if per_image and k in per_image[0]
    ]
    add(
        "boxplots",
        "Per-image metrics",
        box_keys
        and f'<img class="plot" src="{_plot_uri(lambda p: save_boxplots(per_image, box_keys, p))}"'
        ' alt="boxplots">',
        "no per_image.csv",
    )
    add(
        "ranking",
        "Worst and best images",
        per_image and _ranking_html(per_image),
        "no per_image.csv",
    )
    stems = [s for s in sorted(preds, key=natural_sort_key) if s in images]
    chosen = _overlay_choice(stems, per_image, max_overlays)
    add(
        "overlays",
        "Overlays",
        chosen and _overlays_html(chosen, images, truths, preds, probs, boxes),
        "needs predictions and the input images (images_dir) with matching names",
    )
    maps_html = None
    if feature_maps and chosen and (run_dir / "best.pt").is_file():
        maps_html = _feature_maps_html(run_dir, images[chosen[0]], boxes)
    if feature_maps or maps_html:
        add("feature-maps", "Feature maps", maps_html, "needs best.pt and an overlay image")

    title = f"lapseg report: {run_dir.resolve().name}"
    nav = "".join(f'<a href="#{sid}">{html.escape(t)}</a>' for sid, t, _ in sections)
    body = "".join(
        f'<section id="{sid}"><h2>{html.escape(t)}</h2>{b}</section>' for sid, t, b in sections
    )
    if omitted:
        items = "".join(f"<li>{html.escape(t)}: {html.escape(r)}</li>" for t, r in omitted)
        body += f'<section id="omitted"><h2>Not in this report</h2><ul>{items}</ul></section>'
    stamp = _dt.datetime.now().astimezone().isoformat(timespec="seconds")
    page = (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}'
        f"</title><style>{_CSS}</style></head><body><header><h1>{html.escape(title)}</h1>"
        f'<p class="note">Generated {stamp}. Click a thumbnail for full resolution.</p>'
        f"<nav>{nav}</nav></header>{body}{''.join(boxes.boxes)}</body></html>\n"
    )
    path = run_dir / REPORT_NAME
    return write_text(path, page)
