"""Folder-level baseline commands: train on a dataset, predict into ``lapseg predict``'s layout.

``train_baseline`` discovers and splits the dataset exactly as ``lapseg train`` does (same
layout options, same seed, same split file), so the random forest and a U-Net trained with the
same configuration see the same training images and can be evaluated on the same held-out
images. Its output folder looks like a run folder: ``config.yaml``, ``split.json``,
``run.json`` (environment and training time) plus the model files of
:func:`~lapseg.baseline.forest.save_forest`.

``predict_baseline`` writes ``masks/<stem>.tif`` (0/255 for binary models, class indices
otherwise) and ``probabilities/<stem>.tif``, so ``lapseg evaluate`` works unchanged.

Time-lapse layouts (``sequences``, ``ctc``; seed 001's ``(T, Z, Y, X)`` stacks) are split as
``lapseg train`` splits them; the forest learns from and predicts single frames (no temporal
context, no background subtraction). A stack file with a time axis given to
``predict_baseline`` is predicted frame by frame into ``masks/<sequence>/<frame>.tif``
(``masks/pancreas/z02/t005.tif``), which ``lapseg evaluate`` pairs with the mask stack.
"""

from __future__ import annotations

import platform
from collections.abc import Callable, Collection, Iterator, Sequence
from pathlib import Path

import numpy as np
import sklearn

from lapseg.baseline.forest import ForestModel, load_forest, predict_forest, save_forest
from lapseg.baseline.forest import train_forest as _train_forest
from lapseg.config import BaselineConfig, LapsegConfig, dump_config
from lapseg.data.masks import mask_to_target
from lapseg.data.normalization import fit_normalization
from lapseg.data.samples import read_raw_sample
from lapseg.data.setup import make_split, resolve_run_config
from lapseg.data.sources import DatasetSources
from lapseg.data.split import write_split
from lapseg.data.timelapse import sequence_split
from lapseg.errors import LapsegInputError
from lapseg.inference.outputs import probabilities_to_mask
from lapseg.inference.predict import check_outputs_do_not_overwrite_inputs, output_paths
from lapseg.io.discovery import discover_images
from lapseg.io.files import write_json, write_text
from lapseg.io.images import TIFF_EXTENSIONS, read_image, write_tiff
from lapseg.io.movies import stack_axes
from lapseg.io.sequences import SequenceSource, discover_sequences, read_frame, read_frame_mask

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
    split, pairs = _training_pairs(config, sources)
    # a pixel classifier: foreground vs background, or the classes of class maps
    num_classes = config.model.outputs if config.data.task == "semantic" else 2
    images, targets = [], []
    for image, mask in pairs:
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


def _training_pairs(
    config: LapsegConfig, sources: DatasetSources
) -> tuple[dict[str, list[str]], Iterator[tuple[np.ndarray, np.ndarray]]]:
    """The split ``lapseg train`` makes, and the raw ``(image (C, Y, X), mask (Y, X))`` pairs of
    its training part: still images, or single frames of time-lapse sequences."""
    if sources.is_timelapse:
        split = sequence_split(sources.sequences, config)
        where = {s.sample_name(t): (s, t) for s in sources.sequences for t in s.annotated}
        frames = (where[name] for name in split["train"])
        return split, ((read_frame(s, t)[None], read_frame_mask(s, t)) for s, t in frames)
    samples = sources.samples
    split = make_split([s.name for s in samples], config)
    by_name = {s.name: s for s in samples}
    return split, (read_raw_sample(by_name[name], config) for name in split["train"])


def _is_movie_stack(path: Path, axes: str | None) -> bool:
    """A TIFF whose axes (metadata or ``axes``) have a time axis longer than 1."""
    if path.suffix.lower() not in TIFF_EXTENSIONS:
        return False
    try:
        chosen, shape, _ = stack_axes(path, axes)
    except LapsegInputError:
        return False  # read_image reports what is wrong with it
    return dict(zip(chosen, shape, strict=True)).get("T", 1) > 1


def _write_prediction(
    model: ForestModel,
    image: np.ndarray,
    outputs: dict[str, Path],
    *,
    tile: int,
    pixel_size: tuple[float, float] | None,
    source: Path,
) -> tuple[Path, Path]:
    """Predict one ``(C, Y, X)`` image and write its mask and probabilities."""
    try:
        prob = predict_forest(model, image, tile=tile)
    except LapsegInputError as exc:
        raise LapsegInputError(str(exc), path=source) from exc
    mask = probabilities_to_mask(prob, threshold=model.threshold)
    prob_out = prob[0] if prob.shape[0] == 1 else prob
    axes_out = "YX" if prob_out.ndim == 2 else "CYX"
    write_tiff(outputs["probabilities"], prob_out, axes=axes_out, pixel_size=pixel_size)
    write_tiff(outputs["masks"], mask, axes="YX", pixel_size=pixel_size)
    return outputs["masks"], outputs["probabilities"]


def _frames_to_predict(
    stacks: Sequence[Path], axes: str | None, names: Collection[str] | None
) -> list[tuple[SequenceSource, int]]:
    """``(sequence, frame)`` of every frame of the stacks (those named in ``names``)."""
    sources = [s for path in stacks for s in discover_sequences(path, axes=axes)]
    frames = [(s, t) for s in sources for t in range(s.n_frames)]
    if names is None:
        return frames
    chosen = [(s, t) for s, t in frames if s.sample_name(t) in names]
    missing = set(names) - {s.sample_name(t) for s, t in chosen}
    if missing:
        raise LapsegInputError(
            f"{len(missing)} frame(s) to predict are not in the input stacks: "
            + ", ".join(sorted(missing)[:5])
        )
    return chosen


def predict_baseline(
    model_dir: str | Path,
    inputs: Sequence[str | Path],
    output_dir: str | Path,
    *,
    axes: str | None = None,
    tile: int = 512,
    on_image: Callable[[Path], None] | None = None,
    names: Collection[str] | None = None,
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
        Called with each input path after its outputs are written (progress bars; for stacks
        after every frame).
    names : collection of str, optional
        Frames of stacks to predict (sample names such as ``pancreas/z02/t005``, e.g. a
        run's test split); default: every frame. Still images are always predicted.

    Returns
    -------
    written : list of (Path, Path)
        ``(mask, probabilities)`` per input image or frame.
    """
    model = load_forest(model_dir)
    files = [f for entry in inputs for f in discover_images(entry)]
    if not files:
        raise LapsegInputError("no input images given")
    output_dir = Path(output_dir)
    stacks = [f for f in files if _is_movie_stack(f, axes)]
    files = [f for f in files if f not in stacks]
    frames = _frames_to_predict(stacks, axes, names) if stacks else []
    planned = [output_paths(output_dir, p, labels=False) for p in files]
    frame_outputs = [
        output_paths(output_dir, s.frame_path(t), labels=False, name=s.sample_name(t))
        for s, t in frames
    ]
    check_outputs_do_not_overwrite_inputs(
        [*files, *(s.frame_path(t) for s, t in frames)], [*planned, *frame_outputs]
    )
    written = []
    for path, outputs in zip(files, planned, strict=True):
        image = read_image(path, axes=axes)
        written.append(
            _write_prediction(
                model, image.array, outputs, tile=tile, pixel_size=image.pixel_size, source=path
            )
        )
        if on_image is not None:
            on_image(path)
    for (source, t), outputs in zip(frames, frame_outputs, strict=True):
        frame = read_frame(source, t)[None]
        where = source.frame_path(t)
        written.append(
            _write_prediction(model, frame, outputs, tile=tile, pixel_size=None, source=where)
        )
        if on_image is not None:
            on_image(where)
    return written
