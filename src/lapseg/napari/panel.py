"""What the napari widgets share: a background job with a message queue, layer helpers and the
panel (viewer, layer pickers, status line, progress bar) both widgets build on.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from magicgui.widgets import Container, FileEdit, Label, ProgressBar
from napari.layers import Layer
from napari.qt.threading import create_worker
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QSizePolicy

from lapseg.errors import LapsegInputError
from lapseg.napari.layers import LayerData, axes_choices
from lapseg.napari.segment import Cancelled

__all__ = [
    "BackgroundJob",
    "Panel",
    "Report",
    "add_layers",
    "layer_array",
    "layer_axes",
    "path_or_none",
    "placement",
]

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


def layer_array(layer: Layer) -> Any:
    """The full-resolution data of a layer."""
    return layer.data[0] if getattr(layer, "multiscale", False) else layer.data


def layer_axes(layer: Layer) -> list[str]:
    return axes_choices(len(layer_array(layer).shape), rgb=bool(getattr(layer, "rgb", False)))


def placement(layer: Layer) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The layer's scale and translate, one value per axis of its data (RGB: C gets 1 and 0)."""
    rgb = bool(getattr(layer, "rgb", False))
    scale = tuple(float(s) for s in layer.scale) + ((1.0,) if rgb else ())
    translate = tuple(float(t) for t in layer.translate) + ((0.0,) if rgb else ())
    return scale, translate


def path_or_none(widget: FileEdit) -> Path | None:
    text = str(widget.line_edit.value).strip()
    return Path(text).expanduser() if text else None


class Panel(Container):
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
