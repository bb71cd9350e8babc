"""StemNet (seed 000): Network1 vs Network5, and Network5 at a lower learning rate.

Three runs on the same time-lapse data, split (by sequence), seed and budget, from
``configs/stemnet-n1.yaml`` (Table 1), ``configs/stemnet-n5.yaml`` (Table 1) and
``configs/stemnet-n5-table2.yaml`` (Table 2). Written into ``out``:

- ``network1/``, ``network5/``, ``network5-table2/``: the run folders (``history.csv`` holds the
  per-epoch validation error rate, F1, false white, white-pixel accuracy, precision, recall and
  accuracy of Figs 15-21);
- ``comparison.md`` / ``comparison.csv``: Table 3 (error rate in percent, F1, false white,
  white-pixel accuracy) plus precision, recall and accuracy, each measured per frame with the
  thesis code's rules and averaged over the held-out frames, for the three runs;
- ``curves.png``: Figs 15-21, every run's per-epoch curves on one figure per measure;
- ``feature_maps-<run>.png``: Fig 22, one feature map per U-Net level for a held-out frame (with
  its real neighbouring frames for Network5);
- ``examples.png``: Fig 23, the input frame, its mask and each run's probability heat map;
- ``edge_pixels-<run>.csv``: the edge pixels of each run's predicted cells on that frame (the
  thesis code's ``edge_pixels`` file).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lapseg.config import LapsegConfig
from lapseg.data.frames import LazyFrames
from lapseg.data.normalization import apply_normalization
from lapseg.errors import LapsegInputError
from lapseg.inference.outputs import foreground_probability
from lapseg.inference.predict import LoadedModel, load_model, model_mask
from lapseg.inference.sequences import SequencePredictor
from lapseg.io.contours import write_edge_pixels
from lapseg.io.files import atomic_output
from lapseg.io.sequences import SequenceSource, discover_sequences, read_frame_mask
from lapseg.models.unet import UNet
from lapseg.report.feature_maps import capture_feature_maps, crop_to_valid, save_feature_maps
from lapseg.reproduce import budget_overrides, new_output_folder, seed_config
from lapseg.training.compare import compare_configs, evaluation_names

__all__ = ["RUNS", "reproduce"]

log = logging.getLogger(__name__)

RUNS: dict[str, str] = {
    "network1": "stemnet-n1",
    "network5": "stemnet-n5",
    "network5-table2": "stemnet-n5-table2",
}
"""Run folder -> configuration file (``configs/<name>.yaml``)."""


def reproduce(
    data: Path,
    out: Path,
    *,
    minutes: float | None,
    progress: bool,
    overrides: Sequence[str] = (),
) -> list[Path]:
    """Train the three StemNet runs on the sequences in ``data``; Table 3 and Figs 15-23 to
    ``out`` (see the module docstring). ``minutes`` is shared equally by the runs."""
    configs = {
        name: seed_config(file, [*budget_overrides(minutes, len(RUNS)), *overrides])
        for name, file in RUNS.items()
    }
    if any(c.data.layout not in ("sequences", "ctc") for c in configs.values()):
        raise LapsegInputError("StemNet's experiments need time-lapse data (data.layout sequences)")
    out = new_output_folder(out)
    table = compare_configs(configs, data, out, progress=progress, log=log.info)
    log.info("Table 3 (per-frame measures averaged over the held-out frames):\n%s", table)
    runs = [out / name for name in RUNS]
    written = [out / "comparison.md", out / "comparison.csv", out / "curves.png"]
    first = configs["network1"]
    source, t = _first_frame(runs, data, first)
    models = {run.name: load_model(run, device=first.train.device) for run in runs}
    for name, loaded in models.items():
        if name != "network5-table2":  # Fig 22 shows Network1 and Network5
            written.append(_feature_maps(loaded, source, t, out / f"feature_maps-{name}.png"))
    written += _examples(models, source, t, out)
    return written


def _first_frame(runs: list[Path], data: Path, config: LapsegConfig) -> tuple[SequenceSource, int]:
    """The first frame Table 3 was measured on (a held-out frame of every run)."""
    wanted = evaluation_names(runs)[0]
    settings = config.data
    sources = discover_sequences(
        data, layout=settings.layout, axes=settings.axes, truth=config.temporal.truth
    )
    for source in sources:
        for t in source.annotated:
            if source.sample_name(t) == wanted:
                return source, t
    raise LapsegInputError(f"held-out frame {wanted} not found", path=data)


def _network_input(loaded: LoadedModel, source: SequenceSource, t: int) -> np.ndarray:
    """Frame ``t`` with its temporal context as the model saw it: ``(2k + 1, Y, X)``."""
    temporal = loaded.config.temporal
    frames = LazyFrames(source, loaded.config, cache_dir=loaded.path.parent / "cache")
    stacked = frames.context(t, temporal.context, temporal.edge_mode)
    return apply_normalization(stacked, loaded.stats).astype(np.float32)


def _feature_maps(loaded: LoadedModel, source: SequenceSource, t: int, path: Path) -> Path:
    model = loaded.model
    if not isinstance(model, UNet):
        raise LapsegInputError(f"feature maps need a lapseg UNet, got {type(model).__name__}")
    image = crop_to_valid(model, _network_input(loaded, source, t), max_size=1024)
    maps = capture_feature_maps(model, image)
    centre = loaded.config.temporal.context  # frame t among t-k .. t+k
    return save_feature_maps(maps, path, image=image[centre])


def _examples(
    models: dict[str, LoadedModel], source: SequenceSource, t: int, out: Path
) -> list[Path]:
    """Fig 23 (input, mask, heat map per run) and each run's edge-pixel file of frame ``t``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    truth = read_frame_mask(source, t) > 0
    panels: list[tuple[str, np.ndarray]] = [(f"mask {source.sample_name(t)}", truth)]
    written = []
    for name, loaded in models.items():
        prob = SequencePredictor([loaded], source, cache_dir=loaded.path.parent / "cache")
        probabilities = prob.probabilities(t)
        panels.append((f"{name}: P(cell)", foreground_probability(probabilities)))
        mask = model_mask(loaded, probabilities) > 0
        written.append(write_edge_pixels(mask, out / f"edge_pixels-{name}.csv"))
    first = next(iter(models.values()))
    frame = _network_input(first, source, t)[first.config.temporal.context]
    panels.insert(0, ("input (background removed)", frame))
    fig = Figure(figsize=(3.2 * len(panels), 3.4))
    FigureCanvasAgg(fig)
    for index, (title, array) in enumerate(panels, start=1):
        ax = fig.add_subplot(1, len(panels), index)
        image = ax.imshow(np.asarray(array, dtype=np.float32), cmap="gray" if index < 3 else "jet")
        if index > 2:
            fig.colorbar(image, ax=ax, fraction=0.046)
        ax.set_title(title, fontsize=8)
        ax.set_axis_off()
    fig.tight_layout()
    path = out / "examples.png"
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    return [path, *written]
