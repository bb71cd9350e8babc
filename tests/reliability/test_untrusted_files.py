"""Files from outside are data, never code, and never a reason to allocate without bound:
configuration and search-space YAML with Python tags, checkpoints that pickle code or whose
tensors do not fit their configuration, image headers that declare absurd sizes."""

from __future__ import annotations

import os
import struct
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from reliability_support import (
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

from lapseg.models.checkpoint import load_checkpoint, save_checkpoint


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return train_tiny_model(tmp_path_factory.mktemp("untrusted"))


def _code(marker: Path) -> str:
    """YAML that would create ``marker`` if a loader ran it."""
    return f"!!python/object/apply:os.mkdir [{str(marker)!r}]"


# --------------------------------------------------------------------------- YAML


def test_config_file_cannot_run_code(tmp_path: Path, capsys):
    data = write_dataset(tmp_path / "data")
    marker = tmp_path / "pwned"
    config = tmp_path / "c.yaml"
    config.write_text(f"train:\n  lr: {_code(marker)}\n")
    code, _, err = run(
        ["train", "--data", data, "--out", tmp_path / "run", "--config", config, *tiny()], capsys
    )
    assert_one_line_error(code, err, "c.yaml", "python/object/apply")
    assert not marker.exists()
    assert not (tmp_path / "run").exists()


def test_search_space_cannot_run_code(tmp_path: Path, capsys):
    pytest.importorskip("optuna")
    data = write_dataset(tmp_path / "data")
    marker = tmp_path / "pwned"
    space = tmp_path / "space.yaml"
    space.write_text(f"train.lr: {{type: categorical, choices: [{_code(marker)}]}}\n")
    code, _, err = run(
        ["search", "--data", data, "--space", space, "--trials", "1", "--out", tmp_path / "s"],
        capsys,
    )
    assert_one_line_error(code, err, "space.yaml", "python/object/apply")
    assert not marker.exists()
    assert files_under(tmp_path / "s") == []


def test_override_cannot_run_code(tmp_path: Path, capsys):
    marker = tmp_path / "pwned"
    code, _, err = run(["config", "--set", f"train.lr={_code(marker)}"], capsys)
    assert_one_line_error(code, err, "train.lr")
    assert not marker.exists()


# --------------------------------------------------------------------------- checkpoints


class _Payload:
    """Pickles to a call of ``os.mkdir(marker)``: what a hostile checkpoint would carry."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def _tampered(trained: tuple[Path, Path], target: Path, change) -> Path:
    """A copy of the trained ``best.pt`` at ``target`` with ``change(checkpoint)`` applied."""
    checkpoint = load_checkpoint(trained[0] / "best.pt")
    change(checkpoint)
    save_checkpoint(target, {k: v for k, v in checkpoint.items() if k != "format"})
    return target


def _first_conv(checkpoint: dict) -> str:
    return next(k for k, v in checkpoint["model_state"].items() if v.ndim == 4)


def _predict(model: Path, trained, tmp_path: Path, capsys) -> tuple[int, str, str]:
    return run(
        [
            "predict",
            "--model",
            model,
            "--input",
            trained[1] / "images" / "img0.tif",
            "--output",
            tmp_path / "out",
            "--no-progress",
        ],
        capsys,
    )


def test_checkpoint_that_pickles_code_is_refused(trained, tmp_path: Path, capsys):
    marker = tmp_path / "pwned"
    bad = tmp_path / "evil.pt"
    torch.save({"format": "lapseg-checkpoint/1", "payload": _Payload(marker)}, bad)
    code, _, err = _predict(bad, trained, tmp_path, capsys)
    assert_one_line_error(code, err, "evil.pt", "not a readable lapseg checkpoint")
    assert not marker.exists()
    code, _, err = run(["export", bad, "--format", "onnx", "--out", tmp_path / "m.onnx"], capsys)
    assert_one_line_error(code, err, "evil.pt")
    assert not marker.exists()
    assert files_under(tmp_path / "out") == [] and not (tmp_path / "m.onnx").exists()


def test_resume_from_a_last_pt_that_pickles_code_is_refused(trained, tmp_path: Path, capsys):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    marker = tmp_path / "pwned"
    torch.save({"format": "lapseg-checkpoint/1", "payload": _Payload(marker)}, run_dir / "last.pt")
    before = snapshot(run_dir)
    code, _, err = run(
        ["train", "--resume", "--data", trained[1], "--out", run_dir, "--no-progress"], capsys
    )
    assert_one_line_error(code, err, "last.pt")
    assert not marker.exists()
    assert snapshot(run_dir) == before


def _wrong_shape(checkpoint: dict) -> None:
    key = _first_conv(checkpoint)
    checkpoint["model_state"][key] = torch.zeros(7, 7, 3, 3)


def _wrong_dtype(checkpoint: dict) -> None:
    key = _first_conv(checkpoint)
    checkpoint["model_state"][key] = checkpoint["model_state"][key].to(torch.int32)


def _nan_weights(checkpoint: dict) -> None:
    key = _first_conv(checkpoint)
    checkpoint["model_state"][key] = torch.full_like(checkpoint["model_state"][key], np.nan)


def _missing_tensor(checkpoint: dict) -> None:
    checkpoint["model_state"].pop(_first_conv(checkpoint))


def _other_config(checkpoint: dict) -> None:
    checkpoint["config"]["model"]["base_features"] = 8  # the tensors are for 4


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (_wrong_shape, "has shape (7, 7, 3, 3)"),
        (_wrong_dtype, "dtype torch.int32"),
        (_nan_weights, "NaN or infinite"),
        (_missing_tensor, "lacks"),
        (_other_config, "the network of the checkpoint's configuration needs"),
    ],
    ids=["shape", "dtype", "nan-weights", "missing-tensor", "config-mismatch"],
)
def test_checkpoint_tensors_must_fit_the_configuration(
    trained, tmp_path: Path, capsys, change, problem: str
):
    bad = _tampered(trained, tmp_path / "bad.pt", change)
    code, _, err = _predict(bad, trained, tmp_path, capsys)
    assert_one_line_error(code, err, "bad.pt", problem)
    assert files_under(tmp_path / "out") == []
    code, _, err = run(["export", bad, "--format", "onnx", "--out", tmp_path / "m.onnx"], capsys)
    assert_one_line_error(code, err, "bad.pt", problem)
    assert not (tmp_path / "m.onnx").exists()


def test_resume_from_a_last_pt_with_wrong_shapes_is_refused(trained, tmp_path: Path, capsys):
    run_dir = copy_tree(trained[0], tmp_path / "run")
    state = load_checkpoint(run_dir / "last.pt")
    state["finished"] = False
    _wrong_shape(state)
    save_checkpoint(run_dir / "last.pt", {k: v for k, v in state.items() if k != "format"})
    before = snapshot(run_dir)
    code, _, err = run(
        ["train", "--resume", "--data", trained[1], "--out", run_dir, "--no-progress"], capsys
    )
    assert_one_line_error(code, err, "last.pt", "has shape (7, 7, 3, 3)")
    assert_results_intact(before, run_dir)


# --------------------------------------------------------------------------- image headers


def _tiff_header(path: Path, width: int, height: int, *, compression: int = 1) -> Path:
    """A tiny TIFF whose header declares ``height`` x ``width`` uint8 pixels in one strip."""
    strip = zlib.compress(b"\x00" * 64) if compression == 8 else b"\x00" * 16
    entries = [
        (256, 4, width),  # ImageWidth
        (257, 4, height),  # ImageLength
        (258, 3, 8),  # BitsPerSample
        (259, 3, compression),  # 1 none, 8 deflate
        (262, 3, 1),  # BlackIsZero
        (273, 4, 8),  # StripOffsets: right after the 8-byte header
        (277, 3, 1),  # SamplesPerPixel
        (278, 4, height),  # RowsPerStrip
        (279, 4, len(strip)),  # StripByteCounts
    ]
    ifd = struct.pack("<H", len(entries))
    for tag, kind, value in entries:
        packed = struct.pack("<HH", value, 0) if kind == 3 else struct.pack("<I", value)
        ifd += struct.pack("<HHI", tag, kind, 1) + packed
    header = b"II*\x00" + struct.pack("<I", 8 + len(strip))
    path.write_bytes(header + strip + ifd + struct.pack("<I", 0))
    return path


def _png_header(path: Path, width: int, height: int) -> Path:
    """A PNG whose IHDR declares ``height`` x ``width`` 8-bit grey pixels (no real data)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )
    return path


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (lambda p: _tiff_header(p / "huge.tif", 10**6, 10**6), "file holds"),
        (lambda p: _tiff_header(p / "huge.tif", 10**7, 10**7, compression=8), "memory"),
        (lambda p: _png_header(p / "huge.png", 10**6, 10**6), "refused before decoding"),
    ],
    ids=["tiff-uncompressed", "tiff-deflate", "png"],
)
def test_absurd_image_header_is_refused_before_allocation(
    trained, tmp_path: Path, capsys, make, problem: str
):
    inputs = tmp_path / "in"
    inputs.mkdir()
    huge = make(inputs)
    tracemalloc.start()
    try:
        code, _, err = run(
            [
                "predict",
                "--model",
                trained[0],
                "--input",
                inputs,
                "--output",
                tmp_path / "out",
                "--no-progress",
            ],
            capsys,
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert_one_line_error(code, err, huge.name, problem)
    assert peak < 200 * 2**20, peak  # nothing near the declared size was allocated
    assert files_under(tmp_path / "out") == []


def test_absurd_mask_header_is_refused_in_training(tmp_path: Path, capsys):
    data = write_dataset(tmp_path / "data")
    _tiff_header(data / "masks" / "img2.tif", 10**6, 10**6)
    code, _, err = run(
        ["train", "--data", data, "--out", tmp_path / "run", "--no-progress", *tiny()], capsys
    )
    assert_one_line_error(code, err, "img2.tif", "file holds")
    assert not (tmp_path / "run").exists()
