"""The run's log: every message of lapseg's loggers while a run trains also goes to
``RUN/log.txt`` (decisions such as the detected task, the precision, the split, one line per
epoch), so what a run did is written beside its results.

Records arrive before the run folder exists (reading the data comes first, and a run that fails
on bad input must leave no output): they are kept in memory and written once the folder exists.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

__all__ = ["EPOCH_LOGGER", "log_to_file"]

EPOCH_LOGGER = "lapseg.epochs"
"""Logger of the one-line epoch summaries (a console showing a progress bar may drop them)."""

_FORMAT = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")


class _RunLogHandler(logging.Handler):
    """Appends formatted records to ``path``; buffers them until its folder exists."""

    def __init__(self, path: Path) -> None:
        super().__init__(level=logging.INFO)
        self.path = path
        self.pending: list[str] = []
        self.setFormatter(_FORMAT)

    def emit(self, record: logging.LogRecord) -> None:
        self.pending.append(self.format(record) + "\n")
        if self.path.parent.is_dir():
            self.flush()

    def flush(self) -> None:
        if self.pending and self.path.parent.is_dir():
            with self.path.open("a", encoding="utf-8") as handle:
                handle.writelines(self.pending)
            self.pending.clear()


@contextlib.contextmanager
def log_to_file(path: str | Path) -> Iterator[None]:
    """Append every ``lapseg`` log record of the block to ``path`` (see the module docstring)."""
    handler = _RunLogHandler(Path(path))
    logger = logging.getLogger("lapseg")
    previous = logger.level
    if logger.level == logging.NOTSET or logger.level > logging.INFO:
        logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)
        handler.flush()
        handler.close()
