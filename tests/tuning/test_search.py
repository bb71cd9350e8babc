from __future__ import annotations

import csv
from pathlib import Path

import pytest

from lapseg.config import load_config
from lapseg.errors import LapsegInputError
from lapseg.tuning.search import (
    SearchOptions,
    apply_params,
    check_space,
    load_search_file,
    load_search_space,
    make_sampler,
    parse_search_space,
    run_search,
)

optuna = pytest.importorskip("optuna")

TINY = [
    "model.base_features=4",
    "model.depth=2",
    "train.epochs=2",
    "train.patch_size=[32, 32]",
    "train.patches_per_epoch=4",
    "train.batch_size=2",
    "train.tensorboard=false",
    "predict.tile_size=[96, 96]",
]

SPACE = {
    "train.lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
    "train.batch_size": {"type": "int", "low": 2, "high": 4, "step": 2},
    "train.optimizer": {"type": "categorical", "choices": ["adam", "adamw"]},
}


def test_parse_space_and_apply():
    params = parse_search_space(SPACE)
    assert [p.kind for p in params] == ["float", "int", "categorical"]
    assert params[0].log and params[0].low == 1e-4
    config = apply_params(load_config(None), {"train.lr": 0.005, "model.depth": 3})
    assert config.train.lr == 0.005 and config.model.depth == 3
    # nested dict fields (loss weights) take dotted keys too
    config = apply_params(load_config(None), {"loss.params.alpha": 0.3})
    assert config.loss.params == {"alpha": 0.3}


def test_space_from_yaml(tmp_path: Path):
    path = tmp_path / "space.yaml"
    path.write_text("train.lr: {type: float, low: 1e-4, high: 1e-2, log: true}\n")
    (param,) = load_search_space(path)
    assert (param.low, param.high) == (1e-4, 1e-2)  # "1e-4" read as a string by YAML 1.1
    path.write_text("train.lr: {type: uniform, low: 0, high: 1}\n")
    with pytest.raises(LapsegInputError, match=r"space\.yaml: .*type='uniform' is not one of"):
        load_search_space(path)


@pytest.mark.parametrize(
    ("space", "message"),
    [
        ({"train.lr": {"type": "loguniform", "low": 1, "high": 2}}, "type='loguniform'"),
        ({"train.lr": {"type": "float", "low": 0.1, "high": 0.01}}, "low=0.1 must be below"),
        ({"train.lr": {"type": "float", "low": 0.0, "high": 1.0, "log": True}}, "needs low > 0"),
        ({"train.lr": {"type": "float", "high": 1.0}}, "low is missing"),
        ({"train.lr": {"type": "float", "low": 0, "high": 1, "lg": True}}, "unknown field"),
        ({"train.epochs": {"type": "int", "low": 1.5, "high": 4}}, "must be an integer"),
        ({"train.lr": {"type": "float", "low": 1e-4, "high": 1, "log": True, "step": 0.1}},
         "either log or step"),
        ({"train.optimizer": {"type": "categorical", "choices": []}}, "non-empty list"),
        ({"train.optimizer": {"type": "categorical", "choices": ["a", "a"]}}, "duplicates"),
        ({"train.milestones": {"type": "categorical", "choices": [[1, 2]]}}, "separate keys"),
        ({"lr": {"type": "float", "low": 0.1, "high": 1}}, "dotted config key"),
        ({"train.lr": 0.1}, "must be a mapping"),
        ({}, "non-empty mapping"),
    ],
)  # fmt: skip
def test_bad_space_declarations(space, message):
    with pytest.raises(LapsegInputError, match=message):
        parse_search_space(space)


@pytest.mark.parametrize(
    ("space", "message"),
    [
        ({"train.lrate": {"type": "float", "low": 0.1, "high": 1}}, "unknown key.*train.lrate"),
        ({"trian.lr": {"type": "float", "low": 0.1, "high": 1}}, "unknown config section"),
        ({"train.epochs": {"type": "float", "low": 1, "high": 4}}, "valid integer"),
        ({"train.optimizer": {"type": "categorical", "choices": ["adam", "lion"]}}, "lion"),
        ({"train.lr": {"type": "float", "low": -1.0, "high": 1}}, "greater than 0"),
    ],
)
def test_space_checked_against_the_config(space, message):
    with pytest.raises(LapsegInputError, match=message):
        check_space(load_config(None), parse_search_space(space))


def test_run_search_rejects_bad_options(tmp_path: Path):
    config = load_config(None, TINY)
    for kwargs, message in (
        ({"metric": "val_dcie"}, "metric='val_dcie'"),
        ({"pruner": "asha"}, "pruner='asha'"),
        ({"direction": "up"}, "direction='up'"),
        ({"sampler": "cmaes"}, "sampler='cmaes'"),
        ({"fold": 5}, r"fold=5 must be an integer in \[0, 5\)"),
        ({"folds": 1}, "folds=1 must be >= 2"),
    ):
        with pytest.raises(LapsegInputError, match=message):
            SearchOptions(**kwargs)
    with pytest.raises(LapsegInputError, match=r"unknown search option.*prunner"):
        SearchOptions().updated({"prunner": "none"})
    with pytest.raises(LapsegInputError, match="integer >= 1"):
        run_search(config, tmp_path, SPACE, tmp_path / "out", n_trials=0)


def test_gaussian_process_sampler_is_selectable(monkeypatch):
    assert isinstance(make_sampler("gp", 3), optuna.samplers.GPSampler)
    assert isinstance(make_sampler("tpe", 3), optuna.samplers.TPESampler)
    with pytest.raises(LapsegInputError, match="sampler='random'"):
        make_sampler("random", 0)
    monkeypatch.delattr(optuna.samplers, "GPSampler")
    with pytest.raises(LapsegInputError, match="has no GPSampler"):
        make_sampler("gp", 0)


def test_search_file_options(tmp_path: Path):
    path = tmp_path / "space.yaml"
    path.write_text(
        "search: {sampler: gp, pruner: none, trials: 7, fold: 1, folds: 3}\n"
        "train.lr: {type: float, low: 1e-4, high: 1e-2, log: true}\n"
    )
    (param,), options, trials = load_search_file(path)
    assert param.key == "train.lr" and trials == 7
    assert (options.sampler, options.pruner, options.fold, options.folds) == ("gp", "none", 1, 3)
    assert options.updated({"sampler": "tpe", "pruner": None}).sampler == "tpe"  # flags win
    assert options.updated({"pruner": None}).pruner == "none"  # an absent flag keeps the file's
    assert load_search_space(path) == [param]
    path.write_text("search: {sampler: gp, fold: 9}\ntrain.lr: {type: float, low: 0.1, high: 1}\n")
    with pytest.raises(LapsegInputError, match=r"space\.yaml: fold=9"):
        load_search_file(path)
    path.write_text("search: {trials: 0}\ntrain.lr: {type: float, low: 0.1, high: 1}\n")
    with pytest.raises(LapsegInputError, match=r"search\.trials=0"):
        load_search_file(path)


@pytest.mark.slow
def test_search_writes_best_config_and_resumes(tiny_dataset: Path, tmp_path: Path):
    config = load_config(None, TINY)
    out = tmp_path / "search"
    median = SearchOptions(seed=1, pruner="median")
    result = run_search(config, tiny_dataset, SPACE, out, n_trials=3, options=median)
    assert result.n_trials_total == 3
    assert result.n_complete == 3  # the median pruner never prunes its first 3 trials
    assert (out / "study.db").is_file()
    for k in range(3):
        assert (out / "trials" / f"{k:03d}" / "history.csv").is_file()
    best = load_config(out / "best_config.yaml")
    assert best.train.lr == pytest.approx(result.best_params["train.lr"])
    assert best.train.batch_size == result.best_params["train.batch_size"]
    assert best.model.base_features == 4  # the base configuration is kept
    assert (out / "optimization_history.png").stat().st_size > 0
    assert (out / "param_importances.png").stat().st_size > 0
    with (out / "trials.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["number"] for r in rows] == ["0", "1", "2"]
    assert all(int(r["epochs_reported"]) >= 1 for r in rows)  # per-epoch metric reported
    study = optuna.load_study(study_name="lapseg-search", storage=result.storage)
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    best_value = max(t.value for t in complete)
    assert result.best_value == pytest.approx(best_value)

    again = run_search(config, tiny_dataset, SPACE, out, n_trials=1, options=median)
    assert again.n_trials_total == 4  # 3 stored trials found, 1 added
    assert (out / "trials" / "003").is_dir()
    with (out / "trials.csv").open() as handle:
        assert len(list(csv.DictReader(handle))) == 4


def test_pruned_trial_stops_training(tiny_dataset: Path, tmp_path: Path, monkeypatch):
    monkeypatch.setattr(optuna.trial.Trial, "should_prune", lambda self: True)
    config = load_config(None, [*TINY, "train.epochs=3"])
    result = run_search(
        config, tiny_dataset, {"train.lr": SPACE["train.lr"]}, tmp_path / "s", n_trials=1
    )
    assert result.n_pruned == 1 and result.best_config is None
    with (tmp_path / "s" / "trials.csv").open() as handle:
        (row,) = list(csv.DictReader(handle))
    assert row["state"] == "PRUNED" and row["epochs_reported"] == "1"


@pytest.mark.slow
def test_search_on_one_movie_with_time_block_splits(tmp_path: Path, capsys):
    """2 tiny trials on a single movie: the default split is time blocks; with a fold it is
    that fold of `lapseg cv --test-data` (leak-free with temporal.gap)."""
    import json

    from lapseg.cli import main
    from lapseg.data.synthetic_timelapse import TimelapseConfig, write_synthetic_timelapse

    movie = tmp_path / "movie"
    small = TimelapseConfig(shape=(48, 48), n_frames=30, radius=(4.0, 6.0), dtype="float32")
    write_synthetic_timelapse(movie, n_sequences=1, config=small, rng=0)
    space = tmp_path / "space.yaml"
    space.write_text(
        "search: {sampler: gp, pruner: none, trials: 2, fold: 1, folds: 3}\n"
        "train.lr: {type: float, low: 1e-4, high: 1e-2, log: true}\n"
    )
    tiny = [o for o in TINY if not o.startswith(("train.patch_size", "predict.tile_size"))]
    overrides = [
        *tiny,
        "train.epochs=1",
        "train.patch_size=[48, 48]",
        "predict.tile_size=[48, 48]",
        "data.layout=sequences",
        "temporal.context=1",
        "temporal.gap=2",
    ]
    sets = [x for item in overrides for x in ("--set", item)]
    out = tmp_path / "search"
    args = ["search", "--data", str(movie), "--space", str(space), "--out", str(out), *sets]
    assert main(args) == 0
    assert "2 trial(s)" in capsys.readouterr().out
    split = json.loads((out / "split.json").read_text())
    frames = sorted(int(n[-3:]) for n in split["val"])  # fold 1: the middle time block
    assert frames == list(range(10, 20)) and split["test"] == []
    assert all(abs(int(n[-3:]) - t) > 2 for n in split["train"] for t in frames)
    for trial in ("000", "001"):
        stored = json.loads((out / "trials" / trial / "split.json").read_text())
        assert stored["val"] == split["val"]
    with (out / "trials.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["state"] for r in rows] == ["COMPLETE", "COMPLETE"]

    # without a fold: the training run's own leak-free split of one movie (time blocks)
    space.write_text("train.lr: {type: float, low: 1e-4, high: 1e-2, log: true}\n")
    out2 = tmp_path / "search2"
    args2 = ["search", "--data", str(movie), "--space", str(space), "--out", str(out2)]
    assert main([*args2, "--trials", "1", "--sampler", "tpe", *sets]) == 0
    own = json.loads((out2 / "trials" / "000" / "split.json").read_text())
    assert own["val"] and max(int(n[-3:]) for n in own["train"]) < min(
        int(n[-3:]) for n in own["val"]
    )
