"""``lapseg reproduce``: the seed registry, its errors and the command line."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import numpy as np
import pytest

from lapseg.cli import main
from lapseg.errors import LapsegInputError
from lapseg.reproduce import SEEDS, budget_overrides, load_seed, reproduce, seed_config, seed_id
from lapseg.reproduce.seed002 import quadrants, stitch_quadrants


@pytest.mark.parametrize(("text", "seed"), [("0", "000"), ("000", "000"), ("seed002", "002")])
def test_seed_ids(text: str, seed: str) -> None:
    assert seed_id(text) == seed


@pytest.mark.parametrize("text", ["7", "0000x", "", "stemnet"])
def test_unknown_seed_lists_the_valid_ones(text: str) -> None:
    with pytest.raises(LapsegInputError, match="valid seeds: 000, 001, 002, 003, 004"):
        seed_id(text)


def test_every_seed_is_registered() -> None:
    assert list(SEEDS) == ["000", "001", "002", "003", "004"]
    assert load_seed("0").__name__ == "lapseg.reproduce.seed000"


def test_a_missing_module_is_a_one_line_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(SEEDS, "003", "seed_not_written")
    with pytest.raises(LapsegInputError, match="seed 003 has no reproduction yet"):
        load_seed("003")


def test_overrides_need_a_module_that_takes_them(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    calls = []
    module = types.ModuleType("lapseg.reproduce.fake")

    def fake(data: Path, out: Path, *, minutes: float | None, progress: bool) -> list[Path]:
        calls.append((data, out, minutes, progress))
        return [out]

    module.reproduce = fake  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "lapseg.reproduce.fake", module)
    monkeypatch.setitem(SEEDS, "003", "fake")
    assert reproduce("3", tmp_path, tmp_path / "o", minutes=2.0) == [tmp_path / "o"]
    assert calls == [(tmp_path, tmp_path / "o", 2.0, True)]
    with pytest.raises(LapsegInputError, match="takes no --set overrides"):
        reproduce("3", tmp_path, tmp_path / "o", overrides=["train.epochs=1"])
    with pytest.raises(LapsegInputError, match="--minutes must be > 0"):
        reproduce("3", tmp_path, tmp_path / "o", minutes=0)
    with pytest.raises(LapsegInputError, match="data folder not found"):
        reproduce("3", tmp_path / "none", tmp_path / "o")


def test_budget_is_shared_and_lifts_the_epoch_limit() -> None:
    assert budget_overrides(None, 3) == []
    config = seed_config("stemnet-n1", budget_overrides(6.0, 3))
    assert config.train.time_budget_minutes == 2.0 and config.train.epochs is None
    assert seed_config("stemnet-n1", ["train.epochs=3"]).train.epochs == 3


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["reproduce", "9", "--data", "{data}", "--out", "{out}"], "unknown seed '9'"),
        (["reproduce", "0", "--data", "{data}/none", "--out", "{out}"], "data folder not found"),
        (["reproduce", "0", "--data", "{data}", "--out", "{out}", "--minutes", "-1"], "> 0"),
        (["reproduce", "0", "--data", "{data}", "--out", "{data}"], "not empty"),
        (["reproduce", "2", "--data", "{data}", "--out", "{out}", "--set", "x=1"], "section"),
    ],
)
def test_bad_input_exits_2_with_one_line(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    (data / "seq").mkdir(parents=True)
    args = [a.format(data=data, out=tmp_path / "out") for a in argv]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err


@pytest.mark.parametrize("shape", [(8, 8), (5, 7), (1, 3)])
def test_quadrants_stitch_back(shape: tuple[int, int]) -> None:
    image = np.arange(2 * shape[0] * shape[1]).reshape(2, *shape)
    parts = [image[:, r, c] for r, c in quadrants(shape)]
    assert sum(p[0].size for p in parts) == shape[0] * shape[1]
    np.testing.assert_array_equal(stitch_quadrants(parts, shape), image)
