"""Training on several processes (GPUs, nodes) with PyTorch's DistributedDataParallel (DDP).

``torchrun --nproc-per-node N -m lapseg train ...`` starts N copies of the command; each learns
its place from the variables torchrun sets (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``,
``MASTER_ADDR``, ``MASTER_PORT``). :func:`session` joins them into one process group for the
run. With one process every function here returns its input unchanged, so the trainer reads
the same either way. What keeps the ranks in step:

- ``train.batch_size`` and ``train.patches_per_epoch`` are **global**: each of the W ranks
  trains on ``batch_size / W`` patches per step (:func:`per_rank_batch_size`), drawn by
  :func:`shard_sampler` so that the W shares of a step are exactly the patches one process would
  put in that step. DDP averages the gradients, so every rank takes the same optimiser step.
- Whatever depends on a clock or on validation (learning rate under a time budget, stopping,
  validation values) is decided by rank 0 and sent to all (:func:`broadcast`, :func:`on_main`),
  so no rank waits for a step the others skipped.
- Rank 0 alone writes the run folder; the other ranks log warnings only.

Backends: NCCL for CUDA tensors (the gradients) with gloo for the small CPU messages
(``"cpu:gloo,cuda:nccl"``), gloo alone on the CPU. docs/distributed.md has the commands.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from datetime import timedelta
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import Dataset
from torch.utils.data.distributed import DistributedSampler

from lapseg.device import select_device
from lapseg.errors import LapsegInputError

__all__ = [
    "broadcast",
    "is_main",
    "local_device",
    "mean",
    "on_main",
    "per_rank_batch_size",
    "rank",
    "session",
    "shard_sampler",
    "torchrun_command",
    "world_size",
    "wrap_model",
]

T = TypeVar("T")


def _active() -> bool:
    return dist.is_available() and dist.is_initialized()


def world_size() -> int:
    """Processes training together (1 outside a process group)."""
    return dist.get_world_size() if _active() else 1


def rank() -> int:
    """This process's rank: its group rank, else torchrun's ``RANK`` (0 when not launched)."""
    return dist.get_rank() if _active() else int(os.environ.get("RANK", "0"))


def is_main() -> bool:
    """True on the process that writes files and logs (rank 0; the only one without torchrun)."""
    return rank() == 0


def _backend(device: torch.device) -> str:
    return "cpu:gloo,cuda:nccl" if device.type == "cuda" else "gloo"


@contextlib.contextmanager
def session(device: str = "auto") -> Iterator[None]:
    """Join torchrun's process group for the block (nothing when ``WORLD_SIZE`` is 1 or unset,
    or when the caller already joined one); ranks other than 0 log warnings only.

    ``device`` is ``train.device``: CUDA selects NCCL (with gloo for CPU messages), anything else
    gloo.
    """
    processes = int(os.environ.get("WORLD_SIZE", "1"))
    if processes <= 1 or _active():
        yield
        return
    if not (dist.is_available() and dist.is_gloo_available()):
        raise LapsegInputError(
            f"WORLD_SIZE={processes} but this PyTorch build has no torch.distributed/gloo: "
            "train with one process"
        )
    device_ = local_device(select_device(device))
    dist.init_process_group(_backend(device_))
    logger = logging.getLogger("lapseg")
    level = logger.level
    if not is_main():
        logger.setLevel(logging.WARNING)
    try:
        yield
    except KeyboardInterrupt:  # Ctrl-C reaches every rank: wait (a little) for rank 0's last.pt
        _wait_for_the_others(CTRL_C_WAIT)
        raise
    else:
        _wait_for_the_others(FINISH_WAIT)  # while rank 0 tunes and writes run.json
    finally:
        logger.setLevel(level)
        dist.destroy_process_group()


FINISH_WAIT = timedelta(hours=2)
"""How long a rank that finished training waits for rank 0 to finish the run (gloo only)."""
CTRL_C_WAIT = timedelta(seconds=60)
"""How long an interrupted rank waits for the others before it leaves (gloo only)."""


def _wait_for_the_others(timeout: timedelta) -> None:
    """Leave the group together with the other ranks.

    A rank that tears its group down and exits while rank 0 is still finishing (writing
    ``run.json`` or ``last.pt``) was aborted by gloo at exit now and then (SIGABRT in about 1
    run of 10 on 2 CPU processes; none in 60 with the ranks leaving together). After Ctrl-C the
    ranks may be at different collectives. The wait is bounded (gloo's monitored barrier, not
    the group's 30-minute collective timeout, which rank 0's tuning could outlast): a rank that
    does not come only costs ``timeout``. With NCCL (no bounded barrier; its watchdog would end
    a long wait) the ranks leave at once, as before.
    """
    if dist.get_backend() != dist.Backend.GLOO:
        return
    try:
        dist.monitored_barrier(timeout=timeout, wait_all_ranks=True)
    except RuntimeError as error:  # the others did not come in time, or are gone
        message = str(error).strip()
        first_line = message.splitlines()[0] if message else "no reason"
        logging.getLogger("lapseg").warning(
            "process %d leaves without the others (waited up to %s): %s",
            rank(),
            timeout,
            first_line,
        )


def local_device(device: torch.device) -> torch.device:
    """With several processes on CUDA, the GPU of this process (``cuda:LOCAL_RANK``), made the
    current device; ``device`` itself otherwise."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or device.type == "cpu":
        return device
    if device.type != "cuda":
        raise LapsegInputError(
            f"training with several processes needs CUDA or the CPU, not train.device={device}"
        )
    local = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    torch.cuda.set_device(local)
    return local


def wrap_model(model: nn.Module, device: torch.device) -> nn.Module:
    """The module the training loop steps: ``model`` itself with one process; with several,
    :class:`~torch.nn.parallel.DistributedDataParallel` around it (gradients averaged over the
    ranks in the backward pass).

    On CUDA, batch norm layers become :class:`~torch.nn.SyncBatchNorm` in place (statistics of
    the global batch, as one process computes them; parameters and state-dict keys unchanged).
    PyTorch has no synchronised batch norm on the CPU: there each rank normalises its own share.
    Validate and save with ``model``, not the wrapper (its forward pass may talk to the ranks).
    """
    if world_size() == 1:
        return model
    if device.type == "cuda":
        synced = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        return nn.parallel.DistributedDataParallel(synced, device_ids=[device.index])
    return nn.parallel.DistributedDataParallel(model)


def per_rank_batch_size(batch_size: int) -> int:
    """The patches each rank trains on per step when ``batch_size`` (``train.batch_size``) is
    the global batch; it must divide evenly."""
    processes = world_size()
    if batch_size % processes:
        raise LapsegInputError(
            f"train.batch_size={batch_size} is the global batch of all {processes} processes: "
            f"make it a multiple of {processes}"
        )
    return batch_size // processes


def shard_sampler(
    dataset: Dataset, *, this_rank: int | None = None, processes: int | None = None
) -> DistributedSampler | None:
    """This rank's share of an epoch's patch indices (None with one process).

    Rank ``r`` of ``W`` takes indices ``r, r + W, r + 2W, ...`` (the tail that does not divide
    evenly is dropped), so its ``s``-th batch of ``b`` holds ``s*W*b + r + k*W`` for
    ``k < b``: the W batches of step ``s`` together are exactly indices
    ``[s*W*b, (s+1)*W*b)``, one process's step ``s``. The patches themselves are drawn from
    ``(seed, epoch, index)`` (:class:`lapseg.data.dataset.PatchDataset`), so nothing is shuffled.
    """
    processes = world_size() if processes is None else processes
    if processes == 1:
        return None
    return DistributedSampler(
        dataset,
        num_replicas=processes,
        rank=rank() if this_rank is None else this_rank,
        shuffle=False,
        drop_last=True,
    )


def broadcast(value: T) -> T:
    """Rank 0's ``value`` on every rank (any picklable value)."""
    if world_size() == 1:
        return value
    box: list[Any] = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]  # type: ignore[no-any-return]


def on_main(compute: Callable[[], T]) -> T:
    """``compute()`` run on rank 0 only, its result (or its error) sent to every rank."""
    if world_size() == 1:
        return compute()
    outcome: tuple[Any, Exception | None] = (None, None)
    error: Exception | None = None
    if is_main():
        try:
            outcome = (compute(), None)
        except Exception as caught:  # every rank raises it: none waits for a missing message
            error = caught
            if not isinstance(caught, LapsegInputError):  # may not pickle: say what it was
                caught = RuntimeError(f"rank 0 failed: {type(caught).__name__}: {caught}")
            outcome = (None, caught)
    value, failure = broadcast(outcome)
    if error is not None:
        raise error
    if failure is not None:
        raise failure
    return value  # type: ignore[no-any-return]


def mean(value: float) -> float:
    """The mean of ``value`` over the ranks (every rank gets it)."""
    if world_size() == 1:
        return value
    total = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(total)
    return float(total) / world_size()


def torchrun_command(processes: int, argv: Sequence[str], *, python: str) -> list[str]:
    """The command that runs ``lapseg ARGV`` on ``processes`` processes of this machine:
    ``python -m torch.distributed.run --standalone --nproc-per-node N -m lapseg ARGV``."""
    return [
        python,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={processes}",
        "-m",
        "lapseg",
        *argv,
    ]
