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
probability heat map, contours: truth yellow, prediction red), ``#movies`` (evenly spaced
frames of each predicted movie: cells in their track's colour, track tails;
:mod:`lapseg.report.movies`) and ``#feature-maps``. A section
whose inputs are missing is left out and listed under ``#omitted`` with the reason. Every metric
value carries its exact JSON value in a ``data-value`` attribute.

The content of each section is gathered in :mod:`lapseg.report.sections`; the markup is the
Jinja2 template ``lapseg/report/templates/report.html.j2`` (autoescaped: every value is text).
"""

from __future__ import annotations

import datetime as _dt
import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from lapseg.errors import LapsegInputError
from lapseg.io.discovery import natural_sort_key
from lapseg.io.files import write_text
from lapseg.io.images import is_image_file
from lapseg.report.embed import Gallery
from lapseg.report.movies import movie_rows
from lapseg.report.sections import (
    Table,
    boxplot_uri,
    curves_uri,
    data_tables,
    feature_maps_view,
    flat_items,
    images_by_stem,
    metrics_view,
    overlay_choice,
    overlay_rows,
    ranking_tables,
    read_csv,
    read_json,
)

__all__ = ["REPORT_NAME", "build_report"]

REPORT_NAME = "report.html"
_TEMPLATE = "report.html.j2"


@dataclass(frozen=True)
class _Section:
    id: str
    title: str
    body: Any


def _is_numeric(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _fmt(value: Any) -> str:
    """Integers as they are, floats with 4 decimals (small ones in scientific notation)."""
    if not _is_numeric(value):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if not math.isfinite(value):
        return "n/a"
    return f"{value:.3e}" if value != 0 and abs(value) < 0.001 else f"{value:.4f}"


@functools.cache
def _environment() -> jinja2.Environment:
    # autoescape=True, not select_autoescape(): the latter leaves "*.html.j2" names unescaped
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("lapseg.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["fmt"] = _fmt
    env.filters["repr"] = repr
    env.tests["numeric"] = _is_numeric
    return env


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
    images = images_by_stem(default(images_dir, "images") if images_dir is not None else None)
    truths = images_by_stem(default(truth_dir, "truth") if truth_dir is not None else None)
    still = pred_dir / "masks" if pred_dir and (pred_dir / "masks").is_dir() else pred_dir
    # a predictions folder of movies only (NAME/labels.tif ...) has no still images
    preds = images_by_stem(still) if still and any(map(is_image_file, still.iterdir())) else {}
    probs = images_by_stem(pred_dir / "probabilities" if pred_dir else None)
    gallery = Gallery()
    sections: list[_Section] = []
    omitted: list[tuple[str, str]] = []

    def add(section_id: str, title: str, body: Any, reason: str) -> None:
        """Add a section when ``body`` is not ``None``, else list it as omitted."""
        if body is not None:
            sections.append(_Section(section_id, title, body))
        else:
            omitted.append((title, reason))

    config = run_dir / "config.yaml"
    config_text = config.read_text(encoding="utf-8") if config.is_file() else None
    add("config", "Configuration", config_text, "no config.yaml")
    split = read_json(run_dir / "split.json")
    add("data", "Data", data_tables(split, truths), "no split.json and no ground truth given")
    run = read_json(run_dir / "run.json")
    run_table = (
        Table("run-info", ("item", "value"), flat_items(run)) if isinstance(run, Mapping) else None
    )
    add("environment", "Environment and training time", run_table, "no run.json")
    add("curves", "Learning curves", curves_uri(run_dir), "no history.csv or curves.png")

    summary = read_json(eval_dir / "summary.json" if eval_dir else None)
    instances = read_json(eval_dir / "instances_summary.json" if eval_dir else None)
    metrics = metrics_view(summary, instances) if isinstance(summary, Mapping) else None
    add("metrics", "Metrics", metrics, "no evaluation summary.json")
    per_image = read_csv(eval_dir / "per_image.csv" if eval_dir else None)
    add("boxplots", "Per-image metrics", boxplot_uri(per_image), "no per_image.csv")
    add("ranking", "Worst and best images", ranking_tables(per_image), "no per_image.csv")
    stems = [s for s in sorted(preds, key=natural_sort_key) if s in images]
    chosen = overlay_choice(stems, per_image, max_overlays)
    add(
        "overlays",
        "Overlays",
        overlay_rows(chosen, images, truths, preds, probs, gallery),
        "needs predictions and the input images (images_dir) with matching names",
    )
    movies = movie_rows(pred_dir, images, gallery)
    if movies is not None:  # still-image runs have no movie: not listed as missing either
        add("movies", "Movies: frames with labels and tracks", movies, "")
    if feature_maps:
        maps = None
        if chosen and (run_dir / "best.pt").is_file():
            maps = feature_maps_view(run_dir, images[chosen[0]])
        add("feature-maps", "Feature maps", maps, "needs best.pt and an overlay image")

    page = (
        _environment()
        .get_template(_TEMPLATE)
        .render(
            title=f"lapseg report: {run_dir.resolve().name}",
            stamp=_dt.datetime.now().astimezone().isoformat(timespec="seconds"),
            sections=sections,
            omitted=omitted,
            figures=gallery.figures,
        )
    )
    return write_text(run_dir / REPORT_NAME, page)
