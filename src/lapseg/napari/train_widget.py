"""The napari *Train* dock widget: a model trained on an image and a labels layer."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import numpy as np
from magicgui.types import FileDialogMode
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
    FloatSpinBox,
    Label,
    LineEdit,
    PushButton,
)
from matplotlib.figure import Figure
from napari.layers import Image, Labels
from qtpy.QtWidgets import QSizePolicy

from lapseg.errors import LapsegInputError
from lapseg.inference.predict import load_model
from lapseg.napari.curves import MEASURES, draw_learning_curves
from lapseg.napari.layers import (
    Segmentation,
    annotation_summary,
    label_frames,
    layer_frames,
    result_layers,
)
from lapseg.napari.panel import (
    Panel,
    Report,
    add_layers,
    layer_array,
    layer_axes,
    path_or_none,
    placement,
)
from lapseg.napari.segment import Cancelled, segment_frames
from lapseg.napari.train import (
    TrainOutcome,
    output_folders,
    parse_settings,
    train_model,
    training_config,
    training_progress,
    write_training_data,
)

__all__ = ["TrainWidget"]

log = logging.getLogger(__name__)


class TrainWidget(Panel):
    """Train a model on an image layer and a labels layer, then segment the image with it.

    A movie may be annotated on a few frames only: all-zero label frames are unannotated (the
    rule of ``lapseg train``). The layers are written as a lapseg dataset, trained by
    :func:`lapseg.training.trainer.fit` within the time budget, with a live learning curve.
    """

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__(napari_viewer)
        self._image = ComboBox(label="Image", choices=lambda _: self._layers_of(Image))
        self._labels_layer = ComboBox(label="Labels", choices=lambda _: self._layers_of(Labels))
        self._axes = ComboBox(label="Axes", choices=self._axes_of_image)
        self._annotated = Label(value="")
        self._annotated.native.setWordWrap(True)
        self._minutes = FloatSpinBox(
            label="Time budget (min)", value=5.0, min=0.1, max=10080.0, step=0.5
        )
        self._settings = LineEdit(label="Settings", value="")
        self._settings.tooltip = (
            "lapseg settings as key=value, e.g. model.base_features=16 train.patch_size=[128,128] "
            "temporal.context=2 train.device=cpu"
        )
        self._output = FileEdit(label="Output folder", mode=FileDialogMode.EXISTING_DIRECTORY)
        self._output.tooltip = (
            "dataset (data/) and run folder (run/) go here; empty: a temporary folder"
        )
        self._predict = CheckBox(text="segment the image with the new model", value=True)
        self._run = PushButton(text="Train")
        self._cancel = PushButton(text="Cancel", enabled=False)
        buttons = Container(widgets=[self._run, self._cancel], layout="horizontal", labels=False)
        self.extend(
            [
                self._image,
                self._labels_layer,
                self._axes,
                self._annotated,
                self._minutes,
                self._settings,
                self._output,
                self._predict,
                buttons,
                self._progress,
                self._status,
            ]
        )
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg

        self.figure = Figure(figsize=(4.0, 2.6), dpi=80)
        self._canvas = FigureCanvasQTAgg(self.figure)
        # the canvas's size hint is the figure's current size: ignored across, or the dock
        # would widen with every redraw
        self._canvas.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self._canvas.setFixedHeight(220)
        self.native.layout().addWidget(self._canvas)
        self.history: list[dict[str, Any]] = []
        self.outcome: TrainOutcome | None = None
        draw_learning_curves(self.figure, self.history)
        self._image.changed.connect(self._image_changed)
        self._labels_layer.changed.connect(lambda _: self.update_annotation())
        self._axes.changed.connect(lambda _: self.update_annotation())
        self._run.clicked.connect(self.run)
        self._cancel.clicked.connect(self.cancel)
        self.update_annotation()

    # ---------------------------------------------------------------- fields

    def _axes_of_image(self, _: Any = None) -> list[str]:
        layer = self._image.value if hasattr(self, "_image") else None
        return layer_axes(layer) if layer is not None else []

    def _image_changed(self, _: Any) -> None:
        self._axes.reset_choices()
        self.update_annotation()

    def _frames_and_labels(self) -> tuple[Any, np.ndarray]:
        image, labels = self._image.value, self._labels_layer.value
        if image is None or labels is None:
            raise LapsegInputError("choose an image layer and a labels layer")
        axes = str(self._axes.value)
        frames = layer_frames(layer_array(image), axes)
        return frames, label_frames(layer_array(labels), axes, frames)

    def update_annotation(self) -> str:
        """Count the annotated frames of the labels layer and show it; the line shown."""
        if not hasattr(self, "_annotated"):
            return ""
        try:
            frames, labels = self._frames_and_labels()
            line = annotation_summary(labels, frames.axis)
        except LapsegInputError as error:
            line = str(error)
        self._annotated.value = line
        return line

    # ---------------------------------------------------------------- running

    def run(self) -> None:
        """Start writing the dataset, training and segmenting (returns at once)."""
        if self._job.running:
            return
        try:
            frames, labels = self._frames_and_labels()
            settings = parse_settings(self._settings.value)
        except LapsegInputError as error:
            self._say(f"error: {error}")
            return
        self.update_annotation()
        image = self._image.value
        name, axes = image.name, str(self._axes.value)
        scale, translate = placement(image)
        minutes, output = float(self._minutes.value), path_or_none(self._output)
        then_segment = bool(self._predict.value)

        def work(report: Report, stop: threading.Event) -> tuple[TrainOutcome, Segmentation | None]:
            data_dir, run_dir = output_folders(output)
            data = write_training_data(frames, labels, data_dir, name=name)
            config, notes = training_config(data, minutes=minutes, settings=settings)
            report(("run", run_dir, notes))
            started = time.perf_counter()

            def on_epoch(row: dict[str, Any]) -> None:
                done = training_progress(config, int(row["epoch"]), time.perf_counter() - started)
                report(("epoch", row, done))

            outcome = train_model(config, data, run_dir, on_epoch=on_epoch, should_stop=stop.is_set)
            if outcome.checkpoint is None or not then_segment:
                return outcome, None
            stop.clear()  # Cancel during training stopped training; Cancel again stops this
            report(("segment", outcome))
            loaded = load_model(outcome.checkpoint)
            try:
                result = segment_frames(
                    [loaded],
                    frames,
                    on_frame=lambda done, total: report(("frame", done, total)),
                    should_stop=stop.is_set,
                )
            except Cancelled:
                return outcome, None
            return outcome, result

        def done(value: tuple[TrainOutcome, Segmentation | None]) -> None:
            outcome, result = value
            self.outcome = outcome
            self._set_running(False)
            self._progress.value = 100
            line = f"run folder {outcome.run_dir}: stopped by {outcome.stopped_because}"
            if outcome.checkpoint is None:
                line += " before the first epoch ended: no model"
            if result is not None:
                add_layers(
                    self._viewer,
                    result_layers(result, name, axes=axes, scale=scale, translate=translate),
                )
                line += f"; {result.summary()}"
            self._say(line)

        self.history.clear()
        self.outcome = None
        draw_learning_curves(self.figure, self.history)
        self._canvas.draw_idle()
        self._set_running(True)
        self._say(f"writing {name} as a dataset")
        self._job.start(work, on_done=done, on_cancelled=self._cancelled, on_error=self._failed)

    def cancel(self) -> None:
        """Stop training after the current epoch (the best model so far is kept and used), or
        stop segmenting after the current frame."""
        self._job.cancel()
        self._say("cancelling: training stops after the current epoch")

    def _cancelled(self) -> None:
        self._set_running(False)
        self._say("cancelled")

    def _on_message(self, message: Any) -> None:
        kind = message[0]
        if kind == "run":
            _, run_dir, notes = message
            self._say("; ".join([f"training into {run_dir}", *notes]))
        elif kind == "epoch":
            _, row, done = message
            self.history.append(row)
            draw_learning_curves(self.figure, self.history)
            self._canvas.draw_idle()
            self._progress.value = int(100 * done)
            keys = ("train_loss", "val_loss", *MEASURES)  # the rest is in history.csv
            shown = ", ".join(f"{k} {row[k]:.3f}" for k in keys if k in row and row[k] == row[k])
            self._status.value = f"epoch {row['epoch']}: {shown}"
        elif kind == "segment":
            self._progress.value = 0
            self._status.value = f"segmenting with {message[1].checkpoint}"
        elif kind == "frame":
            _, done, total = message
            self._progress.value = int(100 * done / max(total, 1))

    def _set_running(self, running: bool) -> None:
        self._run.enabled = not running
        self._cancel.enabled = running
        if running:
            self._progress.value = 0
