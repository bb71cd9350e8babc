"""An INT8 ONNX model of a run: static quantisation, calibrated and checked on the run's data.

:func:`export_onnx_int8` writes what ``lapseg export RUN --format onnx-int8 --data DATA`` writes:

1. the run's float ONNX network (:func:`lapseg.export.networks.write_onnx`, BatchNorm folded);
2. calibration tiles: up to :data:`CALIBRATION_TILES` tiles cut by the run's own sliding window
   (tile size, overlap, mirrored borders), spread over the prepared training samples of ``DATA``
   (normalised with the stored statistics, as training and prediction do) or over a folder of
   raw images sent through :func:`lapseg.inference.predict.predict_probabilities` with a
   :class:`TileRecorder` in place of the network (channels, scale and normalisation exactly as
   ``lapseg predict`` prepares them);
3. ONNX Runtime static quantisation (``quantize_static``): QDQ format, int8 weights per output
   channel, uint8 activations with min/max ranges from the calibration tiles;
4. the accuracy guard: validation Dice (and SEG for instance models) of the INT8 model against
   the float model on the run's validation split (:func:`lapseg.export.accuracy.compare_on_samples`).
   A drop above ``max_drop`` (default 0.005) writes nothing and raises a one-line
   :class:`~lapseg.errors.LapsegInputError`.

The file carries the same ``lapseg.*`` metadata as ``--format onnx`` plus ``lapseg.quantization``
(scheme, calibration, the measured accuracy), so ``lapseg predict --model m.int8.onnx`` runs it
like any exported model.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lapseg.data.normalization import NormalizationStats
from lapseg.data.samples import RunData, spread
from lapseg.data.setup import prepare_run_data
from lapseg.errors import LapsegInputError, optional_import
from lapseg.export.accuracy import MAX_ACCURACY_DROP, AccuracyComparison, compare_on_samples
from lapseg.export.calibration import (
    CALIBRATION_TILES,
    TileRecorder,
    calibration_batches,
    folder_calibration_batches,
)
from lapseg.export.networks import (
    ExportSource,
    check_output_path,
    load_export_source,
    writable,
    write_onnx,
)
from lapseg.inference.exported import QUANTIZATION_KEY, load_exported_model

__all__ = [
    "CALIBRATION_TILES",
    "QuantizedExport",
    "TileRecorder",
    "calibration_batches",
    "export_onnx_int8",
    "folder_calibration_batches",
    "quantize_onnx_file",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class QuantizedExport:
    """What :func:`export_onnx_int8` wrote and measured."""

    path: Path
    comparison: AccuracyComparison
    calibration_tiles: int
    calibration_images: int


def _cpu_has_vnni() -> bool:
    """x86 8-bit dot products without int16 saturation (VNNI / AMX); False when unknown."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="ignore") as handle:
            flags = next((line for line in handle if line.startswith("flags")), "")
    except OSError:
        return False
    return any(flag in flags.split() for flag in ("avx512_vnni", "avx_vnni", "amx_int8"))


def _same_statistics(a: NormalizationStats, b: NormalizationStats) -> bool:
    return (
        a.mode == b.mode
        and (a.low_percentile, a.high_percentile) == (b.low_percentile, b.high_percentile)
        and len(a.mean) == len(b.mean)
        and bool(np.allclose(a.mean, b.mean, rtol=1e-4, atol=1e-6))
        and bool(np.allclose(a.std, b.std, rtol=1e-4, atol=1e-6))
    )


def _run_data(source: ExportSource, data: Path) -> RunData:
    """The run's training and validation samples, read from ``data`` with the stored split."""
    split = source.checkpoint.get("split")
    if not isinstance(split, dict) or not split.get("train"):
        raise LapsegInputError(
            "the checkpoint has no train/validation split", path=source.checkpoint_path
        )
    if not split.get("val"):
        raise LapsegInputError(
            "the run has no validation split, so the INT8 model's accuracy cannot be checked; "
            "train with data.val_fraction > 0",
            path=source.checkpoint_path,
        )
    if not data.exists():
        raise LapsegInputError("data folder not found", path=data)
    run_data = prepare_run_data(source.config, data, split=split)
    if not _same_statistics(run_data.stats, source.stats):
        raise LapsegInputError(
            "this is not the data the run was trained on (the normalisation statistics of its "
            "training split differ from the run's); give the run's dataset",
            path=data,
        )
    return run_data


class _Batches:
    """An ONNX Runtime ``CalibrationDataReader`` over fixed batches (made by :func:`_reader`).

    ``set_range`` lets ``quantize_static`` (``CalibStridedMinMax``) calibrate one batch at a
    time, merging the ranges as it goes.
    """

    def __init__(self, batches: Sequence[np.ndarray]) -> None:
        self._all = list(batches)
        self._batches: Iterator[np.ndarray] = iter(self._all)

    def __len__(self) -> int:
        return len(self._all)

    def set_range(self, start_index: int, end_index: int) -> None:
        self._batches = iter(self._all[start_index:end_index])

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._batches, None)
        return None if batch is None else {"tiles": batch}


def _reader(quantization: Any, batches: Sequence[np.ndarray]) -> Any:
    reader_type = type("TileReader", (_Batches, quantization.CalibrationDataReader), {})
    return reader_type(batches)


def quantize_onnx_file(float_path: Path, out: Path, batches: Sequence[np.ndarray]) -> bool:
    """ONNX Runtime static quantisation of the network at ``float_path`` into ``out``.

    QDQ format, int8 weights per output channel, uint8 activations whose ranges are the min/max
    over ``batches`` (``(B, C, h, w)`` float32 inputs named ``tiles``). Returns ``reduce_range``:
    7-bit weights on CPUs without VNNI, where 8-bit products may saturate. The metadata of
    ``out`` are ONNX Runtime's; lapseg's are added by :func:`export_onnx_int8`.
    """
    quantization = optional_import(
        "onnxruntime.quantization", extra="onnx", purpose="INT8 quantisation"
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    reduce_range = not _cpu_has_vnni()
    with tempfile.TemporaryDirectory(prefix="lapseg-quant-") as work:
        prepared = Path(work) / "prepared.onnx"
        # symbolic shape inference cannot resolve the dynamic U-Net sizes; ONNX's own can
        quant_pre_process(str(float_path), str(prepared), skip_symbolic_shape=True)
        _quantize_static(quantization, prepared, out, batches, reduce_range=reduce_range)
    return reduce_range


def _quantize_static(
    quantization: Any,
    prepared: Path,
    out: Path,
    batches: Sequence[np.ndarray],
    *,
    reduce_range: bool,
) -> None:
    quantization.quantize_static(
        str(prepared),
        str(out),
        _reader(quantization, batches),
        quant_format=quantization.QuantFormat.QDQ,
        per_channel=True,
        reduce_range=reduce_range,
        activation_type=quantization.QuantType.QUInt8,
        weight_type=quantization.QuantType.QInt8,
        calibrate_method=quantization.CalibrationMethod.MinMax,
        # ranges are merged batch by batch: memory stays one batch of activations
        extra_options={"CalibStridedMinMax": 1},
    )


def _save_with_metadata(model_path: Path, out: Path, metadata: dict[str, str]) -> None:
    onnx = optional_import("onnx", extra="onnx", purpose="ONNX export")
    proto = onnx.load(str(model_path))
    del proto.metadata_props[:]
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.doc_string = "lapseg U-Net, INT8 (QDQ): tiles (B, C, Y, X) -> logits (B, K, Y', X')"
    with writable(out) as tmp:
        onnx.save(proto, str(tmp))


def export_onnx_int8(
    run_or_checkpoint: str | Path,
    out_path: str | Path,
    *,
    data: str | Path,
    calibration_data: str | Path | None = None,
    calibration_tiles: int = CALIBRATION_TILES,
    max_drop: float = MAX_ACCURACY_DROP,
) -> QuantizedExport:
    """Write the run's network as a statically quantised INT8 ONNX file (see the module doc).

    Parameters
    ----------
    run_or_checkpoint : str or Path
        A run folder (its ``best.pt``) or a checkpoint file with its stored split.
    out_path : str or Path
        The ``.onnx`` file to write (atomically; nothing is written when the check fails).
    data : str or Path
        The run's dataset: its validation split checks the accuracy, its training split
        calibrates (unless ``calibration_data`` is given).
    calibration_data : str or Path, optional
        A folder of images (no masks needed) to calibrate on instead.
    calibration_tiles : int
        Number of calibration tiles (spread over the images).
    max_drop : float
        Largest allowed drop of validation Dice or SEG (default 0.005).
    """
    out = check_output_path(out_path, (".onnx",), "ONNX")
    if calibration_tiles < 1:
        raise LapsegInputError(f"calibration tiles must be >= 1, got {calibration_tiles}")
    if not 0 <= max_drop < 1:
        raise LapsegInputError(f"the allowed accuracy drop must be in [0, 1), got {max_drop}")
    onnxruntime = optional_import("onnxruntime", extra="onnx", purpose="INT8 quantisation")
    source = load_export_source(run_or_checkpoint)
    config = source.config
    run_data = _run_data(source, Path(data))
    with tempfile.TemporaryDirectory(prefix="lapseg-int8-") as folder:
        work = Path(folder)
        float_path = write_onnx(source, work / "float.onnx")
        float_model = load_exported_model(float_path)
        if calibration_data is not None:
            batches, n_images = folder_calibration_batches(
                Path(calibration_data), float_model, max_tiles=calibration_tiles
            )
            where = str(calibration_data)
        else:
            images = [s.image for s in spread(run_data.train, calibration_tiles)]
            batches = calibration_batches(
                images, source.network, config, max_tiles=calibration_tiles
            )
            n_images, where = len(images), "training split"
        n_tiles = sum(len(batch) for batch in batches)
        int8_path = work / "int8.onnx"
        reduce_range = quantize_onnx_file(float_path, int8_path, batches)
        metadata = source.metadata()
        _save_with_metadata(int8_path, int8_path, metadata)
        comparison = compare_on_samples(
            float_model,
            load_exported_model(int8_path),
            run_data.val,
            max_drop=max_drop,
        )
        if not comparison.passed:
            raise LapsegInputError(
                f"INT8 model not written: validation accuracy drops too much ("
                f"{comparison.summary()}); keep the float model (--format onnx)",
                path=out,
            )
        metadata[QUANTIZATION_KEY] = json.dumps(
            {
                "scheme": "onnxruntime static quantisation, QDQ",
                "weights": "int8, per output channel" + (", 7-bit range" if reduce_range else ""),
                "activations": "uint8, min/max calibration",
                "calibration": {"source": where, "images": n_images, "tiles": n_tiles},
                "validation": comparison.to_dict(),
                "onnxruntime": onnxruntime.__version__,
            },
            sort_keys=True,
        )
        _save_with_metadata(int8_path, out, metadata)
    log.info("INT8 vs float: %s", comparison.summary())
    return QuantizedExport(
        path=out, comparison=comparison, calibration_tiles=n_tiles, calibration_images=n_images
    )
