"""Crash safety, proved: ``lapseg`` processes killed with SIGKILL at chosen points (in the
middle of an epoch, while a checkpoint is written, during validation, while a mask is written,
inside a CV fold or a search trial), then resumed. Deterministic runs end bit-identical to
uninterrupted ones; nothing half-written is ever visible; finished work is kept."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from crash_hooks import command
from reliability_support import (
    assert_no_temporaries,
    assert_one_line_error,
    assert_results_intact,
    files_under,
    run,
    snapshot,
    tiny,
    write_dataset,
)

from lapseg.io.locks import LOCK_NAME
from lapseg.models.checkpoint import load_checkpoint

pytestmark = pytest.mark.slow

KILLED = -signal.SIGKILL

TRAIN = tiny(3, "train.patches_per_epoch=8", "data.task=binary")
"""Three epochs of two steps each, deterministic."""


def _killed(spec: str, args: list[object]) -> subprocess.CompletedProcess[str]:
    """Run ``lapseg ARGS`` in a child that kills itself at ``spec``; it must have been killed."""
    done = subprocess.run(command(spec, args), capture_output=True, text=True, timeout=300)
    assert done.returncode == KILLED, (done.returncode, done.stderr[-2000:])
    return done


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """An uninterrupted deterministic run and its data."""
    root = tmp_path_factory.mktemp("crash-reference")
    data = write_dataset(root / "data")
    from lapseg.cli import main

    args = ["train", "--data", data, "--out", root / "run", "--no-progress", *TRAIN]
    assert main([str(a) for a in args]) == 0
    return root / "run", data


def _assert_same_weights(a: Path, b: Path) -> None:
    left, right = load_checkpoint(a), load_checkpoint(b)
    assert left["epoch"] == right["epoch"]
    for key, tensor in left["model_state"].items():
        assert torch.equal(tensor, right["model_state"][key]), key
    assert [r["train_loss"] for r in left["history"]] == [r["train_loss"] for r in right["history"]]


@pytest.mark.parametrize(
    ("spec", "last_epoch"),
    [("batch:4", 1), ("checkpoint:last.pt:2", 1), ("validate:3", 2)],
    ids=["mid-epoch", "checkpoint-write", "validation"],
)
def test_killed_training_resumes_bit_identical(
    reference, tmp_path: Path, capsys, spec: str, last_epoch: int
):
    ref_run, data = reference
    out = tmp_path / "run"
    _killed(spec, ["train", "--data", data, "--out", out, "--no-progress", *TRAIN])
    state = load_checkpoint(out / "last.pt")  # always a whole checkpoint
    assert state["epoch"] == last_epoch and not state["finished"]
    assert (out / LOCK_NAME).exists()  # the killed process could not remove it
    code, stdout, err = run(
        ["train", "--resume", "--data", data, "--out", out, "--no-progress"], capsys
    )
    assert code == 0, err
    assert "took over the lock" in stdout
    _assert_same_weights(ref_run / "last.pt", out / "last.pt")
    _assert_same_weights(ref_run / "best.pt", out / "best.pt")
    assert not (out / LOCK_NAME).exists()
    assert_no_temporaries(out)  # the half-written checkpoint of the killed process is gone


def test_second_train_process_refuses_while_the_first_runs(reference, tmp_path: Path, capsys):
    """Two real ``lapseg train`` processes on one --out: the second refuses, the first finishes
    undisturbed."""
    _, data = reference
    out, gate = tmp_path / "run", tmp_path / "gate"
    first = subprocess.Popen(
        command(f"wait:{gate}", ["train", "--data", data, "--out", out, "--no-progress", *TRAIN]),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not gate.with_name("gate.ready").exists():
            assert first.poll() is None and time.monotonic() < deadline, first.stderr
            time.sleep(0.05)
        for extra in (TRAIN, ["--resume"]):
            code, _, err = run(
                ["train", "--data", data, "--out", out, "--no-progress", *extra], capsys
            )
            assert_one_line_error(code, err, str(out), f"process {first.pid}")
        gate.with_name("gate.go").touch()
        _, stderr = first.communicate(timeout=300)
    finally:
        gate.with_name("gate.go").touch()
        if first.poll() is None:
            first.kill()
            first.wait()
    assert first.returncode == 0, stderr
    assert load_checkpoint(out / "last.pt")["finished"]
    assert not (out / LOCK_NAME).exists()


def test_killed_prediction_leaves_no_partial_file_and_a_rerun_completes(
    reference, tmp_path: Path, capsys
):
    """Killed while writing img1's mask (half of it in a temporary file): every visible file is
    whole, the rerun writes the rest and removes the dead process's temporary."""
    ref_run, data = reference
    inputs = tmp_path / "in"
    inputs.mkdir()
    for i in range(3):
        (inputs / f"img{i}.tif").write_bytes((data / "images" / f"img{i}.tif").read_bytes())
    before = snapshot(inputs)
    expected, out = tmp_path / "expected", tmp_path / "out"
    args = ["predict", "--model", ref_run, "--input", inputs, "--no-progress", "--output"]
    code, _, err = run([*args, expected], capsys)
    assert code == 0, err
    _killed("write:4", [*args, out])  # probabilities/img0, masks/img0, probabilities/img1, *
    visible = [n for n in files_under(out) if not Path(n).name.startswith(".")]
    assert visible == ["masks/img0.tif", "probabilities/img0.tif", "probabilities/img1.tif"]
    for name in visible:
        np.testing.assert_array_equal(tifffile.imread(out / name), tifffile.imread(expected / name))
    assert any(n.startswith("masks/.img1.tif.") for n in files_under(out))  # the trace
    code, _, err = run([*args, out], capsys)
    assert code == 0, err
    assert files_under(out) == files_under(expected)
    for name in files_under(expected):
        np.testing.assert_array_equal(tifffile.imread(out / name), tifffile.imread(expected / name))
    assert snapshot(inputs) == before


def test_killed_cross_validation_keeps_finished_folds(tmp_path: Path, capsys):
    """Killed in fold 1's second epoch: the rerun keeps fold 0 as it is, continues fold 1 from
    its last.pt and writes the summary."""
    data = write_dataset(tmp_path / "data")
    out = tmp_path / "cv"
    args = ["cv", "--data", data, "--out", out, "--folds", "2", "--no-progress"]
    args += tiny(2, "data.task=binary")
    _killed("validate:4", args)  # fold 0: validations 1, 2; fold 1: 3, *4*
    assert (out / "fold0" / "test_metrics.json").is_file()
    assert load_checkpoint(out / "fold1" / "last.pt")["epoch"] == 1
    fold0 = snapshot(out / "fold0")
    code, stdout, err = run(args, capsys)
    assert code == 0, err
    assert "took over the lock" in stdout
    assert_results_intact(fold0, out / "fold0")
    assert load_checkpoint(out / "fold1" / "last.pt")["finished"]
    assert (out / "cv_summary.csv").is_file()
    assert_no_temporaries(out)


def test_killed_search_trial_is_marked_failed_and_retried(tmp_path: Path, capsys):
    optuna = pytest.importorskip("optuna")
    data = write_dataset(tmp_path / "data")
    space = tmp_path / "space.yaml"
    space.write_text("train.lr: {type: float, low: 0.0001, high: 0.01, log: true}\n")
    out = tmp_path / "search"
    args = ["search", "--data", data, "--space", space, "--out", out, "--pruner", "none"]
    args += tiny(1, "data.task=binary")
    _killed("validate:2", [*args, "--trials", "2"])  # trial 0 completes, trial 1 is killed
    storage = f"sqlite:///{(out / 'study.db').resolve()}"
    study = optuna.load_study(study_name="lapseg-search", storage=storage)
    assert [t.state.name for t in study.trials] == ["COMPLETE", "RUNNING"]
    killed_params = study.trials[1].params
    code, stdout, err = run([*args, "--trials", "1"], capsys)
    assert code == 0, err
    assert "trial 1 was left running" in stdout
    trials = optuna.load_study(study_name="lapseg-search", storage=storage).trials
    assert [t.state.name for t in trials] == ["COMPLETE", "FAIL", "COMPLETE"]
    assert trials[2].params == killed_params and trials[2].user_attrs["retry_of"] == 1
    assert (out / "best_config.yaml").is_file()
