"""``lapseg predict``: apply models to whatever the user points at, and write every result.

:func:`predict_path` sorts the input into movies / z-stacks (:mod:`lapseg.io.movies`: stack
files with a T or Z axis, Cell Tracking Challenge folders, folders of frames for temporal
models or when asked) and still images, predicts each with
:func:`lapseg.inference.movies.predict_movie` or :func:`lapseg.inference.predict.predict_files`,
and returns what it wrote.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lapseg.config import PredictConfig
from lapseg.errors import LapsegInputError
from lapseg.inference.movies import MovieOutputs, MovieResult, check_movie, predict_movie
from lapseg.inference.predict import LoadedModel, predict_files
from lapseg.io.movies import Movie, discover_movies
from lapseg.io.sample_lists import discover_prediction_inputs

__all__ = ["PredictionInputs", "PredictionSummary", "find_inputs", "predict_path"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PredictionSummary:
    """What :func:`predict_path` wrote."""

    images: list[dict[str, Path]] = field(default_factory=list)
    movies: list[MovieResult] = field(default_factory=list)

    def lines(self, output_dir: Path) -> list[str]:
        """A human summary, one line per kind of output."""
        lines = []
        if self.images:
            kinds = ", ".join(sorted(self.images[0]))
            lines.append(f"wrote {len(self.images)} image(s) ({kinds}) to {output_dir}")
        for movie in self.movies:
            tracks = "" if movie.n_tracks is None else f", {movie.n_tracks} track(s)"
            source = f" (read as a {movie.source})" if movie.source else ""
            lines.append(
                f"{movie.name}{source}: {movie.n_frames} frame(s){tracks} -> "
                + ", ".join(str(path) for path in movie.files.values())
            )
        return lines


def predict_path(
    models: Sequence[LoadedModel],
    input_path: str | Path,
    output_dir: str | Path,
    *,
    axes: str | None = None,
    predict: PredictConfig | None = None,
    labels: bool | None = None,
    movie: bool = False,
    outputs: MovieOutputs | None = None,
    on_progress: Callable[[str, int, int], None] | None = None,
) -> PredictionSummary:
    """Predict every image, movie and stack at ``input_path`` into ``output_dir``.

    Parameters
    ----------
    models : sequence of LoadedModel
        One model or an ensemble.
    input_path : str or Path
        An image or stack file, a folder of images / stacks, a folder of frames, a CTC dataset.
    axes : str, optional
        Axes of the input files (``--axes``).
    predict : PredictConfig, optional
        Tiling / threshold settings for this run.
    labels : bool, optional
        Write instance label images of still images (default: for instance models).
    movie : bool
        A folder of 2D images is one movie (models with temporal context always read a folder
        of frames as a movie).
    outputs : MovieOutputs, optional
        Tracks, probabilities and per-frame files of movies (default: tracks only).
    on_progress : callable, optional
        ``on_progress(item, done, total)`` after every frame or image.
    """
    outputs = outputs if outputs is not None else MovieOutputs()
    inputs = find_inputs(models, input_path, axes=axes, movie=movie)
    for item in inputs.movies:  # every movie checked before the first is written
        check_movie(models, item, outputs)
    summary = PredictionSummary()
    for item in inputs.movies:

        def on_frame(done: int, total: int, name: str = item.name) -> None:
            if on_progress is not None:
                on_progress(name, done, total)

        summary.movies.append(
            predict_movie(
                models, item, output_dir, predict=predict, outputs=outputs, on_frame=on_frame
            )
        )
    stills = inputs.stills
    if stills:
        summary.images.extend(
            predict_files(
                models,
                stills,
                output_dir,
                axes=axes,
                predict=predict,
                labels=labels,
                names=inputs.names,
                on_image=lambda path: (
                    on_progress(path.name, 0, len(stills)) if on_progress else None
                ),
            )
        )
    return summary


@dataclass(frozen=True)
class PredictionInputs:
    """What :func:`find_inputs` found: movies / stacks, and still images with output names."""

    movies: list[Movie]
    stills: list[Path]
    names: list[str]


def find_inputs(
    models: Sequence[LoadedModel], input_path: str | Path, *, axes: str | None, movie: bool
) -> PredictionInputs:
    """The movies, stacks and still images :func:`predict_path` predicts at ``input_path``
    (arguments as there); refuses inputs it cannot predict before anything is written."""
    input_path = Path(input_path)
    temporal = any(m.config.temporal.context > 0 for m in models)
    movies = discover_movies(input_path, axes=axes, as_movie=movie or temporal)
    in_movies = {path.resolve() for item in movies for path in item.files()}
    if input_path.is_dir() and movies and all(m.stack is None for m in movies):
        return PredictionInputs(movies, [], [])  # frames, a CTC dataset: nothing else is in it
    found = discover_prediction_inputs(input_path, image_name=models[0].config.data.image_name)
    kept = [i for i, p in enumerate(found.images) if p.resolve() not in in_movies]
    stills = [found.images[i] for i in kept]
    if stills and found.layout != "image files":
        log.info("%s: %d image(s) from %s", input_path, len(stills), found.layout)
    if temporal and stills:
        raise LapsegInputError(
            "a model with temporal context segments movies: give a movie file, a folder of "
            "frames or a CTC folder",
            path=input_path,
        )
    if not movies and not stills:
        raise LapsegInputError("nothing to predict: no image or movie", path=input_path)
    return PredictionInputs(movies, stills, [found.names[i] for i in kept])
