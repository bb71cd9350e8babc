"""Apply trained models to images of any size: load, normalise, tile, blend, map back, write.

Prediction uses exactly the preprocessing stored in the checkpoint (normalisation statistics from
the training split, fixed-size resize or crop/pad), and maps the result back to each input's own
pixel grid. Several checkpoints form an ensemble: their probability maps are averaged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from lapseg.config import (
    INSTANCE_TARGETS,
    LapsegConfig,
    PredictConfig,
    config_from_dict,
)
from lapseg.data.channels import select_channels
from lapseg.data.geometry import center_crop_or_pad, resize_to, undo_center_crop_or_pad
from lapseg.data.normalization import NormalizationStats, apply_normalization
from lapseg.data.samples import reshape_for_network
from lapseg.data.targets import REGRESSION_CHANNELS
from lapseg.data.tasks import resolve_task
from lapseg.device import mixed_precision, place_model, select_device
from lapseg.errors import LapsegInputError
from lapseg.inference.engines import make_predictor, predict_logits
from lapseg.inference.exported import is_exported_model, load_exported_model
from lapseg.inference.instances import instances_from_probabilities
from lapseg.inference.loaded_model import LoadedModel
from lapseg.inference.outputs import probabilities_from_logits, probabilities_to_mask
from lapseg.io.discovery import output_stem
from lapseg.io.images import read_image, write_tiff
from lapseg.models.checkpoint import load_checkpoint, load_model_state, resolve_checkpoint_path
from lapseg.models.registry import create_model
from lapseg.models.unet import fuse_batchnorm

log = logging.getLogger(__name__)


def load_model(
    path: str | Path, *, device: str = "auto", engine: str | None = None, amp: bool = False
) -> LoadedModel:
    """Load ``best.pt`` of a run folder, or a checkpoint file (``weights_only=True``).

    ``engine`` ("torch" or "onnx") overrides the one stored in the run's configuration. A file
    written by ``lapseg export`` (``.onnx``, TorchScript ``.pt``) loads through
    :func:`lapseg.inference.exported.load_exported_model`; it runs on its own engine.
    """
    if is_exported_model(path):
        if engine is not None or amp:
            raise LapsegInputError(
                "an exported model runs on its own engine: drop --engine/--amp", path=Path(path)
            )
        return load_exported_model(path, device=device)
    checkpoint_path = resolve_checkpoint_path(path)
    checkpoint = load_checkpoint(checkpoint_path)
    try:
        # models of lapseg 0.1 predate data.task: their explicit mask kind decides it
        config, _ = resolve_task(config_from_dict(checkpoint["config"]), None)
        stats = NormalizationStats.from_dict(checkpoint["normalization"])
    except (KeyError, TypeError) as error:
        raise LapsegInputError(f"checkpoint lacks {error}", path=checkpoint_path) from None
    torch_device = select_device(device)
    network = create_model(config.model)
    load_model_state(network, checkpoint.get("model_state"), path=checkpoint_path)
    # BatchNorm folded into the convolutions: faster, same outputs
    model = place_model(fuse_batchnorm(network), torch_device)
    predictor = make_predictor(
        model,
        engine=engine or config.predict.engine,
        in_channels=config.model.in_channels,
        precision=mixed_precision(torch_device, amp),
    )
    return LoadedModel(
        model=model,
        config=config,
        stats=stats,
        threshold=float(checkpoint.get("threshold", config.predict.threshold)),
        path=checkpoint_path,
        device=torch_device,
        predictor=predictor,
        object_area=checkpoint.get("object_area"),
    )


def _map_back(prob: np.ndarray, original_yx: tuple[int, int], config: LapsegConfig) -> np.ndarray:
    """Undo the configured resize / crop-pad on a ``(K, Y', X')`` probability map."""
    data = config.data
    if data.resize is not None:
        return resize_to(prob, original_yx, order=1).astype(np.float32)
    if data.crop_or_pad is not None:
        dummy = np.zeros((1, *original_yx), dtype=np.float32)
        _, crop_pad = center_crop_or_pad(dummy, data.crop_or_pad, mode="constant")
        return undo_center_crop_or_pad(prob, crop_pad, fill=0).astype(np.float32)
    return prob


RESCALE_TOLERANCE = 0.05
"""Pixel sizes within 5% of the training images' are used as they are."""


def image_zoom(
    loaded: LoadedModel,
    pixel_size: tuple[float, float] | None,
    predict: PredictConfig | None = None,
) -> tuple[float, str]:
    """The zoom that brings an image of ``pixel_size`` to the model's training scale, and why.

    ``predict.scale`` wins; with ``predict.rescale`` the zoom is ``image pixel size / training
    pixel size`` (mean of y and x) when they differ by more than :data:`RESCALE_TOLERANCE`;
    otherwise 1.

    >>> from types import SimpleNamespace
    >>> from lapseg.config import LapsegConfig
    >>> model = SimpleNamespace(config=LapsegConfig().replace(
    ...     data=LapsegConfig().data.replace(pixel_size=(0.5, 0.5))))
    >>> image_zoom(model, (0.25, 0.25))[0]
    0.5
    """
    settings = predict if predict is not None else loaded.config.predict
    if settings.scale is not None:
        return float(settings.scale), f"predict.scale={settings.scale}"
    trained = loaded.config.data.pixel_size
    if not settings.rescale or trained is None or pixel_size is None:
        return 1.0, ""
    zoom = (pixel_size[0] / trained[0] + pixel_size[1] / trained[1]) / 2
    if abs(zoom - 1.0) <= RESCALE_TOLERANCE:
        return 1.0, ""
    return zoom, (
        f"pixel size {pixel_size[0]:.4g} um vs {trained[0]:.4g} um in training: zoomed by "
        f"{zoom:.3g} (predict.rescale=false keeps the image's scale)"
    )


def _zoomed(image: np.ndarray, zoom: float) -> np.ndarray:
    """``(C, Y, X)`` resized by ``zoom`` (bilinear), at least 8 pixels a side."""
    if zoom == 1.0:
        return image
    size = (max(8, round(image.shape[-2] * zoom)), max(8, round(image.shape[-1] * zoom)))
    return resize_to(image.astype(np.float32), size, order=1)


@torch.inference_mode()
def predict_probabilities(
    models: Sequence[LoadedModel],
    image: np.ndarray,
    *,
    predict: PredictConfig | None = None,
    reference: np.ndarray | None = None,
    pixel_size: tuple[float, float] | None = None,
) -> np.ndarray:
    """Class probabilities ``(K, Y, X)`` float32 for one raw ``(C, Y, X)`` image.

    ``K == 1`` (foreground probability) for sigmoid models. With several models the maps are
    averaged (each model picks its channels, ``data.channels``, and applies its own
    normalisation and scale). ``predict`` overrides the tiling settings stored in the models.
    ``reference`` (``(C, Y', X')`` pixels) gives the percentile normalisation its percentiles
    when ``image`` is one block of a larger image
    (:func:`lapseg.data.normalization.percentile_normalize`). ``pixel_size`` (y, x in
    micrometres) of the image: it is zoomed to each model's training scale and the
    probabilities mapped back (:func:`image_zoom`).
    """
    if not models:
        raise ValueError("no model given")
    maps = []
    for loaded in models:
        settings = predict if predict is not None else loaded.config.predict
        channels = loaded.config.data.channels
        selected = select_channels(image, channels)
        if selected.shape[0] != loaded.config.model.in_channels:
            picked = (
                "" if channels is None else f" (data.channels={channels} picks {len(selected)})"
            )
            raise LapsegInputError(
                f"image has {image.shape[0]} channel(s){picked} but the model {loaded.path} "
                f"expects {loaded.config.model.in_channels}; choose them with --channels "
                "(e.g. --channels 0, --channels 1,0 or --channels mean)"
            )
        zoom, _ = image_zoom(loaded, pixel_size, settings)
        scaled = _zoomed(selected, zoom)
        picked_reference = None if reference is None else select_channels(reference, channels)
        normalised = apply_normalization(scaled, loaded.stats, reference=picked_reference)
        network_input = reshape_for_network(normalised, loaded.config.data, order=1)
        tensor = torch.from_numpy(np.ascontiguousarray(network_input, dtype=np.float32)).to(
            loaded.device
        )
        logits = predict_logits(loaded.model, tensor, settings, predictor=loaded.predictor)
        regressed = REGRESSION_CHANNELS.get(loaded.config.data.target, 0)
        prob = probabilities_from_logits(logits, regressed=regressed)
        prob_map = _map_back(prob.cpu().numpy(), scaled.shape[-2:], loaded.config)
        if zoom != 1.0:
            prob_map = resize_to(prob_map, image.shape[-2:], order=1).astype(np.float32)
        maps.append(prob_map)
        if maps[-1].shape != maps[0].shape:
            raise LapsegInputError("ensemble members predict different numbers of classes")
    return np.mean(maps, axis=0).astype(np.float32)


def model_mask(
    loaded: LoadedModel, prob: np.ndarray, *, predict: PredictConfig | None = None
) -> np.ndarray:
    """The mask ``(Y, X)`` of one image as ``lapseg predict`` writes it.

    Foreground masks (0/255) use the run's threshold rule (``predict.threshold_method``; the
    tuned threshold is stored with the model); instance models (3-class, distance) threshold
    ``1 - P(background)`` at ``postprocess.foreground_threshold``; class models give the class
    map (:func:`lapseg.inference.outputs.probabilities_to_mask`).
    """
    settings = predict if predict is not None else loaded.config.predict
    method = settings.threshold_method
    target = loaded.config.data.target
    if target in INSTANCE_TARGETS:
        threshold = loaded.config.postprocess.foreground_threshold
    else:
        threshold = loaded.threshold if method == "tuned" else settings.threshold
    return probabilities_to_mask(prob, target=target, method=method, threshold=threshold)


def model_instances(
    loaded: LoadedModel,
    prob: np.ndarray,
    *,
    predict: PredictConfig | None = None,
    zoom: float = 1.0,
) -> np.ndarray:
    """The instance labels ``(Y, X)`` uint16 of one image as ``lapseg predict`` writes them.

    The model's ``postprocess`` settings, its median training object area (in the image's
    pixels: divided by ``zoom ** 2`` when the image was zoomed to the training scale, see
    :func:`image_zoom`), and for binary models the foreground threshold of :func:`model_mask`
    (fixed or tuned).
    """
    settings = predict if predict is not None else loaded.config.predict
    threshold = loaded.threshold if settings.threshold_method == "tuned" else settings.threshold
    area = loaded.object_area
    if area is not None:
        area = area / zoom**2
    return instances_from_probabilities(
        prob, loaded.config.postprocess, threshold=threshold, object_area=area
    )


OUTPUT_KINDS = ("masks", "probabilities", "labels")


def output_paths(
    output_dir: Path, image_path: Path, *, labels: bool, name: str | None = None
) -> dict[str, Path]:
    """Where the mask, probability map (and instance labels) of ``image_path`` go
    (``name``: the output name, default the image's stem)."""
    kinds = OUTPUT_KINDS if labels else OUTPUT_KINDS[:2]
    stem = name if name is not None else output_stem(image_path)
    return {kind: output_dir / kind / f"{stem}.tif" for kind in kinds}


def check_outputs_do_not_overwrite_inputs(
    inputs: Sequence[Path], planned: Sequence[dict[str, Path]]
) -> None:
    """Refuse to run when an output path is an input, or two inputs share an output."""
    resolved_inputs = {p.resolve() for p in inputs}
    owner: dict[Path, Path] = {}
    for source, outputs in zip(inputs, planned, strict=True):
        for path in outputs.values():
            if path.resolve() in resolved_inputs:
                raise LapsegInputError(
                    "output would overwrite an input file; choose another --output", path=path
                )
            if path in owner:
                raise LapsegInputError(
                    f"two inputs map to the same output ({owner[path].name}, {source.name})",
                    path=path,
                )
            owner[path] = source


def predict_files(
    models: Sequence[LoadedModel],
    inputs: Sequence[Path],
    output_dir: str | Path,
    *,
    axes: str | None = None,
    predict: PredictConfig | None = None,
    labels: bool | None = None,
    on_image: Callable[[Path], None] | None = None,
    names: Sequence[str] | None = None,
) -> list[dict[str, Path]]:
    """Predict every input image; write ``masks/``, ``probabilities/`` (and ``labels/``).

    ``labels`` (default: on for 3-class models) also writes uint16 instance label images made
    by the model's ``postprocess`` settings. Files are written atomically (a failure never
    leaves a half-written file), the pixel size of each input is written back, and no output may
    overwrite an input. ``names`` gives each input's output name (default: its file stem).
    """
    output_dir = Path(output_dir)
    config = models[0].config
    if labels is None:
        labels = config.data.task == "instances"
    stems: Sequence[str | None] = names if names is not None else [None] * len(inputs)
    planned = [
        output_paths(output_dir, p, labels=labels, name=n)
        for p, n in zip(inputs, stems, strict=True)
    ]
    check_outputs_do_not_overwrite_inputs(list(inputs), planned)
    settings = predict if predict is not None else config.predict
    written = []
    zooms_logged: set[str] = set()
    for path, outputs in zip(inputs, planned, strict=True):
        image = read_image(path, axes=axes)
        zoom, why = image_zoom(models[0], image.pixel_size, settings)
        if why and why not in zooms_logged:
            log.info("%s: %s", path.name, why)
            zooms_logged.add(why)
        try:
            prob = predict_probabilities(
                models, image.array, predict=predict, pixel_size=image.pixel_size
            )
        except LapsegInputError as error:  # channels, sizes: name the image
            if str(path) in str(error):
                raise
            raise LapsegInputError(str(error), path=path) from None
        mask = model_mask(models[0], prob, predict=settings)
        prob_out = prob[0] if prob.shape[0] == 1 else prob
        write_tiff(
            outputs["probabilities"],
            prob_out,
            axes="YX" if prob_out.ndim == 2 else "CYX",
            pixel_size=image.pixel_size,
        )
        write_tiff(outputs["masks"], mask, axes="YX", pixel_size=image.pixel_size)
        if labels:
            instance_labels = model_instances(models[0], prob, predict=settings, zoom=zoom)
            write_tiff(outputs["labels"], instance_labels, axes="YX", pixel_size=image.pixel_size)
        written.append(outputs)
        if on_image is not None:
            on_image(path)
    return written


def with_overrides(predict: PredictConfig, **changes: object) -> PredictConfig:
    """A copy of ``predict`` with the non-None ``changes`` applied (validated)."""
    return predict.replace(**{k: v for k, v in changes.items() if v is not None})
