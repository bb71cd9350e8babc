"""The napari *Segment* dock widget: a model applied to an image layer."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from magicgui.types import FileDialogMode
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
    LineEdit,
    PushButton,
)
from napari.layers import Image

from lapseg.errors import LapsegInputError
from lapseg.inference.predict import load_model
from lapseg.napari.layers import (
    Segmentation,
    layer_frames,
    result_layers,
)
from lapseg.napari.panel import (
    DEVICES,
    MODEL_KINDS,
    Panel,
    Report,
    add_layers,
    layer_array,
    layer_axes,
    path_or_none,
    placement,
)
from lapseg.napari.segment import SegmentOptions, segment_frames
from lapseg.napari.train import parse_settings

__all__ = ["SegmentWidget"]

log = logging.getLogger(__name__)


class SegmentWidget(Panel):
    """Segment an image layer (2D, stack or movie) with a trained model.

    Outputs a labels layer (a movie's instances linked into tracks), optionally a probability
    layer, and for movies of an instance model a tracks layer with the division graph.
    """

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__(napari_viewer)
        self._model_kind = ComboBox(label="Model is", choices=MODEL_KINDS, value=MODEL_KINDS[0])
        self._model = FileEdit(label="Model", mode=FileDialogMode.EXISTING_DIRECTORY)
        self._model.tooltip = (
            "a lapseg run folder, a checkpoint (.pt) or an exported model (.onnx, TorchScript)"
        )
        self._image = ComboBox(label="Image", choices=lambda _: self._layers_of(Image))
        self._axes = ComboBox(label="Axes", choices=self._axes_of_image)
        self._axes.tooltip = "T: time (frames are tracked), Z: depth, C: channels"
        self._probabilities = CheckBox(text="add a probability layer", value=False)
        self._track = CheckBox(text="link a movie's objects into tracks", value=True)
        self._settings = LineEdit(label="Settings", value="")
        self._settings.tooltip = "predict.* / postprocess.* overrides, e.g. postprocess.min_size=50"
        self._device = ComboBox(label="Device", choices=DEVICES, value="auto")
        self._run = PushButton(text="Segment")
        self._cancel = PushButton(text="Cancel", enabled=False)
        buttons = Container(widgets=[self._run, self._cancel], layout="horizontal", labels=False)
        self.extend(
            [
                self._model_kind,
                self._model,
                self._image,
                self._axes,
                self._probabilities,
                self._track,
                self._settings,
                self._device,
                buttons,
                self._progress,
                self._status,
            ]
        )
        self._model_kind.changed.connect(self._model_kind_changed)
        self._image.changed.connect(lambda _: self._axes.reset_choices())
        self._run.clicked.connect(self.run)
        self._cancel.clicked.connect(self.cancel)

    # ---------------------------------------------------------------- fields

    def _model_kind_changed(self, kind: str) -> None:
        folder = kind == MODEL_KINDS[0]
        self._model.mode = (
            FileDialogMode.EXISTING_DIRECTORY if folder else FileDialogMode.EXISTING_FILE
        )

    def _axes_of_image(self, _: Any = None) -> list[str]:
        layer = self._image.value if hasattr(self, "_image") else None
        return layer_axes(layer) if layer is not None else []

    def set_model(self, path: str | Path) -> None:
        """Choose the model (a run folder, or a checkpoint / exported file)."""
        path = Path(path)
        self._model_kind.value = MODEL_KINDS[0] if path.is_dir() else MODEL_KINDS[1]
        self._model.value = path

    # ---------------------------------------------------------------- running

    def run(self) -> None:
        """Start segmenting the chosen image layer (returns at once)."""
        if self._job.running:
            return
        layer = self._image.value
        model_path = path_or_none(self._model)
        try:
            if layer is None:
                raise LapsegInputError("choose an image layer")
            if model_path is None or not model_path.exists():
                raise LapsegInputError(f"choose a model: {model_path or 'no path given'}")
            axes = str(self._axes.value)
            frames = layer_frames(layer_array(layer), axes)
            overrides = parse_settings(self._settings.value)
        except LapsegInputError as error:
            self._say(f"error: {error}")
            return
        options = SegmentOptions(probabilities=self._probabilities.value, track=self._track.value)
        device = str(self._device.value)
        scale, translate = placement(layer)
        name = layer.name

        def work(report: Report, stop: threading.Event) -> Segmentation:
            report("loading the model")
            loaded = load_model(model_path, device=device)
            if overrides:
                loaded = loaded.with_overrides(overrides)
            return segment_frames(
                [loaded],
                frames,
                options=options,
                on_frame=lambda done, total: report((done, total)),
                should_stop=stop.is_set,
            )

        def done(result: Segmentation) -> None:
            add_layers(
                self._viewer,
                result_layers(result, name, axes=axes, scale=scale, translate=translate),
            )
            self._set_running(False)
            self._progress.value = 100
            self._say(f"{name}: {result.summary()}")

        self._set_running(True)
        self._say(f"segmenting {name} ({frames.n_frames} frame(s))")
        self._job.start(work, on_done=done, on_cancelled=self._cancelled, on_error=self._failed)

    def cancel(self) -> None:
        """Stop after the current frame."""
        self._job.cancel()
        self._say("cancelling after the current frame")

    def _cancelled(self) -> None:
        self._set_running(False)
        self._say("cancelled: no layer added")

    def _on_message(self, message: Any) -> None:
        if isinstance(message, tuple):
            done, total = message
            self._progress.value = int(100 * done / max(total, 1))
            self._status.value = f"frame {done} of {total}"
        else:
            self._status.value = str(message)

    def _set_running(self, running: bool) -> None:
        self._run.enabled = not running
        self._cancel.enabled = running
        if running:
            self._progress.value = 0
