"""K-fold assignment for cross-validation: which samples each fold trains, validates and tests on.

Pure functions of sample names (no files, no training): :func:`make_folds` splits the samples
(or whole groups of them, e.g. the frames of one time-lapse sequence) into ``k`` folds with a
seeded validation subset per fold; :func:`groups_from_pattern` derives the groups from the names.
:mod:`lapseg.training.cv` runs one training per fold.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import numpy as np
from sklearn.model_selection import GroupKFold, KFold

from lapseg.errors import LapsegInputError
from lapseg.io.discovery import natural_sort_key

__all__ = ["groups_from_pattern", "make_folds"]


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
