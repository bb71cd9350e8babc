"""Models exported by :mod:`lapseg.export` (ONNX, TorchScript), loaded back for prediction.

An exported file carries everything prediction needs besides the network: the run's
configuration, the normalisation statistics, the threshold, the median object area and the
post-processing settings, as JSON strings under ``lapseg.*`` keys (ONNX ``metadata_props``,
TorchScript ``_extra_files``) with a format key, :data:`EXPORT_FORMAT`. This module owns that
format (:func:`export_metadata` writes it, :func:`read_export_metadata` reads it) so that the
exporter and the loader cannot drift apart.

:func:`load_exported_model` returns the same :class:`~lapseg.inference.predict.LoadedModel` as
:func:`~lapseg.inference.predict.load_model`, so :func:`~lapseg.inference.predict.predict_probabilities`
and the instance post-processing work unchanged. Its ``model`` is a small stand-in
(:class:`ExportedNetwork`) that runs the exported graph and carries the two attributes the
sliding window needs (``size_multiple``, ``output_margin``); the U-Net's Python-side helpers
(feature maps, ``valid_input_size``) are not available for exported models.
"""

from __future__ import annotations

import json
import warnings
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from lapseg import __version__
from lapseg.config import config_from_dict
from lapseg.data.normalization import NormalizationStats
from lapseg.data.tasks import resolve_task
from lapseg.device import select_device
from lapseg.errors import LapsegInputError, optional_import
from lapseg.inference.engines import torch_predictor
from lapseg.inference.loaded_model import LoadedModel

__all__ = [
    "EXPORTED_SUFFIXES",
    "EXPORT_FORMAT",
    "QUANTIZATION_KEY",
    "ExportMetadata",
    "ExportedNetwork",
    "export_metadata",
    "is_exported_model",
    "load_exported_model",
    "read_export_metadata",
]

EXPORT_FORMAT = "lapseg-export/1"
"""Value of the ``lapseg.format`` key; a reader refuses other values."""

EXPORTED_SUFFIXES = (".onnx", ".pt", ".ts")
"""File suffixes of exported models (``.pt`` is shared with checkpoints: see
:func:`is_exported_model`)."""

_PREFIX = "lapseg."
QUANTIZATION_KEY = _PREFIX + "quantization"
"""Optional key of quantised (INT8) exports: scheme, calibration and measured accuracy (JSON)."""
_KEYS = (
    "format",
    "lapseg_version",
    "config",
    "normalization",
    "threshold",
    "object_area",
    "postprocess",
    "in_channels",
    "size_multiple",
    "output_margin",
)


@dataclass(frozen=True)
class ExportMetadata:
    """What an exported file carries besides the network (all plain JSON values)."""

    format: str
    lapseg_version: str
    config: dict[str, Any]
    normalization: dict[str, Any]
    threshold: float
    object_area: float | None
    postprocess: dict[str, Any]
    in_channels: int
    size_multiple: int
    output_margin: int
    quantization: dict[str, Any] | None = None
    """INT8 exports only: how the model was quantised and its validation accuracy."""


def export_metadata(
    checkpoint: Mapping[str, Any], *, in_channels: int, size_multiple: int, output_margin: int
) -> dict[str, str]:
    """The ``lapseg.*`` metadata of a checkpoint: key -> JSON string.

    Parameters
    ----------
    checkpoint : mapping
        A lapseg checkpoint (``config``, ``normalization``, ``threshold``, ``object_area``).
    in_channels, size_multiple, output_margin : int
        Input channels, input size multiple and per-side output margin of the network.
    """
    config = dict(checkpoint["config"])
    threshold = checkpoint.get("threshold", config.get("predict", {}).get("threshold", 0.5))
    object_area = checkpoint.get("object_area")
    values: dict[str, Any] = {
        "format": EXPORT_FORMAT,
        "lapseg_version": __version__,
        "config": config,
        "normalization": dict(checkpoint["normalization"]),
        "threshold": float(threshold),
        "object_area": None if object_area is None else float(object_area),
        "postprocess": dict(config.get("postprocess", {})),
        "in_channels": int(in_channels),
        "size_multiple": int(size_multiple),
        "output_margin": int(output_margin),
    }
    return {_PREFIX + key: json.dumps(values[key], sort_keys=True) for key in _KEYS}


def _parse_metadata(props: Mapping[str, str], path: Path) -> ExportMetadata:
    if props.get(_PREFIX + "format") is None:
        raise LapsegInputError("not a lapseg export (no lapseg.format metadata)", path=path)
    try:
        values = {key: json.loads(props[_PREFIX + key]) for key in _KEYS}
        if QUANTIZATION_KEY in props:
            values["quantization"] = json.loads(props[QUANTIZATION_KEY])
    except KeyError as error:
        raise LapsegInputError(f"exported model lacks metadata {error}", path=path) from None
    except json.JSONDecodeError as error:
        raise LapsegInputError(
            f"exported model has unreadable metadata ({error})", path=path
        ) from None
    if values["format"] != EXPORT_FORMAT:
        raise LapsegInputError(
            f"exported model format {values['format']!r} is not {EXPORT_FORMAT!r}", path=path
        )
    return ExportMetadata(**values)


def _onnx_metadata(path: Path) -> dict[str, str]:
    onnx = optional_import("onnx", extra="onnx", purpose="loading an ONNX model")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as error:  # not protobuf, truncated file
        raise LapsegInputError(
            f"not a readable ONNX file ({type(error).__name__})", path=path
        ) from None
    return {prop.key: prop.value for prop in proto.metadata_props}


def _torchscript_metadata(path: Path) -> dict[str, str]:
    # TorchScript archives store extra files as <archive>/extra/<name>; read them without
    # loading (and so without running) the model
    try:
        with zipfile.ZipFile(path) as archive:
            extra = {
                name.split("/extra/", 1)[1]: archive.read(name).decode("utf-8")
                for name in archive.namelist()
                if "/extra/" in name
            }
    except (zipfile.BadZipFile, UnicodeDecodeError) as error:
        raise LapsegInputError(f"not a TorchScript archive ({error})", path=path) from None
    return extra


def read_export_metadata(path: str | Path) -> ExportMetadata:
    """The ``lapseg.*`` metadata of an exported ``.onnx`` or TorchScript ``.pt``/``.ts`` file."""
    path = Path(path)
    if not path.is_file():
        raise LapsegInputError("exported model not found", path=path)
    if path.suffix.lower() == ".onnx":
        return _parse_metadata(_onnx_metadata(path), path)
    if path.suffix.lower() in (".pt", ".ts"):
        return _parse_metadata(_torchscript_metadata(path), path)
    raise LapsegInputError(
        f"exported models end with {', '.join(EXPORTED_SUFFIXES)}, not {path.suffix!r}",
        path=path,
    )


def is_exported_model(path: str | Path) -> bool:
    """True for an ``.onnx`` file, a ``.ts`` file, or a ``.pt`` file that is a TorchScript
    archive written by :mod:`lapseg.export` (a checkpoint ``.pt`` gives False)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if not path.is_file() or suffix not in EXPORTED_SUFFIXES:
        return False
    if suffix in (".onnx", ".ts"):
        return True
    try:
        with zipfile.ZipFile(path) as archive:
            return any(name.endswith("/extra/" + _PREFIX + "format") for name in archive.namelist())
    except zipfile.BadZipFile:
        return False


class ExportedNetwork(nn.Module):
    """Stand-in for the U-Net of an exported model: runs the exported graph.

    ``forward`` maps tiles ``(B, C, Y, X)`` to logits ``(B, K, Y - 2m, X - 2m)``;
    ``size_multiple`` and ``output_margin`` (``m``) are what
    :func:`~lapseg.inference.engines.predict_logits` reads from a model.
    """

    def __init__(
        self,
        run: Callable[[torch.Tensor], torch.Tensor],
        *,
        size_multiple: int,
        output_margin: int,
        network: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.size_multiple = int(size_multiple)
        self.output_margin = int(output_margin)
        self.network = network  # the TorchScript module (moved by .to()); None for ONNX
        self._run = run

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, K, Y', X')`` of a batch ``(B, C, Y, X)``."""
        return self._run(x)


def _onnx_runner(path: Path) -> Callable[[torch.Tensor], torch.Tensor]:
    onnxruntime = optional_import("onnxruntime", extra="onnx", purpose="loading an ONNX model")
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.log_severity_level = 3
    try:
        session = onnxruntime.InferenceSession(
            str(path), options, providers=["CPUExecutionProvider"]
        )
    except Exception as error:  # onnxruntime raises its own exception types
        first = str(error).strip().splitlines()[0][:200] if str(error).strip() else ""
        raise LapsegInputError(f"ONNX Runtime cannot load the model ({first})", path=path) from None
    input_name = session.get_inputs()[0].name

    def run(batch: torch.Tensor) -> torch.Tensor:
        array = np.ascontiguousarray(batch.detach().cpu().numpy(), dtype=np.float32)
        (logits,) = session.run(None, {input_name: array})
        return torch.from_numpy(logits).to(batch.device)

    return run


def load_exported_model(path: str | Path, *, device: str = "auto") -> LoadedModel:
    """Load an ``.onnx`` or TorchScript ``.pt``/``.ts`` file written by :mod:`lapseg.export`.

    ONNX models run on the CPU with ONNX Runtime (``device`` "auto" or "cpu"); TorchScript
    models run on ``device`` (:func:`lapseg.device.select_device`).

    Returns
    -------
    LoadedModel
        As :func:`~lapseg.inference.predict.load_model` returns it: configuration,
        normalisation, threshold and object area come from the file's metadata.
    """
    path = Path(path)
    meta = read_export_metadata(path)
    try:
        config, _ = resolve_task(config_from_dict(meta.config), None)
        stats = NormalizationStats.from_dict(meta.normalization)
    except (KeyError, TypeError) as error:
        raise LapsegInputError(f"exported model metadata lacks {error}", path=path) from None
    network: nn.Module | None = None
    if path.suffix.lower() == ".onnx":
        if device not in ("auto", "cpu"):
            raise LapsegInputError("ONNX models run on the CPU; use --device cpu", path=path)
        torch_device = torch.device("cpu")
        run = _onnx_runner(path)
    else:
        torch_device = select_device(device)
        try:
            with warnings.catch_warnings():
                # torch 2.13 deprecates TorchScript; bioimage.io consumers still run it
                warnings.filterwarnings("ignore", message=".*torch.jit.load. is deprecated")
                network = torch.jit.load(str(path), map_location=torch_device).eval()
        except Exception as error:  # corrupt archive, not TorchScript
            first = str(error).strip().splitlines()[0][:200] if str(error).strip() else ""
            raise LapsegInputError(
                f"not a loadable TorchScript model ({first})", path=path
            ) from None
        run = torch_predictor(network)
    model = ExportedNetwork(
        run,
        size_multiple=meta.size_multiple,
        output_margin=meta.output_margin,
        network=network,
    )
    return LoadedModel(
        model=model,
        config=config,
        stats=stats,
        threshold=meta.threshold,
        path=path,
        device=torch_device,
        predictor=model,
        object_area=meta.object_area,
    )
