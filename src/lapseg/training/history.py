"""Training history: one CSV row per epoch, optional TensorBoard events."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lapseg.io.files import write_csv


def write_history_csv(path: str | Path, history: list[dict[str, Any]]) -> Path:
    """Write the whole history (a row per epoch, union of keys as columns) atomically."""
    return write_csv(path, history)


class TensorBoardLog:
    """Scalars to TensorBoard event files when the ``tensorboard`` package is installed."""

    def __init__(self, log_dir: str | Path, *, enabled: bool) -> None:
        self.writer = None
        self.available = False
        if not enabled:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard is an optional extra; the CSV history always exists
            return
        self.writer = SummaryWriter(log_dir=str(log_dir))
        self.available = True

    def log(self, row: dict[str, Any], step: int) -> None:
        """Write every numeric value of ``row`` at ``step``."""
        if self.writer is None:
            return
        for key, value in row.items():
            if isinstance(value, int | float) and not isinstance(value, bool) and key != "epoch":
                self.writer.add_scalar(key, value, step)
        self.writer.flush()

    def close(self) -> None:
        """Close the event file."""
        if self.writer is not None:
            self.writer.close()
