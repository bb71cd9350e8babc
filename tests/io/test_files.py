"""Atomic writes, JSON/CSV helpers and output permissions."""

from __future__ import annotations

import csv
import json
import os
import stat
from pathlib import Path

import pytest

from lapseg.io.files import atomic_output, write_csv, write_json, write_text


def test_atomic_output_success_and_failure(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "out.tif"
    with atomic_output(target) as tmp:
        assert tmp.suffix == ".tif"
        assert tmp.parent == target.parent
        tmp.write_bytes(b"ok")
    assert target.read_bytes() == b"ok"
    with pytest.raises(RuntimeError), atomic_output(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("boom")
    assert target.read_bytes() == b"ok"
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.tif"]


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_outputs_follow_the_umask(tmp_path: Path, umask: int) -> None:
    previous = os.umask(umask)
    try:
        path = write_text(tmp_path / "a.txt", "x")
        reference = tmp_path / "plain.txt"
        reference.write_text("x")
    finally:
        os.umask(previous)
    mode = stat.S_IMODE(path.stat().st_mode)
    assert mode == 0o666 & ~umask
    assert mode == stat.S_IMODE(reference.stat().st_mode)


def test_write_json_and_csv_round_trip(tmp_path: Path) -> None:
    payload = {"a": 1, "b": [1.5, "x"], "path": tmp_path}
    stored = json.loads(write_json(tmp_path / "p.json", payload).read_text())
    assert stored == {"a": 1, "b": [1.5, "x"], "path": str(tmp_path)}
    rows = [{"name": "a", "v": 0.123456789}, {"name": "b", "w": float("nan")}]
    path = write_csv(tmp_path / "t.csv", rows)
    with path.open() as handle:
        read = list(csv.DictReader(handle))
    assert read == [{"name": "a", "v": "0.123457", "w": ""}, {"name": "b", "v": "", "w": ""}]
    raw = write_csv(tmp_path / "r.csv", rows[:1], columns=["v"], float_format=None)
    assert raw.read_text().splitlines() == ["v", "0.123456789"]
