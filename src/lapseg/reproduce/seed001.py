"""Seed 001: the pancreas Keras U-Net vs a random forest on (time, depth) stacks (Table 1).

The data are ``(T, Z, Y, X)`` stacks ``data/<name>.tif`` with mask stacks
``data/masks/<name>.tif`` (``data.layout: sequences``, ``data.axes: TZYX``); every ``(t, z)``
plane is one 2D image. From ``configs/pancreas-keras.yaml`` (the report's U-Net, whole frames,
no augmentation) the U-Net and the random-forest baseline are trained on the same split
(lapseg's: whole z-slices go to the test set), and both are measured on the test frames the way
the report measures (section 9.2, Table 1: accuracy, specificity, sensitivity over the pixels of
the test images). Written into ``out``:

- ``unet/``: the U-Net run folder; ``forest/``: the baseline's model folder;
- ``predictions/<method>/masks/<name>/zZZ/tTTT.tif`` (and ``probabilities/``) for the test
  frames, methods ``unet`` (threshold 0.5, the report's), ``unet-adaptive`` (Otsu's threshold
  of each image's probabilities: the adaptive threshold the report's discussion asks for,
  "depending on the structure on a given image") and ``forest``;
- ``evaluation/<method>/``: ``per_image.csv`` and ``summary.json`` of ``lapseg evaluate``,
  which pairs those per-frame files with the mask stacks;
- ``table1.md`` / ``table1.csv``: Table 1 (percent, pooled over the test frames) per method,
  with the report's own U-Net row for reference;
- ``examples.png``: Figs 5-6 for the first test frame: image, ground truth, U-Net probability
  (top); U-Net mask at 0.5, adaptive mask, forest mask (bottom).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

from lapseg.baseline.pipeline import predict_baseline, train_baseline
from lapseg.config import LapsegConfig
from lapseg.errors import LapsegInputError
from lapseg.inference.outputs import foreground_probability
from lapseg.inference.predict import LoadedModel, load_model, model_mask
from lapseg.inference.sequences import SequencePredictor
from lapseg.io.files import write_csv, write_text
from lapseg.io.images import read_image, read_mask, write_png, write_tiff
from lapseg.io.sequences import (
    SequenceSource,
    check_frame_sizes,
    discover_sequences,
    read_frame,
    read_frame_mask,
)
from lapseg.metrics.evaluate import evaluate_folders
from lapseg.models.unet import UNet
from lapseg.report.plots import grey_rgb, heatmap_rgb
from lapseg.report.preview import tile_grid
from lapseg.reproduce import budget_overrides, new_output_folder, seed_config
from lapseg.training.trainer import fit

__all__ = ["CONFIG", "METHODS", "SEED_TABLE1", "reproduce"]

log = logging.getLogger(__name__)

CONFIG = "pancreas-keras"
"""The configuration file (``configs/pancreas-keras.yaml``)."""

METHODS: tuple[str, ...] = ("unet", "unet-adaptive", "forest")
"""Rows of Table 1: the U-Net at 0.5, the U-Net with Otsu's threshold per image, the forest."""

SEED_TABLE1: dict[str, float] = {"accuracy": 99.58, "specificity": 99.87, "sensitivity": 81.14}
"""The report's Table 1 (its U-Net, threshold 0.5, 10 test images), in percent."""

UNET_SHARE = 0.75
"""Share of ``minutes`` the U-Net trains for; the forest, predictions and evaluation follow."""


def reproduce(
    data: Path,
    out: Path,
    *,
    minutes: float | None,
    progress: bool,
    overrides: Sequence[str] = (),
) -> list[Path]:
    """Train the U-Net and the forest on the stacks in ``data``; Table 1 and Figs 5-6 to ``out``
    (see the module docstring). ``overrides`` (``KEY=VALUE``) apply after the config file."""
    probe = seed_config(CONFIG, overrides)
    sources = _stack_sequences(data, probe)
    patch = _whole_frame_patch(sources, probe)
    budget = budget_overrides(None if minutes is None else UNET_SHARE * minutes, 1)
    config = seed_config(CONFIG, [*budget, f"train.patch_size=[{patch[0]},{patch[1]}]", *overrides])
    out = new_output_folder(out)
    log.info("seed 001: U-Net on whole %dx%d frames (padded), then the random forest", *patch)
    fit(config, data, out / "unet", progress=progress)
    train_baseline(data, out / "forest", config, settings=config.baseline)
    names = _test_frames(out)
    loaded = load_model(out / "unet", device=config.train.device)
    chosen = [(s, t) for s in sources for t in range(s.n_frames) if s.sample_name(t) in names]
    _predict_unet(loaded, chosen, out / "predictions", config)
    predict_baseline(
        out / "forest",
        _stack_files(sources),
        out / "predictions" / "forest",
        axes=config.data.axes,
        names=names,
    )
    truth = _truth_folder(sources)
    rows = []
    for method in METHODS:
        result = evaluate_folders(
            out / "predictions" / method, truth, only=names, out_dir=out / "evaluation" / method
        )
        pooled = result.pooled
        rows.append(
            {
                "method": method,
                "accuracy": 100 * float(pooled["accuracy"]),
                "specificity": 100 * float(pooled["specificity"]),
                "sensitivity": 100 * float(pooled["recall"]),
                "n_frames": result.n_images,
            }
        )
    written = _write_table(rows, out)
    log.info(
        "Table 1 (percent, pooled over %d test frame(s)):\n%s",
        len(names),
        written[0].read_text(encoding="utf-8"),
    )
    written.append(_examples(chosen[0], out / "predictions", out / "examples.png"))
    return written


# --------------------------------------------------------------------------- data


def _stack_sequences(data: Path, config: LapsegConfig) -> list[SequenceSource]:
    """One sequence per z-slice of every ``(T, Z, Y, X)`` stack with a mask stack."""
    if config.data.layout != "sequences":
        raise LapsegInputError("seed 001 reads (T, Z, Y, X) stacks: data.layout must be sequences")
    sources = discover_sequences(data, layout="sequences", axes=config.data.axes)
    if not all(s.stack is not None and s.z_index is not None for s in sources):
        raise LapsegInputError(
            "seed 001 reads (T, Z, Y, X) stacks (data.axes TZYX or ZTYX), not frame folders",
            path=data,
        )
    if any(s.mask_stack is None for s in sources):
        raise LapsegInputError(
            "every stack needs its mask stack masks/<name>.tif (the ground truth)", path=data
        )
    return sources


def _stack_files(sources: Sequence[SequenceSource]) -> list[Path]:
    """Every stack file once, in order."""
    return list(dict.fromkeys(s.stack for s in sources if s.stack is not None))


def _whole_frame_patch(sources: Sequence[SequenceSource], config: LapsegConfig) -> tuple[int, int]:
    """The training patch that holds a whole frame: the largest frame size, rounded up to the
    sizes the network accepts (523 x 821 -> 528 x 832 for the seed's frames)."""
    sizes = [check_frame_sizes(s) for s in sources]
    model = UNet(config.model)
    return (
        model.valid_input_size(max(size[0] for size in sizes)),
        model.valid_input_size(max(size[1] for size in sizes)),
    )


def _test_frames(out: Path) -> list[str]:
    """The U-Net's test frames (its validation frames when there is no test split); the forest
    must have been trained on the same split."""
    splits = [
        json.loads((out / run / "split.json").read_text(encoding="utf-8"))
        for run in ("unet", "forest")
    ]
    if splits[0]["train"] != splits[1]["train"]:
        raise LapsegInputError("the U-Net and the forest were trained on different frames")
    names = list(splits[0].get("test") or splits[0].get("val") or [])
    if not names:
        raise LapsegInputError("no test frames: set data.test_fraction (the seed tests on 25%)")
    return names


def _truth_folder(sources: Sequence[SequenceSource]) -> Path:
    folders = {s.mask_stack.parent for s in sources if s.mask_stack is not None}
    if len(folders) != 1:
        raise LapsegInputError("the mask stacks must lie in one masks/ folder")
    return folders.pop()


# --------------------------------------------------------------------------- predictions


def _predict_unet(
    loaded: LoadedModel,
    frames: Sequence[tuple[SequenceSource, int]],
    predictions: Path,
    config: LapsegConfig,
) -> None:
    """Masks at the fixed threshold and at each image's Otsu threshold, and probabilities."""
    fixed = config.predict.replace(threshold_method="fixed")
    adaptive = config.predict.replace(threshold_method="otsu")
    predictors: dict[str, SequencePredictor] = {}
    for source, t in frames:
        if source.name not in predictors:
            predictors[source.name] = SequencePredictor([loaded], source, predict=fixed)
        prob = predictors[source.name].probabilities(t)
        name = f"{source.sample_name(t)}.tif"
        foreground = foreground_probability(prob, target=loaded.config.data.target)
        write_tiff(predictions / "unet" / "probabilities" / name, foreground, axes="YX")
        for method, settings in (("unet", fixed), ("unet-adaptive", adaptive)):
            mask = model_mask(loaded, prob, predict=settings)
            write_tiff(predictions / method / "masks" / name, mask, axes="YX")


# --------------------------------------------------------------------------- outputs


def _write_table(rows: list[dict[str, object]], out: Path) -> list[Path]:
    """``table1.md`` and ``table1.csv``: one row per method, then the report's row."""
    reference = {"method": "report (Table 1, U-Net at 0.5)", **SEED_TABLE1, "n_frames": 10}
    lines = [
        "| Method | Accuracy (%) | Specificity (%) | Sensitivity (%) | test frames |",
        "|---|---|---|---|---|",
    ]
    for row in [*rows, reference]:
        lines.append(
            f"| {row['method']} | {row['accuracy']:.2f} | {row['specificity']:.2f} | "
            f"{row['sensitivity']:.2f} | {row['n_frames']} |"
        )
    md = write_text(out / "table1.md", "\n".join(lines) + "\n")
    csv = write_csv(out / "table1.csv", [*rows, reference], float_format=".4f")
    return [md, Path(csv)]


def _examples(frame: tuple[SequenceSource, int], predictions: Path, path: Path) -> Path:
    """Figs 5-6: image, truth, U-Net probability; mask at 0.5, adaptive mask, forest mask."""
    source, t = frame
    name = f"{source.sample_name(t)}.tif"
    prob = read_image(predictions / "unet" / "probabilities" / name, axes="YX").array[0]
    masks = [read_mask(predictions / m / "masks" / name) > 0 for m in METHODS]
    tiles = [
        grey_rgb(read_frame(source, t)),
        grey_rgb(read_frame_mask(source, t) > 0),
        heatmap_rgb(prob),
        *(grey_rgb(mask) for mask in masks),
    ]
    return write_png(path, tile_grid(tiles, columns=3))
