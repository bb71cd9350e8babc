"""Faults inside a training run: the loss becoming NaN, a second process on the same run folder,
a lock left behind by a killed process, resuming what cannot be resumed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from reliability_support import (
    assert_no_temporaries,
    assert_one_line_error,
    assert_results_intact,
    copy_tree,
    files_under,
    run,
    snapshot,
    tiny,
    train_tiny_model,
    write_dataset,
)

from lapseg.io.locks import LOCK_NAME, this_host
from lapseg.models.checkpoint import load_checkpoint, save_checkpoint
from lapseg.training import trainer as trainer_module


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return train_tiny_model(tmp_path_factory.mktemp("training-faults"))


def _diverge_at(monkeypatch: pytest.MonkeyPatch, step: int) -> None:
    """From global training step ``step`` on, the weights turn NaN and so does the loss."""
    real = trainer_module.train_one_epoch
    seen = {"steps": 0}

    def train_one_epoch(model, *args, on_batch, **kwargs):
        def observed(loss: float) -> bool:
            seen["steps"] += 1
            if seen["steps"] >= step:
                with torch.no_grad():
                    for parameter in model.parameters():
                        parameter.fill_(float("nan"))
                loss = float("nan")
            return on_batch(loss)

        return real(model, *args, on_batch=observed, **kwargs)

    monkeypatch.setattr(trainer_module, "train_one_epoch", train_one_epoch)


def test_diverging_run_stops_keeps_last_good_checkpoint_and_resumes(
    tmp_path: Path, capsys, monkeypatch
):
    """patches_per_epoch=8, batch 4: two steps per epoch; step 3 is the first of epoch 2."""
    data = write_dataset(tmp_path / "data")
    out = tmp_path / "run"
    args = ["train", "--data", data, "--out", out, "--no-progress"]
    _diverge_at(monkeypatch, 3)
    code, _, err = run([*args, *tiny(3, "train.patches_per_epoch=8", "data.task=binary")], capsys)
    line = assert_one_line_error(code, err, str(out), "step 1 of epoch 2", "nan", "train.lr")
    assert "last.pt keeps epoch 1" in line and "--resume" in line
    state = load_checkpoint(out / "last.pt")
    assert state["epoch"] == 1
    assert all(bool(torch.isfinite(t).all()) for t in state["model_state"].values())
    assert load_checkpoint(out / "best.pt")["epoch"] == 1
    assert not (out / LOCK_NAME).exists()
    assert_no_temporaries(out)
    monkeypatch.undo()
    code, _, err = run([*args, "--resume"], capsys)
    assert code == 0, err
    assert load_checkpoint(out / "last.pt")["epoch"] == 3


def test_diverging_first_epoch_says_there_is_no_checkpoint(tmp_path: Path, capsys, monkeypatch):
    data = write_dataset(tmp_path / "data")
    _diverge_at(monkeypatch, 1)
    code, _, err = run(
        ["train", "--data", data, "--out", tmp_path / "run", "--no-progress", *tiny()], capsys
    )
    line = assert_one_line_error(code, err, "step 1 of epoch 1", "before any checkpoint")
    assert "new run folder" in line
    assert not list((tmp_path / "run").glob("*.pt"))


# --------------------------------------------------------------------------- the run lock


def _lock(run_dir: Path, pid: int, host: str | None = None) -> None:
    record = {"pid": pid, "host": host or this_host(), "started": "now", "command": "lapseg train"}
    (run_dir / LOCK_NAME).write_text(json.dumps(record))


@pytest.fixture
def live_process():
    """Another process that runs for the duration of the test."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield process.pid
    process.kill()
    process.wait()


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_second_train_on_a_locked_run_folder_refuses(trained, tmp_path: Path, capsys, live_process):
    """A running lapseg train holds the folder: a second one (new or --resume) refuses with one
    line naming the process and touches nothing."""
    run_dir = copy_tree(trained[0], tmp_path / "run")
    state = load_checkpoint(run_dir / "last.pt")
    _lock(run_dir, live_process)
    before = snapshot(run_dir)
    for extra in ([], ["--resume"]):
        more = tiny() if not extra else []
        code, _, err = run(
            ["train", "--data", trained[1], "--out", run_dir, "--no-progress", *extra, *more],
            capsys,
        )
        assert_one_line_error(code, err, str(run_dir), f"process {live_process}", LOCK_NAME)
    assert snapshot(run_dir) == before
    assert load_checkpoint(run_dir / "last.pt")["epoch"] == state["epoch"]


def test_new_run_folder_locked_by_another_process_refuses(tmp_path: Path, capsys, live_process):
    data = write_dataset(tmp_path / "data")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    _lock(run_dir, live_process)
    code, _, err = run(
        ["train", "--data", data, "--out", run_dir, "--no-progress", *tiny()], capsys
    )
    assert_one_line_error(code, err, f"process {live_process}")
    assert files_under(run_dir) == [LOCK_NAME]


def test_lock_of_another_machine_is_reported_not_taken(trained, tmp_path: Path, capsys):
    run_dir = copy_tree(trained[0], tmp_path / "run")
    _lock(run_dir, 12345, host="node-17.cluster")
    before = snapshot(run_dir)
    code, _, err = run(
        ["train", "--resume", "--data", trained[1], "--out", run_dir, "--no-progress"], capsys
    )
    assert_one_line_error(code, err, "node-17.cluster", "delete .lapseg.lock")
    assert snapshot(run_dir) == before


def test_stale_lock_of_a_killed_run_is_taken_over(tmp_path: Path, capsys):
    """A run killed after epoch 1 left its lock: --resume takes it over (one log line), finishes
    the run and removes the lock."""
    data = write_dataset(tmp_path / "data")
    out = tmp_path / "run"
    args = ["train", "--data", data, "--out", out, "--no-progress"]
    code, _, err = run([*args, *tiny(2, "data.task=binary")], capsys)
    assert code == 0, err
    state = load_checkpoint(out / "last.pt")  # make it look interrupted after epoch 1
    state.update(finished=False)
    save_checkpoint(out / "last.pt", {k: v for k, v in state.items() if k != "format"})
    dead = _dead_pid()
    _lock(out, dead)
    code, stdout, err = run([*args, "--resume"], capsys)
    assert code == 0, err
    assert f"took over the lock of process {dead}" in stdout
    assert f"took over the lock of process {dead}" in (out / "log.txt").read_text()
    assert not (out / LOCK_NAME).exists()


def test_resume_of_a_finished_run_is_refused(trained, tmp_path: Path, capsys):
    run_dir = copy_tree(trained[0], tmp_path / "run")
    before = snapshot(run_dir)
    code, _, err = run(
        ["train", "--resume", "--data", trained[1], "--out", run_dir, "--no-progress"], capsys
    )
    assert_one_line_error(code, err, str(run_dir), "already finished")
    assert_results_intact(before, run_dir)
    assert not (run_dir / LOCK_NAME).exists()


def test_resume_without_a_run_folder_leaves_nothing(trained, tmp_path: Path, capsys):
    code, _, err = run(
        ["train", "--resume", "--data", trained[1], "--out", tmp_path / "run", "--no-progress"],
        capsys,
    )
    assert_one_line_error(code, err, "nothing to resume")
    assert not (tmp_path / "run").exists()


def test_train_into_a_finished_run_folder_is_refused(trained, tmp_path: Path, capsys):
    run_dir = copy_tree(trained[0], tmp_path / "run")
    before = snapshot(run_dir)
    code, _, err = run(
        ["train", "--data", trained[1], "--out", run_dir, "--no-progress", *tiny()], capsys
    )
    assert_one_line_error(code, err, "not empty")
    assert snapshot(run_dir) == before
