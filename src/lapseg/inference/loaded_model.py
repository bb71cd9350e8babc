"""A model ready for prediction: the network, its configuration and its preprocessing.

:func:`lapseg.inference.predict.load_model` makes one from a run folder or checkpoint,
:func:`lapseg.inference.exported.load_exported_model` from an exported ONNX / TorchScript file.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import torch

from lapseg.config import LapsegConfig, override_prediction_settings
from lapseg.data.normalization import NormalizationStats
from lapseg.inference.engines import Predictor

__all__ = ["LoadedModel"]


@dataclass(frozen=True)
class LoadedModel:
    """A model ready for prediction, with the preprocessing it was trained with."""

    model: torch.nn.Module
    config: LapsegConfig
    stats: NormalizationStats
    threshold: float
    path: Path
    device: torch.device
    predictor: Predictor
    object_area: float | None = None

    def with_predictor(self, predictor: Predictor) -> LoadedModel:
        """The same model run by another predictor (e.g. test-time augmentation)."""
        return replace(self, predictor=predictor)

    def with_channels(self, channels: tuple[int, ...] | str | None) -> LoadedModel:
        """The same model fed other channels of the image (``predict --channels``)."""
        data = self.config.data.replace(channels=channels)
        return replace(self, config=self.config.replace(data=data))

    def with_overrides(self, overrides: list[str]) -> LoadedModel:
        """The same model with ``predict.*`` / ``postprocess.*`` settings changed for this run
        (``--set postprocess.min_size=50``); the stored model is not changed."""
        return replace(self, config=override_prediction_settings(self.config, overrides))

    def with_postprocess(self, **changes: object) -> LoadedModel:
        """The same model with some ``postprocess`` settings changed (not stored)."""
        postprocess = self.config.postprocess.replace(**changes)
        return replace(self, config=self.config.replace(postprocess=postprocess))
