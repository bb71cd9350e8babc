"""A napari reader for the folders lapseg writes (no Qt here).

Drop one of these on napari (or ``napari PATH``):

- a movie's prediction folder ``OUT/NAME/`` of ``lapseg predict`` (``labels.tif`` or
  ``masks.tif``, optionally ``probabilities.tif``, and ``tracks_napari.csv`` +
  ``tracks_graph.json``): a labels layer, a probability layer and a tracks layer with its
  division graph;
- a ``lapseg predict`` output folder ``OUT/`` (``masks/``, ``labels/``, ``probabilities/`` of
  still images, and movie folders): those layers for every image and movie;
- a run folder of ``lapseg train`` (``config.yaml`` + ``best.pt``): its learning curves
  (``curves.png``) and, when the run held out test images, those images with their predicted
  labels and the truth.

Any other path is left to the other readers (:func:`get_reader` returns None).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from lapseg.errors import LapsegInputError
from lapseg.io.discovery import output_stem
from lapseg.io.images import is_image_file, read_image, read_mask
from lapseg.napari.layers import LayerData, display_mask

__all__ = [
    "MovieRead",
    "get_reader",
    "is_movie_output",
    "is_prediction_folder",
    "is_run_folder",
    "movie_result",
    "read_lapseg",
    "read_napari_tracks",
]

ReaderFunction = Callable[[str | list[str]], list[LayerData]]


@dataclass(frozen=True)
class MovieRead:
    """A movie's prediction folder, read back.

    Attributes
    ----------
    labels : (T, Y, X) ndarray
        ``labels.tif`` (instances, one label per track), or ``masks.tif`` (0/1 or classes).
    instances : bool
        Whether ``labels`` came from ``labels.tif``.
    probabilities : ndarray or None
        ``probabilities.tif``: ``(T, Y, X)`` or ``(T, K, Y, X)``.
    tracks : (M, 4) ndarray or None
        ``track_id, t, y, x`` from ``tracks_napari.csv``.
    graph : dict
        ``{daughter: [parent]}`` from ``tracks_graph.json``.
    """

    labels: np.ndarray
    instances: bool
    probabilities: np.ndarray | None = None
    tracks: np.ndarray | None = None
    graph: dict[int, list[int]] = field(default_factory=dict)


def is_movie_output(path: Path) -> bool:
    """A movie's prediction folder (``labels.tif`` or ``masks.tif`` inside)."""
    return path.is_dir() and any((path / n).is_file() for n in ("labels.tif", "masks.tif"))


def is_prediction_folder(path: Path) -> bool:
    """A ``lapseg predict`` output folder: ``masks/`` of still images, or movie folders."""
    if not path.is_dir():
        return False
    return (path / "masks").is_dir() or any(is_movie_output(p) for p in path.iterdir())


def is_run_folder(path: Path) -> bool:
    """A ``lapseg train`` run folder (``config.yaml`` and a checkpoint)."""
    return (
        path.is_dir()
        and (path / "config.yaml").is_file()
        and any((path / name).is_file() for name in ("best.pt", "last.pt"))
    )


def read_napari_tracks(
    csv_path: Path, graph_path: Path | None = None
) -> tuple[np.ndarray, dict[int, list[int]]]:
    """``tracks_napari.csv`` (``track_id,t,y,x``) and ``tracks_graph.json`` as napari tracks
    ``data`` ``(M, 4)`` and ``graph``."""
    with csv_path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    try:
        data = np.array(
            [[float(r["track_id"]), float(r["t"]), float(r["y"]), float(r["x"])] for r in rows],
            dtype=np.float64,
        ).reshape(-1, 4)
    except (KeyError, ValueError) as error:
        raise LapsegInputError(f"not a napari tracks table ({error})", path=csv_path) from None
    graph: dict[int, list[int]] = {}
    if graph_path is not None and graph_path.is_file():
        stored = json.loads(graph_path.read_text())
        graph = {int(k): [int(p) for p in v] for k, v in stored.items()}
    return data, graph


def movie_result(folder: Path) -> MovieRead:
    """Read the prediction folder of one movie (see :func:`lapseg.inference.movies.predict_movie`)."""
    instances = (folder / "labels.tif").is_file()
    labels = tifffile.imread(folder / ("labels.tif" if instances else "masks.tif"))
    if not instances:
        labels = display_mask(labels)
    probs_path = folder / "probabilities.tif"
    tracks: np.ndarray | None = None
    graph: dict[int, list[int]] = {}
    if (folder / "tracks_napari.csv").is_file():
        tracks, graph = read_napari_tracks(
            folder / "tracks_napari.csv", folder / "tracks_graph.json"
        )
    return MovieRead(
        labels=labels,
        instances=instances,
        probabilities=tifffile.imread(probs_path) if probs_path.is_file() else None,
        tracks=tracks,
        graph=graph,
    )


def _movie_layers(folder: Path) -> list[LayerData]:
    read = movie_result(folder)
    name = folder.name
    layers: list[LayerData] = []
    if read.probabilities is not None:
        probs = read.probabilities
        kwargs: dict[str, Any] = {"name": f"{name} probabilities", "visible": False}
        if probs.ndim == 4:
            kwargs.update(
                channel_axis=1, name=[f"{name} P(class {k})" for k in range(probs.shape[1])]
            )
        layers.append((probs, kwargs, "image"))
    kind = "labels" if read.instances else "mask"
    layers.append((read.labels, {"name": f"{name} {kind}"}, "labels"))
    if read.tracks is not None and len(read.tracks):
        layers.append(
            (
                read.tracks,
                {"name": f"{name} tracks", "graph": read.graph, "tail_length": 5},
                "tracks",
            )
        )
    return layers


def _image_layer(path: Path, name: str, **kwargs: Any) -> LayerData:
    """A 2D image file as an image layer (channels split into layers)."""
    array = read_image(path).array  # (C, Y, X)
    if array.shape[0] == 1:
        return (array[0], {"name": name, **kwargs}, "image")
    if array.shape[0] in (3, 4) and array.dtype == np.uint8:
        return (np.moveaxis(array[:3], 0, -1), {"name": name, "rgb": True, **kwargs}, "image")
    names = [f"{name} [{c}]" for c in range(array.shape[0])]
    return (array, {"name": names, "channel_axis": 0, **kwargs}, "image")


def _files(folder: Path) -> dict[str, Path]:
    """Image files of ``folder`` by stem."""
    if not folder.is_dir():
        return {}
    return {output_stem(p): p for p in sorted(folder.iterdir()) if is_image_file(p)}


def _still_layers(folder: Path) -> list[LayerData]:
    """``masks/``, ``labels/`` and ``probabilities/`` of a ``lapseg predict`` output folder."""
    masks, labels, probs = (_files(folder / kind) for kind in ("masks", "labels", "probabilities"))
    layers: list[LayerData] = []
    for stem in sorted(set(masks) | set(labels)):
        if stem in probs:
            layers.append(_image_layer(probs[stem], f"{stem} probabilities", visible=False))
        if stem in labels:
            layers.append((read_mask(labels[stem]), {"name": f"{stem} labels"}, "labels"))
        else:
            layers.append(
                (display_mask(read_mask(masks[stem])), {"name": f"{stem} mask"}, "labels")
            )
    return layers


def _prediction_layers(folder: Path) -> list[LayerData]:
    layers = _still_layers(folder)
    for movie in sorted(p for p in folder.iterdir() if is_movie_output(p)):
        layers.extend(_movie_layers(movie))
    return layers


def _run_layers(folder: Path) -> list[LayerData]:
    """The learning curves and the held-out test split of a run folder."""
    layers: list[LayerData] = []
    curves = folder / "curves.png"
    if curves.is_file():
        layers.append(_image_layer(curves, f"{folder.name} learning curves"))
    test = folder / "test"
    images, truth = _files(test / "images"), _files(test / "truth")
    for stem, path in images.items():
        layers.append(_image_layer(path, stem))
        if stem in truth:
            layers.append(
                (read_mask(truth[stem]), {"name": f"{stem} truth", "visible": False}, "labels")
            )
    if (test / "predictions").is_dir():
        layers.extend(_still_layers(test / "predictions"))
    if not layers:
        raise LapsegInputError(
            "the run folder has no curves.png and no held-out test images to show", path=folder
        )
    return layers


def read_lapseg(path: str | list[str]) -> list[LayerData]:
    """The layers of a lapseg folder (see the module docstring)."""
    paths = [path] if isinstance(path, str) else list(path)
    layers: list[LayerData] = []
    for item in map(Path, paths):
        if is_movie_output(item):
            layers.extend(_movie_layers(item))
        elif is_run_folder(item):
            layers.extend(_run_layers(item))
        elif is_prediction_folder(item):
            layers.extend(_prediction_layers(item))
        else:
            raise LapsegInputError("not a lapseg run or prediction folder", path=item)
    return layers


def get_reader(path: str | list[str]) -> ReaderFunction | None:
    """napari's reader hook: :func:`read_lapseg` for lapseg folders, else None."""
    paths = [path] if isinstance(path, str) else list(path)
    if not paths:
        return None
    for item in map(Path, paths):
        if not (is_movie_output(item) or is_run_folder(item) or is_prediction_folder(item)):
            return None
    return read_lapseg
