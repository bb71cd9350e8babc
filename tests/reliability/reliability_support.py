"""Shared helpers of the fault-injection suite: run the CLI in-process, check the promises.

Every case checks the same promises (docs/reliability.md): exit code 2 (or 0 where the input is
legitimate), exactly one line on stderr starting ``lapseg: error:`` that names the file and the
problem, no traceback, no partial output, inputs byte-identical, earlier results intact.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch

from lapseg.cli import main

TINY = [
    "--set",
    "model.base_features=4",
    "--set",
    "model.depth=2",
    "--set",
    "train.epochs=1",
    "--set",
    "train.patch_size=[48, 48]",
    "--set",
    "train.patches_per_epoch=4",
    "--set",
    "train.batch_size=4",
    "--set",
    "train.tensorboard=false",
    "--set",
    "train.amp=false",
    "--set",
    "train.deterministic=true",
    "--set",
    "predict.tile_size=[64, 64]",
]
"""A model and a run small enough for a few seconds of training on one CPU thread."""

TEMPORARY = re.compile(r"\.tmp(\.[^.]*)?$")
"""Names of :func:`lapseg.io.files.atomic_output`'s temporary files."""


def tiny(epochs: int = 1, *more: str) -> list[str]:
    """:data:`TINY` with ``train.epochs=epochs`` and more ``--set`` overrides."""
    args = [a if a != "train.epochs=1" else f"train.epochs={epochs}" for a in TINY]
    for item in more:
        args += ["--set", item]
    return args


def run(args: Sequence[object], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """``lapseg ARGS`` in this process: exit code, stdout, stderr."""
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(code: int, err: str, *fragments: str) -> str:
    """Exit code 2 and exactly one stderr line ``lapseg: error: ...`` holding ``fragments``."""
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, (code, err)
    assert len(lines) == 1, err
    assert lines[0].startswith("lapseg: error: "), lines[0]
    for fragment in fragments:
        assert str(fragment) in lines[0], (fragment, lines[0])
    return lines[0]


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` with its bytes (to prove inputs and results unchanged)."""
    if not root.exists():
        return {}
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def assert_results_intact(before: dict[str, bytes], root: Path) -> None:
    """Every file of ``before`` (a :func:`snapshot` of ``root``) is unchanged, except that the
    run's ``log.txt`` may have grown (it records every attempt)."""
    after = snapshot(root)
    for name, content in before.items():
        assert name in after, name
        if name == "log.txt":
            assert after[name].startswith(content)
        else:
            assert after[name] == content, name


def files_under(root: Path) -> list[str]:
    """Relative paths of the files under ``root`` (empty if it does not exist)."""
    if not root.exists():
        return []
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def assert_no_temporaries(root: Path) -> None:
    """No temporary file of an atomic write is left under ``root``."""
    left = [name for name in files_under(root) if TEMPORARY.search(name)]
    assert not left, left


def write_dataset(root: Path, n: int = 4, *, seed: int = 1) -> Path:
    """``n`` synthetic 96 x 96 image/instance-label pairs under ``root/images``, ``root/masks``."""
    from conftest import write_pairs

    return write_pairs(root, n, seed=seed)


def train_tiny_model(root: Path, *more: str) -> tuple[Path, Path]:
    """A trained binary run folder and its data under ``root`` (about 3 s)."""
    data = write_dataset(root / "data", 4, seed=3)
    args = ["train", "--data", data, "--out", root / "run", "--no-progress", *tiny(1, *more)]
    assert main([str(a) for a in [*args, "--set", "data.task=binary"]]) == 0
    return root / "run", data


def float_image(path: Path, value: float | None = None) -> np.ndarray:
    """Rewrite the TIFF at ``path`` as float32 (with pixel [5, 7] set to ``value``)."""
    image = tifffile.imread(path).astype(np.float32)
    if value is not None:
        image[5, 7] = value
    tifffile.imwrite(path, image)
    return image


def disk_full(
    monkeypatch: pytest.MonkeyPatch, matches: Callable[[Path], bool], *, at: int = 1
) -> dict[str, int]:
    """Make the ``at``-th atomic write whose destination ``matches`` fail with ``ENOSPC``.

    The fault is injected where lapseg commits a written file (:func:`os.replace` called by
    :func:`lapseg.io.files.atomic_output`): the temporary file is complete on disk, exactly the
    state a full disk leaves at the last moment. Returns the call counter.
    """
    real = os.replace
    calls = {"n": 0}

    def replace(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        if matches(Path(dst)):
            calls["n"] += 1
            if calls["n"] == at:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    return calls


def disk_full_in_checkpoint(monkeypatch: pytest.MonkeyPatch, name: str, *, at: int) -> None:
    """Make the ``at``-th ``torch.save`` of checkpoint ``name`` write half its bytes, then fail
    with ``ENOSPC`` (the disk filling up in the middle of a checkpoint)."""
    import io

    real = torch.save
    calls = {"n": 0}

    def save(obj: object, f: object, *args: object, **kwargs: object) -> None:
        target = Path(str(getattr(f, "name", f))).name
        if target.startswith(f".{name}."):
            calls["n"] += 1
            if calls["n"] == at:
                buffer = io.BytesIO()
                real(obj, buffer)
                f.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)


def copy_tree(source: Path, target: Path) -> Path:
    """A copy of ``source`` at ``target``."""
    shutil.copytree(source, target)
    return target
