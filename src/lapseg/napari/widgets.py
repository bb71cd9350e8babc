"""The napari dock widgets *Segment* and *Train* (magicgui; needs ``lapseg[napari]``).

Thin by design: a widget reads its fields and the chosen layers on the GUI thread, hands plain
arrays to a background job (napari's thread worker) that calls the pure functions of
:mod:`lapseg.napari.segment` and :mod:`lapseg.napari.train`, and adds the layer data tuples of
:func:`lapseg.napari.layers.result_layers` when the job returns. Progress messages travel from
the worker to the GUI thread through a queue that a timer drains, so no widget is touched from
the worker thread; Cancel sets a flag the job checks after every frame and every epoch.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
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
    ProgressBar,
    PushButton,
)
from matplotlib.figure import Figure
from napari.layers import Image, Labels, Layer
from napari.qt.threading import create_worker
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QSizePolicy

from lapseg.errors import LapsegInputError
from lapseg.inference.predict import load_model
from lapseg.napari.curves import MEASURES, draw_learning_curves
from lapseg.napari.layers import (
    LayerData,
    Segmentation,
    annotation_summary,
    axes_choices,
    label_frames,
    layer_frames,
    result_layers,
)
from lapseg.napari.segment import Cancelled, SegmentOptions, segment_frames
from lapseg.napari.train import (
    TrainOutcome,
    output_folders,
    parse_settings,
    train_model,
    training_config,
    training_progress,
    write_training_data,
)

__all__ = ["SegmentWidget", "TrainWidget", "add_layers"]

log = logging.getLogger(__name__)

Report = Callable[[Any], None]
Work = Callable[[Report, threading.Event], Any]

MODEL_KINDS = ("run folder", "checkpoint or exported file")
DEVICES = ("auto", "cpu", "cuda", "mps")


@dataclass(frozen=True)
class _Ended:
    """How a job's work ended: its value, or cancelled."""

    value: Any = None
    cancelled: bool = False


class BackgroundJob:
    """One job at a time on napari's thread pool, with progress and a cancel flag.

    ``work(report, stop)`` runs in the worker thread: ``report(message)`` queues a message for
    ``on_message`` (called on the GUI thread by a timer), ``stop`` is set by :meth:`cancel`.
    A :class:`~lapseg.napari.segment.Cancelled` raised by the work ends it quietly.
    """

    def __init__(self, on_message: Callable[[Any], None]) -> None:
        self._on_message = on_message
        self._messages: queue.Queue[Any] = queue.Queue()
        self._stop = threading.Event()
        self._timer = QTimer()
        self._timer.setInterval(50)
        self._timer.timeout.connect(self._drain)
        self.running = False

    def start(
        self,
        work: Work,
        *,
        on_done: Callable[[Any], None],
        on_cancelled: Callable[[], None],
        on_error: Callable[[BaseException], None],
    ) -> None:
        if self.running:
            raise RuntimeError("a job is already running")
        self._stop.clear()
        self.running = True

        def run() -> _Ended:
            try:
                return _Ended(work(self._messages.put, self._stop))
            except Cancelled:  # a KeyboardInterrupt: it must not escape the worker thread
                return _Ended(cancelled=True)

        def returned(ended: _Ended) -> None:
            self._drain()
            if ended.cancelled:
                on_cancelled()
            else:
                on_done(ended.value)

        def errored(error: BaseException) -> None:
            self._drain()
            on_error(error)

        worker = create_worker(run, _start_thread=False, _ignore_errors=True)
        worker.returned.connect(returned)
        worker.errored.connect(errored)
        worker.finished.connect(self._finished)
        self._timer.start()
        worker.start()

    def cancel(self) -> None:
        self._stop.set()

    def _drain(self) -> None:
        while True:
            try:
                message = self._messages.get_nowait()
            except queue.Empty:
                return
            self._on_message(message)

    def _finished(self) -> None:
        self._timer.stop()
        self._drain()
        self.running = False


def add_layers(viewer: Any, layers: list[LayerData]) -> list[Layer]:
    """Add layer data tuples to ``viewer``, replacing layers of the same names (a new run of a
    widget updates its result layers instead of piling up copies)."""
    added: list[Layer] = []
    for data, kwargs, kind in layers:
        names = kwargs["name"] if isinstance(kwargs["name"], list) else [kwargs["name"]]
        for name in names:
            if name in viewer.layers:
                viewer.layers.remove(name)
        result = getattr(viewer, f"add_{kind}")(data, **kwargs)
        added.extend(result if isinstance(result, list) else [result])
    return added


def _layer_array(layer: Layer) -> Any:
    """The full-resolution data of a layer."""
    return layer.data[0] if getattr(layer, "multiscale", False) else layer.data


def _layer_axes(layer: Layer) -> list[str]:
    return axes_choices(len(_layer_array(layer).shape), rgb=bool(getattr(layer, "rgb", False)))


def _placement(layer: Layer) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The layer's scale and translate, one value per axis of its data (RGB: C gets 1 and 0)."""
    rgb = bool(getattr(layer, "rgb", False))
    scale = tuple(float(s) for s in layer.scale) + ((1.0,) if rgb else ())
    translate = tuple(float(t) for t in layer.translate) + ((0.0,) if rgb else ())
    return scale, translate


def _path_or_none(widget: FileEdit) -> Path | None:
    text = str(widget.line_edit.value).strip()
    return Path(text).expanduser() if text else None


class _Panel(Container):
    """What both widgets share: the viewer, layer pickers, status, progress and the job."""

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__(labels=True)
        self._viewer = napari_viewer
        self._status = Label(value="")
        self._status.native.setWordWrap(True)  # long lines wrap instead of widening the dock
        self._status.native.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self._progress = ProgressBar(value=0, min=0, max=100, label="Progress")
        self._job = BackgroundJob(self._on_message)
        events = napari_viewer.layers.events
        for event in (events.inserted, events.removed):
            event.connect(self._layers_changed)

    def _layers_changed(self, *_: Any) -> None:
        self.reset_choices()

    def _layers_of(self, kind: type[Layer]) -> list[tuple[str, Layer]]:
        layers: list[Layer] = list(self._viewer.layers)
        return [(layer.name, layer) for layer in layers if isinstance(layer, kind)]

    def _say(self, text: str) -> None:
        self._status.value = text
        log.info("%s", text)

    def _on_message(self, message: Any) -> None:
        raise NotImplementedError

    @property
    def running(self) -> bool:
        """A job is running (tests wait for this to turn false)."""
        return self._job.running

    @property
    def status(self) -> str:
        return str(self._status.value)

    def _set_running(self, running: bool) -> None:
        raise NotImplementedError

    def _failed(self, error: BaseException) -> None:
        self._set_running(False)
        if isinstance(error, LapsegInputError):
            self._say(f"error: {error}")
        else:
            log.error("lapseg job failed", exc_info=error)
            self._say(f"failed: {type(error).__name__}: {error}")


class SegmentWidget(_Panel):
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
        return _layer_axes(layer) if layer is not None else []

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
        model_path = _path_or_none(self._model)
        try:
            if layer is None:
                raise LapsegInputError("choose an image layer")
            if model_path is None or not model_path.exists():
                raise LapsegInputError(f"choose a model: {model_path or 'no path given'}")
            axes = str(self._axes.value)
            frames = layer_frames(_layer_array(layer), axes)
            overrides = parse_settings(self._settings.value)
        except LapsegInputError as error:
            self._say(f"error: {error}")
            return
        options = SegmentOptions(probabilities=self._probabilities.value, track=self._track.value)
        device = str(self._device.value)
        scale, translate = _placement(layer)
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


class TrainWidget(_Panel):
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
        return _layer_axes(layer) if layer is not None else []

    def _image_changed(self, _: Any) -> None:
        self._axes.reset_choices()
        self.update_annotation()

    def _frames_and_labels(self) -> tuple[Any, np.ndarray]:
        image, labels = self._image.value, self._labels_layer.value
        if image is None or labels is None:
            raise LapsegInputError("choose an image layer and a labels layer")
        axes = str(self._axes.value)
        frames = layer_frames(_layer_array(image), axes)
        return frames, label_frames(_layer_array(labels), axes, frames)

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
        scale, translate = _placement(image)
        minutes, output = float(self._minutes.value), _path_or_none(self._output)
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
