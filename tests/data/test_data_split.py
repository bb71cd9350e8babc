from __future__ import annotations

import json
from pathlib import Path

import pytest

from lapseg.data.split import read_split, split_random, validate_split, write_split
from lapseg.errors import LapsegInputError

NAMES = [f"s{i}" for i in range(10)]


def test_split_random_deterministic_disjoint_covering() -> None:
    a = split_random(NAMES, val_fraction=0.2, test_fraction=0.3, rng=42)
    b = split_random(NAMES, val_fraction=0.2, test_fraction=0.3, rng=42)
    assert a == b
    assert (len(a["train"]), len(a["val"]), len(a["test"])) == (5, 2, 3)
    joined = a["train"] + a["val"] + a["test"]
    assert sorted(joined) == sorted(NAMES)
    assert len(set(joined)) == len(NAMES)
    others = [split_random(NAMES, rng=seed)["val"] for seed in range(5)]
    assert len({tuple(v) for v in others}) > 1  # the seed matters


def test_split_random_small_sets() -> None:
    assert split_random(["a"], val_fraction=0.5, rng=0) == {"train": ["a"], "val": [], "test": []}
    two = split_random(["a", "b"], val_fraction=0.1, rng=0)
    assert len(two["train"]) == 1 and len(two["val"]) == 1
    three = split_random(["a", "b", "c"], val_fraction=0.1, test_fraction=0.1, rng=0)
    assert [len(three[k]) for k in ("train", "val", "test")] == [1, 1, 1]
    no_val = split_random(["a", "b"], val_fraction=0.0, rng=0)
    assert no_val["val"] == [] and len(no_val["train"]) == 2


def test_split_random_bad_input() -> None:
    with pytest.raises(LapsegInputError, match="empty"):
        split_random([])
    with pytest.raises(LapsegInputError, match="duplicate sample name"):
        split_random(["a", "b", "a"])
    with pytest.raises(LapsegInputError, match="val_fraction"):
        split_random(NAMES, val_fraction=1.0)
    with pytest.raises(LapsegInputError, match="below 1"):
        split_random(NAMES, val_fraction=0.5, test_fraction=0.5)


def test_validate_split() -> None:
    out = validate_split({"train": ["s1", "s2"], "val": ["s3"]}, NAMES)
    assert out == {"train": ["s1", "s2"], "val": ["s3"], "test": []}
    with pytest.raises(LapsegInputError, match="unknown sample"):
        validate_split({"train": ["nope"]}, NAMES)
    with pytest.raises(LapsegInputError, match="in both 'train' and 'val'"):
        validate_split({"train": ["s1"], "val": ["s1"]}, NAMES)
    with pytest.raises(LapsegInputError, match="no training samples"):
        validate_split({"train": [], "val": ["s1"]}, NAMES)
    with pytest.raises(LapsegInputError, match="unknown subset"):
        validate_split({"train": ["s1"], "validation": ["s2"]}, NAMES)


def test_write_read_split(tmp_path: Path) -> None:
    split = split_random(NAMES, rng=3)
    path = write_split(tmp_path / "out" / "split.json", split)
    assert json.loads(path.read_text()) == split
    assert read_split(path) == split
    path.write_text('{"train": "s1"}')
    with pytest.raises(LapsegInputError, match=r"split\.json: subset 'train' must be a list"):
        read_split(path)
    with pytest.raises(LapsegInputError, match="split file not found"):
        read_split(tmp_path / "missing.json")
