"""Segment a layer's frames with lapseg's own prediction path (no Qt here).

A single image goes through :func:`~lapseg.inference.predict.predict_probabilities` and the
model's rule (:func:`~lapseg.inference.predict.model_instances`, or
:func:`~lapseg.inference.predict.model_mask` for models that do not predict instances). A movie
or z-stack goes through :func:`~lapseg.inference.movies.predict_movie`, exactly as ``lapseg
predict`` runs a stack file (temporal context, tracking with divisions, the same outputs): the
frames are written to a temporary TIFF stack, predicted, and the results read back
(:func:`lapseg.napari.reader.movie_result`); the temporary folder is removed.

``on_frame(done, total)`` reports progress after each frame; ``should_stop()`` is asked before
each frame and, when true, :class:`Cancelled` is raised (a movie's partial outputs are removed).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from lapseg.config import INSTANCE_TARGETS, PredictConfig
from lapseg.inference.movies import MovieOutputs, predict_movie
from lapseg.inference.outputs import foreground_probability
from lapseg.inference.predict import (
    LoadedModel,
    image_zoom,
    model_instances,
    model_mask,
    predict_probabilities,
)
from lapseg.io.images import write_tiff
from lapseg.io.movies import discover_movies
from lapseg.napari.layers import Frames, Segmentation, display_mask
from lapseg.napari.reader import movie_result

__all__ = ["Cancelled", "SegmentOptions", "probability_view", "segment_frames"]

ProgressCallback = Callable[[int, int], None]
StopCheck = Callable[[], bool]


class Cancelled(KeyboardInterrupt):
    """The user pressed Cancel.

    A ``KeyboardInterrupt`` so that lapseg's interrupt paths run as on Ctrl-C (training saves
    ``last.pt``; a movie's partial outputs are removed); the widgets catch it.
    """


@dataclass(frozen=True)
class SegmentOptions:
    """What the Segment widget asks for besides the labels."""

    probabilities: bool = False
    """Also return the probability map."""
    track: bool = True
    """Link a movie's instances into tracks (movies of 2 or more frames, instance models)."""
    predict: PredictConfig | None = None
    """Tiling and threshold settings; default: those stored with the model."""


def probability_view(loaded: LoadedModel, prob: np.ndarray) -> np.ndarray:
    """What the probabilities layer shows of one ``(K, Y, X)`` map: the foreground probability
    ``(Y, X)`` of one-channel and instance (3-class, distance) models, else the ``K`` class
    probabilities."""
    target = loaded.config.data.target
    if prob.shape[0] == 1 or target in INSTANCE_TARGETS:
        return foreground_probability(prob, target=target)
    return prob


def _stop_check(should_stop: StopCheck | None) -> None:
    if should_stop is not None and should_stop():
        raise Cancelled


def segment_frames(
    models: Sequence[LoadedModel],
    frames: Frames,
    *,
    options: SegmentOptions = SegmentOptions(),
    on_frame: ProgressCallback | None = None,
    should_stop: StopCheck | None = None,
) -> Segmentation:
    """Labels (and probabilities, tracks) of ``frames`` as ``lapseg predict`` makes them.

    Parameters
    ----------
    models : sequence of LoadedModel
        One model or an ensemble (:func:`lapseg.inference.predict.load_model`).
    frames : Frames
        From :func:`lapseg.napari.layers.layer_frames`.
    options : SegmentOptions
    on_frame, should_stop : callable, optional
        Progress ``(done, total)`` and cancellation (see the module docstring).

    Raises
    ------
    Cancelled
        ``should_stop()`` became true.
    """
    if not models:
        raise ValueError("no model given")
    if frames.n_frames > 1:
        return _segment_movie(models, frames, options, on_frame, should_stop)
    result = _segment_image(models, frames.array[0], options, on_frame, should_stop)
    if frames.axis is None:
        return result
    return replace(  # a one-frame movie or stack keeps its frame axis
        result,
        axis=frames.axis,
        labels=result.labels[None],
        probabilities=None if result.probabilities is None else result.probabilities[None],
    )


def _segment_image(
    models: Sequence[LoadedModel],
    image: np.ndarray,
    options: SegmentOptions,
    on_frame: ProgressCallback | None,
    should_stop: StopCheck | None,
) -> Segmentation:
    """One ``(C, Y, X)`` image."""
    _stop_check(should_stop)
    first = models[0]
    prob = predict_probabilities(models, image, predict=options.predict)
    instances = first.config.data.task == "instances"
    if instances:
        zoom, _ = image_zoom(first, None, options.predict)  # predict.scale, if set
        labels = model_instances(first, prob, predict=options.predict, zoom=zoom)
    else:
        labels = display_mask(model_mask(first, prob, predict=options.predict))
    if on_frame is not None:
        on_frame(1, 1)
    return Segmentation(
        labels=labels,
        axis=None,
        instances=instances,
        probabilities=probability_view(first, prob) if options.probabilities else None,
    )


def _segment_movie(
    models: Sequence[LoadedModel],
    frames: Frames,
    options: SegmentOptions,
    on_frame: ProgressCallback | None,
    should_stop: StopCheck | None,
) -> Segmentation:
    """A movie or z-stack through :func:`lapseg.inference.movies.predict_movie`."""
    first = models[0]
    instances = first.config.data.task == "instances"
    track = options.track and instances and frames.axis == "T" and frames.n_frames > 1

    def progress(done: int, total: int) -> None:
        if on_frame is not None:
            on_frame(done, total)
        _stop_check(should_stop)

    _stop_check(should_stop)
    with tempfile.TemporaryDirectory(prefix="lapseg-napari-") as scratch:
        folder = Path(scratch)
        array = frames.array
        axes = f"{frames.axis}CYX"
        if frames.n_channels == 1:  # models with temporal context read single-channel movies
            array, axes = array[:, 0], f"{frames.axis}YX"
        stack = write_tiff(folder / "layer.tif", array, axes=axes, compression=None)
        (movie,) = discover_movies(stack, axes=axes)
        result = predict_movie(
            models,
            movie,
            folder / "out",
            predict=options.predict,
            outputs=MovieOutputs(track=track, probabilities=options.probabilities),
            on_frame=progress,
        )
        read = movie_result(folder / "out" / result.name)
    probabilities = read.probabilities
    if probabilities is not None:
        probabilities = _probability_stack(first, probabilities)
    return Segmentation(
        labels=read.labels,
        axis=frames.axis,
        instances=instances,
        probabilities=probabilities,
        tracks=read.tracks if track else None,
        graph=read.graph,
    )


def _probability_stack(loaded: LoadedModel, stack: np.ndarray) -> np.ndarray:
    """:func:`probability_view` of every frame of a ``(N, Y, X)`` / ``(N, K, Y, X)`` stack."""
    if stack.ndim == 3:  # one-channel models: written as the probability itself
        return stack
    return np.stack([probability_view(loaded, frame) for frame in stack])
