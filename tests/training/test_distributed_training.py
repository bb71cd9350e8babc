"""Distributed data-parallel training on the CPU: 2 gloo processes against one.

The multi-process tests start the processes the way torchrun does (``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT`` in the environment, then ``fit``), each rank with
its own ``--out`` folder, as on nodes without a shared disk: rank 1's folder must never appear.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from lapseg.cli import main
from lapseg.config import load_config
from lapseg.errors import LapsegInputError
from lapseg.models.checkpoint import load_checkpoint
from lapseg.training import distributed
from lapseg.training import trainer as trainer_module
from lapseg.training.trainer import fit

needs_gloo = pytest.mark.skipif(
    not (dist.is_available() and dist.is_gloo_available()),
    reason="torch.distributed with the gloo backend is not available in this PyTorch build",
)

# Exactly the same steps on 1 and 2 processes needs a loss that is a mean over the patches
# (plain cross-entropy: no border weights, no batch Dice) and no batch statistics (group norm;
# PyTorch has no synchronised batch norm on the CPU); float32 keeps the rounding small.
EXACT = [
    "model.base_features=4",
    "model.depth=2",
    "model.norm=group",
    "loss.name=ce",
    "loss.border_weights=false",
    "train.amp=false",
    "train.epochs=3",
    "train.patch_size=[48, 48]",
    "train.patches_per_epoch=16",
    "train.batch_size=4",
    "train.tensorboard=false",
    "train.deterministic=true",
    "predict.tile_size=[64, 64]",
]
LOSS_TOLERANCE = 1e-4
"""Largest |difference| of an epoch's train_loss / val_loss between 1 and 2 processes (float32
rounding of the gradient sums, amplified by Adam; measured about 2e-5 here)."""


# --------------------------------------------------------------------------- one process


def test_with_one_process_every_function_returns_its_input():
    model = torch.nn.Conv2d(1, 1, 1)
    assert distributed.world_size() == 1 and distributed.is_main()
    assert distributed.broadcast({"a": 1}) == {"a": 1}
    assert distributed.mean(2.5) == 2.5
    assert distributed.on_main(lambda: 3) == 3
    assert distributed.per_rank_batch_size(6) == 6
    assert distributed.shard_sampler(list(range(10))) is None
    assert distributed.wrap_model(model, torch.device("cpu")) is model


@pytest.mark.parametrize(("patches", "batch", "processes"), [(16, 4, 2), (18, 4, 2), (40, 6, 3)])
def test_shards_of_a_step_are_the_one_process_step(patches, batch, processes):
    indices = list(range(patches))
    one = [indices[s : s + batch] for s in range(0, patches - batch + 1, batch)]
    per_rank = batch // processes
    shards = []
    for rank in range(processes):
        sampler = distributed.shard_sampler(indices, this_rank=rank, processes=processes)
        assert sampler is not None
        loader = torch.utils.data.DataLoader(
            indices, batch_size=per_rank, sampler=sampler, drop_last=True
        )
        shards.append([b.tolist() for b in loader])
    steps = [sorted(i for shard in shards for i in shard[s]) for s in range(len(one))]
    assert steps == one
    assert all(len(shard) == len(one) for shard in shards)  # no rank takes an extra step


def test_global_batch_must_divide_over_the_processes(monkeypatch):
    monkeypatch.setattr(distributed, "world_size", lambda: 4)
    assert distributed.per_rank_batch_size(8) == 2
    with pytest.raises(
        LapsegInputError, match=r"batch_size=6 is the global batch .* multiple of 4"
    ):
        distributed.per_rank_batch_size(6)


def test_torchrun_command_runs_lapseg_on_this_machine():
    command = distributed.torchrun_command(2, ["train", "--data", "d"], python="py")
    assert command == [
        "py",
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node=2",
        "-m",
        "lapseg",
        "train",
        "--data",
        "d",
    ]


def test_nproc_from_python_says_to_use_torchrun(tiny_dataset: Path, tmp_path: Path, capsys):
    code = main(["train", "--nproc", "2", "--data", str(tiny_dataset), "--out", str(tmp_path)])
    assert code == 2
    assert "torchrun --nproc-per-node N -m lapseg train" in capsys.readouterr().err


# --------------------------------------------------------------------------- two processes


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _worker(
    rank: int, world: int, port: int, data: str, outs: list[str], resume: bool, interrupt: bool
) -> None:
    """One rank, started as torchrun starts it; writes its history beside its --out folder."""
    os.environ.update(
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    torch.set_num_threads(1)
    warnings.simplefilter("error")  # as the test suite: a DDP warning fails the test
    if interrupt:  # Ctrl-C in the second epoch, on every rank
        real = trainer_module.train_one_epoch
        calls = {"n": 0}

        def interrupted(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] == 2:
                raise KeyboardInterrupt
            return real(*args, **kwargs)

        trainer_module.train_one_epoch = interrupted
    try:
        result = fit(load_config(None, EXACT), data, outs[rank], resume=resume, progress=False)
    except KeyboardInterrupt:
        return
    Path(f"{outs[rank]}.history.json").write_text(json.dumps(result.history))


def _two_processes(data: Path, outs: list[Path], *, resume=False, interrupt=False) -> None:
    args = (2, _free_port(), str(data), [str(p) for p in outs], resume, interrupt)
    mp.spawn(_worker, args=args, nprocs=2)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """The same training on one process and on two."""
    from conftest import write_pairs

    root = tmp_path_factory.mktemp("ddp")
    data = write_pairs(root / "data", 6, seed=0)
    fit(load_config(None, EXACT), data, root / "one", progress=False)
    _two_processes(data, [root / "two", root / "two-rank1"])
    return {"data": data, "one": root / "one", "two": root / "two", "rank1": root / "two-rank1"}


def _curve(run: Path) -> list[tuple[float, float]]:
    history = load_checkpoint(run / "last.pt")["history"]
    return [(row["train_loss"], row["val_loss"]) for row in history]


@needs_gloo
@pytest.mark.slow
def test_two_processes_follow_the_one_process_loss_curve(runs):
    one, two = _curve(runs["one"]), _curve(runs["two"])
    print("\nepoch  train_loss 1 proc / 2 proc   val_loss 1 proc / 2 proc")
    for epoch, (a, b) in enumerate(zip(one, two, strict=True), 1):
        print(f"{epoch}  {a[0]:.7f} / {b[0]:.7f}   {a[1]:.7f} / {b[1]:.7f}")
    assert len(one) == len(two) == 3
    for a, b in zip(one, two, strict=True):
        assert a == pytest.approx(b, abs=LOSS_TOLERANCE, rel=0)


@needs_gloo
@pytest.mark.slow
def test_only_rank_0_writes_and_every_rank_records_the_same_history(runs):
    assert not runs["rank1"].exists()
    written = {p.name for p in runs["two"].iterdir()}
    assert written == {p.name for p in runs["one"].iterdir()}
    rank0 = json.loads(Path(f"{runs['two']}.history.json").read_text())
    rank1 = json.loads(Path(f"{runs['rank1']}.history.json").read_text())
    assert rank0 == rank1  # rank 0's rows: the same stopping and schedule decisions
    log = (runs["two"] / "log.txt").read_text(encoding="utf-8")
    assert log.count("epoch 1/3") == 1  # one writer
    run_json = json.loads((runs["two"] / "run.json").read_text(encoding="utf-8"))
    assert run_json["environment"]["processes"] == "2"


@needs_gloo
@pytest.mark.slow
def test_resumed_distributed_run_equals_the_uninterrupted_one(runs, tmp_path: Path):
    outs = [tmp_path / "run", tmp_path / "rank1"]
    _two_processes(runs["data"], outs, interrupt=True)
    assert load_checkpoint(outs[0] / "last.pt")["epoch"] == 1
    _two_processes(runs["data"], outs, resume=True)  # rank 1 has no copy: rank 0 sends last.pt
    assert not outs[1].exists()
    a = load_checkpoint(runs["two"] / "last.pt")["model_state"]
    b = load_checkpoint(outs[0] / "last.pt")["model_state"]
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)
    assert _curve(outs[0]) == _curve(runs["two"])


@needs_gloo
@pytest.mark.slow
def test_nproc_runs_the_command_under_torchrun(runs, tmp_path: Path):
    command = [
        sys.executable,
        "-m",
        "lapseg",
        "train",
        "--nproc",
        "2",
        "--data",
        str(runs["data"]),
        "--out",
        str(tmp_path / "run"),
        "--no-progress",
        *(arg for item in [*EXACT, "train.epochs=1"] for arg in ("--set", item)),
    ]
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    said = f"{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    assert done.returncode == 0, said
    assert done.stdout.count("run folder:") == 1, said  # rank 0 reports, rank 1 is quiet
    history = load_checkpoint(tmp_path / "run" / "last.pt")["history"]
    assert len(history) == 1 and (tmp_path / "run" / "report.html").is_file()


@needs_gloo
def test_a_rank_the_others_do_not_meet_leaves_with_a_warning(monkeypatch, caplog):
    """The end-of-run wait is bounded: a timed-out barrier is logged, not raised."""

    def timed_out(**kwargs):
        assert kwargs["timeout"] == distributed.CTRL_C_WAIT and kwargs["wait_all_ranks"]
        raise RuntimeError("Rank 1 failed to pass monitoredBarrier in 60000 ms\nmore")

    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        distributed._wait_for_the_others(distributed.CTRL_C_WAIT)  # one rank: meets itself
        monkeypatch.setattr(dist, "monitored_barrier", timed_out)
        with caplog.at_level("WARNING", logger="lapseg"):
            distributed._wait_for_the_others(distributed.CTRL_C_WAIT)
    finally:
        dist.destroy_process_group()
    assert caplog.messages == [
        "process 0 leaves without the others (waited up to 0:01:00): "
        "Rank 1 failed to pass monitoredBarrier in 60000 ms"
    ]
