"""Setting a training run up: data, model, loss, optimiser, loader, run folder, resume.

:func:`setup_run` returns a :class:`TrainingRun`, everything the epochs of one run share
(:mod:`lapseg.training.trainer` runs them). Resuming restores it from ``last.pt`` exactly.
"""

from __future__ import annotations

import logging
import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lapseg.config import LapsegConfig, config_from_dict, config_to_dict, dump_config
from lapseg.data.dataset import PatchDataset
from lapseg.data.samples import RunData
from lapseg.data.setup import compute_class_weights, median_object_area, prepare_run_data
from lapseg.data.split import write_split
from lapseg.data.targets import REGRESSION_CHANNELS
from lapseg.device import describe_precision, mixed_precision, place_model, select_device
from lapseg.errors import LapsegInputError
from lapseg.io.files import write_json, write_text
from lapseg.io.locks import LOCK_NAME
from lapseg.losses import ClassesAndMapsLoss, create_loss
from lapseg.models.checkpoint import (
    capture_rng_states,
    load_checkpoint,
    load_model_state,
    restore_rng_states,
)
from lapseg.models.registry import create_model
from lapseg.training import distributed
from lapseg.training.averaging import average_copy
from lapseg.training.budget import TimeBudget
from lapseg.training.history import TensorBoardLog
from lapseg.training.schedules import PlateauState
from lapseg.training.selection import Monitor
from lapseg.training.validation import ValidationSet
from lapseg.transforms.curriculum import CurriculumState

__all__ = ["TrainingRun", "setup_run"]

log = logging.getLogger(__name__)


@dataclass
class TrainingRun:
    """Everything the epochs of one run share: built by :func:`setup_run`, changed by the epochs."""

    config: LapsegConfig
    run_dir: Path
    device: torch.device
    data: RunData
    model: torch.nn.Module
    train_model: torch.nn.Module  # what the loop steps: ``model``, or DDP around it (distributed)
    loss_fn: torch.nn.Module
    optimizer: torch.optim.Optimizer
    precision: torch.dtype | None
    scaler: torch.amp.GradScaler | None
    dataset: PatchDataset
    loader: torch.utils.data.DataLoader
    validation: ValidationSet
    curriculum: CurriculumState
    monitor: Monitor
    budget: TimeBudget
    numpy_rng: np.random.Generator
    tensorboard: TensorBoardLog
    class_weights: list[float] | None
    object_area: float | None
    average: torch.nn.Module | None = None  # moving average of ``model`` (``train.ema_decay``)
    steps_averaged: int = 0
    plateau: PlateauState = field(default_factory=PlateauState)
    validation_seconds: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)
    epoch: int = 0

    @property
    def evaluated_model(self) -> torch.nn.Module:
        """The network that is validated, stored as ``model_state`` and used for prediction:
        the weight average when ``train.ema_decay`` > 0, else the trained network."""
        return self.model if self.average is None else self.average

    def checkpoint(self, *, finished: bool) -> dict[str, Any]:
        """The plain-dict checkpoint of the current state (``weights_only``-loadable).

        ``model_state`` holds the weights to predict with (the average, when averaging);
        ``trained_model_state`` the optimiser's weights, which a resumed run continues from.
        """
        averaging = {}
        if self.average is not None:
            averaging = {
                "trained_model_state": self.model.state_dict(),
                "steps_averaged": self.steps_averaged,
            }
        return {
            "config": config_to_dict(self.config),
            "model_state": self.evaluated_model.state_dict(),
            **averaging,
            "optimizer_state": self.optimizer.state_dict(),
            "scaler_state": self.scaler.state_dict() if self.scaler is not None else {},
            "rng_states": capture_rng_states(self.numpy_rng),
            "plateau": vars(self.plateau).copy(),
            "normalization": self.data.stats.to_dict(),
            "threshold": self.config.predict.threshold,
            "object_area": self.object_area,
            "split": self.data.split,
            "history": self.history,
            "curriculum": self.curriculum.state_dict(),
            "monitor": self.monitor.state_dict(),
            "epoch": self.epoch,
            "best_epoch": self.monitor.best_epoch,
            "elapsed_seconds": self.budget.used,
            "finished": finished,
        }


def _stored_state(config: LapsegConfig, run_dir: Path, *, resume: bool) -> dict[str, Any] | None:
    """``last.pt`` of a run to resume (checked), or None for a new run in an empty folder."""
    if not resume:
        if run_dir.exists() and any(p.name != LOCK_NAME for p in run_dir.iterdir()):
            raise LapsegInputError(
                "run folder exists and is not empty (use --resume to continue it, or a new --out)",
                path=run_dir,
            )
        return None
    last = run_dir / "last.pt"
    if not last.is_file():
        raise LapsegInputError("nothing to resume: no last.pt in the run folder", path=run_dir)
    state = load_checkpoint(last)
    if state.get("finished"):
        raise LapsegInputError("this run already finished; nothing to resume", path=run_dir)
    return state


def setup_run(
    config: LapsegConfig, data_root: Path, run_dir: Path, *, resume: bool, budget: TimeBudget
) -> TrainingRun:
    """Data, model, loss, optimiser, loader and run folder of a new or resumed run.

    ``budget`` counts from the start of the run (reading the data is part of it); it takes the
    run's limit from the configuration.
    """
    # rank 0 checks the run folder and reads last.pt; the other ranks receive it (no shared disk)
    state = distributed.on_main(lambda: _stored_state(config, run_dir, resume=resume))
    if state is not None:
        config = config_from_dict(state["config"])
    train_cfg = config.train
    minutes = train_cfg.time_budget_minutes
    budget.limit_seconds = None if minutes is None else minutes * 60.0
    if train_cfg.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=False)
        torch.backends.cudnn.benchmark = False
    torch.manual_seed(train_cfg.seed)
    random.seed(train_cfg.seed)
    device = distributed.local_device(select_device(train_cfg.device))
    precision = mixed_precision(device, train_cfg.amp)
    median = config.temporal.background == "median"
    cache = run_dir / "cache" if median and distributed.is_main() else None
    data = prepare_run_data(config, data_root, split=state and state["split"], cache_dir=cache)
    config = data.config  # the task (and what follows from it) decided from the masks
    log.info(
        "%d training and %d validation sample(s); %s on %s",
        len(data.train),
        len(data.val),
        describe_precision(precision),
        device,
    )
    class_weights = compute_class_weights(data.train, config)
    model = place_model(create_model(config.model), device)
    grid = config.data.crop_or_pad or config.data.resize  # every sample's shape, unread
    dataset = PatchDataset(
        data.train,
        patch_size=train_cfg.patch_size,
        patches_per_epoch=train_cfg.patches_per_epoch,
        foreground_probability=train_cfg.foreground_probability,
        augment=config.augment,
        seed=train_cfg.seed,
        output_margin=model.output_margin,
        cache_bytes=train_cfg.sample_cache_mib << 20,
        sample_shapes=None if grid is None else [grid] * len(data.train),
    )
    run = TrainingRun(
        config=config,
        run_dir=run_dir,
        device=device,
        data=data,
        model=model,
        train_model=distributed.wrap_model(model, device),
        loss_fn=_make_loss(config, class_weights),
        optimizer=_make_optimizer(model, config),
        precision=precision,
        scaler=torch.amp.GradScaler("cuda") if precision == torch.float16 else None,
        dataset=dataset,
        loader=_make_loader(dataset, config, device),
        validation=ValidationSet.from_samples(data.val, tile=2 * max(train_cfg.patch_size)),
        curriculum=CurriculumState.from_state_dict(config.augment, state and state["curriculum"]),
        monitor=Monitor(train_cfg.monitor_for(config.data.task) if data.val else "train_loss"),
        budget=budget,
        numpy_rng=np.random.default_rng(train_cfg.seed),
        tensorboard=TensorBoardLog(
            run_dir / "tensorboard", enabled=train_cfg.tensorboard and distributed.is_main()
        ),
        class_weights=class_weights,
        object_area=median_object_area(data.train),
        average=average_copy(model) if train_cfg.ema_decay > 0 else None,
    )
    if not data.val and any(s.when_metric for s in config.augment.curriculum):
        raise LapsegInputError(
            "augment.curriculum uses a validation metric: it needs a validation split"
        )
    if state is not None:
        _restore(run, state)
    if not distributed.is_main():
        return run  # rank 0 alone writes the run folder
    run_dir.mkdir(parents=True, exist_ok=True)
    write_text(run_dir / "config.yaml", dump_config(config))
    write_split(run_dir / "split.json", data.split)
    write_json(run_dir / "normalization.json", data.stats.to_dict())
    return run


def _restore(run: TrainingRun, state: dict[str, Any]) -> None:
    """Continue from a ``last.pt`` checkpoint exactly where it stopped."""
    path = run.run_dir / "last.pt"
    trained = state.get("trained_model_state", state["model_state"])
    load_model_state(run.model, trained, path=path)
    if run.average is not None:  # a run that did not average before starts from its weights
        load_model_state(run.average, state["model_state"], path=path)
        run.steps_averaged = int(state.get("steps_averaged", 0))
    run.optimizer.load_state_dict(state["optimizer_state"])
    if run.scaler is not None and state.get("scaler_state"):
        run.scaler.load_state_dict(state["scaler_state"])
    restore_rng_states(state["rng_states"], run.numpy_rng)
    run.plateau = PlateauState(**state["plateau"])
    run.history = list(state["history"])
    run.epoch = int(state["epoch"])
    run.budget.used_before = float(state.get("elapsed_seconds", 0.0))
    if "monitor" in state:
        run.monitor = Monitor.from_state_dict(state["monitor"])
    else:  # lapseg 0.1 stored a score (negated for losses) and its epoch
        score = float(state["best_metric"])
        best = (
            None
            if not math.isfinite(score)
            else score * (1 if run.monitor.higher_is_better else -1)
        )
        run.monitor = Monitor(run.monitor.name, best, int(state["best_epoch"]))


def _make_loss(config: LapsegConfig, class_weights: list[float] | None) -> torch.nn.Module:
    params: dict[str, Any] = dict(config.loss.params)
    if class_weights is not None:
        if config.loss.name in ("ce", "dice_ce"):
            params["class_weights"] = class_weights
        elif config.loss.name == "focal":
            params["alpha"] = class_weights
        else:
            raise LapsegInputError(
                f"loss.class_weighting needs a loss with a cross-entropy term (ce, dice_ce, focal), "
                f"not loss.name={config.loss.name!r}"
            )
    loss_fn = create_loss(config.loss.name, **params)
    if config.loss.border_weights and not loss_fn.supports_pixel_weights:
        raise LapsegInputError(
            f"loss.name={config.loss.name!r} cannot use the border weight map; use ce, focal or dice_ce"
        )
    maps = REGRESSION_CHANNELS.get(config.data.target, 0)
    if maps:
        return ClassesAndMapsLoss(loss_fn, channels=maps, weight=config.loss.regression_weight)
    return loss_fn


def _make_optimizer(model: torch.nn.Module, config: LapsegConfig) -> torch.optim.Optimizer:
    train = config.train
    if train.optimizer == "sgd":
        return torch.optim.SGD(
            model.parameters(),
            lr=train.lr,
            momentum=train.momentum,
            weight_decay=train.weight_decay,
        )
    # The fused Adam kernels (one kernel over all parameters) make the optimiser step about 1.5x
    # faster on the CPU (benchmarks/bench_training.py); they exist for CPU and CUDA.
    device_type = next(model.parameters()).device.type
    adam = torch.optim.AdamW if train.optimizer == "adamw" else torch.optim.Adam
    return adam(
        model.parameters(),
        lr=train.lr,
        weight_decay=train.weight_decay,
        fused=device_type in ("cpu", "cuda") or None,
    )


def _make_loader(
    dataset: PatchDataset, config: LapsegConfig, device: torch.device
) -> torch.utils.data.DataLoader:
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=distributed.per_rank_batch_size(config.train.batch_size),  # global / ranks
        sampler=distributed.shard_sampler(dataset),  # this rank's share (None: one process)
        shuffle=False,  # every patch is already drawn at random from (seed, epoch, index)
        num_workers=config.train.num_workers,
        drop_last=len(dataset) >= config.train.batch_size,
        # not persistent: workers are re-created each epoch with the dataset's epoch and stage
        persistent_workers=False,
        pin_memory=device.type == "cuda",
    )
