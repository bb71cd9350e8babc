"""Seed 003 (lecture: CNNs for semantic segmentation): its rules and options, checked on data.

The lecture states rules rather than results, so this reproduction checks them. On a
still-image dataset (any lapseg layout but time-lapse), written into ``out``:

- ``normalization.md`` / ``.csv``: "preprocessing statistics must be computed on training data
  and applied to validation / test data; normalisation statistics are parameters of your ML
  model". One short run per mean-subtraction mode of the lecture (``meanstd``: per-channel mean
  and std, ResNet; ``mean-only``: per-channel mean, VGG; ``mean-image``: the mean image,
  AlexNet), then, per statistic, the value stored in the run's ``best.pt``, the value fitted
  anew on the run's training split and on the whole dataset, and whether the stored one
  equals the first and differs from the second (``mean-image`` needs images of one size; it
  is reported as not applicable otherwise);
- ``upsampling.md`` / ``.csv``: the upsampling choices (nearest neighbour, max-unpooling,
  transposed convolution, bilinear, learned upsampling initialised to bilinear) in the default
  U-Net: parameters, output size, and for the learned one how far its initial output is from
  bilinear interpolation; and batch norm folded into the convolutions at test time (largest
  output difference);
- ``training.md`` / ``.csv``: patch-based vs full-image training (whole images padded to the
  network's grid, every image once per epoch, with the lecture's random loss mask keeping half
  of the pixels): the best value of the run's monitored validation measure, its epoch and the
  epochs trained, same seed and budget;
- ``norm-<mode>/``, ``patches/``, ``full-image/``: the run folders.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lapseg.config import LapsegConfig, load_config
from lapseg.data.normalization import NormalizationStats, fit_normalization
from lapseg.data.samples import read_raw_sample
from lapseg.data.setup import resolve_run_config
from lapseg.errors import LapsegInputError
from lapseg.io.files import write_csv, write_text
from lapseg.io.images import image_yx
from lapseg.models.blocks import UPSAMPLING_MODES
from lapseg.models.checkpoint import load_checkpoint
from lapseg.models.registry import count_parameters, create_model
from lapseg.models.unet import UNet, fuse_batchnorm
from lapseg.reproduce import new_output_folder
from lapseg.training.trainer import RunResult, fit

__all__ = ["MEAN_MODES", "reproduce"]

log = logging.getLogger(__name__)

MEAN_MODES: tuple[str, ...] = ("meanstd", "mean-only", "mean-image")
"""The lecture's three ways of zero-centring (ResNet, VGG, AlexNet)."""

SHORT_RUN = ["train.epochs=1", "train.patches_per_epoch=8", "postprocess.tune_for=none"]
"""The normalisation runs only need a stored model, not a trained one."""

RTOL = 1e-5
"""Relative tolerance of "equal" (float32 storage of float64 statistics)."""


def reproduce(
    data: Path,
    out: Path,
    *,
    minutes: float | None,
    progress: bool,
    overrides: Sequence[str] = (),
) -> list[Path]:
    """The lecture's checks on the still images in ``data`` (see the module docstring).
    ``minutes`` bounds the runs (a tenth for each normalisation run, the rest shared by the two
    training runs); without it the training runs take the default epochs."""
    runs = Runs(data, out, list(overrides), minutes, progress)
    base, sources, _ = resolve_run_config(runs.config([]), data)
    if sources.is_timelapse:
        raise LapsegInputError("seed 003's checks read still-image layouts, not time-lapse data")
    new_output_folder(out)
    written = _write(out, "normalization", _normalization_rows(runs))
    written += _write(out, "upsampling", _upsampling_rows(base))
    written += _write(out, "training", _training_rows(runs))
    return written


@dataclass(frozen=True)
class Runs:
    """How this reproduction trains: data, output folder, the user's overrides, budget."""

    data: Path
    out: Path
    overrides: list[str]
    minutes: float | None
    progress: bool

    def config(self, settings: Sequence[str], share: float | None = None) -> LapsegConfig:
        """lapseg's defaults, the user's overrides, then the run's own ``settings`` (they define
        the run, so they win) and its ``share`` of the budget."""
        budget = (
            []
            if share is None or self.minutes is None
            else [f"train.time_budget_minutes={share * self.minutes}"]
        )
        return load_config(None, ["train.tensorboard=false", *self.overrides, *settings, *budget])

    def fit(self, name: str, settings: Sequence[str], share: float) -> RunResult:
        return fit(self.config(settings, share), self.data, self.out / name, progress=self.progress)


# --------------------------------------------------------------------------- normalisation


def _normalization_rows(runs: Runs) -> list[dict[str, Any]]:
    config, sources, _ = resolve_run_config(runs.config([]), runs.data)
    raw = {s.name: read_raw_sample(s, config)[0] for s in sources.samples}
    one_size = len({image.shape for image in raw.values()}) == 1
    rows: list[dict[str, Any]] = []
    for mode in MEAN_MODES:
        if mode == "mean-image" and not one_size:
            rows.append({"mode": mode, "statistic": "not applicable: images of several sizes"})
            continue
        run = runs.out / f"norm-{mode}"
        runs.fit(run.name, [*SHORT_RUN, f"normalization.mode={mode}"], 0.1)
        stored = NormalizationStats.from_dict(load_checkpoint(run / "best.pt")["normalization"])
        split = json.loads((run / "split.json").read_text(encoding="utf-8"))
        train = fit_normalization((raw[n] for n in split["train"]), mode=mode)
        whole = fit_normalization(raw.values(), mode=mode)
        rows += _compare(mode, stored, train, whole, n_train=len(split["train"]), n_all=len(raw))
    return rows


def _statistics(stats: NormalizationStats) -> dict[str, np.ndarray]:
    """The numbers a mode stores: per-channel mean (and std), or the mean image."""
    if stats.mean_image is not None:
        return {"mean image": stats.mean_image}
    found = {"mean": np.asarray(stats.mean)}
    if stats.mode != "mean-only":
        found["std"] = np.asarray(stats.std)
    return found


def _compare(
    mode: str,
    stored: NormalizationStats,
    train: NormalizationStats,
    whole: NormalizationStats,
    *,
    n_train: int,
    n_all: int,
) -> list[dict[str, Any]]:
    rows = []
    fitted = _statistics(train)
    everything = _statistics(whole)
    for name, value in _statistics(stored).items():
        summary = "pixel average of " if value.ndim == 3 else ""
        rows.append(
            {
                "mode": mode,
                "statistic": f"{summary}{name}",
                "stored in best.pt": _show(value),
                f"training split ({n_train} images)": _show(fitted[name]),
                f"whole dataset ({n_all} images)": _show(everything[name]),
                "stored == training split": bool(np.allclose(value, fitted[name], rtol=RTOL)),
                "stored != whole dataset": not np.allclose(value, everything[name], rtol=RTOL),
            }
        )
    return rows


def _show(value: np.ndarray) -> str:
    if value.ndim == 3:  # a mean image: its average over the pixels, per channel
        value = value.mean(axis=(1, 2))
    return ", ".join(f"{float(v):.6g}" for v in np.ravel(value))


# --------------------------------------------------------------------------- upsampling


def _upsampling_rows(base: LapsegConfig) -> list[dict[str, Any]]:
    """Parameters and output size per upsampling mode; learned-bilinear init and BN folding."""
    rows: list[dict[str, Any]] = []
    x = torch.randn(2, base.model.in_channels, 64, 64, generator=torch.Generator().manual_seed(0))
    for mode in UPSAMPLING_MODES:
        torch.manual_seed(0)
        model = create_model(base.model, upsampling=mode).eval()
        with torch.no_grad():
            y = model(x)
            folded = fuse_batchnorm(model)(x)
        row: dict[str, Any] = {
            "upsampling": mode,
            "parameters": count_parameters(model),
            "output": "x".join(str(n) for n in y.shape),
            "max |BN folded - BN| (eval)": float((folded - y).abs().max()),
            "max |initial - bilinear| (learned filters)": "",
        }
        if mode == "learned_bilinear":
            row["max |initial - bilinear| (learned filters)"] = _bilinear_gap(model)
        rows.append(row)
    return rows


def _bilinear_gap(model: UNet) -> float:
    """Largest difference between each learned upsampling filter's initial output and
    ``F.interpolate(..., mode="bilinear")`` on a random input."""
    gap = 0.0
    generator = torch.Generator().manual_seed(1)
    for up in model.up:
        learned = getattr(up, "learned", None)
        if learned is None:
            continue
        x = torch.randn(1, learned.in_channels, 7, 9, generator=generator)
        with torch.no_grad():
            y = learned(torch.nn.functional.pad(x, (1, 1, 1, 1), mode="replicate"))
            ref = torch.nn.functional.interpolate(x, scale_factor=2.0, mode="bilinear")
        gap = max(gap, float((y - ref).abs().max()))
    return gap


# --------------------------------------------------------------------------- full image vs patches


def _training_rows(runs: Runs) -> list[dict[str, Any]]:
    config, sources, _ = resolve_run_config(runs.config([]), runs.data)
    sizes = [image_yx(s.image) for s in sources.samples]
    model = UNet(config.model)
    whole = [model.valid_input_size(max(size[i] for size in sizes)) for i in (0, 1)]
    settings_of: dict[str, list[str]] = {
        "patches": [],
        "full-image": [
            f"train.patch_size=[{whole[0]},{whole[1]}]",
            "train.patches_per_epoch=pass",
            "loss.keep_probability=0.5",
        ],
    }
    rows = []
    for name, settings in settings_of.items():
        result = runs.fit(name, settings, 0.35)
        rows.append(
            {
                "training": name,
                "settings": " ".join(settings) or "defaults (random patches)",
                "monitor": result.monitor,
                "best": result.best_metric,
                "best epoch": result.best_epoch,
                "epochs": len(result.history),
            }
        )
    return rows


# --------------------------------------------------------------------------- tables


def _write(out: Path, name: str, rows: list[dict[str, Any]]) -> list[Path]:
    columns: list[str] = []
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row.get(c, "")) for c in columns) + " |")
    text = "\n".join(lines) + "\n"
    log.info("%s:\n%s", name, text)
    md = write_text(out / f"{name}.md", text)
    return [md, Path(write_csv(out / f"{name}.csv", rows, columns=columns))]


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
