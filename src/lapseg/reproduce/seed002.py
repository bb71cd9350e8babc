"""Compact U-Net (seed 002): full images vs 4 tiles, with and without curriculum; batch sizes.

Six runs of ``configs/compact-unet-002.yaml`` on the same split (``split.json``), each on whole
images (the patch is the whole image, rounded up to the network's multiple) or on the 4 fixed
quadrants of every image (``tiles-data/``, the quadrants of the same training images), with the
curriculum (elastic deformation switched on at validation cell IoU 0.7) or without it (no
elastic deformation at all), at batch size 4, and without curriculum at batch sizes 1 and 8
(6 steps per epoch each). Every run's best model is scored on the whole validation images;
the tile models predict the 4 quadrants separately and the predictions are stitched. Written
into ``out``:

- ``<run>/``: the run folders (``full``, ``full-cl``, ``tiles``, ``tiles-cl``, ``batch1``,
  ``batch8``);
- ``results.md`` / ``results.csv``: the results table, cell IoU (foreground = interior +
  boundary, per image, averaged over the images with cells) and SEG (CTC, of the instance
  labels) with and without curriculum for full images and tiles, and for batch sizes 1, 4, 8;
- ``curves.png``: validation cell IoU and training / validation loss per epoch of every run
  (Figs 5-8, 10-13, 17-22);
- ``examples.png``: one validation image, its labels and the labels of each run (Figs 9, 14-16).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lapseg.config import LapsegConfig
from lapseg.data.samples import read_raw_sample
from lapseg.data.setup import make_split
from lapseg.data.sources import discover_dataset
from lapseg.data.split import write_split
from lapseg.errors import LapsegInputError
from lapseg.inference.predict import LoadedModel, load_model, model_instances, model_mask
from lapseg.inference.predict import predict_probabilities as predict
from lapseg.io.discovery import SamplePaths
from lapseg.io.files import atomic_output, write_csv, write_text
from lapseg.io.images import write_tiff
from lapseg.io.labels import to_instances
from lapseg.metrics.instance import aggregate_seg, seg_measure
from lapseg.reproduce import budget_overrides, new_output_folder, seed_config
from lapseg.training.compare import save_compared_curves
from lapseg.training.trainer import fit

__all__ = ["RUNS", "RunSpec", "quadrants", "reproduce", "stitch_quadrants"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunSpec:
    """One run of the experiments: on tiles or whole images, curriculum, batch size."""

    tiles: bool
    curriculum: bool
    batch_size: int = 4


RUNS: dict[str, RunSpec] = {
    "full-cl": RunSpec(tiles=False, curriculum=True),
    "full": RunSpec(tiles=False, curriculum=False),
    "tiles-cl": RunSpec(tiles=True, curriculum=True),
    "tiles": RunSpec(tiles=True, curriculum=False),
    "batch1": RunSpec(tiles=False, curriculum=False, batch_size=1),
    "batch8": RunSpec(tiles=False, curriculum=False, batch_size=8),
}
"""Run folder -> what it trains (Experiments 1-3)."""

STEPS_PER_EPOCH = 6
"""Training steps per epoch at every batch size (the project's 6 steps)."""


def quadrants(shape: tuple[int, int]) -> list[tuple[slice, slice]]:
    """The 4 fixed quadrants of a ``(Y, X)`` image, row by row (the first half the larger).

    >>> [(q[0].start, q[0].stop, q[1].start, q[1].stop) for q in quadrants((5, 4))]
    [(0, 3, 0, 2), (0, 3, 2, 4), (3, 5, 0, 2), (3, 5, 2, 4)]
    """
    hy, hx = -(-shape[0] // 2), -(-shape[1] // 2)
    rows = (slice(0, hy), slice(hy, shape[0]))
    columns = (slice(0, hx), slice(hx, shape[1]))
    return [(r, c) for r in rows for c in columns]


def stitch_quadrants(parts: Sequence[np.ndarray], shape: tuple[int, int]) -> np.ndarray:
    """Put the 4 ``(..., y, x)`` quadrant maps of :func:`quadrants` back into one image."""
    out = np.zeros((*parts[0].shape[:-2], *shape), dtype=parts[0].dtype)
    for (rows, columns), part in zip(quadrants(shape), parts, strict=True):
        out[..., rows, columns] = part
    return out


def reproduce(
    data: Path,
    out: Path,
    *,
    minutes: float | None,
    progress: bool,
    overrides: Sequence[str] = (),
) -> list[Path]:
    """Train the six runs on the still images in ``data``; the results table, curves and
    examples to ``out`` (see the module docstring). ``minutes`` is shared by the runs."""
    base = seed_config("compact-unet-002", [*budget_overrides(minutes, len(RUNS)), *overrides])
    base, sources = discover_dataset(base, data)
    if sources.is_timelapse:
        raise LapsegInputError("the compact U-Net experiments take still images, not sequences")
    out = new_output_folder(out)
    samples = {s.name: s for s in sources.samples}
    split = make_split(list(samples), base)
    write_split(out / "split.json", split)
    shape = _largest_shape(samples.values(), base)
    tiles_root = _write_tiles(samples, split, base, out)
    multiple = 2**base.model.depth
    results: dict[str, dict[str, Any]] = {}
    for name, spec in RUNS.items():
        size = [-(-s // 2) for s in shape] if spec.tiles else list(shape)
        size = [max(multiple, -(-s // multiple) * multiple) for s in size]
        config = seed_config(
            "compact-unet-002",
            [
                *budget_overrides(minutes, len(RUNS)),
                *_run_settings(spec, size, out),
                *overrides,
            ],
        )
        log.info("training %s", name)
        run = fit(config, tiles_root if spec.tiles else data, out / name, progress=progress)
        results[name] = {"run": name, **vars(spec), "best_epoch": run.best_epoch}
    models = {name: load_model(out / name, device=base.train.device) for name in RUNS}
    evaluation = [samples[n] for n in split["val"]] or [samples[n] for n in split["train"]]
    labels: dict[str, np.ndarray] = {}
    for name, loaded in models.items():
        scores, labels[name] = _score(loaded, RUNS[name].tiles, evaluation, base)
        results[name].update(scores)
    rows = list(results.values())
    written = [
        write_text(out / "results.md", results_table(results) + "\n"),
        write_csv(out / "results.csv", rows),
        save_compared_curves(
            [out / name for name in RUNS],
            out / "curves.png",
            keys=("val_iou", "train_loss", "val_loss"),
        ),
        _examples(evaluation[0], labels, base, out / "examples.png"),
    ]
    log.info("results on the validation images:\n%s", results_table(results))
    return written


def _run_settings(spec: RunSpec, size: list[int], out: Path) -> list[str]:
    """The overrides that make one run of :data:`RUNS` from the configuration file."""
    settings = [
        f"train.patch_size={size}",
        f"predict.tile_size={size}",
        f"train.batch_size={spec.batch_size}",
        f"train.patches_per_epoch={STEPS_PER_EPOCH * spec.batch_size}",
    ]
    if not spec.curriculum:  # mirroring and rotations only: no elastic deformation
        settings += ["augment.curriculum=[]", "augment.elastic.probability=0.0"]
    if spec.tiles:
        settings += [
            "data.layout=folders",
            "data.axes=null",
            "data.channels=null",
            "data.empty_masks=empty",  # a quadrant without cells is still trained on
            f"data.split_file={out / 'tiles-split.json'}",
        ]
    else:
        settings.append(f"data.split_file={out / 'split.json'}")
    return settings


def _largest_shape(samples: Any, config: LapsegConfig) -> tuple[int, int]:
    shapes = [read_raw_sample(s, config)[1].shape for s in samples]
    return max(s[0] for s in shapes), max(s[1] for s in shapes)


def _tile_name(name: str, index: int) -> str:
    return f"{name.replace('/', '__')}_q{index}"


def _write_tiles(
    samples: dict[str, SamplePaths],
    split: dict[str, list[str]],
    config: LapsegConfig,
    out: Path,
) -> Path:
    """The quadrants of every image and mask as ``out/tiles-data`` and their split."""
    root = out / "tiles-data"
    for name, paths in samples.items():
        image, mask = read_raw_sample(paths, config)
        for index, (rows, columns) in enumerate(quadrants(mask.shape)):
            tile = _tile_name(name, index)
            write_tiff(root / "images" / f"{tile}.tif", image[:, rows, columns], axes="CYX")
            write_tiff(root / "masks" / f"{tile}.tif", mask[rows, columns], axes="YX")
    tiles = {k: [_tile_name(n, i) for n in names for i in range(4)] for k, names in split.items()}
    write_split(out / "tiles-split.json", tiles)
    return root


def _score(
    loaded: LoadedModel, tiles: bool, samples: list[SamplePaths], config: LapsegConfig
) -> tuple[dict[str, float], np.ndarray]:
    """Cell IoU and SEG over ``samples`` (whole images; tile models stitched); the labels of
    the first image."""
    ious, segs, first = [], [], None
    for paths in samples:
        image, mask = read_raw_sample(paths, config)
        if tiles:
            parts = [predict([loaded], image[:, r, c]) for r, c in quadrants(mask.shape)]
            prob = stitch_quadrants(parts, mask.shape)
        else:
            prob = predict([loaded], image)
        truth = to_instances(mask)
        predicted = model_instances(loaded, prob)
        first = predicted if first is None else first
        if truth.any():
            ious.append(cell_iou(truth > 0, model_mask(loaded, prob) > 0))
        segs.append(seg_measure(truth, predicted))
    seg = aggregate_seg(segs)["seg"]
    scores = {
        "iou": float(np.mean(ious)) if ious else math.nan,
        "seg": float(seg),
        "n_images": len(samples),
    }
    return scores, first if first is not None else np.zeros((1, 1), np.uint16)


def cell_iou(truth: np.ndarray, pred: np.ndarray) -> float:
    """``|T ∩ P| / |T ∪ P|`` of two ``(Y, X)`` boolean cell masks (0 when both are empty).

    >>> cell_iou(np.array([[1, 1, 0]], bool), np.array([[0, 1, 1]], bool))
    0.3333333333333333
    """
    union = int(np.logical_or(truth, pred).sum())
    return int(np.logical_and(truth, pred).sum()) / union if union else 0.0


def results_table(results: dict[str, dict[str, Any]]) -> str:
    """The project's results table (Markdown): IoU and SEG with / without curriculum."""

    def cells(name: str | None) -> list[str]:
        if name is None or name not in results:
            return ["-", "-"]
        return [f"{results[name]['iou']:.3f}", f"{results[name]['seg']:.3f}"]

    rows = [
        ("Vanilla (batch size = 4)", "full-cl", "full"),
        ("Trained on tiles", "tiles-cl", "tiles"),
        ("Batch size = 1", None, "batch1"),
        ("Batch size = 4", None, "full"),
        ("Batch size = 8", None, "batch8"),
    ]
    lines = [
        "| Tested U-Net models | IoU (with CL) | SEG (with CL) | IoU (without CL) | SEG (without CL) |",
        "|---|---|---|---|---|",
    ]
    for title, with_cl, without_cl in rows:
        lines.append("| " + " | ".join([title, *cells(with_cl), *cells(without_cl)]) + " |")
    return "\n".join(lines)


def _examples(
    paths: SamplePaths, labels: dict[str, np.ndarray], config: LapsegConfig, path: Path
) -> Path:
    """The first evaluation image, its reference labels and every run's labels."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    image, mask = read_raw_sample(paths, config)
    panels = [("image", image.mean(axis=0)), ("reference", to_instances(mask))]
    panels += [(name, value) for name, value in labels.items()]
    columns = 4
    rows = -(-len(panels) // columns)
    fig = Figure(figsize=(3.0 * columns, 3.2 * rows))
    FigureCanvasAgg(fig)
    for index, (title, array) in enumerate(panels, start=1):
        ax = fig.add_subplot(rows, columns, index)
        ax.imshow(array, cmap="gray" if index == 1 else "nipy_spectral", interpolation="nearest")
        ax.set_title(title, fontsize=8)
        ax.set_axis_off()
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    return path
