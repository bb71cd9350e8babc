"""The Segment and Train widgets, headless (Qt's offscreen platform), on an image and a movie.

Qt's offscreen platform has no OpenGL, and napari's canvas needs it to draw a layer, so the
widgets work on napari's ``ViewerModel`` (the viewer without its canvas: the same layer list,
``add_*`` methods and events). A full ``napari.Viewer`` without layers checks that napari docks
the widgets from the plugin's manifest.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from napari_testdata import TINY, image, movie, trained_model, write_movie_output

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # headless: no display needed
pytest.importorskip("pytestqt")
pytest.importorskip("napari.qt")

from napari.components import ViewerModel
from napari.layers import Image, Labels, Tracks

from lapseg.napari.widgets import SegmentWidget, TrainWidget

MANIFEST = Path(__file__).resolve().parents[2] / "src" / "lapseg" / "napari" / "napari.yaml"
WAIT_MS = 120_000


@pytest.fixture(scope="module")
def instance_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return trained_model("instances", tmp_path_factory)


@pytest.fixture
def viewer(qtbot) -> ViewerModel:  # qtbot: a QApplication for the widgets
    return ViewerModel()


def _finish(qtbot, widget) -> None:
    qtbot.waitUntil(lambda: not widget.running, timeout=WAIT_MS)


def _segment(qtbot, viewer, model: Path, layer: str, *, probabilities: bool = False):
    widget = SegmentWidget(viewer)
    widget.set_model(model)
    widget._image.value = viewer.layers[layer]
    widget._probabilities.value = probabilities
    widget.run()
    _finish(qtbot, widget)
    return widget


def test_segment_an_image(qtbot, viewer, instance_model):
    viewer.add_image(image()[0], name="cells", scale=(0.5, 0.5))
    widget = _segment(qtbot, viewer, instance_model, "cells", probabilities=True)
    assert widget.status.startswith("cells: ") and "objects in 1 image" in widget.status
    labels = viewer.layers["cells labels"]
    assert isinstance(labels, Labels) and labels.data.shape == (96, 96)
    assert tuple(labels.scale) == (0.5, 0.5)
    probabilities = viewer.layers["cells probabilities"]
    assert isinstance(probabilities, Image) and not probabilities.visible


def test_segment_a_movie_into_labels_and_tracks_and_again_in_place(qtbot, viewer, instance_model):
    viewer.add_image(movie()[0], name="movie")
    widget = _segment(qtbot, viewer, instance_model, "movie")
    assert widget._axes.value == "TYX"
    labels, tracks = viewer.layers["movie labels"], viewer.layers["movie tracks"]
    assert labels.data.shape == (4, 96, 96) and isinstance(tracks, Tracks)
    assert set(np.unique(tracks.data[:, 0])) <= set(np.unique(labels.data)) - {0}
    n_layers = len(viewer.layers)
    _segment(qtbot, viewer, instance_model, "movie")  # a second run replaces its layers
    assert len(viewer.layers) == n_layers


def test_segment_says_what_is_missing(qtbot, viewer, tmp_path):
    widget = SegmentWidget(viewer)
    widget.run()
    assert widget.status == "error: choose an image layer" and not widget.running
    viewer.add_image(image()[0], name="cells")
    widget.set_model(tmp_path / "no-such-run")
    widget.run()
    assert widget.status.startswith("error: choose a model")


def test_cancel_stops_segmenting_without_adding_layers(qtbot, viewer, instance_model):
    viewer.add_image(movie()[0], name="movie")
    widget = SegmentWidget(viewer)
    widget.set_model(instance_model)
    widget.run()
    widget.cancel()  # before the first frame is done: the job stops there
    _finish(qtbot, widget)
    assert widget.status == "cancelled: no layer added"
    assert [layer.name for layer in viewer.layers] == ["movie"]


def _train(qtbot, viewer, settings: list[str], *, cancel: bool = False) -> TrainWidget:
    widget = TrainWidget(viewer)
    widget._settings.value = " ".join(settings)
    widget.run()
    if cancel:
        widget.cancel()
    _finish(qtbot, widget)
    return widget


def test_train_on_an_image_then_segment_it(qtbot, viewer, tmp_path):
    pixels, labels = image()
    viewer.add_image(pixels, name="cells")
    viewer.add_labels(labels, name="cells truth")
    widget = TrainWidget(viewer)
    assert widget.update_annotation() == "1 of 1 images annotated"
    widget._output.value = tmp_path
    widget._settings.value = " ".join(TINY)
    widget.run()
    _finish(qtbot, widget)
    assert widget.outcome is not None and widget.outcome.run_dir == tmp_path / "run"
    assert (tmp_path / "data" / "images" / "cells.tif").is_file()
    assert [row["epoch"] for row in widget.history] == [1, 2, 3, 4]  # the live curve's rows
    assert len(widget.figure.axes[0].lines) >= 1
    assert "stopped by epochs" in widget.status
    assert viewer.layers["cells labels"].data.shape == (96, 96)


def test_train_on_a_sparsely_annotated_movie_then_track(qtbot, viewer):
    pixels, labels = movie()
    sparse = labels.copy()
    sparse[1] = 0
    viewer.add_image(pixels, name="movie")
    viewer.add_labels(sparse, name="annotations")
    widget = _train(qtbot, viewer, TINY)
    assert widget._annotated.value == "3 of 4 frames annotated (all-zero frames are unannotated)"
    assert widget.outcome is not None and not widget.outcome.cancelled
    assert viewer.layers["movie labels"].data.shape == (4, 96, 96)
    assert isinstance(viewer.layers["movie tracks"], Tracks)


def test_cancel_stops_training_after_an_epoch_and_still_segments(qtbot, viewer):
    pixels, labels = image()
    viewer.add_image(pixels, name="cells")
    viewer.add_labels(labels, name="truth")
    widget = _train(qtbot, viewer, [*TINY, "train.epochs=100"], cancel=True)
    assert widget.outcome is not None and widget.outcome.stopped_because == "cancelled"
    assert len(widget.history) == 1
    assert "cells labels" in viewer.layers


def test_train_says_when_labels_do_not_fit(qtbot, viewer):
    viewer.add_image(movie()[0], name="movie")
    viewer.add_labels(np.zeros((96, 96), np.uint16), name="one frame")
    widget = TrainWidget(viewer)
    assert "needs labels of axes TYX" in widget.update_annotation()
    widget.run()
    assert widget.status.startswith("error: ") and not widget.running


@pytest.fixture
def plugin() -> None:
    """The lapseg plugin known to napari (registered by hand in an editable install made before
    the ``napari.manifest`` entry point existed)."""
    npe2 = pytest.importorskip("npe2")
    plugins = npe2.PluginManager.instance()
    if "lapseg" not in plugins:
        plugins.register(npe2.PluginManifest.from_file(MANIFEST))


def test_napari_opens_lapseg_folders_with_the_plugins_reader(
    viewer, plugin, tmp_path, instance_model
):
    folder = write_movie_output(tmp_path / "movie")
    viewer.open(str(folder), plugin="lapseg")
    assert {type(layer).__name__ for layer in viewer.layers} == {"Image", "Labels", "Tracks"}
    assert viewer.layers["movie tracks"].graph == {2: [1]}
    viewer.open(str(instance_model), plugin="lapseg")
    assert viewer.layers[-1].rgb  # the run's learning curves


def test_napari_docks_both_widgets_from_the_manifest(qtbot, plugin):
    napari = pytest.importorskip("napari")
    window = napari.Viewer(show=False)
    try:
        _, segment = window.window.add_plugin_dock_widget("lapseg", "Segment")
        _, train = window.window.add_plugin_dock_widget("lapseg", "Train")
        assert isinstance(segment, SegmentWidget) and isinstance(train, TrainWidget)
    finally:
        window.close()
