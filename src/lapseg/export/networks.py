"""The network of a trained run as a self-contained ONNX or TorchScript file.

Both files hold the BatchNorm-folded U-Net (:func:`lapseg.models.unet.fuse_batchnorm`) with
dynamic batch size, height and width (heights and widths must be valid input sizes of the
network, as for the PyTorch model), and the run's configuration, normalisation statistics,
threshold, object area and post-processing settings as metadata
(:func:`lapseg.inference.exported.export_metadata`). Both are made by PyTorch's tracer: the
traced graph is the network's arithmetic only, the Python-side input checks of
:class:`~lapseg.models.unet.UNet` are not in it.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from lapseg.config import LapsegConfig, config_from_dict
from lapseg.data.normalization import NormalizationStats
from lapseg.data.tasks import resolve_task
from lapseg.errors import LapsegInputError, optional_import
from lapseg.inference.engines import export_onnx
from lapseg.inference.exported import export_metadata
from lapseg.io.files import atomic_output
from lapseg.models.checkpoint import load_checkpoint, load_model_state, resolve_checkpoint_path
from lapseg.models.registry import create_model
from lapseg.models.unet import UNet, fuse_batchnorm

__all__ = [
    "ONNX_OPSET",
    "ExportSource",
    "export_onnx_file",
    "export_torchscript",
    "load_export_source",
    "trace_torchscript",
]

ONNX_OPSET = 17
"""Opset of :func:`lapseg.inference.engines.export_onnx`."""


@dataclass(frozen=True)
class ExportSource:
    """A trained run ready to export: its checkpoint and the folded network on the CPU."""

    checkpoint_path: Path
    checkpoint: dict[str, Any]
    config: LapsegConfig
    stats: NormalizationStats
    network: UNet

    @property
    def in_channels(self) -> int:
        return self.config.model.in_channels

    @property
    def size_multiple(self) -> int:
        return self.network.size_multiple

    @property
    def output_margin(self) -> int:
        return self.network.output_margin

    def example_size(self) -> int:
        """A valid input size of about 64 px (plus the margin) for tracing."""
        return self.network.valid_input_size(64 + 2 * self.output_margin)

    def metadata(self) -> dict[str, str]:
        """The ``lapseg.*`` metadata (key -> JSON string) of the exported files."""
        return export_metadata(
            self.checkpoint,
            in_channels=self.in_channels,
            size_multiple=self.size_multiple,
            output_margin=self.output_margin,
        )


def load_export_source(run_or_checkpoint: str | Path) -> ExportSource:
    """Load ``best.pt`` of a run folder (or a checkpoint file) for export."""
    path = resolve_checkpoint_path(run_or_checkpoint)
    checkpoint = load_checkpoint(path)
    try:
        config, _ = resolve_task(config_from_dict(checkpoint["config"]), None)
        stats = NormalizationStats.from_dict(checkpoint["normalization"])
        state = checkpoint["model_state"]
    except (KeyError, TypeError) as error:
        raise LapsegInputError(f"checkpoint lacks {error}", path=path) from None
    network = create_model(config.model)
    load_model_state(network, state, path=path)
    folded = fuse_batchnorm(network)
    if not isinstance(folded, UNet):  # fuse_batchnorm copies the module it is given
        raise TypeError(f"fuse_batchnorm returned {type(folded).__name__}")
    return ExportSource(
        checkpoint_path=path,
        checkpoint=checkpoint,
        config=config,
        stats=stats,
        network=folded.to("cpu").eval(),
    )


def check_output_path(path: str | Path, suffixes: Sequence[str], what: str) -> Path:
    """``path`` as a Path once its suffix is one of ``suffixes`` and its folder can be made."""
    path = Path(path)
    if path.suffix.lower() not in suffixes:
        raise LapsegInputError(f"{what} file name must end with {' or '.join(suffixes)}", path=path)
    if path.is_dir():
        raise LapsegInputError(f"output is a folder; give a {what} file name", path=path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise LapsegInputError(
            f"cannot create the output folder ({error.strerror or error})", path=path.parent
        ) from None
    return path


@contextmanager
def writable(path: Path) -> Iterator[Path]:
    """:func:`lapseg.io.files.atomic_output` whose OS errors are one-line input errors."""
    try:
        with atomic_output(path) as tmp:
            yield tmp
    except OSError as error:
        raise LapsegInputError(f"cannot write ({error.strerror or error})", path=path) from None


def trace_torchscript(network: torch.nn.Module, example: torch.Tensor) -> torch.jit.ScriptModule:
    """TorchScript of ``network`` (eval mode, CPU) traced on ``example`` ``(1, C, Y, X)``.

    The trace has dynamic batch and spatial sizes: U-Net shapes follow the input's.
    """
    with warnings.catch_warnings():
        # TracerWarnings: the U-Net's Python size checks become constants (they only raise)
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(network.eval(), example, check_trace=False)
    if not isinstance(traced, torch.jit.ScriptModule):
        raise TypeError(f"torch.jit.trace returned {type(traced).__name__}")
    return traced


def export_torchscript(run_or_checkpoint: str | Path, out_path: str | Path) -> Path:
    """Write the run's network as a TorchScript file (``.pt`` or ``.ts``) with its metadata.

    Parameters
    ----------
    run_or_checkpoint : str or Path
        A run folder (its ``best.pt``) or a checkpoint file.
    out_path : str or Path
        The file to write (atomically).

    Returns
    -------
    Path
        ``out_path``; load it with :func:`lapseg.inference.exported.load_exported_model` or
        ``torch.jit.load`` (the metadata are ``_extra_files`` named ``lapseg.*``).
    """
    out = check_output_path(out_path, (".pt", ".ts"), "TorchScript")
    source = load_export_source(run_or_checkpoint)
    write_torchscript(source, out)
    return out


def write_torchscript(source: ExportSource, out: Path) -> Path:
    """Trace ``source.network`` and save it with the metadata to ``out``."""
    size = source.example_size()
    traced = trace_torchscript(source.network, torch.zeros(1, source.in_channels, size, size))
    with writable(out) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(traced, str(tmp), _extra_files=source.metadata())
    return out


def export_onnx_file(run_or_checkpoint: str | Path, out_path: str | Path) -> Path:
    """Write the run's network as an ONNX file (opset 17) with its metadata.

    Parameters
    ----------
    run_or_checkpoint : str or Path
        A run folder (its ``best.pt``) or a checkpoint file.
    out_path : str or Path
        The ``.onnx`` file to write (atomically).

    Returns
    -------
    Path
        ``out_path``; input ``tiles`` ``(B, C, Y, X)``, output ``logits`` ``(B, K, Y', X')``,
        the metadata in the model's ``metadata_props`` (keys ``lapseg.*``, JSON values).
    """
    out = check_output_path(out_path, (".onnx",), "ONNX")
    source = load_export_source(run_or_checkpoint)
    write_onnx(source, out)
    return out


def write_onnx(source: ExportSource, out: Path) -> Path:
    """Export ``source.network`` to ONNX and save it with the metadata to ``out``."""
    onnx = optional_import("onnx", extra="onnx", purpose="ONNX export")
    data = export_onnx(
        source.network, in_channels=source.in_channels, example_size=source.example_size()
    )
    proto = onnx.load_from_string(data)
    for key, value in source.metadata().items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.doc_string = "lapseg U-Net: tiles (B, C, Y, X) -> logits (B, K, Y', X')"
    with writable(out) as tmp:
        onnx.save(proto, str(tmp))
    return out
