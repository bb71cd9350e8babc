"""``fit``: a whole training run, from a data folder to a run folder.

Read it top to bottom: :func:`fit` sets a run up (:func:`_setup`), runs its epochs
(:func:`_run_epochs`, one :func:`_epoch` each) and finishes it (:func:`_finish`). The run folder
holds ``config.yaml`` (the resolved configuration), ``split.json``, ``normalization.json``,
``best.pt`` / ``last.pt`` checkpoints, ``history.csv`` (a row per epoch), ``curves.png``,
``tensorboard/`` events and ``run.json`` (environment, timings, best epoch).
"""

from __future__ import annotations

import math
import platform
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from lapseg.config import LapsegConfig
from lapseg.errors import LapsegInputError
from lapseg.inference.engines import predict_logits
from lapseg.io.files import write_json
from lapseg.models.checkpoint import (
    load_checkpoint,
    save_checkpoint,
)
from lapseg.models.registry import create_model
from lapseg.report.plots import save_learning_curves
from lapseg.training.budget import advance, budget_progress_bar
from lapseg.training.history import write_history_csv
from lapseg.training.loop import train_one_epoch, validate
from lapseg.training.schedules import lr_factor
from lapseg.training.setup import TrainingRun, setup_run

EpochHook = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class RunResult:
    """What a finished (or interrupted) training run produced."""

    run_dir: Path
    best_checkpoint: Path
    last_checkpoint: Path
    history: list[dict[str, Any]]
    best_epoch: int
    best_metric: float
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
    (hyperparameter search prunes a trial by raising from it).

    ``train.deterministic`` switches torch to deterministic algorithms for the duration of the
    run only; the previous process-wide setting is restored afterwards.
    """
    previous = torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark
    try:
        run = setup_run(config, Path(data_root), Path(run_dir), resume=resume)
        stopped_because = _run_epochs(run, progress=progress, on_epoch_end=on_epoch_end)
        return _finish(run, stopped_because)
    finally:
        torch.use_deterministic_algorithms(previous[0])
        torch.backends.cudnn.benchmark = previous[1]


# --------------------------------------------------------------------------- epochs


def _run_epochs(run: TrainingRun, *, progress: bool, on_epoch_end: EpochHook | None) -> str:
    """Train until the epochs, the patience or the time budget run out; returns why it stopped."""
    train_cfg = run.config.train
    bar = budget_progress_bar(
        run.budget,
        total_steps=train_cfg.epochs * len(run.loader),
        done_steps=run.epoch * len(run.loader),
        enabled=progress,
    )
    try:
        while run.epoch < train_cfg.epochs:
            row = _epoch(run, bar)
            _record(run, row)
            bar.set_postfix({k: f"{v:.4f}" for k, v in row.items() if k in _SHOWN})
            if on_epoch_end is not None:
                on_epoch_end(row)
            patience = train_cfg.early_stopping_patience
            waited = run.monitor.epochs_without_improvement(run.epoch)
            if patience is not None and run.monitor.best_epoch >= 0 and waited >= patience:
                return f"early stopping ({patience} epochs without improvement)"
            if run.budget.exhausted():
                return f"time budget ({train_cfg.time_budget_minutes} min)"
        return "epochs"
    except KeyboardInterrupt:
        save_checkpoint(run.run_dir / "last.pt", run.checkpoint(finished=False))
        raise
    finally:
        bar.close()
        run.tensorboard.close()


_SHOWN = ("train_loss", "val_loss", "val_dice")


def _epoch(run: TrainingRun, bar: tqdm) -> dict[str, Any]:
    """One epoch: set the learning rate and curriculum stage, train, validate when due."""
    train_cfg = run.config.train
    lr = train_cfg.lr * run.plateau.factor
    lr *= lr_factor(run.epoch, train_cfg, budget_fraction=run.budget.fraction)
    for group in run.optimizer.param_groups:
        group["lr"] = lr
    run.dataset.set_epoch(run.epoch)
    run.dataset.set_stage(run.curriculum.stage)
    bar.set_description(f"epoch {run.epoch + 1}/{train_cfg.epochs}")
    started = run.budget.used
    row: dict[str, Any] = {"epoch": run.epoch + 1, "lr": lr, "stage": run.curriculum.stage}

    def on_batch(loss: float) -> bool:
        advance(bar, run.budget)
        bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
        return not run.budget.exhausted()

    row.update(
        train_one_epoch(
            run.model,
            run.loader,
            run.loss_fn,
            run.optimizer,
            device=run.device,
            precision=run.precision,
            scaler=run.scaler,
            use_pixel_weights=run.config.loss.border_weights,
            on_batch=on_batch,
        )
    )
    last = run.epoch + 1 == train_cfg.epochs or run.budget.exhausted()
    if run.data.val and ((run.epoch + 1) % train_cfg.val_every == 0 or last):
        row.update(
            validate(
                run.model,
                run.data.val,
                run.loss_fn,
                predict=run.config.predict,
                device=run.device,
                num_classes=max(run.config.model.outputs, 2),
                precision=run.precision,
            )
        )
    row["epoch_seconds"] = run.budget.used - started
    return row


def _record(run: TrainingRun, row: dict[str, Any]) -> None:
    """Append the epoch's row; update curriculum, best checkpoint, plateau; write the files."""
    run.curriculum.update(row)  # the next epoch trains at the (possibly) new stage
    run.history.append(row)
    run.epoch += 1
    if run.monitor.update(row):
        save_checkpoint(run.run_dir / "best.pt", run.checkpoint(finished=False))
    value = row.get(run.monitor.name)
    if value is not None and run.config.train.schedule == "plateau":
        run.plateau.update(
            value,
            higher_is_better=run.monitor.higher_is_better,
            patience=run.config.train.plateau_patience,
            gamma=run.config.train.gamma,
        )
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
    threshold = _finalise_threshold(run)
    save_checkpoint(run.run_dir / "last.pt", run.checkpoint(finished=True))
    split = run.data.split
    best = run.monitor.best if run.monitor.best is not None else math.nan
    write_json(
        run.run_dir / "run.json",
        {
            "epochs_completed": run.epoch,
            "best_epoch": run.monitor.best_epoch,
            f"best_{run.monitor.name}": best,
            "stopped_because": stopped_because,
            "training_seconds": round(run.budget.used, 2),
            "threshold": threshold,
            "class_weights": run.class_weights,
            "n_train": len(split["train"]),
            "n_val": len(split["val"]),
            "n_test": len(split.get("test", [])),
            "tensorboard": _tensorboard_status(run),
            "environment": _environment(run.device),
        },
    )
    return RunResult(
        run_dir=run.run_dir,
        best_checkpoint=run.run_dir / "best.pt",
        last_checkpoint=run.run_dir / "last.pt",
        history=run.history,
        best_epoch=run.monitor.best_epoch,
        best_metric=best,
        stopped_because=stopped_because,
    )


def _finalise_threshold(run: TrainingRun) -> float:
    """For ``predict.threshold_method == "tuned"``: the validation-Dice-optimal threshold of the
    best model, stored into ``best.pt``. Otherwise the configured threshold."""
    config, device = run.config, run.device
    if config.predict.threshold_method != "tuned" or config.model.outputs != 1:
        return config.predict.threshold
    if not run.data.val:
        raise LapsegInputError(
            "predict.threshold_method=tuned needs a validation split (data.val_fraction > 0)"
        )
    from lapseg.inference.outputs import tune_threshold

    best_path = run.run_dir / "best.pt"
    checkpoint = load_checkpoint(best_path)
    model = create_model(config.model).to(device)
    model.load_state_dict(checkpoint["model_state"])
    model.eval()
    probabilities, truths = [], []
    with torch.inference_mode():
        for sample in run.data.val:
            image = torch.from_numpy(sample.image).to(device)
            logits = predict_logits(model, image, config.predict)
            probabilities.append(torch.sigmoid(logits[0]).cpu().numpy())
            truths.append(sample.target)
    threshold, _ = tune_threshold(probabilities, truths)
    checkpoint["threshold"] = float(threshold)
    save_checkpoint(best_path, checkpoint)
    return float(threshold)


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
        "torch_threads": str(torch.get_num_threads()),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


__all__ = ["RunResult", "fit"]
