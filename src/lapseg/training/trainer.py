"""``fit``: a whole training run, from a data folder to a run folder.

Read it top to bottom: :func:`fit` sets a run up (:func:`lapseg.training.setup.setup_run`),
runs its epochs (:func:`_run_epochs`, one :func:`_epoch` each) and finishes it
(:func:`_finish`: tune the post-processing or threshold on the validation split with
:func:`lapseg.training.tune_after.tune_on_validation`, write the summary). The run folder holds
``config.yaml`` (the resolved configuration), ``split.json``, ``normalization.json``,
``best.pt`` / ``last.pt`` checkpoints, ``history.csv`` (a row per epoch), ``curves.png``,
``log.txt``, ``tensorboard/`` events and ``run.json`` (what was
decided and measured, environment, timings).
"""

from __future__ import annotations

import contextlib
import logging
import math
import platform
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from lapseg.config import LapsegConfig
from lapseg.errors import LapsegInputError
from lapseg.io.files import write_json
from lapseg.io.locks import folder_lock
from lapseg.models.checkpoint import save_checkpoint
from lapseg.report.plots import save_learning_curves
from lapseg.training import distributed
from lapseg.training.averaging import average_decay, update_average
from lapseg.training.budget import TimeBudget, advance, budget_progress_bar
from lapseg.training.history import write_history_csv
from lapseg.training.loop import train_one_epoch
from lapseg.training.runlog import EPOCH_LOGGER, log_to_file
from lapseg.training.schedules import lr_factor
from lapseg.training.setup import TrainingRun, setup_run
from lapseg.training.tune_after import tune_on_validation
from lapseg.training.validation import validate

EpochHook = Callable[[dict[str, Any]], None]

log = logging.getLogger(__name__)
epoch_log = logging.getLogger(EPOCH_LOGGER)

FINISH_RESERVE = (0.05, 45.0)
"""With a time budget and a validation split, training stops this early to leave time for
tuning the post-processing: the smaller of a fraction of the budget and seconds."""


@dataclass(frozen=True)
class RunResult:
    """What a finished (or interrupted) training run produced."""

    run_dir: Path
    best_checkpoint: Path
    last_checkpoint: Path
    history: list[dict[str, Any]]
    best_epoch: int
    best_metric: float
    monitor: str
    stopped_because: str


def fit(
    config: LapsegConfig,
    data_root: str | Path,
    run_dir: str | Path,
    *,
    resume: bool = False,
    progress: bool = True,
    on_epoch_end: EpochHook | None = None,
) -> RunResult:
    """Train a U-Net on the dataset at ``data_root`` and write the run folder ``run_dir``.

    With ``resume=True`` the run continues from ``run_dir/last.pt`` exactly where it stopped
    (model, optimiser, schedule, RNG states, epoch, history); the stored configuration is used.
    KeyboardInterrupt (Ctrl-C) saves ``last.pt`` and re-raises.

    ``on_epoch_end(row)`` receives each epoch's history row after its checkpoints are written
    (hyperparameter search prunes a trial by raising from it). ``train.time_budget_minutes``
    bounds the whole call, reading the data and tuning included.

    ``train.deterministic`` switches torch to deterministic algorithms for the duration of the
    run only; the previous process-wide setting is restored afterwards.

    Started by ``torchrun`` (``WORLD_SIZE`` > 1), the processes train one model together
    (:mod:`lapseg.training.distributed`); rank 0 alone writes ``run_dir`` and finishes the run.
    """
    budget = TimeBudget(None)  # counts from here: reading the data is part of the run
    run_dir = Path(run_dir)
    previous = torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark
    try:
        with distributed.session(config.train.device), _run_log(run_dir):
            run = setup_run(config, Path(data_root), run_dir, resume=resume, budget=budget)
            progress = progress and distributed.is_main()
            stopped_because = _run_epochs(run, progress=progress, on_epoch_end=on_epoch_end)
            if not distributed.is_main():
                return _result(run, stopped_because)  # rank 0 alone tunes and writes run.json
            return _finish(run, stopped_because)
    finally:
        torch.use_deterministic_algorithms(previous[0])
        torch.backends.cudnn.benchmark = previous[1]


@contextlib.contextmanager
def _run_log(run_dir: Path) -> Iterator[None]:
    """``run_dir/log.txt`` and the folder's lock (a second ``lapseg train`` on the folder refuses;
    a run failing before it wrote anything leaves no folder), held by rank 0 alone."""
    if not distributed.is_main():
        yield
        return
    with log_to_file(run_dir / "log.txt"), folder_lock(run_dir, disposable=("log.txt",)):
        yield


# --------------------------------------------------------------------------- epochs


def _run_epochs(run: TrainingRun, *, progress: bool, on_epoch_end: EpochHook | None) -> str:
    """Train until the epochs, the patience or the time budget run out; returns why it stopped."""
    train_cfg = run.config.train
    max_epochs = train_cfg.max_epochs
    bar = budget_progress_bar(
        run.budget,
        total_steps=(max_epochs or 0) * len(run.loader),
        done_steps=run.epoch * len(run.loader),
        enabled=progress,
    )
    try:
        while max_epochs is None or run.epoch < max_epochs:
            row = _epoch(run, bar)
            _record(run, row)
            bar.set_postfix({k: f"{v:.4f}" for k, v in row.items() if k in _SHOWN})
            epoch_log.info(_epoch_line(row, max_epochs))
            if on_epoch_end is not None:
                on_epoch_end(row)
            patience = train_cfg.early_stopping_patience
            waited = run.monitor.epochs_without_improvement(run.epoch)
            if patience is not None and run.monitor.best_epoch >= 0 and waited >= patience:
                return f"early stopping ({patience} epochs without improvement)"
            if _out_of_time(run):
                return f"time budget ({train_cfg.time_budget_minutes:.3g} min)"
        return "epochs"
    except KeyboardInterrupt:
        if distributed.is_main():
            save_checkpoint(run.run_dir / "last.pt", run.checkpoint(finished=False))
        raise
    finally:
        bar.close()
        run.tensorboard.close()


_SHOWN = ("train_loss", "val_loss", "val_dice", "val_seg_ap")


def _epoch_line(row: dict[str, Any], max_epochs: int | None) -> str:
    values = ", ".join(
        f"{k} {v:.4f}" for k, v in row.items() if k.startswith(("train_", "val_")) and v == v
    )
    return f"epoch {row['epoch']}/{max_epochs or '-'}: {values} ({row['epoch_seconds']:.1f} s)"


def _finish_reserve(run: TrainingRun) -> float:
    """Seconds kept free at the end of a budget: the last validation pass and, with a
    validation split, :func:`_finish`'s tuning."""
    limit = run.budget.limit_seconds
    if limit is None or not len(run.validation):
        return 0.0
    fraction, seconds = FINISH_RESERVE
    return min(fraction * limit, seconds) + run.validation_seconds


def _out_of_time(run: TrainingRun) -> bool:
    """Rank 0's clock decides for every rank (with several processes all must call this)."""
    return distributed.broadcast(run.budget.exhausted(reserve=_finish_reserve(run)))


def _epoch(run: TrainingRun, bar: tqdm) -> dict[str, Any]:
    """One epoch: set the learning rate and curriculum stage, train, validate when due."""
    train_cfg = run.config.train
    lr = train_cfg.lr * run.plateau.factor
    reserve = _finish_reserve(run)
    limit = run.budget.limit_seconds
    fraction = None if limit is None else run.budget.used / max(limit - reserve, 1e-9)
    lr *= lr_factor(run.epoch, train_cfg, budget_fraction=fraction)
    lr = distributed.broadcast(lr)  # the budget fraction is rank 0's
    for group in run.optimizer.param_groups:
        group["lr"] = lr
    run.dataset.set_epoch(run.epoch)
    run.dataset.set_stage(run.curriculum.stage)
    bar.set_description(f"epoch {run.epoch + 1}/{train_cfg.max_epochs or '-'}")
    started = run.budget.used
    row: dict[str, Any] = {"epoch": run.epoch + 1, "lr": lr, "stage": run.curriculum.stage}

    steps = 0

    def on_batch(loss: float) -> bool:
        nonlocal steps
        steps += 1
        loss = distributed.mean(loss)  # the global batch's loss: every rank stops on a NaN
        if not math.isfinite(loss):
            raise _diverged(run, loss, steps)
        if run.average is not None:
            decay = average_decay(train_cfg.ema_decay, run.steps_averaged)
            update_average(run.average, run.model, decay)
            run.steps_averaged += 1
        advance(bar, run.budget)
        bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
        return not _out_of_time(run)

    row.update(
        train_one_epoch(
            run.train_model,
            run.loader,
            run.loss_fn,
            run.optimizer,
            device=run.device,
            precision=run.precision,
            scaler=run.scaler,
            use_pixel_weights=run.config.loss.border_weights is True,
            keep_probability=run.config.loss.keep_probability,
            on_batch=on_batch,
        )
    )
    row["train_loss"] = distributed.mean(row["train_loss"])  # equal shares: the global mean
    last = run.epoch + 1 == train_cfg.max_epochs or _out_of_time(run)
    if len(run.validation) and ((run.epoch + 1) % train_cfg.val_every == 0 or last):
        validation_started = run.budget.used
        row.update(  # on rank 0 (the others receive its values)
            distributed.on_main(
                lambda: validate(
                    run.evaluated_model,
                    run.validation,
                    run.loss_fn,
                    run.config,
                    device=run.device,
                    precision=run.precision,
                    object_area=run.object_area,
                )
            )
        )
        run.validation_seconds = run.budget.used - validation_started
    row["epoch_seconds"] = run.budget.used - started
    return distributed.broadcast(row)  # every rank records rank 0's row: the same decisions


def _diverged(run: TrainingRun, loss: float, step: int) -> LapsegInputError:
    """The error for a non-finite loss; ``last.pt`` keeps the last good epoch (nothing of the
    diverged epoch is written)."""
    where = f"the loss became {loss} at step {step} of epoch {run.epoch + 1}"
    fixes = "lower train.lr, set train.amp=false or check the masks and images"
    if run.epoch == 0:
        return LapsegInputError(
            f"training diverged: {where}, before any checkpoint; {fixes}, then start again "
            "in a new run folder",
            path=run.run_dir,
        )
    return LapsegInputError(
        f"training diverged: {where}; last.pt keeps epoch {run.epoch}, the last good state. "
        f"To fix it, {fixes} in a new run; --resume continues this run from last.pt with its "
        "stored settings",
        path=run.run_dir,
    )


def _record(run: TrainingRun, row: dict[str, Any]) -> None:
    """Append the epoch's row; update curriculum, best checkpoint, plateau; write the files."""
    run.curriculum.update(row)  # the next epoch trains at the (possibly) new stage
    run.history.append(row)
    run.epoch += 1
    main = distributed.is_main()  # rank 0 alone writes files
    if run.monitor.update(row) and main:
        save_checkpoint(run.run_dir / "best.pt", run.checkpoint(finished=False))
    value = row.get(run.monitor.name)
    if value is not None and run.config.train.schedule == "plateau":
        run.plateau.update(
            value,
            higher_is_better=run.monitor.higher_is_better,
            patience=run.config.train.plateau_patience,
            gamma=run.config.train.gamma,
        )
    if not main:
        return
    run.tensorboard.log(row, run.epoch)
    write_history_csv(run.run_dir / "history.csv", run.history)
    save_learning_curves(run.history, run.run_dir / "curves.png")
    save_checkpoint(run.run_dir / "last.pt", run.checkpoint(finished=False))


# --------------------------------------------------------------------------- finish


def _finish(run: TrainingRun, stopped_because: str) -> RunResult:
    """Tune what is tuned on validation data, write the final checkpoint and ``run.json``."""
    if run.monitor.best_epoch < 0:  # no epoch recorded a finite value: the last state is best
        run.monitor.best_epoch = run.epoch
        save_checkpoint(run.run_dir / "best.pt", run.checkpoint(finished=False))
    tuned = tune_on_validation(run)
    save_checkpoint(run.run_dir / "last.pt", run.checkpoint(finished=True))
    split = run.data.split
    best = run.monitor.best if run.monitor.best is not None else math.nan
    log.info(
        "stopped by %s after %d epoch(s); best epoch %d: %s %.4f",
        stopped_because,
        run.epoch,
        run.monitor.best_epoch,
        run.monitor.name,
        best,
    )
    write_json(
        run.run_dir / "run.json",
        {
            "task": vars(run.data.task),
            "epochs_completed": run.epoch,
            "best_epoch": run.monitor.best_epoch,
            f"best_{run.monitor.name}": best,
            "stopped_because": stopped_because,
            "training_seconds": round(run.budget.used, 2),
            **tuned,
            "precision": str(run.precision or "float32").removeprefix("torch."),
            "class_weights": run.class_weights,
            "n_train": len(split["train"]),
            "n_val": len(split["val"]),
            "n_test": len(split.get("test", [])),
            "tensorboard": _tensorboard_status(run),
            "environment": _environment(run.device),
        },
    )
    return _result(run, stopped_because)


def _result(run: TrainingRun, stopped_because: str) -> RunResult:
    best = run.monitor.best if run.monitor.best is not None else math.nan
    return RunResult(
        run_dir=run.run_dir,
        best_checkpoint=run.run_dir / "best.pt",
        last_checkpoint=run.run_dir / "last.pt",
        history=run.history,
        best_epoch=run.monitor.best_epoch,
        best_metric=best,
        monitor=run.monitor.name,
        stopped_because=stopped_because,
    )


def _tensorboard_status(run: TrainingRun) -> str:
    if run.tensorboard.available:
        return "written"
    return (
        "disabled" if not run.config.train.tensorboard else "unavailable: pip install tensorboard"
    )


def _environment(device: torch.device) -> dict[str, str]:
    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
        "device": str(device),
        "processes": str(distributed.world_size()),
        "torch_threads": str(torch.get_num_threads()),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


__all__ = ["RunResult", "fit"]
