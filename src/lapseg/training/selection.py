"""Which checkpoint is best: the monitored validation value, its direction, early stopping.

Every history row may hold the monitored value (``val_dice``, ``val_loss``, ...). Losses are
better when lower, everything else when higher; a run without a validation split can only
watch its training loss. :class:`Monitor` keeps the best value and its epoch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Monitor", "higher_is_better"]


def higher_is_better(name: str) -> bool:
    """Losses and error rates are better when lower; every other measure when higher."""
    return not ("loss" in name or "error" in name)


@dataclass
class Monitor:
    """The best value of one history column and the epoch that reached it.

    Attributes
    ----------
    name : str
        The monitored column (``train.monitor``, or ``train_loss`` without validation).
    best : float or None
        Best value so far.
    best_epoch : int
        Epoch (1-based) of ``best``; -1 before any.
    """

    name: str
    best: float | None = None
    best_epoch: int = -1

    @property
    def higher_is_better(self) -> bool:
        """Direction of the monitored column."""
        return higher_is_better(self.name)

    def update(self, row: Mapping[str, Any]) -> bool:
        """Record one epoch's row; True when it holds a finite value better than the best."""
        value = row.get(self.name)
        if value is None or not math.isfinite(float(value)):
            return False
        value = float(value)
        better = self.best is None or (
            value > self.best if self.higher_is_better else value < self.best
        )
        if better:
            self.best, self.best_epoch = value, int(row["epoch"])
        return better

    def epochs_without_improvement(self, epoch: int) -> int:
        """Epochs since the best one (``epoch`` itself if none was recorded)."""
        return epoch - max(self.best_epoch, 0)

    def state_dict(self) -> dict[str, Any]:
        """Plain dict for checkpoints."""
        return {"name": self.name, "best": self.best, "best_epoch": self.best_epoch}

    @classmethod
    def from_state_dict(cls, state: Mapping[str, Any]) -> Monitor:
        """Restore from :meth:`state_dict`."""
        best = state.get("best")
        return cls(
            str(state["name"]), None if best is None else float(best), int(state["best_epoch"])
        )
