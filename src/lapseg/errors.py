"""User-facing errors.

Every problem caused by the user's input (a missing file, a corrupt image, a config value out of
range) raises :class:`LapsegInputError` with a one-line message that names the file or option and
the problem. The command line turns it into ``lapseg: error: <message>`` and exit code 2.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType
from typing import Any


class LapsegInputError(Exception):
    """Bad input from the user: reported as one line, exit code 2, no traceback."""

    def __init__(self, message: str, *, path: str | Path | None = None) -> None:
        message = " ".join(str(message).split())  # always one line
        if path is not None:
            message = f"{path}: {message}"
        super().__init__(message)


def optional_import(module: str, *, extra: str, purpose: str) -> Any:
    """Import an optional dependency, or say which ``lapseg`` extra installs it.

    Parameters
    ----------
    module : str
        Import name, e.g. ``"optuna"``.
    extra : str
        The extra of ``pyproject.toml`` that provides it, e.g. ``"search"``.
    purpose : str
        What needs it, for the message (``"lapseg search"``).
    """
    try:
        imported: ModuleType = importlib.import_module(module)
    except ImportError:
        raise LapsegInputError(
            f"{purpose} needs {module.split('.')[0]}: pip install 'lapseg[{extra}]'"
        ) from None
    return imported
