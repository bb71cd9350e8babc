"""One entry point for ``lapseg export``: :func:`export_model`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lapseg.errors import LapsegInputError
from lapseg.export.bioimageio import export_bioimageio
from lapseg.export.networks import export_onnx_file, export_torchscript

__all__ = ["EXPORT_FORMATS", "export_model"]

EXPORT_FORMATS = ("bioimageio", "onnx", "torchscript")
"""``bioimageio`` (a model package for bioimage.io consumers), ``onnx``, ``torchscript``."""


def export_model(
    run: str | Path,
    *,
    fmt: str,
    out: str | Path,
    sample_image: str | Path | None = None,
    **metadata: Any,
) -> Path:
    """Export a trained run (its ``best.pt``) or a checkpoint file as ``fmt`` to ``out``.

    Parameters
    ----------
    run : str or Path
        A run folder or a checkpoint file.
    fmt : {"bioimageio", "onnx", "torchscript"}
    out : str or Path
        ``.zip`` (bioimageio), ``.onnx`` or ``.pt``/``.ts`` (torchscript).
    sample_image : str or Path, optional
        bioimageio only, and required there: a real image of the run's data for the test
        tensors and the cover (:func:`lapseg.export.bioimageio.export_bioimageio`).
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
    return export_torchscript(run, out)
