"""Checks of the paths given on the command line."""

from __future__ import annotations

from pathlib import Path

from lapseg.errors import LapsegInputError

__all__ = ["require"]


def require(path: Path, what: str = "data folder") -> Path:
    """``path`` if it exists, else a one-line error naming it (``what`` not found)."""
    if not path.exists():
        raise LapsegInputError(f"{what} not found", path=path)
    return path
