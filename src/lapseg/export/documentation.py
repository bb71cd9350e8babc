"""What a bioimage.io package shows a person: the README and the cover image.

The README describes the training data, the normalisation, the outputs, the instance
post-processing with the run's (tuned) settings and how to validate the model; every number in it
comes from the checkpoint (and ``run.json`` when the run folder has one).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from skimage.color import label2rgb
from skimage.segmentation import find_boundaries

from lapseg import __version__
from lapseg.config import LapsegConfig
from lapseg.data.normalization import NormalizationStats, percentile_normalize
from lapseg.io.images import write_png

__all__ = ["UNET_CITATION", "UNET_DOI", "PackageFacts", "cover_rgb", "readme_text", "write_cover"]

UNET_DOI = "10.1007/978-3-319-24574-4_28"
UNET_CITATION = (
    "Ronneberger O., Fischer P., Brox T. (2015). U-Net: Convolutional Networks for Biomedical "
    "Image Segmentation. MICCAI 2015, LNCS 9351, 234-241."
)


@dataclass(frozen=True)
class PackageFacts:
    """The facts the README states (all from the run)."""

    name: str
    config: LapsegConfig
    stats: NormalizationStats
    threshold: float
    object_area: float | None
    checkpoint: Mapping[str, Any]
    run_info: Mapping[str, Any]
    input_id: str
    output_id: str
    output_channels: tuple[str, ...]
    halo: int
    min_size: int
    sample_name: str


def _split_counts(checkpoint: Mapping[str, Any]) -> str:
    split = checkpoint.get("split")
    if not isinstance(split, Mapping):
        return "not recorded"
    return ", ".join(f"{len(split.get(k, []))} {k}" for k in ("train", "val", "test"))


def _normalisation_text(stats: NormalizationStats, input_id: str) -> str:
    lines = [f"lapseg normalisation mode `{stats.mode}`, stored with the model:", ""]
    if stats.mode.startswith("percentile"):
        lines.append(
            f"1. `scale_range` per image and channel (axes `y`, `x`): "
            f"`(x - p{stats.low_percentile:g}) / (p{stats.high_percentile:g} - "
            f"p{stats.low_percentile:g})`, no clipping."
        )
    if stats.mean:
        lines.append(
            "1. `fixed_zero_mean_unit_variance` per channel with the training split's "
            f"mean {list(stats.mean)} and std {list(stats.std)}."
        )
    if stats.mode == "none":
        lines.append("1. None: the raw intensities (as float32) go into the network.")
    lines += [
        "",
        f"This is the package's `preprocessing` of input `{input_id}`, so bioimage.io "
        "consumers apply them. Differences to lapseg, all below the test tolerance: the "
        "consumers add `eps = 1e-6` to the denominators; lapseg computes the percentiles of "
        "channels over 4 million pixels on a regular subsample, and scales a channel whose two "
        "percentiles coincide by its min-max range instead.",
    ]
    return "\n".join(lines)


def _postprocess_text(facts: PackageFacts) -> str:
    post = facts.config.postprocess
    tuning = facts.run_info.get("postprocess_tuning")
    rows = "\n".join(f"| `{key}` | {value} |" for key, value in post.to_dict().items())
    area = "not recorded" if facts.object_area is None else f"{facts.object_area:g} px"
    min_size = post.min_size
    if facts.object_area:
        min_size = max(min_size, int(post.min_size_fraction * facts.object_area))
    if facts.config.data.target == "three_class":
        route = (
            "Seeds are the connected components (4-connectivity) of `P(interior) > "
            f"{post.interior_threshold:g}`; they grow by a watershed on `1 - P(foreground)` "
            "into the foreground `P(interior) + P(boundary) > "
            f"{post.foreground_threshold:g}`."
        )
    else:
        route = f"Foreground is `P(foreground) > {facts.threshold:g}` (the run's threshold); " + (
            "touching objects are split by a distance-transform watershed with seeds at "
            f"least {post.min_distance} px apart."
            if post.watershed
            else "objects are its connected components (4-connectivity)."
        )
    lines = [
        "The network gives probabilities; lapseg turns them into instance label images "
        "(`lapseg.inference.instances.instances_from_probabilities`). bioimage.io has no "
        "processing step for this, so consumers show the probabilities; run lapseg on them "
        "(or load the model with `lapseg.inference.exported.load_exported_model`) for labels.",
        "",
        route,
        f"Objects under {min_size} px are removed (`min_size`, raised to "
        f"`min_size_fraction` x the median training object area, {area})"
        + ("; holes are filled" if post.fill_holes else "")
        + ("; objects touching the border are dropped." if post.remove_border is True else "."),
        "",
        "| setting | value |",
        "| --- | --- |",
        rows,
    ]
    if isinstance(tuning, Mapping):
        changed = tuning.get("changed_settings") or {}
        lines += [
            "",
            f"Tuned after training on the validation split for `{tuning.get('measure')}` "
            f"({tuning.get('value')} against {tuning.get('value_with_defaults')} with the "
            f"defaults); changed: {json.dumps(changed) if changed else 'nothing'}.",
        ]
    return "\n".join(lines)


def readme_text(facts: PackageFacts) -> str:
    """The package's ``README.md`` (markdown)."""
    config = facts.config
    model = config.model
    info = facts.run_info
    task = info.get("task", {}) if isinstance(info.get("task"), Mapping) else {}
    classes = ", ".join(f"`{c}`" for c in facts.output_channels)
    halo_text = (
        f"Tiled consumers should discard a halo of {facts.halo} px per tile side "
        "(half the overlap lapseg's own sliding window uses)."
        if facts.halo
        else "The network has valid convolutions: the output is smaller than the input."
    )
    sections = [
        f"# {facts.name}",
        "",
        f"A 2D U-Net (Ronneberger et al. 2015) trained and exported with lapseg {__version__}: "
        f"task `{config.data.task}`, target `{config.data.target}`.",
        "",
        "## Training data",
        "",
        f"- Samples: {_split_counts(facts.checkpoint)} (the split is stored in the checkpoint).",
        f"- Masks: {task.get('reason', config.data.mask_kind)}.",
        f"- Input: {model.in_channels} channel(s), file axes `{config.data.axes or 'from the file'}`.",
        f"- Epochs: {facts.checkpoint.get('epoch', '?')} (best epoch "
        f"{facts.checkpoint.get('best_epoch', '?')}).",
        "",
        "## Network",
        "",
        f"U-Net of depth {model.depth}, {model.base_features} base features, "
        f"`{model.norm}` normalisation (folded into the convolutions), `{model.padding}` "
        f"padding, `{model.upsampling}` upsampling. Input sizes: {facts.min_size} px plus "
        f"multiples of {2**model.depth} px. {halo_text}",
        "",
        "## Normalisation",
        "",
        _normalisation_text(facts.stats, facts.input_id),
        "",
        "## Outputs",
        "",
        f"Output `{facts.output_id}`: class probabilities ({classes}), i.e. the network's "
        + (
            "logits after a `sigmoid`"
            if len(facts.output_channels) == 1
            else "logits after a `softmax` over the channel axis"
        )
        + " (the package's `postprocessing`). The weights themselves return logits.",
        "",
        "## Instance post-processing",
        "",
        _postprocess_text(facts),
        "",
        "## Validation",
        "",
        f"The test tensors are a crop of `{facts.sample_name}` and lapseg's own prediction of "
        "it; `bioimageio.core` reproduces them with both weight formats. To measure the "
        "model on your own annotated images, predict them with lapseg and run `lapseg "
        "evaluate` (pixel Dice/IoU, instance F1/SEG/AP), or compare the package's outputs "
        "with your masks.",
        "",
        "## Citation",
        "",
        f"- {UNET_CITATION} doi:{UNET_DOI}",
        f"- lapseg {__version__}, the toolkit that trained and exported this model.",
        "",
    ]
    return "\n".join(sections)


def cover_rgb(image: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Input (left) beside the prediction overlaid on it (right): ``(Y, 2X, 3)`` uint8.

    Parameters
    ----------
    image : (C, Y, X) ndarray
        The raw input; its first channel is shown, stretched to its 1-99.8 percentiles.
    labels : (Y, X) ndarray of int
        Instance labels or a class map (0 = background).
    """
    grey = np.clip(percentile_normalize(image[:1], low=1.0, high=99.8)[0], 0.0, 1.0)
    left = np.repeat(grey[..., None], 3, axis=-1)
    right = label2rgb(labels, image=grey, bg_label=0, alpha=0.35, image_alpha=1.0)
    right[find_boundaries(labels, mode="inner")] = (1.0, 0.2, 0.2)
    both = np.concatenate([left, np.clip(right, 0.0, 1.0)], axis=1)
    return np.round(both * 255.0).astype(np.uint8)


def write_cover(path: Path, image: np.ndarray, labels: np.ndarray, *, height: int = 256) -> Path:
    """Write :func:`cover_rgb` as PNG (2:1 for a square crop), enlarged by an integer factor
    (nearest neighbour) to at least ``height`` pixels."""
    rgb = cover_rgb(image, labels)
    factor = max(1, -(-height // rgb.shape[0]))
    return write_png(path, np.repeat(np.repeat(rgb, factor, axis=0), factor, axis=1))
