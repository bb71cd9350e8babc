"""``fit``: a whole training run, from a data folder to a run folder.

The run folder holds ``config.yaml`` (the resolved configuration), ``split.json``,
``best.pt`` / ``last.pt`` checkpoints, ``history.csv`` (a row per epoch), ``curves.png``,
``tensorboard/`` events and ``run.json`` (environment, timings, best epoch).
"""

from __future__ import annotations

import math
import platform
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from lapseg.config import LapsegConfig, config_from_dict, config_to_dict, dump_config
from lapseg.data.dataset import PatchDataset, Sample
from lapseg.data.setup import (
    compute_class_weights,
    median_object_area,
    prepare_run_data,
)
from lapseg.data.split import write_split
from lapseg.device import select_device
from lapseg.errors import LapsegInputError
from lapseg.inference.engines import predict_logits
from lapseg.io.files import write_json, write_text
from lapseg.losses import create_loss
from lapseg.models.checkpoint import (
    capture_rng_states,
    load_checkpoint,
    restore_rng_states,
    save_checkpoint,
)
from lapseg.models.registry import create_model
from lapseg.report.plots import save_learning_curves
from lapseg.training.history import TensorBoardLog, write_history_csv
from lapseg.training.loop import train_one_epoch, validate
from lapseg.training.schedules import PlateauState, lr_factor
from lapseg.transforms.curriculum import CurriculumState


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


def fit(
    config: LapsegConfig,
    data_root: str | Path,
    run_dir: str | Path,
    *,
    resume: bool = False,
    progress: bool = True,
    on_epoch_end: Callable[[dict[str, Any]], None] | None = None,
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
        return _fit(
            config, data_root, run_dir, resume=resume, progress=progress, on_epoch_end=on_epoch_end
        )
    finally:
        torch.use_deterministic_algorithms(previous[0])
        torch.backends.cudnn.benchmark = previous[1]


def _fit(
    config: LapsegConfig,
    data_root: str | Path,
    run_dir: str | Path,
    *,
    resume: bool = False,
    progress: bool = True,
    on_epoch_end: Callable[[dict[str, Any]], None] | None = None,
) -> RunResult:
    """The body of :func:`fit` (which owns the process-wide determinism flags)."""
    run_dir = Path(run_dir)
    state: dict[str, Any] | None = None
    if resume:
        last = run_dir / "last.pt"
        if not last.is_file():
            raise LapsegInputError("nothing to resume: no last.pt in the run folder", path=run_dir)
        state = load_checkpoint(last)
        config = config_from_dict(state["config"])
        if state.get("finished"):
            raise LapsegInputError("this run already finished; nothing to resume", path=run_dir)
    elif run_dir.exists() and any(run_dir.iterdir()):
        raise LapsegInputError(
            "run folder exists and is not empty (use --resume to continue it, or a new --out)",
            path=run_dir,
        )
    train_cfg = config.train
    if train_cfg.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=False)
        torch.backends.cudnn.benchmark = False
    torch.manual_seed(train_cfg.seed)
    random.seed(train_cfg.seed)
    device = select_device(train_cfg.device)

    # ---- data: discover, split, fit normalisation on the training split only, prepare
    run_data = prepare_run_data(
        config,
        data_root,
        split=state["split"] if state else None,
        cache_dir=run_dir / "cache" if config.temporal.background == "median" else None,
    )
    split, stats = run_data.split, run_data.stats
    train_samples, val_samples = run_data.train, run_data.val
    class_weights = compute_class_weights(train_samples, config)
    object_area = median_object_area(train_samples)

    # ---- model, loss, optimiser
    model = create_model(config.model).to(device)
    if device.type != "mps":
        model = model.to(memory_format=torch.channels_last)
    loss_params: dict[str, Any] = dict(config.loss.params)
    if class_weights is not None:
        if config.loss.name in ("ce", "dice_ce"):
            loss_params["class_weights"] = class_weights
        elif config.loss.name == "focal":
            loss_params["alpha"] = class_weights
        else:
            raise LapsegInputError(
                f"loss.class_weighting needs a loss with a cross-entropy term (ce, dice_ce, focal), "
                f"not loss.name={config.loss.name!r}"
            )
    loss_fn = create_loss(config.loss.name, **loss_params)
    if config.loss.border_weights and not loss_fn.supports_pixel_weights:
        raise LapsegInputError(
            f"loss.name={config.loss.name!r} cannot use the border weight map; use ce, focal or dice_ce"
        )
    optimizer = _make_optimizer(model, config)
    scaler = torch.amp.GradScaler("cuda") if (train_cfg.amp and device.type == "cuda") else None
    numpy_rng = np.random.default_rng(train_cfg.seed)
    plateau = PlateauState()
    history: list[dict[str, Any]] = []
    start_epoch, best_metric, best_epoch = 0, -math.inf, -1
    elapsed_before = 0.0
    if state is not None:
        model.load_state_dict(state["model_state"])
        optimizer.load_state_dict(state["optimizer_state"])
        if scaler is not None and state.get("scaler_state"):
            scaler.load_state_dict(state["scaler_state"])
        restore_rng_states(state["rng_states"], numpy_rng)
        plateau = PlateauState(**state["plateau"])
        history = list(state["history"])
        start_epoch = int(state["epoch"])
        best_metric = float(state["best_metric"])
        best_epoch = int(state["best_epoch"])
        elapsed_before = float(state.get("elapsed_seconds", 0.0))

    # ---- run folder
    run_dir.mkdir(parents=True, exist_ok=True)
    write_text(run_dir / "config.yaml", dump_config(config))
    write_split(run_dir / "split.json", split)
    write_json(run_dir / "normalization.json", stats.to_dict())
    tensorboard = TensorBoardLog(run_dir / "tensorboard", enabled=train_cfg.tensorboard)

    dataset = PatchDataset(
        train_samples,
        patch_size=tuple(train_cfg.patch_size),
        patches_per_epoch=train_cfg.patches_per_epoch,
        foreground_probability=train_cfg.foreground_probability,
        augment=config.augment,
        seed=train_cfg.seed,
        output_margin=model.output_margin,
    )
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=train_cfg.batch_size,
        shuffle=False,  # every patch is already drawn at random from (seed, epoch, index)
        num_workers=train_cfg.num_workers,
        drop_last=len(dataset) >= train_cfg.batch_size,
        # not persistent: workers are re-created each epoch with the dataset's epoch and stage
        persistent_workers=False,
        pin_memory=device.type == "cuda",
    )
    curriculum = CurriculumState.from_state_dict(
        config.augment, state.get("curriculum") if state is not None else None
    )
    if not val_samples and any(s.when_metric for s in config.augment.curriculum):
        raise LapsegInputError(
            "augment.curriculum uses a validation metric: it needs a validation split"
        )
    monitor = train_cfg.monitor
    higher_is_better = monitor != "val_loss"
    num_classes = max(config.model.out_channels, 2)

    def checkpoint_payload(epoch: int, *, finished: bool) -> dict[str, Any]:
        return {
            "config": config_to_dict(config),
            "model_state": model.state_dict(),
            "optimizer_state": optimizer.state_dict(),
            "scaler_state": scaler.state_dict() if scaler is not None else {},
            "rng_states": capture_rng_states(numpy_rng),
            "plateau": {
                "best": plateau.best,
                "bad_epochs": plateau.bad_epochs,
                "factor": plateau.factor,
            },
            "normalization": stats.to_dict(),
            "threshold": config.predict.threshold,
            "object_area": object_area,
            "split": split,
            "history": history,
            "curriculum": curriculum.state_dict(),
            "epoch": epoch,
            "best_metric": best_metric,
            "best_epoch": best_epoch,
            "elapsed_seconds": elapsed_before + (time.perf_counter() - start_time),
            "finished": finished,
        }

    batches_per_epoch = len(loader)
    start_time = time.perf_counter()
    budget = None if train_cfg.time_budget_minutes is None else train_cfg.time_budget_minutes * 60.0
    # With a time budget the bar counts seconds of the budget (an honest ETA); else batches.
    bar = tqdm(
        total=round(budget) if budget is not None else train_cfg.epochs * batches_per_epoch,
        initial=round(elapsed_before) if budget is not None else start_epoch * batches_per_epoch,
        disable=not progress,
        unit="s" if budget is not None else "batch",
        dynamic_ncols=True,
    )
    stopped_because = "epochs"
    epoch = start_epoch

    def over_budget() -> bool:
        return budget is not None and elapsed_before + (time.perf_counter() - start_time) >= budget

    def on_batch(loss_value: float) -> bool:
        if budget is None:
            bar.update(1)
        else:
            bar.update(
                max(
                    0,
                    min(round(elapsed_before + time.perf_counter() - start_time), bar.total)
                    - bar.n,
                )
            )
        bar.set_postfix(loss=f"{loss_value:.4f}", refresh=False)
        return not over_budget()

    try:
        while epoch < train_cfg.epochs:
            fraction = (
                None
                if budget is None
                else (elapsed_before + time.perf_counter() - start_time) / budget
            )
            lr = (
                train_cfg.lr
                * lr_factor(epoch, train_cfg, budget_fraction=fraction)
                * plateau.factor
            )
            for group in optimizer.param_groups:
                group["lr"] = lr
            dataset.set_epoch(epoch)
            dataset.set_stage(curriculum.stage)
            bar.set_description(f"epoch {epoch + 1}/{train_cfg.epochs}")
            epoch_start = time.perf_counter()
            row: dict[str, Any] = {"epoch": epoch + 1, "lr": lr, "stage": curriculum.stage}
            row.update(
                train_one_epoch(
                    model,
                    loader,
                    loss_fn,
                    optimizer,
                    device=device,
                    scaler=scaler,
                    use_pixel_weights=config.loss.border_weights,
                    on_batch=on_batch,
                )
            )
            is_last = epoch + 1 == train_cfg.epochs or over_budget()
            if val_samples and ((epoch + 1) % train_cfg.val_every == 0 or is_last):
                row.update(
                    validate(
                        model,
                        val_samples,
                        loss_fn,
                        predict=config.predict,
                        device=device,
                        num_classes=num_classes,
                        amp=scaler is not None,
                    )
                )
            row["epoch_seconds"] = time.perf_counter() - epoch_start
            curriculum.update(row)  # the next epoch trains at the (possibly) new stage
            history.append(row)
            epoch += 1
            if monitor in row:
                value = row[monitor]
                score = value if higher_is_better else -value
            else:  # no validation this epoch (val_every) or no validation split
                value, score = None, (-row["train_loss"] if not val_samples else None)
            if score is not None and score > best_metric:
                best_metric, best_epoch = score, epoch
                save_checkpoint(run_dir / "best.pt", checkpoint_payload(epoch, finished=False))
            if value is not None and train_cfg.schedule == "plateau":
                plateau.update(
                    value,
                    higher_is_better=higher_is_better,
                    patience=train_cfg.plateau_patience,
                    gamma=train_cfg.gamma,
                )
            bar.set_postfix(
                {
                    k: f"{v:.4f}"
                    for k, v in row.items()
                    if k in ("train_loss", "val_loss", "val_dice")
                }
            )
            tensorboard.log(row, epoch)
            write_history_csv(run_dir / "history.csv", history)
            save_learning_curves(history, run_dir / "curves.png")
            save_checkpoint(run_dir / "last.pt", checkpoint_payload(epoch, finished=False))
            if on_epoch_end is not None:
                on_epoch_end(row)
            patience = train_cfg.early_stopping_patience
            if patience is not None and best_epoch >= 0 and epoch - best_epoch >= patience:
                stopped_because = f"early stopping ({patience} epochs without improvement)"
                break
            if over_budget():
                stopped_because = f"time budget ({train_cfg.time_budget_minutes} min)"
                break
    except KeyboardInterrupt:
        save_checkpoint(run_dir / "last.pt", checkpoint_payload(epoch, finished=False))
        raise
    finally:
        bar.close()
        tensorboard.close()

    if best_epoch < 0:  # no epoch completed (should not happen) -> last state is the best
        save_checkpoint(run_dir / "best.pt", checkpoint_payload(epoch, finished=False))
        best_epoch = epoch
    threshold = _finalise_threshold(run_dir / "best.pt", val_samples, config, device)
    save_checkpoint(run_dir / "last.pt", checkpoint_payload(epoch, finished=True))
    total_seconds = elapsed_before + (time.perf_counter() - start_time)
    best_value = best_metric if (higher_is_better and val_samples) else -best_metric
    write_json(
        run_dir / "run.json",
        {
            "epochs_completed": epoch,
            "best_epoch": best_epoch,
            f"best_{monitor if val_samples else 'train_loss'}": best_value,
            "stopped_because": stopped_because,
            "training_seconds": round(total_seconds, 2),
            "threshold": threshold,
            "class_weights": class_weights,
            "n_train": len(split["train"]),
            "n_val": len(split["val"]),
            "n_test": len(split.get("test", [])),
            "tensorboard": "written"
            if tensorboard.available
            else (
                "disabled" if not train_cfg.tensorboard else "unavailable: pip install tensorboard"
            ),
            "environment": _environment(device),
        },
    )
    return RunResult(
        run_dir=run_dir,
        best_checkpoint=run_dir / "best.pt",
        last_checkpoint=run_dir / "last.pt",
        history=history,
        best_epoch=best_epoch,
        best_metric=best_value,
        stopped_because=stopped_because,
    )


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


def _finalise_threshold(
    best_path: Path, val_samples: Sequence[Sample], config: LapsegConfig, device: torch.device
) -> float:
    """For ``predict.threshold_method == "tuned"``: the validation-Dice-optimal threshold of the
    best model, stored into ``best.pt``. Otherwise the configured threshold."""
    if config.predict.threshold_method != "tuned" or config.model.out_channels != 1:
        return config.predict.threshold
    if not val_samples:
        raise LapsegInputError(
            "predict.threshold_method=tuned needs a validation split (data.val_fraction > 0)"
        )
    from lapseg.inference.outputs import tune_threshold

    checkpoint = load_checkpoint(best_path)
    model = create_model(config.model).to(device)
    model.load_state_dict(checkpoint["model_state"])
    model.eval()
    probabilities, truths = [], []
    with torch.inference_mode():
        for sample in val_samples:
            logits = predict_logits(
                model, torch.from_numpy(sample.image).to(device), config.predict
            )
            probabilities.append(torch.sigmoid(logits[0]).cpu().numpy())
            truths.append(sample.target)
    threshold, _ = tune_threshold(probabilities, truths)
    checkpoint["threshold"] = float(threshold)
    save_checkpoint(best_path, checkpoint)
    return float(threshold)


__all__ = ["RunResult", "fit"]
