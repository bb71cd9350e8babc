"""Train / validation / test splits of sample names.

A split is a plain ``dict`` with the keys ``"train"``, ``"val"`` and ``"test"``, each a list of
sample names. It is written as JSON beside the run outputs so the same split can be reused.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from lapseg.errors import LapsegInputError
from lapseg.io.discovery import natural_sort_key
from lapseg.io.files import write_json

SPLIT_KEYS: tuple[str, ...] = ("train", "val", "test")


def _check_unique(names: Sequence[str]) -> None:
    seen: set[str] = set()
    duplicates: set[str] = set()
    for name in names:
        (duplicates if name in seen else seen).add(name)
    if duplicates:
        shown = sorted(duplicates, key=natural_sort_key)[:10]
        raise LapsegInputError(f"duplicate sample name(s): {', '.join(shown)}")


def _subset_size(fraction: float, n: int, available: int) -> int:
    size = round(fraction * n)
    if fraction > 0 and available >= 2:
        size = max(size, 1)
    return size


def split_random(
    names: Sequence[str],
    *,
    val_fraction: float = 0.2,
    test_fraction: float = 0.0,
    rng: int | np.random.Generator | None = None,
) -> dict[str, list[str]]:
    """Randomly split sample names into train, validation and test subsets.

    Subset sizes are ``round(fraction * n)``, with at least one validation (test) sample when
    its fraction is positive and there is room, and always at least one training sample (test
    is shrunk first, then validation). Each subset is returned in natural-sort order.

    Parameters
    ----------
    names : sequence of str
        Unique sample names.
    val_fraction, test_fraction : float
        Fractions in ``[0, 1)`` with ``val_fraction + test_fraction < 1``.
    rng : int, Generator or None
        Seed or generator; the same seed gives the same split.

    Returns
    -------
    dict
        ``{"train": [...], "val": [...], "test": [...]}``: disjoint, covering ``names``.
    """
    names = list(names)
    if not names:
        raise LapsegInputError("cannot split an empty list of samples")
    _check_unique(names)
    for label, fraction in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0.0 <= fraction < 1.0:
            raise LapsegInputError(f"{label} must be in [0, 1), got {fraction}")
    if val_fraction + test_fraction >= 1.0:
        raise LapsegInputError(
            f"val_fraction + test_fraction must be below 1, got {val_fraction + test_fraction}"
        )
    n = len(names)
    n_val = _subset_size(val_fraction, n, n)
    n_test = _subset_size(test_fraction, n, n - n_val)
    while n - n_val - n_test < 1:
        if n_test > 0:
            n_test -= 1
        else:
            n_val -= 1
    order = np.random.default_rng(rng).permutation(n)
    shuffled = [names[i] for i in order]
    subsets = {
        "val": shuffled[:n_val],
        "test": shuffled[n_val : n_val + n_test],
        "train": shuffled[n_val + n_test :],
    }
    return {key: sorted(subsets[key], key=natural_sort_key) for key in SPLIT_KEYS}


def validate_split(
    split: Mapping[str, Sequence[str]], names: Sequence[str]
) -> dict[str, list[str]]:
    """Check a user-given split against the available sample names.

    Names not mentioned in any subset are left out of training and evaluation.

    Parameters
    ----------
    split : mapping
        Keys among ``"train"``, ``"val"``, ``"test"`` (``"train"`` required), values lists of
        sample names.
    names : sequence of str
        Names of the samples that exist.

    Returns
    -------
    dict
        All three keys, lists copied.

    Raises
    ------
    LapsegInputError
        Unknown keys or names, a name in two subsets or twice in one, an empty train subset.
    """
    unknown_keys = sorted(set(split) - set(SPLIT_KEYS))
    if unknown_keys:
        raise LapsegInputError(
            f"split has unknown subset(s) {', '.join(unknown_keys)}; use train, val, test"
        )
    known = set(names)
    out: dict[str, list[str]] = {}
    owner: dict[str, str] = {}
    for key in SPLIT_KEYS:
        values = split.get(key, [])
        if isinstance(values, str) or not all(isinstance(v, str) for v in values):
            raise LapsegInputError(f"split subset {key!r} must be a list of sample names")
        values = list(values)
        missing = [v for v in values if v not in known]
        if missing:
            raise LapsegInputError(
                f"split subset {key!r} names unknown sample(s): {', '.join(missing[:10])}"
            )
        for value in values:
            if value in owner:
                where = "twice" if owner[value] == key else f"in both {owner[value]!r} and"
                raise LapsegInputError(f"sample {value!r} appears {where} {key!r}")
            owner[value] = key
        out[key] = values
    if not out["train"]:
        raise LapsegInputError("split has no training samples")
    return out


def write_split(path: str | Path, split: Mapping[str, Sequence[str]]) -> Path:
    """Write a split as JSON (atomically) and return ``path``."""
    return write_json(path, {key: list(split.get(key, [])) for key in SPLIT_KEYS})


def read_split(path: str | Path) -> dict[str, list[str]]:
    """Read a split written by :func:`write_split` (or by hand).

    Only the structure is checked here; use :func:`validate_split` against the dataset.
    """
    path = Path(path)
    if not path.is_file():
        raise LapsegInputError("split file not found", path=path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LapsegInputError(f"cannot read split ({exc})", path=path) from exc
    if not isinstance(data, dict):
        raise LapsegInputError("split must be a JSON object with train/val/test lists", path=path)
    unknown = sorted(set(data) - set(SPLIT_KEYS))
    if unknown:
        raise LapsegInputError(f"unknown subset(s) {', '.join(unknown)}", path=path)
    out: dict[str, list[str]] = {}
    for key in SPLIT_KEYS:
        values = data.get(key, [])
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise LapsegInputError(f"subset {key!r} must be a list of names", path=path)
        out[key] = values
    return out
