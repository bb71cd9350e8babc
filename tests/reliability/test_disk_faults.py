"""Disk and permission faults: a full disk while writing a checkpoint, a mask, a report, an
evaluation, an export; an output folder lapseg may not write to; read-only inputs. Every output
follows the umask."""

from __future__ import annotations

import errno
import io
import os
import stat
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from reliability_support import (
    assert_no_temporaries,
    assert_one_line_error,
    assert_results_intact,
    copy_tree,
    disk_full,
    disk_full_in_checkpoint,
    files_under,
    run,
    snapshot,
    tiny,
    train_tiny_model,
    write_dataset,
)

from lapseg.models.checkpoint import load_checkpoint

ROOT = os.geteuid() == 0 if hasattr(os, "geteuid") else False


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return train_tiny_model(tmp_path_factory.mktemp("disk"))


def _predict(trained, inputs: Path, output: Path, capsys, *extra: object):
    args = ["predict", "--model", trained[0], "--input", inputs, "--output", output]
    return run([*args, "--no-progress", *extra], capsys)


# --------------------------------------------------------------------------- full disk


def test_disk_full_while_writing_a_checkpoint(tmp_path: Path, capsys, monkeypatch):
    """Half of last.pt is on disk when the disk fills up in epoch 2: the run stops with one
    line, last.pt of epoch 1 is intact, no temporary is left, and --resume completes."""
    data = write_dataset(tmp_path / "data")
    out = tmp_path / "run"
    disk_full_in_checkpoint(monkeypatch, "last.pt", at=2)
    code, _, err = run(
        ["train", "--data", data, "--out", out, "--no-progress", *tiny(2, "data.task=binary")],
        capsys,
    )
    assert_one_line_error(code, err, str(out / "last.pt"), "No space left on device", "--resume")
    assert load_checkpoint(out / "last.pt")["epoch"] == 1
    assert_no_temporaries(out)
    monkeypatch.undo()
    code, _, err = run(["train", "--resume", "--data", data, "--out", out, "--no-progress"], capsys)
    assert code == 0, err
    state = load_checkpoint(out / "last.pt")
    assert state["finished"] and state["epoch"] == 2
    assert not (out / ".lapseg.lock").exists()


def test_disk_full_while_writing_a_mask(trained, tmp_path: Path, capsys, monkeypatch):
    """A second prediction into a folder fails on img1's mask: the first prediction's
    masks/img1.tif is still there byte for byte, every other file is whole (old or new, the
    same pixels), nothing is half-written."""
    inputs, out = trained[1] / "images", tmp_path / "pred"
    code, _, err = _predict(trained, inputs, out, capsys)
    assert code == 0, err
    before, inputs_before = snapshot(out), snapshot(inputs)
    disk_full(monkeypatch, lambda p: p.parent.name == "masks" and p.name == "img1.tif")
    code, _, err = _predict(trained, inputs, out, capsys)
    assert_one_line_error(code, err, str(out / "masks" / "img1.tif"), "No space left")
    assert (out / "masks" / "img1.tif").read_bytes() == before["masks/img1.tif"]
    assert files_under(out) == sorted(before)
    for name, content in before.items():
        old = tifffile.imread(io.BytesIO(content))
        np.testing.assert_array_equal(tifffile.imread(out / name), old, err_msg=name)
    assert snapshot(inputs) == inputs_before
    assert_no_temporaries(out)


def test_disk_full_while_writing_the_report(trained, tmp_path: Path, capsys, monkeypatch):
    run_dir = copy_tree(trained[0], tmp_path / "run")
    before = snapshot(run_dir)
    disk_full(monkeypatch, lambda p: p.name == "report.html")
    code, _, err = run(["report", run_dir], capsys)
    assert_one_line_error(code, err, "report.html", "No space left")
    assert snapshot(run_dir) == before
    assert_no_temporaries(run_dir)


def test_disk_full_while_writing_the_evaluation(trained, tmp_path: Path, capsys, monkeypatch):
    pred = tmp_path / "pred"
    code, _, err = _predict(trained, trained[1] / "images", pred, capsys)
    assert code == 0, err
    disk_full(monkeypatch, lambda p: p.name == "summary.json")
    code, _, err = run(
        ["evaluate", "--pred", pred, "--truth", trained[1] / "masks", "--out", tmp_path / "e"],
        capsys,
    )
    assert_one_line_error(code, err, "summary.json", "No space left")
    assert "summary.json" not in files_under(tmp_path / "e")
    assert_no_temporaries(tmp_path / "e")


def test_disk_full_while_writing_an_export(trained, tmp_path: Path, capsys, monkeypatch):
    pytest.importorskip("onnx")
    disk_full(monkeypatch, lambda p: p.suffix == ".onnx")
    code, _, err = run(
        ["export", trained[0], "--format", "onnx", "--out", tmp_path / "m.onnx"], capsys
    )
    assert_one_line_error(code, err, "m.onnx", "No space left")
    assert files_under(tmp_path) == []


def test_disk_full_at_the_end_of_a_cv_fold_keeps_the_finished_fold(
    tmp_path: Path, capsys, monkeypatch
):
    """The disk fills up while fold 1 writes its test metrics: fold 0 is kept as it is, and the
    same command then finishes the CV without training fold 0 again."""
    data = write_dataset(tmp_path / "data", 4)
    out = tmp_path / "cv"
    args = ["cv", "--data", data, "--out", out, "--folds", "2", "--no-progress"]
    args += tiny(1, "data.task=binary")
    disk_full(monkeypatch, lambda p: p.name == "test_metrics.json", at=2)
    code, _, err = run(args, capsys)
    assert_one_line_error(code, err, str(out / "fold1" / "test_metrics.json"), "No space left")
    fold0 = snapshot(out / "fold0")
    monkeypatch.undo()
    code, _, err = run(args, capsys)
    assert code == 0, err
    assert_results_intact(fold0, out / "fold0")
    assert (out / "cv_summary.csv").read_text().count("\n") >= 3


# --------------------------------------------------------------------------- permissions


def _deny_writes_under(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """Creating files or folders under ``folder`` fails with EACCES (what a folder without
    write permission does, also for root, who ignores permission bits)."""
    real_open, real_mkdir = os.open, os.mkdir

    def denied(path) -> bool:
        return Path(os.fsdecode(path)).is_relative_to(folder)

    def fake_open(path, flags, *args, **kwargs):
        if flags & os.O_CREAT and denied(path):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return real_open(path, flags, *args, **kwargs)

    def fake_mkdir(path, *args, **kwargs):
        if denied(path) and not Path(os.fsdecode(path)).is_dir():
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", fake_open)
    monkeypatch.setattr(os, "mkdir", fake_mkdir)


def test_output_folder_without_write_permission(trained, tmp_path: Path, capsys, monkeypatch):
    out = tmp_path / "locked"
    out.mkdir()
    _deny_writes_under(monkeypatch, out)
    code, _, err = _predict(trained, trained[1] / "images", out, capsys)
    assert_one_line_error(code, err, str(out), "Permission denied", "permissions")
    assert files_under(out) == []


def test_run_folder_without_write_permission(tmp_path: Path, capsys, monkeypatch):
    data = write_dataset(tmp_path / "data")
    parent = tmp_path / "readonly"
    parent.mkdir()
    _deny_writes_under(monkeypatch, parent)
    code, _, err = run(
        ["train", "--data", data, "--out", parent / "run", "--no-progress", *tiny()], capsys
    )
    assert_one_line_error(code, err, str(parent / "run"), "Permission denied")
    assert files_under(parent) == []


@pytest.mark.skipif(ROOT, reason="root ignores permission bits (the injected test covers it)")
def test_output_folder_chmod_read_only(trained, tmp_path: Path, capsys):
    out = tmp_path / "locked"
    out.mkdir()
    out.chmod(0o555)
    try:
        code, _, err = _predict(trained, trained[1] / "images", out, capsys)
    finally:
        out.chmod(0o755)
    assert_one_line_error(code, err, str(out), "Permission denied")
    assert files_under(out) == []


def test_read_only_inputs_are_read_and_never_written(trained, tmp_path: Path, capsys):
    data = copy_tree(trained[1], tmp_path / "data")
    for path in sorted(data.rglob("*"), reverse=True):
        path.chmod(0o555 if path.is_dir() else 0o444)
    before = snapshot(data)
    try:
        code, _, err = _predict(trained, data / "images", tmp_path / "pred", capsys)
        assert code == 0, err
        code, _, err = run(
            ["train", "--data", data, "--out", tmp_path / "run", "--no-progress", *tiny()], capsys
        )
        assert code == 0, err
    finally:
        for path in data.rglob("*"):
            path.chmod(0o755 if path.is_dir() else 0o644)
    assert snapshot(data) == before


# --------------------------------------------------------------------------- umask


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_every_output_follows_the_umask(trained, tmp_path: Path, capsys, umask: int):
    """Checkpoints, config, history, report, masks, labels, probabilities, evaluation files and
    exports get ``0o666 & ~umask`` (0644 under umask 022), folders ``0o777 & ~umask``."""
    previous = os.umask(umask)
    try:
        data = trained[1]
        run_dir = tmp_path / "run"
        code, _, err = run(
            ["train", "--data", data, "--out", run_dir, "--no-progress", *tiny()], capsys
        )
        assert code == 0, err
        pred = tmp_path / "pred"
        code, _, err = _predict(trained, data / "images", pred, capsys, "--labels")
        assert code == 0, err
        code, _, err = run(
            ["evaluate", "--pred", pred, "--truth", data / "masks", "--out", tmp_path / "e"],
            capsys,
        )
        assert code == 0, err
        code, _, err = run(["report", run_dir], capsys)
        assert code == 0, err
    finally:
        os.umask(previous)
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    names = {p.name for p in files}
    assert {"best.pt", "last.pt", "config.yaml", "history.csv", "report.html"} <= names
    assert {"per_image.csv", "summary.json"} <= names
    for kind in ("masks", "labels", "probabilities"):
        assert (pred / kind / "img0.tif").is_file(), kind
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask, path
    for path in [p for p in tmp_path.rglob("*") if p.is_dir()]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o777 & ~umask, path


def test_checkpoint_written_half_is_never_loaded(tmp_path: Path, monkeypatch):
    """The bytes a full disk leaves in a temporary checkpoint are not a checkpoint; the old one
    is the one on disk, and the error names it (not the temporary)."""
    from lapseg.models.checkpoint import save_checkpoint

    path = save_checkpoint(tmp_path / "last.pt", {"epoch": 1, "w": torch.ones(3)})

    def half(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 half a zip")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(torch, "save", half)
    with pytest.raises(OSError, match="No space") as info:
        save_checkpoint(path, {"epoch": 2, "w": torch.zeros(3)})
    monkeypatch.undo()
    assert info.value.filename == str(path)
    assert files_under(tmp_path) == ["last.pt"]
    assert np.array_equal(load_checkpoint(path)["w"].numpy(), np.ones(3))
