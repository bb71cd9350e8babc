"""``lapseg predict --scheduler``: the files of one prediction spread over a Dask cluster.

:func:`predict_path_distributed` finds the inputs exactly as :func:`~lapseg.inference.apply.predict_path`
does (:func:`~lapseg.inference.apply.find_inputs`), checks every input and output path on the
client, then submits one task per still image and one per movie (a movie is never split: its
tracks need every frame) to a ``dask.distributed`` cluster:

- ``local:N``: a ``LocalCluster`` of ``N`` worker processes on this machine, one task at a time
  each, the CPU cores shared out between them (torch threads = cores // N);
- ``tcp://HOST:PORT`` (any Dask address): an existing scheduler. Its workers must see the input
  and output paths (a shared file system) and have lapseg installed.

Each worker loads the models once (:func:`worker_models`, cached per process by their
:class:`ModelSpec`) and writes its outputs itself, atomically, with the same writers as the
single-process run, so the files are the same. The summary lists images and movies in input
order, as :func:`~lapseg.inference.apply.predict_path` does. A scheduler that does not answer
within :data:`SCHEDULER_TIMEOUT` seconds is a one-line error, before anything is written.
Needs the ``dask`` extra (``pip install "lapseg[dask]"``).
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from lapseg.config import PredictConfig
from lapseg.errors import LapsegInputError, optional_import
from lapseg.inference.apply import PredictionSummary, find_inputs
from lapseg.inference.movies import MovieOutputs, MovieResult, check_movie, predict_movie
from lapseg.inference.predict import (
    LoadedModel,
    check_outputs_do_not_overwrite_inputs,
    load_model,
    output_paths,
    predict_files,
)
from lapseg.inference.tta import dihedral_tta
from lapseg.io.movies import Movie

__all__ = [
    "SCHEDULER_TIMEOUT",
    "ModelSpec",
    "dask_client",
    "parse_scheduler",
    "predict_path_distributed",
    "worker_models",
]

SCHEDULER_TIMEOUT = 10.0
"""Seconds to wait for a scheduler to answer before giving up."""

_ADDRESS = re.compile(r"^[a-z][a-z0-9+.-]*://\S+$")


@dataclass(frozen=True)
class ModelSpec:
    """How ``lapseg predict`` loads its models: what every Dask worker loads once.

    ``paths`` are checkpoints, run folders or exported files (several: an ensemble);
    ``overrides`` are ``--set predict.*`` / ``postprocess.*`` settings; ``channels`` the image
    channels the models see (``--channels``); ``tta`` wraps each model in the 8
    flips/rotations.
    """

    paths: tuple[Path, ...]
    device: str = "auto"
    engine: str | None = None
    overrides: tuple[str, ...] = ()
    channels: tuple[int, ...] | str | None = None
    tta: bool = False

    def load(self) -> list[LoadedModel]:
        """The models, ready to predict."""
        models = [
            load_model(path, device=self.device, engine=self.engine).with_overrides(
                list(self.overrides)
            )
            for path in self.paths
        ]
        if self.channels is not None:
            models = [m.with_channels(self.channels) for m in models]
        if self.tta:
            models = [m.with_predictor(dihedral_tta(m.predictor)) for m in models]
        return models


_CACHED = 2
"""Model sets kept per process (a worker may serve two clients with different models)."""
_models: OrderedDict[ModelSpec, list[LoadedModel]] = OrderedDict()
_lock = threading.Lock()


def worker_models(spec: ModelSpec) -> list[LoadedModel]:
    """``spec.load()``, once per process (worker threads share the models)."""
    with _lock:
        if spec not in _models:
            _models[spec] = spec.load()
            while len(_models) > _CACHED:
                _models.popitem(last=False)
        _models.move_to_end(spec)
        return _models[spec]


def _seed_cache(spec: ModelSpec, models: Sequence[LoadedModel]) -> None:
    """Models loaded by the client serve in-process workers too."""
    with _lock:
        _models[spec] = list(models)
        while len(_models) > _CACHED:
            _models.popitem(last=False)


def parse_scheduler(text: str) -> int | str:
    """``local:N`` -> ``N`` (workers >= 1); a Dask address (``tcp://host:8786``) as given."""
    if text.startswith("local:"):
        count = text.removeprefix("local:")
        if not count.isdigit() or int(count) < 1:
            raise LapsegInputError(f"--scheduler {text}: local:N needs a worker count N >= 1")
        return int(count)
    if not _ADDRESS.match(text):
        raise LapsegInputError(
            f"--scheduler {text!r}: use local:N (N workers on this machine) or a scheduler "
            "address such as tcp://HOST:8786"
        )
    return text


@contextmanager
def dask_client(
    scheduler: str, *, processes: bool = True, timeout: float = SCHEDULER_TIMEOUT
) -> Iterator[Any]:
    """A ``distributed.Client`` of ``scheduler`` (:func:`parse_scheduler`), closed afterwards.

    ``local:N`` starts a ``LocalCluster`` of ``N`` single-threaded workers (processes, or
    threads of this process with ``processes=False``) and stops it afterwards.
    """
    target = parse_scheduler(scheduler)
    distributed = optional_import("distributed", extra="dask", purpose="--scheduler")
    if isinstance(target, int):
        with (
            distributed.LocalCluster(
                n_workers=target,
                threads_per_worker=1,
                processes=processes,
                dashboard_address=":0",  # any free port: 8787 may be taken
                silence_logs=logging.ERROR,
            ) as cluster,
            distributed.Client(cluster, set_as_default=False) as client,
        ):
            if processes:  # share the cores out: N workers x all cores would oversubscribe
                client.run(torch.set_num_threads, max(1, (os.cpu_count() or 1) // target))
            yield client
        return
    try:
        client = distributed.Client(target, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError) as error:
        reason = type(error).__name__
        raise LapsegInputError(
            f"no Dask scheduler answers at {target} within {timeout:g} s ({reason}); start one "
            "(dask scheduler) or use --scheduler local:N"
        ) from None
    try:
        yield client
    finally:
        client.close()


def _movie_task(
    spec: ModelSpec,
    movie: Movie,
    output_dir: Path,
    predict: PredictConfig | None,
    outputs: MovieOutputs,
) -> MovieResult:
    return predict_movie(worker_models(spec), movie, output_dir, predict=predict, outputs=outputs)


def _image_task(
    spec: ModelSpec,
    path: Path,
    name: str,
    output_dir: Path,
    axes: str | None,
    predict: PredictConfig | None,
    labels: bool,
) -> dict[str, Path]:
    (written,) = predict_files(
        worker_models(spec),
        [path],
        output_dir,
        axes=axes,
        predict=predict,
        labels=labels,
        names=[name],
    )
    return written


def predict_path_distributed(
    models: Sequence[LoadedModel],
    input_path: str | Path,
    output_dir: str | Path,
    *,
    spec: ModelSpec,
    scheduler: str,
    axes: str | None = None,
    predict: PredictConfig | None = None,
    labels: bool | None = None,
    movie: bool = False,
    outputs: MovieOutputs | None = None,
    on_progress: Callable[[str, int, int], None] | None = None,
    processes: bool = True,
    timeout: float = SCHEDULER_TIMEOUT,
) -> PredictionSummary:
    """:func:`~lapseg.inference.apply.predict_path` with the files spread over a Dask cluster.

    Parameters
    ----------
    models : sequence of LoadedModel
        ``spec.load()`` on the client: it plans the run (and serves in-process workers).
    spec : ModelSpec
        What each worker loads.
    scheduler : str
        ``local:N`` or a scheduler address (``tcp://HOST:PORT``).
    processes : bool
        ``local:N`` only: worker processes (default) or threads of this process.
    timeout : float
        Seconds to wait for a scheduler address to answer.
    on_progress : callable, optional
        ``on_progress("files", done, total)`` after every finished image or movie.

    The other arguments are those of :func:`~lapseg.inference.apply.predict_path`.
    """
    parse_scheduler(scheduler)  # a malformed option fails before any work
    output_dir = Path(output_dir)
    outputs = outputs if outputs is not None else MovieOutputs()
    inputs = find_inputs(models, input_path, axes=axes, movie=movie)
    for item in inputs.movies:
        check_movie(models, item, outputs)
    if labels is None:
        labels = models[0].config.data.task == "instances"
    planned = [
        output_paths(output_dir, path, labels=labels, name=name)
        for path, name in zip(inputs.stills, inputs.names, strict=True)
    ]
    check_outputs_do_not_overwrite_inputs(inputs.stills, planned)
    # workers elsewhere have another working directory: they get absolute paths
    spec = replace(spec, paths=tuple(Path(p).resolve() for p in spec.paths))
    _seed_cache(spec, models)
    target = output_dir.resolve()
    with dask_client(scheduler, processes=processes, timeout=timeout) as client:
        distributed = optional_import("distributed", extra="dask", purpose="--scheduler")
        futures = [
            client.submit(_movie_task, spec, _absolute(item), target, predict, outputs, pure=False)
            for item in inputs.movies
        ] + [
            client.submit(
                _image_task, spec, path.resolve(), name, target, axes, predict, labels, pure=False
            )
            for path, name in zip(inputs.stills, inputs.names, strict=True)
        ]
        try:
            for done, future in enumerate(
                distributed.as_completed(futures, loop=client.loop), start=1
            ):
                future.result()  # the first failure (e.g. a corrupt image) stops the run
                if on_progress is not None:
                    on_progress("files", done, len(futures))
            results = client.gather(futures)
        finally:
            client.cancel(futures)
    n_movies = len(inputs.movies)

    def as_given(path: Path) -> Path:  # paths in the summary as the single run prints them
        return output_dir / path.relative_to(target) if path.is_relative_to(target) else path

    return PredictionSummary(
        images=[{k: as_given(v) for k, v in files.items()} for files in results[n_movies:]],
        movies=[
            replace(r, files={k: as_given(v) for k, v in r.files.items()})
            for r in results[:n_movies]
        ],
    )


def _absolute(movie: Movie) -> Movie:
    """``movie`` with absolute input paths."""
    return replace(
        movie,
        stack=None if movie.stack is None else movie.stack.resolve(),
        frame_files=tuple(p.resolve() for p in movie.frame_files),
    )
