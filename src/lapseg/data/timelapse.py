"""Time-lapse training data: sequences -> leak-free split -> stacked-context samples.

A sample is one annotated frame ``t`` of a sequence, named ``"<sequence>/<frame>"`` (e.g.
``"01/t007"``). Its image is the ``(2k+1, Y, X)`` stack of frames ``t-k .. t+k``
(:func:`lapseg.data.temporal.stack_context`); frames without masks still serve as context. Since
frames are channels, the rest of lapseg (patches, augmentation identical for every channel,
validation, checkpoints) works unchanged.

Splits never put neighbouring frames on both sides: whole sequences go to train / validation /
test (``temporal.split = "sequence"``), or one sequence is cut into contiguous time blocks with
``temporal.gap`` unused frames between them (``"time_blocks"``, used automatically when there is
a single sequence). A frame-random split (e.g. a hand-written split file) is refused by
:func:`check_split_leak_free`: frame t and t+1 are near-duplicates, so it would measure memory,
not segmentation.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from dataclasses import replace
from itertools import pairwise
from pathlib import Path

import numpy as np

from lapseg.config import DataConfig, LapsegConfig, TemporalConfig
from lapseg.data.background import subtract_background, temporal_median
from lapseg.data.frames import LazyFrames, frame_grid
from lapseg.data.normalization import NormalizationStats, fit_normalization
from lapseg.data.samples import LazySamples, RunData, Sample, prepare_sample
from lapseg.data.split import SPLIT_KEYS, read_split, split_random, validate_split
from lapseg.data.tasks import TaskDecision
from lapseg.errors import LapsegInputError
from lapseg.io.discovery import SamplePaths
from lapseg.io.sequences import (
    SequenceSource,
    check_frame_sizes,
    read_frame_mask,
    read_frames,
)


def load_sequence(
    source: SequenceSource,
    *,
    data: DataConfig,
    temporal: TemporalConfig,
    cache_dir: str | Path | None = None,
) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Frames ready for stacking: ``(T, Y, X)`` float32 on the common grid, background removed.

    Returns the frames and each frame's original ``(Y, X)`` shape (to map predictions back).
    """
    grid, grid_key = frame_grid(data)
    frames, shapes = read_frames(source, grid=grid)
    if temporal.background == "median":
        background = temporal_median(source, grid=grid, cache_dir=cache_dir, grid_key=grid_key)
        frames = subtract_background(frames, background)
    return frames, shapes


def sequence_stats(stats: NormalizationStats, channels: int) -> NormalizationStats:
    """Statistics fitted on single frames, repeated for ``channels`` stacked frames.

    Normalising each frame and then stacking equals stacking and then normalising with these.
    """
    if stats.num_channels is None:
        return stats
    if stats.num_channels != 1:
        raise LapsegInputError("time-lapse frames must have one channel")
    image = stats.mean_image
    return replace(
        stats,
        mean=stats.mean * channels,
        std=stats.std * channels,
        mean_image=None if image is None else np.repeat(image, channels, axis=0),
    )


# --------------------------------------------------------------------------- annotation


def _listed_frames(path: str | Path, sources: Sequence[SequenceSource]) -> dict[str, set[int]]:
    """Sequence name -> annotated frame indices from a ``sequence,frame`` CSV file."""
    by_name = {source.name: source for source in sources}
    listed: dict[str, set[int]] = {name: set() for name in by_name}
    try:
        with Path(path).open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except OSError as error:
        raise LapsegInputError(
            f"cannot read the annotated-frames list ({error.strerror})", path=path
        ) from None
    if rows and not {"sequence", "frame"} <= set(rows[0]):
        raise LapsegInputError("the annotated-frames list needs columns sequence,frame", path=path)
    for number, row in enumerate(rows, start=2):
        source = by_name.get(row["sequence"])
        if source is None:
            raise LapsegInputError(
                f"line {number}: no sequence named {row['sequence']!r} (sequences: "
                f"{', '.join(by_name)})",
                path=path,
            )
        frame = row["frame"].strip()
        t = source.frame_names.index(frame) if frame in source.frame_names else None
        if t is None and frame.isdigit() and int(frame) < source.n_frames:
            t = int(frame)
        if t is None:
            raise LapsegInputError(
                f"line {number}: sequence {source.name!r} has no frame {frame!r}", path=path
            )
        if t not in source.with_masks:
            raise LapsegInputError(
                f"line {number}: frame {frame!r} of {source.name!r} has no mask", path=path
            )
        listed[source.name].add(t)
    return listed


def annotated_sequences(
    sources: Sequence[SequenceSource], data: DataConfig
) -> tuple[list[SequenceSource], list[str]]:
    """Decide which frames are annotated, and say so per sequence.

    With ``data.annotated_frames`` the listed frames are; otherwise every frame with a mask,
    except all-zero masks when ``data.empty_masks`` is ``"unannotated"`` (a mask stack of a
    movie annotates a few frames and leaves the rest empty).

    Returns
    -------
    sources : list of SequenceSource
        With ``annotated_frames`` set.
    report : list of str
        One line per sequence for the run's log.
    """
    listed = _listed_frames(data.annotated_frames, sources) if data.annotated_frames else None
    decided, report = [], []
    for source in sources:
        candidates = source.with_masks
        if listed is not None:
            frames = sorted(listed[source.name])
            why = f"listed in {Path(str(data.annotated_frames)).name}"
        elif data.empty_masks == "empty":
            frames, why = candidates, "all-zero masks count as frames without objects"
        else:
            frames = [t for t in candidates if read_frame_mask(source, t).any()]
            empty = len(candidates) - len(frames)
            why = (
                f"{empty} all-zero mask(s) treated as unannotated (data.empty_masks=empty "
                "trains on them as frames without objects)"
                if empty
                else "every mask has objects"
            )
        decided.append(replace(source, annotated_frames=tuple(frames)))
        report.append(
            f"{source.name}: {len(frames)} of {source.n_frames} frame(s) annotated ({why})"
        )
    return decided, report


# --------------------------------------------------------------------------- splits


def _sample_index(sources: Sequence[SequenceSource]) -> dict[str, tuple[int, int]]:
    """Sample name -> (source position, frame index) for every annotated frame."""
    index: dict[str, tuple[int, int]] = {}
    for s, source in enumerate(sources):
        for t in source.annotated:
            index[source.sample_name(t)] = (s, t)
    return index


def time_block_split(
    frames: Sequence[int], *, val_fraction: float, test_fraction: float, gap: int
) -> dict[str, list[int]]:
    """Cut the annotated ``frames`` of one sequence into train | gap | val | gap | test blocks.

    The test block is the last ``round(test_fraction * n)`` annotated frames and the validation
    block the ones before it (at least one each when the fraction is positive); annotated
    frames fewer than ``gap + 1`` frames before a block start are used by no subset, so no
    training frame is a near-copy of a validation or test frame.

    Parameters
    ----------
    frames : sequence of int
        Indices of the annotated frames (any order; each once).

    Returns
    -------
    blocks : dict
        ``{"train": [...], "val": [...], "test": [...]}`` frame indices.
    """
    remaining = sorted(frames)
    n = len(remaining)
    blocks: dict[str, list[int]] = {"train": [], "val": [], "test": []}
    for key, fraction in (("test", test_fraction), ("val", val_fraction)):
        count = max(1, round(fraction * n)) if fraction > 0 else 0
        if count == 0:
            continue
        if count >= len(remaining):
            raise LapsegInputError(
                f"a sequence with {n} annotated frame(s) is too short for time blocks with "
                f"val_fraction={val_fraction}, test_fraction={test_fraction} and "
                f"temporal.gap={gap}: annotate more frames or lower the fractions"
            )
        blocks[key] = remaining[-count:]
        start = blocks[key][0]
        remaining = [t for t in remaining[:-count] if t < start - gap]
    if not remaining:
        raise LapsegInputError(
            f"a sequence with {n} annotated frame(s) leaves none for training after the "
            f"validation/test blocks and temporal.gap={gap}: annotate more frames or lower "
            "data.val_fraction / temporal.gap"
        )
    blocks["train"] = remaining
    return blocks


def split_sequences(
    sources: Sequence[SequenceSource], config: LapsegConfig
) -> dict[str, list[str]]:
    """The default leak-free split of the annotated frames (see the module docstring)."""
    data, temporal = config.data, config.temporal
    mode = temporal.split
    if len(sources) == 1 and data.val_fraction + data.test_fraction > 0:
        mode = "time_blocks"  # a single sequence cannot be split by sequence
    split: dict[str, list[str]] = {key: [] for key in SPLIT_KEYS}
    if mode == "sequence":
        by_sequence = split_random(
            [s.name for s in sources],
            val_fraction=data.val_fraction,
            test_fraction=data.test_fraction,
            rng=config.train.seed,
        )
        owner = {name: key for key, names in by_sequence.items() for name in names}
        for source in sources:
            split[owner[source.name]].extend(source.sample_name(t) for t in source.annotated)
    else:
        for source in sources:
            blocks = time_block_split(
                source.annotated,
                val_fraction=data.val_fraction,
                test_fraction=data.test_fraction,
                gap=temporal.gap,
            )
            for key, frames in blocks.items():
                split[key].extend(source.sample_name(t) for t in frames)
    if not split["train"]:
        raise LapsegInputError("the time-lapse split left no annotated frame for training")
    return split


def check_split_leak_free(
    split: Mapping[str, Sequence[str]], sources: Sequence[SequenceSource], *, gap: int
) -> None:
    """Refuse splits where frames of one sequence closer than ``gap + 1`` go to different subsets.

    Raises
    ------
    LapsegInputError
        Naming the two frames; a frame-random split of a time-lapse leaks near-duplicates.
    """
    index = _sample_index(sources)
    owner = {name: key for key, names in split.items() for name in names}
    by_source: dict[int, list[tuple[int, str, str]]] = {}
    for name, key in owner.items():
        s, t = index[name]
        by_source.setdefault(s, []).append((t, key, name))
    for entries in by_source.values():
        entries.sort()
        for (t0, k0, n0), (t1, k1, n1) in pairwise(entries):
            if k0 != k1 and t1 - t0 - 1 < gap:
                raise LapsegInputError(
                    f"split puts {n0} in {k0!r} and {n1} in {k1!r}, only {t1 - t0 - 1} frame(s) "
                    f"apart: neighbouring frames are near-duplicates, so a frame-random split "
                    f"leaks; split by sequence or by time blocks at least temporal.gap={gap} "
                    "frames apart"
                )


def _resolve_split(
    sources: Sequence[SequenceSource],
    config: LapsegConfig,
    split: Mapping[str, Sequence[str]] | None,
) -> dict[str, list[str]]:
    names = list(_sample_index(sources))
    if split is not None:
        resolved = validate_split(split, names)
    elif config.data.split_file is not None:
        resolved = validate_split(read_split(config.data.split_file), names)
    else:
        resolved = split_sequences(sources, config)
    check_split_leak_free(resolved, sources, gap=config.temporal.gap)
    return resolved


def sequence_split(
    sources: Sequence[SequenceSource],
    config: LapsegConfig,
    split: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, list[str]]:
    """The split ``lapseg train`` makes of these (annotated) sequences: ``split`` or
    ``data.split_file`` checked against the data and for leaks, else the leak-free default
    (:func:`split_sequences`). Other programs (the random-forest baseline) use it to train on
    the same frames."""
    return _resolve_split(sources, config, split)


# --------------------------------------------------------------------------- samples


def prepare_sequence_run_data(
    config: LapsegConfig,
    sources: Sequence[SequenceSource],
    *,
    task: TaskDecision,
    split: Mapping[str, Sequence[str]] | None = None,
    cache_dir: str | Path | None = None,
) -> RunData:
    """Discover sequences, split without leaks, normalise, stack context, build samples.

    Parameters
    ----------
    config : LapsegConfig
        ``data.layout`` "sequences" or "ctc"; the ``temporal`` section.
    data_root : str or Path
    split : mapping, optional
        A split to reuse (resume); checked against the data and for leaks.
    cache_dir : str or Path, optional
        Where the median backgrounds are cached (the run folder).

    Returns
    -------
    RunData
        ``stats`` are for the stacked ``(2k+1)``-channel input (the per-frame statistics
        repeated), so :func:`lapseg.inference.predict.predict_probabilities` applies them as is.
    """
    temporal = config.temporal
    k = temporal.context
    if temporal.split == "time_blocks" and temporal.gap < k:
        raise LapsegInputError(
            f"temporal.gap={temporal.gap} must be >= temporal.context={k}: otherwise validation "
            "inputs contain training frames"
        )
    resolved = _resolve_split(sources, config, split)
    index = _sample_index(sources)
    if config.data.crop_or_pad is None and config.data.resize is None:
        for s in sorted({index[n][0] for key in ("train", "val") for n in resolved[key]}):
            check_frame_sizes(sources[s])  # now, not mid-training when a frame is first read
    frames: dict[int, LazyFrames] = {}

    def frames_of(s: int) -> LazyFrames:
        if s not in frames:
            frames[s] = LazyFrames(sources[s], config, cache_dir=cache_dir, keep=4 * k + 4)
        return frames[s]

    norm = config.normalization
    frame_stats = fit_normalization(
        (frames_of(index[n][0])[index[n][1]][None] for n in resolved["train"]),
        mode=norm.mode,
        low=norm.low_percentile,
        high=norm.high_percentile,
    )
    stats = sequence_stats(frame_stats, 2 * k + 1)

    def prepared(name: str) -> Sample:
        s, t = index[name]
        source, lazy = sources[s], frames_of(s)
        mask = read_frame_mask(source, t)
        if mask.shape != lazy.shape(t):
            raise LapsegInputError(
                f"mask shape {mask.shape} differs from frame {name}'s shape {lazy.shape(t)}",
                path=source.masks.get(t, source.mask_stack),
            )
        image = lazy.context(t, k, temporal.edge_mode)
        paths = SamplePaths(name=name, image=source.frame_path(t), mask=source.masks.get(t))
        return prepare_sample(paths, image, mask, config=config, stats=stats)

    return RunData(
        train=LazySamples(resolved["train"], prepared),
        val=LazySamples(resolved["val"], prepared),
        split=resolved,
        stats=stats,
        config=config,
        task=task,
    )
