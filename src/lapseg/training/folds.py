"""K-fold assignment for cross-validation: which samples each fold trains, validates and tests on.

Pure functions of sample names (no files, no training): :func:`make_folds` splits the samples
(or whole groups of them) into ``k`` folds with a seeded validation subset per fold;
:func:`groups_from_pattern` derives the groups from the names; :func:`make_timelapse_folds`
splits the annotated frames of time-lapse sequences by sequence or by contiguous time blocks
with ``gap`` unused frames between subsets; :func:`holdout_as_validation` turns folds into seed
004's protocol (the held-out fold validates, an external set tests). :mod:`lapseg.training.cv`
runs one training per fold.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import numpy as np
from sklearn.model_selection import GroupKFold, KFold

from lapseg.errors import LapsegInputError
from lapseg.io.discovery import natural_sort_key

__all__ = [
    "FOLD_MODES",
    "groups_from_pattern",
    "holdout_as_validation",
    "make_folds",
    "make_timelapse_folds",
]

FOLD_MODES: tuple[str, ...] = ("sequence", "time_blocks")
"""How time-lapse frames are assigned to folds: whole sequences, or contiguous time blocks."""


def _pick_validation(
    names: Sequence[str],
    groups: Mapping[str, str] | None,
    val_fraction: float,
    rng: np.random.Generator,
) -> set[str]:
    """A seeded ``val_fraction`` of ``names`` (whole groups when grouped); at least one unit
    when the fraction is positive, and at least one unit left for training."""
    if val_fraction <= 0:
        return set()
    keys = sorted({groups[n] for n in names} if groups else set(names), key=natural_sort_key)
    if len(keys) < 2:
        raise LapsegInputError(
            "too few samples (or groups) outside the test fold to hold out a validation set; "
            "use fewer folds or data.val_fraction=0"
        )
    order = [keys[i] for i in rng.permutation(len(keys))]
    target = max(1, round(val_fraction * len(names)))
    chosen: list[str] = []
    count = 0
    for key in order[:-1]:  # the last unit always stays in training
        if count >= target:
            break
        chosen.append(key)
        count += sum(1 for n in names if (groups[n] if groups else n) == key)
    picked = set(chosen)
    return {n for n in names if (groups[n] if groups else n) in picked}


def make_folds(
    names: Sequence[str],
    n_folds: int,
    *,
    groups: Mapping[str, str] | None = None,
    seed: int = 0,
    val_fraction: float = 0.2,
) -> list[dict[str, list[str]]]:
    """Deterministic k-fold assignment with a validation subset per fold.

    Parameters
    ----------
    names : sequence of str
        Unique sample names; their order does not matter (they are sorted naturally first).
    n_folds : int
        Number of folds ``k >= 2``; at most the number of samples (or groups).
    groups : mapping of str to str, optional
        Group of every sample (e.g. its time-lapse sequence): no group is split between two
        folds, nor between a fold's train and val subsets.
    seed : int, optional
        Same seed and names -> same folds.
    val_fraction : float, optional
        Fraction in ``[0, 1)`` of each fold's non-test samples held out for validation (at
        least one sample or group when positive).

    Returns
    -------
    list of dict
        ``k`` splits ``{"train": [...], "val": [...], "test": [...]}``, each disjoint and
        covering ``names``; the ``"test"`` subsets of the folds partition ``names``.
    """
    names = sorted(names, key=natural_sort_key)
    if len(set(names)) != len(names):
        raise LapsegInputError("sample names must be unique for cross-validation")
    if isinstance(n_folds, bool) or not isinstance(n_folds, int) or n_folds < 2:
        raise LapsegInputError(f"the number of folds must be an integer >= 2, got {n_folds!r}")
    if not 0.0 <= val_fraction < 1.0:
        raise LapsegInputError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if groups is not None:
        missing = [n for n in names if n not in groups]
        if missing:
            raise LapsegInputError(f"no group given for sample(s): {', '.join(missing[:5])}")
        units = len({groups[n] for n in names})
        what = "groups"
    else:
        units, what = len(names), "samples"
    if n_folds > units:
        raise LapsegInputError(f"cannot make {n_folds} folds from {units} {what}")
    positions = np.arange(len(names))
    if groups is None:
        splitter = KFold(n_splits=n_folds, shuffle=True, random_state=seed)
        parts = splitter.split(positions)
    else:
        labels = [groups[n] for n in names]
        splitter = GroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
        parts = splitter.split(positions, groups=labels)
    folds = []
    for k, (rest_idx, test_idx) in enumerate(parts):
        rest = [names[i] for i in rest_idx]
        rng = np.random.default_rng([seed, k])
        val = _pick_validation(rest, groups, val_fraction, rng)
        subsets = {
            "train": [n for n in rest if n not in val],
            "val": [n for n in rest if n in val],
            "test": [names[i] for i in test_idx],
        }
        folds.append({key: sorted(v, key=natural_sort_key) for key, v in subsets.items()})
    return folds


def groups_from_pattern(names: Sequence[str], pattern: str) -> dict[str, str]:
    r"""Group of each sample name: the first capture group of the regular expression
    ``pattern`` (searched in the name), e.g. ``r"^(.*)_t\d+$"`` for ``seqA_t003``."""
    try:
        regex = re.compile(pattern)
    except re.error as error:
        raise LapsegInputError(
            f"group pattern {pattern!r} is not a valid regex ({error})"
        ) from None
    if regex.groups < 1:
        raise LapsegInputError(f"group pattern {pattern!r} needs one (capture group)")
    groups = {}
    for name in names:
        match = regex.search(name)
        if match is None or match.group(1) is None:
            raise LapsegInputError(f"sample {name!r} does not match the group pattern {pattern!r}")
        groups[name] = match.group(1)
    return groups


def holdout_as_validation(folds: Sequence[Mapping[str, list[str]]]) -> list[dict[str, list[str]]]:
    """Seed 004's protocol: each fold's held-out part becomes its validation set.

    ``folds`` made with ``val_fraction=0`` (train = the other folds, test = the held-out fold)
    become ``{"train": other folds, "val": held-out fold, "test": []}``; the test images are
    then an external set shared by every fold (``lapseg cv --test-data``).
    """
    out = []
    for fold in folds:
        if fold.get("val"):
            raise ValueError("holdout_as_validation needs folds made with val_fraction=0")
        out.append({"train": list(fold["train"]), "val": list(fold["test"]), "test": []})
    return out


Frame = tuple[int, str]
"""An annotated frame: its index ``t`` in the sequence and its sample name."""


def _val_block(
    before: list[Frame], after: list[Frame], count: int, gap: int
) -> tuple[list[Frame], list[Frame]]:
    """``count`` contiguous validation frames next to the test block, on its longer side
    (``before`` / ``after``: the frames left on each side once the test gap is removed), and
    the training frames at least ``gap`` frames away from them. Returns (train, val)."""
    count = min(count, max(len(before), len(after)))
    if count <= 0:
        return before + after, []
    if len(after) > len(before):  # the first frames after the test block
        val = after[:count]
        end = val[-1][0]
        return before + [f for f in after[count:] if f[0] > end + gap], val
    val = before[-count:]
    start = val[0][0]
    return [f for f in before[:-count] if f[0] < start - gap] + after, val


def _time_block_folds(
    frames: Mapping[str, Sequence[Frame]], n_folds: int, *, gap: int, val_fraction: float
) -> list[dict[str, list[str]]]:
    """Every sequence's annotated frames cut into ``n_folds`` contiguous blocks; fold ``i``
    tests block ``i`` of every sequence (see :func:`make_timelapse_folds`)."""
    longest = max(len(f) for f in frames.values())
    if n_folds > longest:
        raise LapsegInputError(
            f"cannot make {n_folds} time-block folds: the longest sequence has {longest} "
            "annotated frame(s); use fewer folds"
        )
    ordered = {name: sorted(f) for name, f in frames.items()}
    blocks = {name: np.array_split(np.arange(len(f)), n_folds) for name, f in ordered.items()}
    folds = []
    for i in range(n_folds):
        test: list[Frame] = []
        sides: dict[str, tuple[list[Frame], list[Frame]]] = {}
        for name, entries in ordered.items():
            block = [entries[j] for j in blocks[name][i]]
            test.extend(block)
            if block:
                first, last = block[0][0], block[-1][0]
                before = [f for f in entries if f[0] < first - gap]
                after = [f for f in entries if f[0] > last + gap]
            else:  # a short sequence without frames in this fold's test block
                before, after = list(entries), []
            sides[name] = (before, after)
        counts = {name: round(val_fraction * (len(b) + len(a))) for name, (b, a) in sides.items()}
        if val_fraction > 0 and not any(counts.values()):  # at least one validation frame
            counts[max(sides, key=lambda n: len(sides[n][0]) + len(sides[n][1]))] = 1
        train: list[Frame] = []
        val: list[Frame] = []
        for name, (before, after) in sides.items():
            kept, held = _val_block(before, after, counts[name], gap)
            train.extend(kept)
            val.extend(held)
        if not train or (val_fraction > 0 and not val):
            raise LapsegInputError(
                f"time-block fold {i} leaves no frame for training or validation once "
                f"temporal.gap={gap} frames are left out around its test block: annotate more "
                "frames, use fewer folds, or lower temporal.gap / data.val_fraction"
            )
        folds.append({"train": train, "val": val, "test": test})
    return [{key: [name for _, name in subset] for key, subset in f.items()} for f in folds]


def make_timelapse_folds(
    frames: Mapping[str, Sequence[Frame]],
    n_folds: int,
    *,
    mode: str,
    gap: int,
    seed: int = 0,
    val_fraction: float = 0.2,
) -> list[dict[str, list[str]]]:
    """Leak-free k-fold assignment of the annotated frames of time-lapse sequences.

    Parameters
    ----------
    frames : mapping of str to sequence of (int, str)
        For every sequence, its annotated frames as ``(t, sample_name)``.
    n_folds : int
        Number of folds ``k >= 2``.
    mode : {"sequence", "time_blocks"}
        ``"sequence"``: whole sequences per fold (:func:`make_folds` with groups; needs at least
        ``k`` sequences); validation takes whole sequences of the rest, or, when only one is
        left, a time block of it. ``"time_blocks"``: each sequence's annotated frames are cut
        into ``k`` contiguous blocks (a single movie) and fold ``i`` tests block ``i``; frames
        closer than ``gap + 1`` to the test block are used by no subset, and the validation
        block sits next to the test block on its longer side, ``gap`` frames from training.
    gap : int
        Unused frames between frames of different subsets (``temporal.gap``); it must be at
        least the temporal context, so no test input contains a training frame.
    seed : int, optional
        Seeds the sequence assignment (time blocks are not random).
    val_fraction : float, optional
        Share of each fold's non-test frames held out for validation.

    Returns
    -------
    list of dict
        ``k`` splits ``{"train", "val", "test"}`` of sample names; the test parts partition the
        annotated frames, and every split passes
        :func:`lapseg.data.timelapse.check_split_leak_free` with ``gap``.
    """
    if mode not in FOLD_MODES:
        raise LapsegInputError(f"time-lapse fold mode {mode!r} is not one of {FOLD_MODES}")
    if isinstance(n_folds, bool) or not isinstance(n_folds, int) or n_folds < 2:
        raise LapsegInputError(f"the number of folds must be an integer >= 2, got {n_folds!r}")
    if not 0.0 <= val_fraction < 1.0:
        raise LapsegInputError(f"val_fraction must be in [0, 1), got {val_fraction}")
    frames = {name: list(f) for name, f in frames.items() if f}
    if not frames:
        raise LapsegInputError("no annotated frame to make folds from")
    if mode == "time_blocks":
        folds = _time_block_folds(frames, n_folds, gap=gap, val_fraction=val_fraction)
    else:
        groups = {sample: name for name, f in frames.items() for _, sample in f}
        folds = make_folds(list(groups), n_folds, groups=groups, seed=seed, val_fraction=0.0)
        for k, fold in enumerate(folds):
            rest = fold["train"]
            left = sorted({groups[n] for n in rest}, key=natural_sort_key)
            if val_fraction <= 0:
                continue
            if len(left) >= 2:
                rng = np.random.default_rng([seed, k])
                val = _pick_validation(rest, groups, val_fraction, rng)
                fold["train"] = [n for n in rest if n not in val]
                fold["val"] = [n for n in rest if n in val]
                continue
            entries = sorted(frames[left[0]])
            count = max(1, round(val_fraction * len(entries)))
            kept, held = _val_block(entries, [], count, gap)
            if not kept:
                raise LapsegInputError(
                    f"fold {k}: sequence {left[0]!r} is too short for a validation block and "
                    f"temporal.gap={gap}; use fewer folds or data.val_fraction=0"
                )
            fold["train"] = [name for _, name in kept]
            fold["val"] = [name for _, name in held]
    return [{key: sorted(v, key=natural_sort_key) for key, v in f.items()} for f in folds]
