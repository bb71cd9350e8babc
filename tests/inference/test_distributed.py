"""``predict --scheduler``: files spread over a Dask cluster give the single-process outputs."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tifffile

from conftest import SMALLEST_TRAINING
from lapseg.cli import main
from lapseg.config import load_config
from lapseg.data.synthetic import synthetic_image
from lapseg.errors import LapsegInputError
from lapseg.inference.apply import predict_path
from lapseg.inference.distributed import (
    ModelSpec,
    parse_scheduler,
    predict_path_distributed,
    worker_models,
)
from lapseg.io.images import write_tiff_stack
from lapseg.training.trainer import fit

distributed = pytest.importorskip("distributed")

TINY = [*SMALLEST_TRAINING, "train.epochs=1"]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny instance model (3-class), trained in about a second."""
    from conftest import write_pairs

    root = tmp_path_factory.mktemp("dask")
    data = write_pairs(root / "data", 4, seed=0)
    fit(load_config(None, TINY), data, root / "run", progress=False)
    return root / "run"


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Five still images and a 3-frame movie (TYX stack) in one folder."""
    from conftest import TINY_SYNTHETIC

    folder = tmp_path_factory.mktemp("inputs")
    rng = np.random.default_rng(1)
    for i in range(5):
        tifffile.imwrite(folder / f"cell{i}.tif", synthetic_image(TINY_SYNTHETIC, rng=rng)[0])
    frames = np.stack([synthetic_image(TINY_SYNTHETIC, rng=rng)[0] for _ in range(3)])
    write_tiff_stack(
        folder / "movie.tif", iter(frames), shape=frames.shape, dtype=frames.dtype, axes="TYX"
    )
    return folder


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """A LocalCluster of 2 single-threaded workers (threads of this process) on tcp."""
    with distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=False,
        protocol="tcp",
        dashboard_address=":0",  # any free port: 8787 may be taken
    ) as local:
        yield local.scheduler_address


def _files(folder: Path) -> list[Path]:
    return sorted(p.relative_to(folder) for p in folder.rglob("*") if p.is_file())


def _same_outputs(a: Path, b: Path) -> None:
    """Same files, same pixels, same axes and pixel size (OME-TIFFs differ by a random UUID)."""
    assert _files(a) == _files(b)
    for name in _files(a):
        if name.suffix != ".tif":
            assert (a / name).read_bytes() == (b / name).read_bytes(), name
            continue
        with tifffile.TiffFile(a / name) as first, tifffile.TiffFile(b / name) as second:
            np.testing.assert_array_equal(first.asarray(), second.asarray(), err_msg=str(name))
            assert first.series[0].axes == second.series[0].axes
            tags = ("XResolution", "YResolution", "ResolutionUnit")
            assert [first.pages[0].tags.valueof(t) for t in tags] == [
                second.pages[0].tags.valueof(t) for t in tags
            ]


def test_two_workers_write_the_single_process_outputs(
    run: Path, inputs: Path, cluster: str, tmp_path: Path
):
    spec = ModelSpec((run,))
    models = spec.load()
    single = predict_path(models, inputs, tmp_path / "single")
    progress: list[tuple[str, int, int]] = []
    spread = predict_path_distributed(
        models,
        inputs,
        tmp_path / "dask",
        spec=spec,
        scheduler=cluster,
        on_progress=lambda *a: progress.append(a),
    )
    _same_outputs(tmp_path / "single", tmp_path / "dask")
    lines = [
        [line.replace(str(tmp_path / name), "OUT") for line in summary.lines(tmp_path / name)]
        for name, summary in (("single", single), ("dask", spread))
    ]
    assert lines[0] == lines[1]
    assert len(spread.images) == 5 and [m.name for m in spread.movies] == ["movie"]
    assert sorted(progress) == [("files", n, 6) for n in range(1, 7)]


def test_local_cluster_of_two_workers(run: Path, inputs: Path, tmp_path: Path):
    spec = ModelSpec((run,))
    models = spec.load()
    predict_path(models, inputs, tmp_path / "single")
    predict_path_distributed(
        models, inputs, tmp_path / "local", spec=spec, scheduler="local:2", processes=False
    )
    _same_outputs(tmp_path / "single", tmp_path / "local")


def test_models_load_once_per_process(run: Path):
    spec = ModelSpec((run,))
    assert worker_models(spec) is worker_models(spec)
    assert spec == ModelSpec((run,)) and hash(spec) == hash(ModelSpec((run,)))


def test_a_silent_scheduler_is_a_one_line_error_and_writes_nothing(
    run: Path, inputs: Path, tmp_path: Path
):
    spec = ModelSpec((run,))
    started = time.perf_counter()
    with pytest.raises(
        LapsegInputError, match=r"no Dask scheduler answers at tcp://127\.0\.0\.1:9 within 2 s"
    ):
        predict_path_distributed(
            spec.load(),
            inputs,
            tmp_path / "out",
            spec=spec,
            scheduler="tcp://127.0.0.1:9",  # the discard port: nothing listens
            timeout=2,
        )
    assert time.perf_counter() - started < 30
    assert not (tmp_path / "out").exists()


def test_bad_scheduler_and_inputs_fail_before_any_work(
    run: Path, inputs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    assert parse_scheduler("local:3") == 3
    assert parse_scheduler("tcp://10.0.0.1:8786") == "tcp://10.0.0.1:8786"
    for text in ("local:0", "local:two", "localhost:8786", ""):
        with pytest.raises(LapsegInputError, match="--scheduler"):
            parse_scheduler(text)
    out = tmp_path / "out"
    base = ["predict", "--model", str(run), "--output", str(out), "--no-progress"]
    assert main([*base, "--input", str(inputs), "--scheduler", "local:0"]) == 2
    assert main([*base, "--input", str(tmp_path / "none"), "--scheduler", "local:1"]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 2 and "worker count" in errors[0] and "not found" in errors[1]
    assert not out.exists()


def test_cli_prints_the_single_process_summary(
    run: Path,
    inputs: Path,
    cluster: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.chdir(tmp_path)  # relative paths: workers get them absolute
    relative = os.path.relpath(inputs, tmp_path)
    base = ["predict", "--model", str(run), "--input", relative, "--no-progress"]
    assert main([*base, "--output", "out"]) == 0
    single = capsys.readouterr().out
    assert "out/movie/masks.tif" in single
    assert main([*base, "--output", "out", "--scheduler", cluster]) == 0  # overwrites
    assert capsys.readouterr().out == single


def test_a_failing_file_stops_the_run_with_its_one_line_error(
    run: Path, inputs: Path, cluster: str, tmp_path: Path
):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.tif").write_bytes((inputs / "cell0.tif").read_bytes())
    (folder / "b.tif").write_bytes(b"not a TIFF file")
    spec = ModelSpec((run,))
    with pytest.raises(LapsegInputError) as error:
        predict_path_distributed(
            spec.load(), folder, tmp_path / "out", spec=spec, scheduler=cluster
        )
    assert "b.tif" in str(error.value) and "\n" not in str(error.value)
