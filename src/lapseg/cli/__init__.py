"""The ``lapseg`` command line: argument parsing (:mod:`~lapseg.cli.parsers`) and one library
call per subcommand (:mod:`~lapseg.cli.commands`).

Bad input of any kind ends with one line ``lapseg: error: <file>: <problem>`` on stderr and exit
code 2, never a traceback. Ctrl-C during training saves a checkpoint and exits with code 130.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import sys
from collections.abc import Sequence

from lapseg.cli.commands import COMMANDS
from lapseg.cli.parsers import build_parser
from lapseg.errors import LapsegInputError

__all__ = ["build_parser", "main"]

EXIT_INPUT_ERROR = 2
EXIT_INTERRUPTED = 130

_OS_ERROR_HINTS = {
    errno.ENOSPC: (
        "; the file was not written and earlier files are intact: free some space and run the "
        "command again (an interrupted lapseg train continues with --resume)"
    ),
    errno.EDQUOT: "; disk quota exceeded: free some space and run the command again",
    errno.EACCES: "; check its permissions (outputs: choose a folder you can write to)",
    errno.EROFS: "; the file system is read-only: choose another output folder",
}
"""What to do about the operating-system errors users meet (appended to the error line)."""


class _ConsoleFilter(logging.Filter):
    """Epoch summaries go to the console only when no progress bar shows the run."""

    def __init__(self, progress_bar: bool) -> None:
        super().__init__()
        self.progress_bar = progress_bar

    def filter(self, record: logging.LogRecord) -> bool:
        return not (self.progress_bar and record.name == "lapseg.epochs")


def _console_log(args: argparse.Namespace) -> logging.Handler:
    """lapseg's log messages on stdout (``lapseg: ...``), one line each; stderr carries only
    the one-line error of a failed command."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("lapseg: %(message)s"))
    handler.addFilter(_ConsoleFilter(progress_bar=not getattr(args, "no_progress", True)))
    logger = logging.getLogger("lapseg")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    return handler


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``lapseg`` console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    handler = _console_log(args)
    try:
        return COMMANDS[args.command](args)
    except LapsegInputError as error:
        print(f"lapseg: error: {error}", file=sys.stderr)
        return EXIT_INPUT_ERROR
    except KeyboardInterrupt:
        print(
            "lapseg: interrupted; a checkpoint was saved where training was running "
            "(continue with: lapseg train --resume --data ... --out RUN_DIR)",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `lapseg config | head`: the reader left; not an error
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silences the flush at exit
        return 0
    except OSError as error:  # unwritable output folder, disk full, ...
        where = f"{error.filename}: " if getattr(error, "filename", None) else ""
        hint = _OS_ERROR_HINTS.get(error.errno or 0, "")
        print(f"lapseg: error: {where}{error.strerror or error}{hint}", file=sys.stderr)
        return EXIT_INPUT_ERROR
    finally:
        logging.getLogger("lapseg").removeHandler(handler)
