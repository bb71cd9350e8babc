"""Folder-level baseline commands: train on a dataset, predict into ``lapseg predict``'s layout.

``train_baseline`` discovers and splits the dataset exactly as ``lapseg train`` does (same
layout options, same seed, same split file), so the random forest and a U-Net trained with the
same configuration see the same training images and can be evaluated on the same held-out
images. Its output folder looks like a run folder: ``config.yaml``, ``split.json``,
``run.json`` (environment and training time) plus the model files of
:func:`~lapseg.baseline.forest.save_forest`.

``predict_baseline`` writes ``masks/<stem>.tif`` (0/255 for binary models, class indices
otherwise) and ``probabilities/<stem>.tif``, so ``lapseg evaluate`` works unchanged.
"""

from __future__ import annotations

import platform
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import sklearn

from lapseg.baseline.forest import load_forest, predict_forest, save_forest
from lapseg.baseline.forest import train_forest as _train_forest
from lapseg.config import BaselineConfig, LapsegConfig, dump_config
from lapseg.data.dataset import read_raw_sample
from lapseg.data.masks import mask_to_target
from lapseg.data.normalization import fit_normalization
from lapseg.data.setup import make_split, resolve_run_config
from lapseg.data.split import write_split
from lapseg.errors import LapsegInputError
from lapseg.inference.outputs import probabilities_to_mask
from lapseg.inference.predict import check_outputs_do_not_overwrite_inputs, output_paths
from lapseg.io.discovery import discover_images
from lapseg.io.files import write_json, write_text
from lapseg.io.images import read_image, write_tiff

__all__ = ["predict_baseline", "train_baseline"]


def train_baseline(
    data_root: str | Path,
    out_dir: str | Path,
    config: LapsegConfig,
    *,
    settings: BaselineConfig | None = None,
) -> Path:
    """Train the random-forest baseline on the training split of ``data_root``.

    Parameters
    ----------
    data_root : str or Path
        Dataset in the layout of ``config.data`` (as for ``lapseg train``).
    out_dir : str or Path
        New (or empty) output folder.
    config : LapsegConfig
        Data layout, split (``data.val_fraction``, ``data.test_fraction``, ``data.split_file``,
        ``train.seed``), ``data.mask_kind`` and normalisation are used; ``data.resize`` and
        ``data.crop_or_pad`` are not (features are computed at the native resolution).
    settings : BaselineConfig, optional
        Forest settings (``config.baseline`` once the config has that section).

    Returns
    -------
    out_dir : Path
    """
    settings = settings if settings is not None else BaselineConfig()
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise LapsegInputError("output folder exists and is not empty", path=out_dir)
    config, sources, _ = resolve_run_config(config, data_root)
    if sources.is_timelapse:
        raise LapsegInputError(
            f"the random-forest baseline reads still-image layouts, not {sources.layout}",
            path=data_root,
        )
    samples = sources.samples
    split = make_split([s.name for s in samples], config)
    by_name = {s.name: s for s in samples}
    # a pixel classifier: foreground vs background, or the classes of class maps
    num_classes = config.model.outputs if config.data.task == "semantic" else 2
    images, targets = [], []
    for name in split["train"]:
        image, mask = read_raw_sample(by_name[name], config)
        images.append(image)
        targets.append(mask_to_target(mask, kind=config.data.mask_kind, num_classes=num_classes))
    norm = config.normalization
    stats = fit_normalization(
        images, mode=norm.mode, low=norm.low_percentile, high=norm.high_percentile
    )
    model = _train_forest(images, targets, normalization=stats, settings=settings)
    save_forest(model, out_dir)
    write_text(out_dir / "config.yaml", dump_config(config))
    write_split(out_dir / "split.json", split)
    run = {
        "model": "random-forest baseline",
        "training_seconds": model.info["training_seconds"],
        "n_train": len(split["train"]),
        "n_val": len(split["val"]),
        "n_test": len(split.get("test", [])),
        "baseline": {
            "n_estimators": settings.n_estimators,
            "n_pixels_per_image": settings.n_pixels_per_image,
            "sigmas": list(settings.sigmas),
            "max_depth": settings.max_depth,
        },
        "environment": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "scikit-learn": sklearn.__version__,
            "platform": platform.platform(),
            "device": "cpu",
        },
    }
    write_json(out_dir / "run.json", run)
    return out_dir


def predict_baseline(
    model_dir: str | Path,
    inputs: Sequence[str | Path],
    output_dir: str | Path,
    *,
    axes: str | None = None,
    tile: int = 512,
    on_image: Callable[[Path], None] | None = None,
) -> list[tuple[Path, Path]]:
    """Predict images with a saved baseline into ``lapseg predict``'s output layout.

    Parameters
    ----------
    model_dir : str or Path
        Folder written by :func:`train_baseline` (or :func:`~lapseg.baseline.forest.save_forest`).
    inputs : sequence of str or Path
        Image files and/or folders of images.
    output_dir : str or Path
        Receives ``masks/<stem>.tif`` and ``probabilities/<stem>.tif``.
    axes : str, optional
        Axes of the input files when they do not say (as for ``lapseg predict --axes``).
    tile : int, optional
        Prediction tile edge (bounded memory).
    on_image : callable, optional
        Called with each input path after its outputs are written (progress bars).

    Returns
    -------
    written : list of (Path, Path)
        ``(mask, probabilities)`` per input.
    """
    model = load_forest(model_dir)
    files = [f for entry in inputs for f in discover_images(entry)]
    if not files:
        raise LapsegInputError("no input images given")
    output_dir = Path(output_dir)
    planned = [output_paths(output_dir, p, labels=False) for p in files]
    check_outputs_do_not_overwrite_inputs(files, planned)
    written = []
    for path, outputs in zip(files, planned, strict=True):
        mask_path, prob_path = outputs["masks"], outputs["probabilities"]
        image = read_image(path, axes=axes)
        try:
            prob = predict_forest(model, image.array, tile=tile)
        except LapsegInputError as exc:
            raise LapsegInputError(str(exc), path=path) from exc
        mask = probabilities_to_mask(prob, threshold=model.threshold)
        prob_out = prob[0] if prob.shape[0] == 1 else prob
        axes_out = "YX" if prob_out.ndim == 2 else "CYX"
        write_tiff(prob_path, prob_out, axes=axes_out, pixel_size=image.pixel_size)
        write_tiff(mask_path, mask, axes="YX", pixel_size=image.pixel_size)
        written.append((mask_path, prob_path))
        if on_image is not None:
            on_image(path)
    return written
