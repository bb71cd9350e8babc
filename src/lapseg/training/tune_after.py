"""The last step of a training run: tune the best model's post-processing (instance tasks) or
threshold (binary models with ``predict.threshold_method=tuned``) on the validation split, and
store the result in ``best.pt``."""

from __future__ import annotations

import logging
import time
from typing import Any

from lapseg.data.targets import REGRESSION_CHANNELS
from lapseg.device import place_model
from lapseg.errors import LapsegInputError
from lapseg.inference.outputs import probabilities_from_logits, tune_threshold
from lapseg.models.checkpoint import load_checkpoint, save_checkpoint
from lapseg.models.registry import create_model
from lapseg.training.postprocess_tuning import tune_postprocessing
from lapseg.training.setup import TrainingRun
from lapseg.training.validation import predict_tiles

__all__ = ["tune_on_validation"]

log = logging.getLogger(__name__)


def tune_on_validation(run: TrainingRun) -> dict[str, Any]:
    """Tune the best model's post-processing (instance tasks) or threshold (binary models with
    ``predict.threshold_method=tuned``) on the validation tiles; store it in ``best.pt``."""
    config = run.config
    instances = config.data.task == "instances" and config.postprocess.tune_for != "none"
    threshold = config.predict.threshold_method == "tuned" and config.model.outputs == 1
    if not (instances or threshold):
        return {"threshold": config.predict.threshold}
    if not len(run.validation):
        if threshold:
            raise LapsegInputError(
                "predict.threshold_method=tuned needs a validation split (data.val_fraction > 0)"
            )
        log.warning("no validation split: the post-processing keeps its configured values")
        return {"postprocess_tuning": "skipped: no validation split"}
    best_path = run.run_dir / "best.pt"
    checkpoint = load_checkpoint(best_path)
    best_model = place_model(create_model(config.model), run.device)
    best_model.load_state_dict(checkpoint["model_state"])
    logits = predict_tiles(
        best_model, run.validation, config, device=run.device, precision=run.precision
    )
    regressed = REGRESSION_CHANNELS.get(config.data.target, 0)
    probabilities = [
        probabilities_from_logits(x, regressed=regressed).float().cpu().numpy() for x in logits
    ]
    if threshold:
        value, _ = tune_threshold([p[0] for p in probabilities], run.validation.targets)
        checkpoint["threshold"] = float(value)
        save_checkpoint(best_path, checkpoint)
        log.info("threshold tuned on the validation split: %.2f", value)
        return {"threshold": float(value)}
    limit = run.budget.limit_seconds
    deadline = None if limit is None else time.perf_counter() + (limit - run.budget.used)
    result = tune_postprocessing(
        probabilities,
        run.validation,
        config.postprocess,
        target=config.data.target,
        object_area=run.object_area,
        deadline=deadline,
    )
    checkpoint["config"]["postprocess"] = result.postprocess.to_dict()
    save_checkpoint(best_path, checkpoint)
    summary = result.summary()
    log.info(
        "post-processing tuned on the validation split for %s: %.4f (defaults %.4f), %s",
        summary["measure"],
        summary["value"],
        summary["value_with_defaults"],
        summary["changed_settings"] or "defaults kept",
    )
    return {"postprocess_tuning": summary}
