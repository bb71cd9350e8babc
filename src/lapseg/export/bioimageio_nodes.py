"""The bioimage.io spec 0.5 nodes of a lapseg model: identity, tensors, processing, weights.

Every function takes the spec's model module (``bioimageio.spec.model.v0_5``, imported by the
caller through :func:`lapseg.errors.optional_import`) as ``m``, so this module imports nothing
of bioimage.io itself and lapseg imports without the ``bioimageio`` extra.
"""

from __future__ import annotations

import json
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from lapseg.errors import LapsegInputError
from lapseg.export.networks import ONNX_OPSET, ExportSource

__all__ = [
    "INPUT_ID",
    "OUTPUT_ID",
    "input_description",
    "lapseg_config",
    "output_description",
    "package_identity",
    "weights_description",
]

INPUT_ID = "raw"
OUTPUT_ID = "probabilities"
_NAME_CHARACTERS = set(string.ascii_letters + string.digits + "_+- ()")


def _authors(spec_model: Any, authors: Sequence[str | Mapping[str, str]] | None) -> list[Any]:
    result = []
    for author in authors or ():
        fields = {"name": author} if isinstance(author, str) else dict(author)
        unknown = sorted(set(fields) - {"name", "affiliation", "email", "orcid"})
        if unknown or "name" not in fields:
            raise LapsegInputError(
                "an author is a name or a mapping with 'name' and optionally 'affiliation', "
                f"'email', 'orcid' (got keys {sorted(fields)})"
            )
        result.append(spec_model.Author(**fields))
    return result


_TASK_WORDS = {"instances": "instance", "semantic": "semantic", "binary": "binary"}


def task_words(source: ExportSource) -> str:
    data = source.config.data
    words = _TASK_WORDS.get(data.task, data.task) + " segmentation"
    return words + (" (3-class)" if data.target == "three_class" else "")


def _default_name(source: ExportSource) -> str:
    return f"lapseg U-Net {task_words(source)}"


def _check_name(name: str) -> str:
    bad = sorted(set(name) - _NAME_CHARACTERS)
    if bad or not 5 <= len(name) <= 128:
        raise LapsegInputError(
            f"bioimage.io model names have 5-128 letters, digits, spaces or _+-() (got {name!r})"
        )
    return name


def _preprocessing(spec_model: Any, source: ExportSource) -> list[Any]:
    """lapseg's normalisation as spec steps: scale_range per image and channel, then the fixed
    per-channel mean/std (each when the mode has it)."""
    stats = source.stats
    steps: list[Any] = []
    if stats.mode.startswith("percentile"):
        steps.append(
            spec_model.ScaleRangeDescr(
                kwargs=spec_model.ScaleRangeKwargs(
                    axes=[spec_model.AxisId("y"), spec_model.AxisId("x")],
                    min_percentile=stats.low_percentile,
                    max_percentile=stats.high_percentile,
                )
            )
        )
    if stats.mean:
        steps.append(
            spec_model.FixedZeroMeanUnitVarianceDescr(
                kwargs=spec_model.FixedZeroMeanUnitVarianceAlongAxisKwargs(
                    axis=spec_model.AxisId("channel"), mean=list(stats.mean), std=list(stats.std)
                )
            )
        )
    return steps


def input_description(m: Any, source: ExportSource, folder: Path, minimum: int) -> Any:
    """Input ``raw`` ``(batch, channel, y, x)``: sizes ``minimum + n * size_multiple``, the run's
    normalisation as preprocessing, test and sample tensors from ``folder``."""
    size = m.ParameterizedSize(min=minimum, step=source.size_multiple)
    names = [f"channel{c}" for c in range(source.in_channels)]
    return m.InputTensorDescr(
        id=m.TensorId(INPUT_ID),
        description="raw image (any intensity range; normalised by the preprocessing)",
        axes=[
            m.BatchAxis(),
            m.ChannelAxis(channel_names=names),
            *(m.SpaceInputAxis(id=m.AxisId(a), size=size) for a in ("y", "x")),
        ],
        test_tensor=m.FileDescr(source=folder / "test_input.npy"),
        sample_tensor=m.FileDescr(source=folder / "sample_input.tif"),
        data=m.IntervalOrRatioDataDescr(type="float32"),
        preprocessing=_preprocessing(m, source),
    )


def output_description(
    m: Any, source: ExportSource, folder: Path, channels: list[str], halo: int
) -> Any:
    """Output ``probabilities`` ``(batch, channel, y, x)``: the input's size less twice the
    margin of valid convolutions, ``halo`` pixels to discard per tile side, sigmoid (one
    channel) or softmax (several) as postprocessing."""
    space: list[Any] = []
    for a in ("y", "x"):
        reference = m.SizeReference(
            tensor_id=m.TensorId(INPUT_ID), axis_id=m.AxisId(a), offset=-2 * source.output_margin
        )
        if halo:
            space.append(m.SpaceOutputAxisWithHalo(id=m.AxisId(a), size=reference, halo=halo))
        else:
            space.append(m.SpaceOutputAxis(id=m.AxisId(a), size=reference))
    activation = (
        m.SigmoidDescr()
        if len(channels) == 1
        else m.SoftmaxDescr(kwargs=m.SoftmaxKwargs(axis=m.AxisId("channel")))
    )
    return m.OutputTensorDescr(
        id=m.TensorId(OUTPUT_ID),
        description="class probabilities: " + ", ".join(channels),
        axes=[m.BatchAxis(), m.ChannelAxis(channel_names=channels), *space],
        test_tensor=m.FileDescr(source=folder / "test_output.npy"),
        sample_tensor=m.FileDescr(source=folder / "sample_output.tif"),
        data=m.IntervalOrRatioDataDescr(type="float32", range=(0.0, 1.0)),
        postprocessing=[activation],
    )


def weights_description(m: Any, folder: Path) -> Any:
    """TorchScript (the original) and ONNX (converted from it) weights in ``folder``."""
    return m.WeightsDescr(
        torchscript=m.TorchscriptWeightsDescr(
            source=folder / "weights_torchscript.pt",
            pytorch_version=m.Version(torch.__version__.split("+")[0]),
            comment="traced from the BatchNorm-folded lapseg U-Net",
        ),
        onnx=m.OnnxWeightsDescr(
            source=folder / "weights.onnx",
            opset_version=ONNX_OPSET,
            parent="torchscript",
            comment="exported by torch.onnx's TorchScript-based exporter",
        ),
    )


@dataclass(frozen=True)
class PackageIdentity:
    """What the package says it is and who made it (checked before the export work)."""

    name: str
    description: str
    authors: list[Any]
    license: Any
    tags: list[str]

    def fields(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "authors": self.authors,
            "license": self.license,
            "tags": self.tags,
        }


def package_identity(
    m: Any,
    source: ExportSource,
    *,
    name: str | None,
    authors: Sequence[str | Mapping[str, str]] | None,
    description: str | None,
    license: str,
    tags: Sequence[str],
) -> PackageIdentity:
    """Name, description, authors, license and tags, checked before any export work."""
    task = (
        "instance-segmentation"
        if source.config.data.task == "instances"
        else "semantic-segmentation"
    )
    default_description = (
        f"2D U-Net for {task_words(source)} of microscopy images, "
        f"{source.stats.mode} normalisation; trained and exported with lapseg."
    )
    try:
        spdx = m.LicenseId(license)
    except ValueError:
        raise LapsegInputError(
            f"license {license!r} is not an SPDX identifier (e.g. MIT, BSD-3-Clause, CC-BY-4.0)"
        ) from None
    return PackageIdentity(
        name=_check_name(name if name is not None else _default_name(source)),
        description=description or default_description,
        authors=_authors(m, authors),
        license=spdx,
        tags=sorted({"2d", "unet", "pytorch", "lapseg", task, *tags}),
    )


def lapseg_config(source: ExportSource) -> dict[str, Any]:
    """The ``lapseg.*`` metadata as plain YAML values for the package's ``config.lapseg``."""
    return {key.split(".", 1)[1]: json.loads(v) for key, v in source.metadata().items()}
