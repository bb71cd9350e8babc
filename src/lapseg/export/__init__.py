"""Models that leave lapseg: ONNX, TorchScript and bioimage.io model packages.

- :func:`export_model`: the one call behind ``lapseg export RUN --format ... --out PATH``.
- :func:`export_onnx_file`, :func:`export_torchscript`: the BatchNorm-folded network with
  dynamic batch and spatial size, the run's configuration, normalisation, threshold, object area
  and post-processing as metadata; load them back with
  :func:`lapseg.inference.exported.load_exported_model`.
- :func:`export_bioimageio`: a bioimage.io model package (spec 0.5), needs the ``bioimageio``
  extra.
- :func:`export_onnx_int8`: the ONNX network statically quantised to INT8 with ONNX Runtime,
  calibrated on the run's training images and kept only when validation Dice / SEG drop by at
  most 0.005.

See docs/export.md.
"""

from lapseg.export.api import EXPORT_FORMATS, export_model
from lapseg.export.bioimageio import export_bioimageio
from lapseg.export.networks import export_onnx_file, export_torchscript
from lapseg.export.quantize import export_onnx_int8

__all__ = [
    "EXPORT_FORMATS",
    "export_bioimageio",
    "export_model",
    "export_onnx_file",
    "export_onnx_int8",
    "export_torchscript",
]
