"""Training history: one CSV row per epoch, optional TensorBoard events."""

from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path
from typing import Any


def write_history_csv(path: str | Path, history: list[dict[str, Any]]) -> Path:
    """Write the whole history (a row per epoch, union of keys as columns) atomically."""
    path = Path(path)
    columns: list[str] = []
    for row in history:
        columns.extend(k for k in row if k not in columns)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, restval="")
    writer.writeheader()
    for row in history:
        writer.writerow({k: _format(v) for k, v in row.items()})
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(buffer.getvalue(), encoding="utf-8")
    os.replace(tmp, path)
    return path


def _format(value: Any) -> Any:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.6g}"
    return value


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
