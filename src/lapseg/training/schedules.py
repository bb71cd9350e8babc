"""Learning-rate schedules as pure functions of the epoch.

``lr(epoch) = base_lr * lr_factor(epoch, config)``; the training loop sets the optimiser's
learning rate from it at the start of every epoch, so resuming needs only the epoch number.
"reduce on plateau" depends on the validation history and lives in :class:`PlateauState`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from lapseg.config import TrainConfig


def lr_factor(epoch: int, config: TrainConfig, *, budget_fraction: float | None = None) -> float:
    """Multiplier of the base learning rate for ``epoch`` (0-based).

    ``budget_fraction`` (elapsed / time budget, for runs with ``time_budget_minutes``) lets the
    cosine schedule follow whichever limit comes first, epochs or wall-clock time, so a run cut
    by its budget still anneals to its end.

    - "none": 1.
    - "exponential": ``decay_rate ** (epoch / decay_epochs)`` (000's exponential decay;
      TensorFlow's ``exponential_decay`` with ``staircase=False``).
    - "piecewise": with k = number of ``milestones`` <= epoch, ``milestone_factors[k - 1]``
      (002's table) or ``gamma ** k`` when no factors are given (a step schedule);
      ``milestone_fractions`` place the milestones at ``round(fraction * epochs)`` or at that
      fraction of the time budget, whichever comes first.
    - "cosine": half cosine from 1 to 0.01 over the epochs (``TrainConfig.max_epochs``) or the
      time budget, whichever ends first.
    - "plateau": 1 (the plateau reduction is applied on top, see :class:`PlateauState`).
    A linear warm-up over ``warmup_epochs`` multiplies every schedule.
    """
    if config.schedule == "exponential":
        factor = config.decay_rate ** (epoch / config.decay_epochs)
    elif config.schedule == "piecewise":
        passed = _passed_milestones(epoch, config, budget_fraction)
        if config.milestone_factors:
            factor = config.milestone_factors[passed - 1] if passed else 1.0
        else:
            factor = config.gamma**passed
    elif config.schedule == "cosine":
        epochs = config.max_epochs
        progress = 0.0 if epochs is None else min(epoch / max(epochs - 1, 1), 1.0)
        if budget_fraction is not None:
            progress = min(max(progress, budget_fraction), 1.0)
        factor = 0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * progress))
    else:
        factor = 1.0
    if config.warmup_epochs > 0 and epoch < config.warmup_epochs:
        factor *= (epoch + 1) / (config.warmup_epochs + 1)
    return factor


def _passed_milestones(epoch: int, config: TrainConfig, budget_fraction: float | None) -> int:
    """How many piecewise milestones ``epoch`` (0-based) has reached."""
    fractions = config.milestone_fractions
    if not fractions:
        return sum(1 for m in config.milestones if epoch >= m)
    epochs = config.max_epochs
    passed = 0 if epochs is None else sum(1 for f in fractions if epoch >= round(f * epochs))
    if budget_fraction is not None:
        passed = max(passed, sum(1 for f in fractions if budget_fraction >= f))
    return passed


@dataclass
class PlateauState:
    """Reduce-on-plateau bookkeeping: multiply the rate by ``gamma`` after ``patience`` epochs
    without improvement of the monitored value. Plain fields, saved in checkpoints."""

    best: float | None = None
    bad_epochs: int = 0
    factor: float = 1.0

    def update(self, value: float, *, higher_is_better: bool, patience: int, gamma: float) -> None:
        """Record one validation value."""
        improved = self.best is None or (
            value > self.best if higher_is_better else value < self.best
        )
        if improved:
            self.best = value
            self.bad_epochs = 0
            return
        self.bad_epochs += 1
        if self.bad_epochs >= patience:
            self.factor *= gamma
            self.bad_epochs = 0
