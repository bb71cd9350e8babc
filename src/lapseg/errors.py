"""User-facing errors.

Every problem caused by the user's input (a missing file, a corrupt image, a config value out of
range) raises :class:`LapsegInputError` with a one-line message that names the file or option and
the problem. The command line turns it into ``lapseg: error: <message>`` and exit code 2.
"""

from __future__ import annotations

from pathlib import Path


class LapsegInputError(Exception):
    """Bad input from the user: reported as one line, exit code 2, no traceback."""

    def __init__(self, message: str, *, path: str | Path | None = None) -> None:
        message = " ".join(str(message).split())  # always one line
        if path is not None:
            message = f"{path}: {message}"
        super().__init__(message)
