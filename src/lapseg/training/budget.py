"""Wall-clock budgets: how much of a run's time is spent, and a progress bar that says so.

A :class:`TimeBudget` measures the seconds a run has used (including the time of earlier,
interrupted sessions of the same run) against an optional limit. With a limit, the progress bar
counts seconds of the budget (an honest ETA); without one it counts optimiser steps.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from tqdm.auto import tqdm

__all__ = ["TimeBudget", "budget_progress_bar"]


@dataclass
class TimeBudget:
    """Seconds used by a run against an optional limit.

    Attributes
    ----------
    limit_seconds : float or None
        The budget (None: unlimited).
    used_before : float
        Seconds used by earlier sessions of the run (resume).
    started : float
        ``time.perf_counter()`` when this session started.
    """

    limit_seconds: float | None
    used_before: float = 0.0
    started: float = field(default_factory=time.perf_counter)

    @property
    def used(self) -> float:
        """Seconds used so far, all sessions together."""
        return self.used_before + (time.perf_counter() - self.started)

    @property
    def fraction(self) -> float | None:
        """Used fraction of the limit (None without a limit)."""
        return None if self.limit_seconds is None else self.used / self.limit_seconds

    def exhausted(self, *, reserve: float = 0.0) -> bool:
        """True when less than ``reserve`` seconds of the limit are left (never without one)."""
        return self.limit_seconds is not None and self.used + reserve >= self.limit_seconds


def budget_progress_bar(
    budget: TimeBudget, *, total_steps: int, done_steps: int, enabled: bool
) -> tqdm:
    """A bar over the budget's seconds (with a limit) or over optimiser steps (without)."""
    if budget.limit_seconds is not None:
        return tqdm(
            total=round(budget.limit_seconds),
            initial=round(budget.used_before),
            unit="s",
            disable=not enabled,
            dynamic_ncols=True,
        )
    return tqdm(
        total=total_steps, initial=done_steps, unit="step", disable=not enabled, dynamic_ncols=True
    )


def advance(bar: tqdm, budget: TimeBudget) -> None:
    """Move ``bar`` by one step, or to the budget's used seconds."""
    if budget.limit_seconds is None:
        bar.update(1)
    else:
        bar.update(max(0, min(round(budget.used), bar.total) - bar.n))
