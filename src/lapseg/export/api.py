"""One entry point for ``lapseg export``: :func:`export_model`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lapseg.errors import LapsegInputError
from lapseg.export.accuracy import MAX_ACCURACY_DROP
from lapseg.export.bioimageio import export_bioimageio
from lapseg.export.networks import export_onnx_file, export_torchscript
from lapseg.export.quantize import export_onnx_int8

__all__ = ["EXPORT_FORMATS", "export_model"]

EXPORT_FORMATS = ("bioimageio", "onnx", "onnx-int8", "torchscript")
"""``bioimageio`` (a model package for bioimage.io consumers), ``onnx``, ``onnx-int8`` (statically
quantised, calibrated and checked on the run's data), ``torchscript``."""


def export_model(
    run: str | Path,
    *,
    fmt: str,
    out: str | Path,
    sample_image: str | Path | None = None,
    data: str | Path | None = None,
    calibration_data: str | Path | None = None,
    max_drop: float | None = None,
    **metadata: Any,
) -> Path:
    """Export a trained run (its ``best.pt``) or a checkpoint file as ``fmt`` to ``out``.

    Parameters
    ----------
    run : str or Path
        A run folder or a checkpoint file.
    fmt : {"bioimageio", "onnx", "onnx-int8", "torchscript"}
    out : str or Path
        ``.zip`` (bioimageio), ``.onnx`` (onnx, onnx-int8) or ``.pt``/``.ts`` (torchscript).
    sample_image : str or Path, optional
        bioimageio only, and required there: a real image of the run's data for the test
        tensors and the cover (:func:`lapseg.export.bioimageio.export_bioimageio`).
    data : str or Path, optional
        onnx-int8 only, and required there: the run's dataset (its validation split checks the
        INT8 model's accuracy, its training split calibrates).
    calibration_data : str or Path, optional
        onnx-int8 only: a folder of images to calibrate on instead of the training split.
    max_drop : float, optional
        onnx-int8 only: the largest allowed drop of validation Dice / SEG (default 0.005).
    **metadata
        bioimageio only: ``name``, ``authors``, ``description``, ``license``, ``tags``.

    Returns
    -------
    Path
        ``out``.
    """
    if fmt not in EXPORT_FORMATS:
        raise LapsegInputError(
            f"unknown export format {fmt!r}; use one of {', '.join(EXPORT_FORMATS)}"
        )
    if fmt != "onnx-int8" and (data, calibration_data, max_drop) != (None, None, None):
        raise LapsegInputError(
            f"--data, --calibration-data and --max-accuracy-drop are for --format onnx-int8, "
            f"not {fmt}"
        )
    if fmt == "bioimageio":
        if sample_image is None:
            raise LapsegInputError(
                "--format bioimageio needs --sample-image: a real image of the run's data "
                "becomes the package's test tensors and cover"
            )
        known = {"name", "authors", "description", "license", "tags"}
        unknown = sorted(set(metadata) - known)
        if unknown:
            raise LapsegInputError(
                f"unknown bioimage.io setting(s) {', '.join(unknown)}; use {', '.join(sorted(known))}"
            )
        return export_bioimageio(run, out, sample_image=sample_image, **metadata)
    if sample_image is not None or metadata:
        raise LapsegInputError(
            f"--sample-image and package metadata are for --format bioimageio, not {fmt}"
        )
    if fmt == "onnx":
        return export_onnx_file(run, out)
    if fmt == "onnx-int8":
        if data is None:
            raise LapsegInputError(
                "--format onnx-int8 needs --data: the run's dataset (its validation split checks "
                "the INT8 model's accuracy, its training split calibrates it)"
            )
        return export_onnx_int8(
            run,
            out,
            data=data,
            calibration_data=calibration_data,
            max_drop=MAX_ACCURACY_DROP if max_drop is None else max_drop,
        ).path
    return export_torchscript(run, out)
