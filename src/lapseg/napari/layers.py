"""Between napari layers and lapseg arrays: a layer's axes, its frames, results as layer data.

Pure functions on arrays (no Qt, no napari import), so the widgets stay thin and these are
tested without a display. A napari layer says nothing about which of its axes is time, depth or
channel, so the widgets ask (:func:`axes_choices` lists what fits the layer, the first being the
default shown) and :func:`layer_frames` reorders the pixels by the chosen axes string, as
:mod:`lapseg.axes` does for files.

Results go back to napari as *layer data tuples* ``(data, kwargs, layer_type)`` (what napari
readers return and ``viewer._add_layer_from_data`` takes), made by :func:`result_layers`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lapseg.axes import to_canonical, validate_axes
from lapseg.errors import LapsegInputError

__all__ = [
    "Frames",
    "LayerData",
    "Segmentation",
    "annotated_frames",
    "annotation_summary",
    "axes_choices",
    "display_mask",
    "label_frames",
    "layer_frames",
    "result_layers",
    "safe_name",
]

LayerData = tuple[Any, dict[str, Any], str]
"""napari's layer data tuple: ``(data, layer keyword arguments, layer type)``."""

_CHOICES: dict[tuple[int, bool], list[str]] = {
    (2, False): ["YX"],
    (3, False): ["TYX", "ZYX", "CYX", "YXC"],
    (4, False): ["TCYX", "ZCYX", "CTYX", "CZYX", "TYXC", "ZYXC"],
    (3, True): ["YXC"],
    (4, True): ["TYXC", "ZYXC"],
}


def axes_choices(ndim: int, *, rgb: bool = False) -> list[str]:
    """The axes strings a layer of ``ndim`` dimensions may have; the first is the default.

    A 3D layer is taken as a movie (``TYX``) unless the user picks ``ZYX`` (a z-stack, slices
    segmented one by one) or channels; an RGB layer (napari's ``rgb``) has its channels last.

    >>> axes_choices(3)
    ['TYX', 'ZYX', 'CYX', 'YXC']
    >>> axes_choices(3, rgb=True)
    ['YXC']
    >>> axes_choices(5)
    []
    """
    return list(_CHOICES.get((ndim, rgb), []))


@dataclass(frozen=True)
class Frames:
    """A layer's pixels as the 2D frames lapseg predicts one by one.

    Attributes
    ----------
    array : (N, C, Y, X) ndarray
        ``N == 1`` for a single image.
    axis : {"T", "Z"} or None
        What the frames are: time points (tracked), z-slices, or None for a single 2D image.
    """

    array: np.ndarray
    axis: str | None

    @property
    def n_frames(self) -> int:
        return int(self.array.shape[0])

    @property
    def n_channels(self) -> int:
        return int(self.array.shape[1])


def _checked_axes(axes: str, ndim: int) -> str:
    axes = validate_axes(axes, ndim=ndim)
    if "T" in axes and "Z" in axes:
        raise LapsegInputError(
            f"axes {axes!r}: lapseg segments 2D frames of a movie or of a z-stack, not both; "
            "split the layer into one movie per z-slice"
        )
    return axes


def layer_frames(data: Any, axes: str) -> Frames:
    """The frames of a layer's data whose dimensions are named by ``axes``.

    Parameters
    ----------
    data : array_like
        The layer's data (a NumPy or Dask array; read into memory).
    axes : str
        One of :func:`axes_choices`, e.g. ``"YX"``, ``"CYX"``, ``"TYX"``, ``"ZCYX"``.

    Returns
    -------
    Frames

    >>> frames = layer_frames(np.zeros((4, 2, 8, 9)), "TCYX")
    >>> frames.array.shape, frames.axis
    ((4, 2, 8, 9), 'T')
    >>> layer_frames(np.zeros((8, 9, 3)), "YXC").array.shape
    (1, 3, 8, 9)
    """
    array = np.asarray(data)
    axes = _checked_axes(axes, array.ndim)
    canonical = to_canonical(array, axes)  # (T, Z, C, Y, X)
    t, z, c, y, x = canonical.shape
    axis = "T" if "T" in axes else "Z" if "Z" in axes else None
    return Frames(np.ascontiguousarray(canonical.reshape(t * z, c, y, x)), axis)


def label_frames(labels: Any, image_axes: str, frames: Frames) -> np.ndarray:
    """A labels layer's data as ``(N, Y, X)`` label frames matching the image's ``frames``.

    The labels have the image's axes without ``C``; their size must equal the image's.

    >>> frames = layer_frames(np.zeros((3, 2, 8, 9)), "TCYX")
    >>> label_frames(np.zeros((3, 8, 9), dtype=np.uint8), "TCYX", frames).shape
    (3, 8, 9)
    """
    array = np.asarray(labels)
    label_axes = image_axes.upper().replace("C", "")
    expected = (frames.n_frames, *frames.array.shape[2:])
    if array.ndim != len(label_axes):
        raise LapsegInputError(
            f"the labels layer has shape {array.shape} but the image ({image_axes}) needs "
            f"labels of axes {label_axes} (shape {expected if frames.axis else expected[1:]})"
        )
    if not np.issubdtype(array.dtype, np.integer):
        raise LapsegInputError(f"the labels layer must hold integers, not {array.dtype}")
    stack = to_canonical(array, label_axes)  # (T, Z, 1, Y, X)
    stack = stack.reshape(-1, *stack.shape[-2:])
    if stack.shape != expected:
        raise LapsegInputError(
            f"the labels layer has shape {array.shape} but the image's frames are "
            f"{expected[1:]} pixels x {expected[0]}: paint the labels on the same grid"
        )
    if int(stack.min(initial=0)) < 0:
        raise LapsegInputError("the labels layer has negative labels")
    return np.ascontiguousarray(stack)


def annotated_frames(labels: np.ndarray) -> list[int]:
    """Indices of the ``(N, Y, X)`` label frames holding any object: all-zero frames are
    unannotated (the rule of ``lapseg train``, ``data.empty_masks=unannotated``).

    >>> stack = np.zeros((4, 5, 5), dtype=np.uint16)
    >>> stack[1, 2, 2] = stack[3, 0, 0] = 7
    >>> annotated_frames(stack)
    [1, 3]
    """
    return [int(t) for t in np.flatnonzero(np.asarray(labels).reshape(len(labels), -1).any(1))]


def annotation_summary(labels: np.ndarray, axis: str | None) -> str:
    """What the Train widget says about a labels layer, e.g. ``"2 of 4 frames annotated"``.

    >>> annotation_summary(np.zeros((4, 5, 5), dtype=np.uint8), "T")
    '0 of 4 frames annotated: paint some cells first'
    """
    n = len(labels)
    done = len(annotated_frames(labels))
    what = {"T": "frames", "Z": "z-slices"}.get(axis or "", "images")
    line = f"{done} of {n} {what} annotated"
    if not done:
        return f"{line}: paint some cells first"
    if n > 1 and done < n:
        return f"{line} (all-zero {what} are unannotated)"
    return line


def display_mask(mask: np.ndarray) -> np.ndarray:
    """A foreground mask written as 0/255 shown as labels 0/1; class maps unchanged.

    >>> display_mask(np.array([[0, 255]], dtype=np.uint8)).tolist()
    [[0, 1]]
    >>> display_mask(np.array([[0, 2]], dtype=np.uint8)).tolist()
    [[0, 2]]
    """
    values = np.unique(mask)
    if values.size and int(values.max()) == 255 and set(values.tolist()) <= {0, 255}:
        return (mask > 0).astype(np.uint8)
    return mask


@dataclass(frozen=True)
class Segmentation:
    """What the Segment widget shows for one image layer.

    Attributes
    ----------
    labels : (Y, X) or (N, Y, X) ndarray of int
        Instance labels (a movie: one label per track in every frame), or the mask (0/1
        foreground, or class indices) of a model that does not predict instances.
    axis : {"T", "Z"} or None
        As in :class:`Frames`.
    instances : bool
        Whether ``labels`` are instances (else a mask).
    probabilities : ndarray or None
        Foreground probability ``(Y, X)`` / ``(N, Y, X)``, or class probabilities
        ``(K, Y, X)`` / ``(N, K, Y, X)`` of a class model.
    tracks : (M, 4) ndarray or None
        napari tracks data ``track_id, t, y, x`` (movies of an instance model).
    graph : dict
        ``{daughter track id: [parent track id]}``.
    """

    labels: np.ndarray
    axis: str | None
    instances: bool
    probabilities: np.ndarray | None = None
    tracks: np.ndarray | None = None
    graph: dict[int, list[int]] = field(default_factory=dict)

    def summary(self) -> str:
        """One line for the widget's status, e.g. ``"12 objects in 4 frames, 5 tracks"``."""
        if not self.instances:
            return f"mask of {self._size()}"
        frames = np.reshape(self.labels, (-1, *self.labels.shape[-2:]))
        n_objects = sum(int(np.unique(f[f > 0]).size) for f in frames)
        line = f"{n_objects} objects in {self._size()}"
        if self.tracks is not None:
            n_tracks = int(np.unique(self.tracks[:, 0]).size) if len(self.tracks) else 0
            line += f", {n_tracks} tracks"
        return line

    def _size(self) -> str:
        if self.axis is None:
            return "1 image"
        return f"{self.labels.shape[0]} {'frames' if self.axis == 'T' else 'z-slices'}"


def _kept_dims(values: tuple[float, ...] | None, axes: str) -> tuple[float, ...] | None:
    """The entries of a per-axis ``values`` (a layer's scale) for the axes without ``C``."""
    if values is None or len(values) != len(axes):
        return None
    return tuple(float(v) for a, v in zip(axes, values, strict=True) if a != "C")


def result_layers(
    result: Segmentation,
    name: str,
    *,
    axes: str | None = None,
    scale: tuple[float, ...] | None = None,
    translate: tuple[float, ...] | None = None,
) -> list[LayerData]:
    """The labels, probability and tracks layers of a segmentation of the layer ``name``.

    ``scale`` and ``translate`` are the image layer's (one value per axis of ``axes``); the
    result layers get those of the axes they keep, so they lie on the image.

    >>> result = Segmentation(np.zeros((2, 4, 4), dtype=np.uint16), "T", True,
    ...                       tracks=np.array([[1, 0, 2, 2], [1, 1, 2, 3]]))
    >>> [(kwargs["name"], kind) for _, kwargs, kind in result_layers(result, "cells")]
    [('cells labels', 'labels'), ('cells tracks', 'tracks')]
    """
    place: dict[str, Any] = {}
    if axes is not None:
        for key, values in (("scale", scale), ("translate", translate)):
            kept = _kept_dims(values, axes.upper())
            if kept is not None:
                place[key] = kept
    layers: list[LayerData] = []
    if result.probabilities is not None:
        probs = result.probabilities
        class_axis = probs.ndim - 3 if probs.ndim == result.labels.ndim + 1 else None
        kwargs: dict[str, Any] = {"blending": "additive", "visible": False, **place}
        if class_axis is None:
            kwargs.update(name=f"{name} probabilities", colormap="magma", contrast_limits=(0, 1))
        else:  # one layer per class
            n_classes = probs.shape[class_axis]
            kwargs.update(
                channel_axis=class_axis, name=[f"{name} P(class {k})" for k in range(n_classes)]
            )
        layers.append((probs, kwargs, "image"))
    layers.append(
        (
            result.labels,
            {"name": f"{name} labels" if result.instances else f"{name} mask", **place},
            "labels",
        )
    )
    if result.tracks is not None and len(result.tracks):
        # tracks are (track_id, t, y, x): scale and translate of (t, y, x), the labels' dims
        kwargs = {"name": f"{name} tracks", "graph": dict(result.graph), "tail_length": 5}
        layers.append((result.tracks, {**kwargs, **place}, "tracks"))
    return layers


_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def safe_name(name: str) -> str:
    """A layer name as a file stem: letters, digits, ``_ . -`` (``"layer"`` if nothing is left).

    >>> safe_name("cells [1]/raw")
    'cells_1_raw'
    """
    return _UNSAFE.sub("_", name).strip("_.") or "layer"
