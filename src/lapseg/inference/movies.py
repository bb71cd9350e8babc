"""Movies in, stacks and tracks out: predict every frame of a movie (or z-stack) with any model.

A 2D model predicts frame by frame; a temporal model uses its context rule (frames t-k .. t+k,
its background subtraction; :class:`~lapseg.inference.sequences.SequencePredictor`). For each
movie ``NAME`` the output folder receives:

- ``NAME/masks.tif``: the mask stack (``TYX``, the input's pixel size);
- ``NAME/labels.tif``: instance labels (instance models), linked over time into tracks: one
  label per track in every frame it lives (z-stacks: independent labels per slice);
- ``NAME/tracks.csv`` (track id, frame, centroid y/x, area, parent track),
  ``NAME/tracks_napari.csv`` + ``NAME/tracks_graph.json`` (a napari tracks layer) and
  ``NAME/res_track.txt`` (the CTC track table), ``NAME/consistency.json`` (one-frame tracks
  and gaps: do cells flicker? :mod:`lapseg.tracking.consistency`);
- for Cell Tracking Challenge inputs, the CTC result layout ``NN_RES/mask000.tif ...`` +
  ``NN_RES/res_track.txt``;
- optionally ``NAME/probabilities.tif`` and one file per frame (``NAME/frames/...``).

Frames are read, predicted and written one at a time; a first pass stores labels in a raw
scratch file and the per-frame object tables, tracking links the tables, and a second pass
writes the final stacks, so no stack is ever held in memory (only the object tables grow
with the number of frames). Every file appears
atomically when complete; the scratch folder is removed.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lapseg.config import PredictConfig
from lapseg.errors import LapsegInputError
from lapseg.inference.predict import (
    LoadedModel,
    image_zoom,
    model_instances,
    model_mask,
    predict_probabilities,
)
from lapseg.inference.sequences import SequencePredictor
from lapseg.io.ctc import mask_name, write_track_table
from lapseg.io.files import write_csv, write_json
from lapseg.io.images import write_tiff, write_tiff_stack
from lapseg.io.movies import Movie
from lapseg.io.sequences import SequenceSource
from lapseg.tracking import (
    FrameObjects,
    frame_objects,
    link_objects,
    relabel_frame,
    temporal_consistency,
    track_dtype,
    track_rows,
)

__all__ = ["MovieOutputs", "MovieResult", "check_movie", "movie_sequence", "predict_movie"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MovieOutputs:
    """What to write besides the mask stack (and labels, for instance models)."""

    track: bool | None = None
    """Link instances into tracks: None = for movies of 2 or more frames; True asks for it
    (an error on a single frame or a z-stack)."""
    probabilities: bool = False
    per_frame: bool = False


@dataclass(frozen=True)
class MovieResult:
    """What :func:`predict_movie` wrote."""

    name: str
    n_frames: int
    files: dict[str, Path] = field(default_factory=dict)
    n_tracks: int | None = None
    source: str = ""


class _ScratchFrames:
    """Frames of one dtype and shape appended to a raw file and read back one at a time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.shape: tuple[int, ...] | None = None
        self.dtype: np.dtype | None = None
        self.count = 0
        path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = path.open("wb")

    def append(self, frame: np.ndarray) -> None:
        if self.shape is None:
            self.shape, self.dtype = frame.shape, frame.dtype
        elif frame.shape != self.shape:
            raise LapsegInputError(
                f"frame {self.count} has shape {frame.shape}, the movie's first frame "
                f"{self.shape}: a movie's frames must have one size"
            )
        self._handle.write(np.ascontiguousarray(frame, dtype=self.dtype).tobytes())
        self.count += 1

    def close(self) -> None:
        self._handle.close()

    def __getitem__(self, t: int) -> np.ndarray:
        assert self.shape is not None and self.dtype is not None
        n = int(np.prod(self.shape))
        with self.path.open("rb") as handle:
            handle.seek(t * n * self.dtype.itemsize)
            return np.fromfile(handle, dtype=self.dtype, count=n).reshape(self.shape)

    def frames(
        self, convert: Callable[[int, np.ndarray], np.ndarray] | None = None
    ) -> Iterator[np.ndarray]:
        for t in range(self.count):
            frame = self[t]
            yield frame if convert is None else convert(t, frame)


def movie_sequence(movie: Movie) -> SequenceSource:
    """The movie as a single-channel time-lapse sequence (for models with temporal context)."""
    if movie.axis != "T":
        raise LapsegInputError(
            f"{movie.name} is a z-stack: a model with temporal context needs a movie (T axis)"
        )
    if movie.stack is not None:
        axes = movie.stack_axes
        if "C" in axes:
            raise LapsegInputError(
                f"models with temporal context read single-channel movies; {movie.name} has "
                f"axes {axes}",
                path=movie.stack,
            )
        return SequenceSource(
            name=movie.name,
            frame_names=movie.frame_names,
            stack=movie.stack,
            stack_axes=axes,
            z_index=movie.z_index,
        )
    return SequenceSource(
        name=movie.name, frame_names=movie.frame_names, frame_files=movie.frame_files
    )


def _frame_probabilities(
    models: Sequence[LoadedModel],
    movie: Movie,
    predict: PredictConfig | None,
    cache_dir: Path,
) -> tuple[Callable[[int], np.ndarray], Callable[[], None]]:
    """``probabilities(t)`` of every frame and a function closing what it opened."""
    temporal = any(
        m.config.temporal.context > 0 or m.config.temporal.background != "none" for m in models
    )
    if temporal:
        predictor = SequencePredictor(
            models, movie_sequence(movie), predict=predict, cache_dir=cache_dir
        )
        return predictor.probabilities, lambda: None
    reader = movie.open()

    def probabilities(t: int) -> np.ndarray:
        frame = reader.frame(t)
        return predict_probabilities(
            models, frame.array, predict=predict, pixel_size=frame.pixel_size
        )

    return probabilities, reader.close


def check_movie(models: Sequence[LoadedModel], movie: Movie, outputs: MovieOutputs) -> None:
    """Refuse a movie :func:`predict_movie` cannot do as asked (tracking a z-stack or with a
    non-instance model, frames of different sizes), before anything is written."""
    instances = models[0].config.data.task == "instances"
    if outputs.track and not (movie.axis == "T" and movie.n_frames > 1 and instances):
        what = "an instance model" if not instances else "a movie of 2 or more time points"
        raise LapsegInputError(
            f"tracking needs {what}; {movie.name} has {movie.n_frames} "
            f"{'frame' if movie.axis == 'T' else 'z-slice'}(s)",
            path=movie.files()[0],
        )
    movie.check_frame_sizes()


def predict_movie(
    models: Sequence[LoadedModel],
    movie: Movie,
    output_dir: str | Path,
    *,
    predict: PredictConfig | None = None,
    outputs: MovieOutputs = MovieOutputs(),
    on_frame: Callable[[int, int], None] | None = None,
) -> MovieResult:
    """Predict every frame of ``movie`` and write its stacks (and tracks) into ``output_dir``.

    Parameters
    ----------
    models : sequence of LoadedModel
        One model or an ensemble (probabilities averaged); their stored settings apply.
    movie : Movie
        From :func:`lapseg.io.movies.discover_movies`.
    output_dir : str or Path
        Results go to ``output_dir/<movie.name>/`` (and ``output_dir/<NN>_RES`` for CTC).
    predict : PredictConfig, optional
        Overrides the tiling/threshold settings stored in the first model.
    outputs : MovieOutputs
        Tracking, probabilities and per-frame files.
    on_frame : callable, optional
        ``on_frame(done, total)`` after each predicted frame.
    """
    first = models[0]
    instances = first.config.data.task == "instances"
    check_movie(models, movie, outputs)
    folder = Path(output_dir) / movie.name
    inputs = {p.resolve() for p in movie.files()}
    scratch = folder / ".partial"
    probabilities, close = _frame_probabilities(models, movie, predict, scratch / "cache")
    zoom, why = 1.0, ""
    if first.config.temporal.context == 0 and first.config.temporal.background == "none":
        zoom, why = image_zoom(first, movie.pixel_size, predict)
    if why:
        log.info("%s: %s", movie.name, why)
    masks, labels, probs = (
        _ScratchFrames(scratch / "masks.raw"),
        _ScratchFrames(scratch / "labels.raw"),
        _ScratchFrames(scratch / "probabilities.raw"),
    )
    objects: list[FrameObjects] = []
    try:
        for t in range(movie.n_frames):
            prob = probabilities(t)
            masks.append(model_mask(first, prob, predict=predict))
            if instances:
                frame_labels = model_instances(first, prob, predict=predict, zoom=zoom)
                labels.append(frame_labels)
                objects.append(frame_objects(frame_labels))
            if outputs.probabilities:
                probs.append(prob if prob.shape[0] > 1 else prob[0])
            if on_frame is not None:
                on_frame(t + 1, movie.n_frames)
        for scratch_file in (masks, labels, probs):
            scratch_file.close()
        files, n_tracks = _write_outputs(
            movie, folder, masks, labels, probs, objects, outputs, inputs
        )
    finally:
        close()
        for scratch_file in (masks, labels, probs):
            scratch_file.close()
        shutil.rmtree(scratch, ignore_errors=True)
    return MovieResult(movie.name, movie.n_frames, files, n_tracks, movie.description())


def _checked(path: Path, inputs: set[Path]) -> Path:
    if path.resolve() in inputs:
        raise LapsegInputError(
            "output would overwrite an input file; choose another --output", path=path
        )
    return path


def _stack_axes(movie: Movie, frame_ndim: int) -> str:
    return movie.axis + ("C" if frame_ndim == 3 else "") + "YX"


def _write_outputs(
    movie: Movie,
    folder: Path,
    masks: _ScratchFrames,
    labels: _ScratchFrames,
    probs: _ScratchFrames,
    objects: list[FrameObjects],
    outputs: MovieOutputs,
    inputs: set[Path],
) -> tuple[dict[str, Path], int | None]:
    """Second pass: link the objects into tracks, write the final stacks and tables."""
    files: dict[str, Path] = {}
    n_tracks = None
    assert masks.shape is not None and masks.dtype is not None
    size = movie.pixel_size
    files["masks"] = write_tiff_stack(
        _checked(folder / "masks.tif", inputs),
        masks.frames(),
        shape=(masks.count, *masks.shape),
        dtype=masks.dtype,
        axes=_stack_axes(movie, len(masks.shape)),
        pixel_size=size,
    )
    if probs.count:
        assert probs.shape is not None and probs.dtype is not None
        files["probabilities"] = write_tiff_stack(
            _checked(folder / "probabilities.tif", inputs),
            probs.frames(),
            shape=(probs.count, *probs.shape),
            dtype=probs.dtype,
            axes=_stack_axes(movie, len(probs.shape)),
            pixel_size=size,
        )
    if outputs.per_frame:
        for t, mask in enumerate(masks.frames()):
            name = movie.frame_names[t]
            write_tiff(
                _checked(folder / "frames" / "masks" / f"{name}.tif", inputs), mask, pixel_size=size
            )
    if not labels.count:
        return files, None
    convert = None
    trackable = movie.axis == "T" and movie.n_frames > 1
    track = outputs.track is not False and trackable and any(ids.size for ids, _, _ in objects)
    dtype: type = np.uint16
    if track:
        track_of, table = link_objects(objects)
        dtype = track_dtype(table)
        id_lists = [ids for ids, _, _ in objects]

        def convert(t: int, frame: np.ndarray) -> np.ndarray:
            return relabel_frame(frame, id_lists[t], track_of[t], dtype=dtype)

        files.update(_write_tracks(folder, objects, track_of, table, inputs))
        n_tracks = int(table.shape[0])
    assert labels.shape is not None
    files["labels"] = write_tiff_stack(
        _checked(folder / "labels.tif", inputs),
        labels.frames(convert),
        shape=(labels.count, *labels.shape),
        dtype=dtype,
        axes=_stack_axes(movie, len(labels.shape)),
        pixel_size=size,
    )
    ctc_folder = folder.parent / f"{movie.name}_RES" if movie.ctc and track else None
    if outputs.per_frame or ctc_folder is not None:
        for t, frame in enumerate(labels.frames(convert)):
            if outputs.per_frame:
                path = folder / "frames" / "labels" / f"{movie.frame_names[t]}.tif"
                write_tiff(_checked(path, inputs), frame, pixel_size=size)
            if ctc_folder is not None:
                path = ctc_folder / mask_name(t, movie.n_frames)
                write_tiff(_checked(path, inputs), frame.astype(np.uint16), compression=None)
        if ctc_folder is not None:
            files["ctc"] = ctc_folder
            write_track_table(ctc_folder / "res_track.txt", table)
    return files, n_tracks


def _write_tracks(
    folder: Path,
    objects: list[FrameObjects],
    track_of: list[np.ndarray],
    table: np.ndarray,
    inputs: set[Path],
) -> dict[str, Path]:
    """``tracks.csv``, the napari tracks layer, the CTC track table and the temporal
    consistency (:func:`lapseg.tracking.temporal_consistency`) of one movie."""
    rows = track_rows(objects, track_of, table)
    napari = [{"track_id": r["track_id"], "t": r["frame"], "y": r["y"], "x": r["x"]} for r in rows]
    graph = {int(L): [int(P)] for L, _, _, P in table.tolist() if P != 0}
    consistency = temporal_consistency([np.asarray(ids) for ids in track_of], table)
    log.info("%s: %s", folder.name, consistency.summary())
    return {
        "consistency": write_json(
            _checked(folder / "consistency.json", inputs), consistency.as_dict()
        ),
        "tracks": write_csv(_checked(folder / "tracks.csv", inputs), rows),
        "tracks_napari": write_csv(_checked(folder / "tracks_napari.csv", inputs), napari),
        "tracks_graph": write_json(_checked(folder / "tracks_graph.json", inputs), graph),
        "res_track": write_track_table(_checked(folder / "res_track.txt", inputs), table),
    }
