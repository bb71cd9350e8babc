"""Compare runs (e.g. one frame vs five frames of context) on the same held-out frames.

:func:`compare_runs` scores each run's best model on the same annotated time-lapse frames with
StemNet's Table 3 measures, computed per frame with its evaluation code's rules and averaged
over the frames (:func:`lapseg.metrics.pixel.stemnet_measures`): error rate (percent), F1,
false white, white-pixel accuracy, then precision, recall and accuracy; plus the IoU pooled over
all pixels. :func:`format_comparison` prints them as a table and :func:`save_compared_curves`
draws every run's learning curves (``history.csv``) on one figure, by default the per-epoch
validation curves of those measures.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lapseg.config import LapsegConfig
from lapseg.data.masks import mask_to_target
from lapseg.errors import LapsegInputError
from lapseg.inference.predict import load_model, model_mask
from lapseg.inference.sequences import SequencePredictor
from lapseg.io.files import write_csv, write_text
from lapseg.io.sequences import discover_sequences, read_frame_mask
from lapseg.metrics.pixel import STEMNET_KEYS, MetricAccumulator

TABLE3_KEYS: tuple[str, ...] = (*STEMNET_KEYS[:7], "iou")
"""Table 3's measures, precision, recall, accuracy (per frame, averaged) and the pooled IoU."""

CURVE_KEYS: tuple[str, ...] = (
    "train_loss",
    "val_loss",
    "val_accuracy",
    "val_precision",
    "val_recall",
    "val_white_pixel_accuracy",
    "val_false_white",
    "val_f1",
    "val_error_rate",
)
"""History columns :func:`compare_configs` draws: loss, then the validation measures per epoch."""

_LABELS = {"error_rate": "error_rate (%)", "iou": "iou (pooled)"}


def evaluation_names(run_dirs: Sequence[Path], subset: str = "test") -> list[str]:
    """Sample names of ``subset`` (falling back to "val") shared by every run's ``split.json``."""
    chosen: list[str] | None = None
    for run in run_dirs:
        path = Path(run) / "split.json"
        if not path.is_file():
            raise LapsegInputError("run folder has no split.json", path=run)
        split = json.loads(path.read_text(encoding="utf-8"))
        names = split.get(subset) or split.get("val") or []
        if chosen is None:
            chosen = list(names)
        elif sorted(chosen) != sorted(names):
            raise LapsegInputError(
                "the runs were evaluated on different frames (their splits differ); train them "
                "with the same seed, data and split settings",
                path=run,
            )
    if not chosen:
        raise LapsegInputError(f"the runs have no {subset!r} or 'val' frames to compare on")
    return chosen


def evaluate_run(
    run_dir: str | Path,
    data_root: str | Path,
    *,
    names: Sequence[str] | None = None,
    device: str = "auto",
) -> dict[str, float]:
    """Pooled binary metrics of a run's best model on annotated frames of ``data_root``.

    Parameters
    ----------
    run_dir : str or Path
        A training run folder (``best.pt``).
    data_root : str or Path
        Time-lapse data in the layout of the run's configuration.
    names : sequence of str, optional
        Sample names (``"01/t007"``) to score; default: every annotated frame.

    Returns
    -------
    metrics : dict
        :data:`TABLE3_KEYS`, ``false_white_pixels`` (per frame, averaged) and ``n_frames``.
    """
    loaded = load_model(run_dir, device=device)
    config = loaded.config
    if config.data.layout not in ("sequences", "ctc"):
        raise LapsegInputError("compare needs a time-lapse run (data.layout sequences or ctc)")
    sources = discover_sequences(
        data_root, layout=config.data.layout, axes=config.data.axes, truth=config.temporal.truth
    )
    wanted = None if names is None else set(names)
    accumulator = MetricAccumulator(num_classes=2)
    for source in sources:
        frames = [t for t in source.annotated if wanted is None or source.sample_name(t) in wanted]
        if not frames:
            continue
        predictor = SequencePredictor([loaded], source, cache_dir=Path(run_dir) / "cache")
        for t in frames:
            prob = predictor.probabilities(t)
            if config.data.task == "semantic":
                raise LapsegInputError("compare scores cell / background models, not class maps")
            pred = model_mask(loaded, prob) > 0  # foreground: cells of instance models too
            truth = mask_to_target(read_frame_mask(source, t), kind="binary", num_classes=2)
            accumulator.update(truth > 0, pred)
    if len(accumulator) == 0:
        raise LapsegInputError("no annotated frame to evaluate on", path=data_root)
    metrics: dict[str, float] = dict(accumulator.stemnet_means())
    metrics["iou"] = float(accumulator.pooled()["iou"])
    metrics["n_frames"] = len(accumulator)
    return metrics


def compare_runs(
    run_dirs: Sequence[str | Path],
    data_root: str | Path,
    *,
    names: Sequence[str] | None = None,
    device: str = "auto",
) -> list[dict[str, Any]]:
    """Score every run on the same frames: one row per run (``run`` = folder name + metrics).

    ``names`` defaults to the runs' common test subset (their validation subset if there is no
    test subset).
    """
    runs = [Path(r) for r in run_dirs]
    if names is None:
        names = evaluation_names(runs)
    rows = []
    for run in runs:
        metrics = evaluate_run(run, data_root, names=names, device=device)
        rows.append({"run": run.name, **metrics})
    return rows


def format_comparison(rows: Sequence[Mapping[str, Any]]) -> str:
    """A Markdown table: a row per measure, a column per run (000's Table 3 layout)."""
    header = "| Measure | " + " | ".join(str(r["run"]) for r in rows) + " |"
    lines = [header, "|---|" + "---|" * len(rows)]
    for key in (*TABLE3_KEYS, "n_frames"):
        cells = []
        for row in rows:
            value = row[key]
            cells.append(f"{value:.6f}" if key == "false_white" else f"{value:.4g}")
        lines.append(f"| {_LABELS.get(key, key)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _read_history(path: Path) -> list[dict[str, float]]:
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [{k: float(v) if v not in ("", None) else np.nan for k, v in r.items()} for r in rows]


def save_compared_curves(
    run_dirs: Sequence[str | Path],
    path: str | Path,
    *,
    keys: Sequence[str] = CURVE_KEYS,
) -> Path:
    """Learning curves of several runs on one figure: a panel per key (up to three in a row), a
    line per run; keys no run recorded are left out."""
    from matplotlib.figure import Figure

    from lapseg.report.plots import _save_figure

    histories = []
    for run in run_dirs:
        csv_path = Path(run) / "history.csv"
        if not csv_path.is_file():
            raise LapsegInputError("run folder has no history.csv", path=run)
        histories.append((Path(run).name, _read_history(csv_path)))
    keys = [
        k
        for k in keys
        if any(np.isfinite(row.get(k, np.nan)) for _, history in histories for row in history)
    ]
    if not keys:
        raise LapsegInputError("the runs' history.csv files hold none of the curves to draw")
    columns = min(len(keys), 3)
    rows = -(-len(keys) // columns)
    fig = Figure(figsize=(5.0 * columns, 4.0 * rows))
    for index, key in enumerate(keys, start=1):
        ax = fig.add_subplot(rows, columns, index)
        for name, history in histories:
            x = [row.get("epoch", i + 1) for i, row in enumerate(history)]
            y = [row.get(key, np.nan) for row in history]
            if np.isfinite(y).any():
                ax.plot(x, y, marker="o", markersize=3, label=name)
        ax.set_xlabel("epoch")
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    return _save_figure(fig, path)


def compare_configs(
    configs: Mapping[str, LapsegConfig],
    data_root: str | Path,
    out_dir: str | Path,
    *,
    progress: bool = True,
    log: Callable[[str], None] = lambda _: None,
) -> str:
    """Train each configuration (same seeds, split and budget) into ``out_dir/<name>``, score
    all of them on the same held-out frames and write ``comparison.md``, ``comparison.csv`` (a
    row per run) and ``curves.png``.

    Returns the comparison table (Markdown).
    """
    from lapseg.training.trainer import fit

    out_dir = Path(out_dir)
    runs = []
    for name, config in configs.items():
        log(f"training {name}")
        runs.append(fit(config, data_root, out_dir / name, progress=progress).run_dir)
    rows = compare_runs(runs, data_root)
    table = format_comparison(rows)
    save_compared_curves(runs, out_dir / "curves.png")
    write_text(out_dir / "comparison.md", table + "\n")
    write_csv(out_dir / "comparison.csv", rows)
    return table
