"""Writing files safely: the one owner of atomic writes, JSON, CSV and text outputs.

Every output lapseg writes goes through :func:`atomic_output`: the data are written to a
temporary file in the destination folder and moved onto the destination with :func:`os.replace`,
so a crash, a full disk or Ctrl-C never leaves a half-written file, and an existing file is
either the old one or the new one. The temporary file is created with mode ``0o666`` filtered by
the process umask, exactly like a file opened by ``open(path, "w")``: outputs get the user's
normal permissions (colleagues on shared storage can read them).

A process killed outright (SIGKILL, power loss) cannot remove its temporary file. Temporary
names carry the writer's host and process id, so the first atomic write of a later lapseg process
into the same folder removes the temporaries of writers of this machine that no longer run (the
only trace an interrupted command leaves); temporaries of running processes are never touched.
An :class:`OSError` while writing (a full disk, no permission) names the destination, not the
temporary file.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import hashlib
import io
import json
import math
import os
import re
import secrets
import shutil
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from lapseg.io.locks import process_running, this_host

__all__ = ["atomic_output", "format_cell", "write_csv", "write_json", "write_text"]


_HOST_TAG = hashlib.sha1(this_host().encode()).hexdigest()[:6]
_TEMPORARY = re.compile(r"^\..+\.([0-9a-f]{6})-(\d+)-[0-9a-f]{8}\.tmp(\.[^.]*)?$")
_SWEPT: set[Path] = set()
"""Folders whose stale temporaries this process already removed (one scan per folder)."""


def _sweep_stale_temporaries(folder: Path) -> None:
    """Remove temporaries that writers of this machine, no longer running, left in ``folder``."""
    if folder in _SWEPT:
        return
    _SWEPT.add(folder)
    with contextlib.suppress(OSError):
        for entry in os.scandir(folder):
            match = _TEMPORARY.match(entry.name)
            if match and match[1] == _HOST_TAG and not process_running(int(match[2])):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)


def _new_temporary(path: Path) -> Path:
    """Create an empty, unique temporary file next to ``path`` with umask-filtered 0o666."""
    _sweep_stale_temporaries(path.parent)
    tag = f"{_HOST_TAG}-{os.getpid()}"
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{tag}-{secrets.token_hex(4)}.tmp{path.suffix}")
        try:
            handle = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
        except FileExistsError:
            continue
        os.close(handle)
        return tmp
    raise FileExistsError(f"no free temporary name next to {path}")  # pragma: no cover


@contextlib.contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; move it onto ``path`` on success.

    The temporary file ends with the suffix of ``path`` (libraries pick the format from it) and
    lives in the same folder (so :func:`os.replace` is atomic). Parent folders are created. On an
    exception (including KeyboardInterrupt) the temporary file is removed and ``path`` is left
    untouched.

    Parameters
    ----------
    path : str or Path
        Final destination.

    Yields
    ------
    tmp : Path
        Where to write.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = _new_temporary(path)
    except OSError as error:
        raise _naming(error, path) from error
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as error:
        named = _naming(error, path)
        tmp.unlink(missing_ok=True)
        raise named from error
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


_NEARLY_FULL = 1 << 20
"""Free bytes below which a short write without an error number is taken for a full disk."""


def _naming(error: OSError, path: Path) -> OSError:
    """``error`` naming the destination ``path`` instead of no file or a temporary file; a
    short write without an error number (tifffile: "N requested and M written") on a full disk
    becomes ``ENOSPC``."""
    name = error.filename
    if name is not None and not Path(str(name)).name.startswith(f".{path.name}."):
        return error
    code = error.errno
    if code is None:
        with contextlib.suppress(OSError):
            if shutil.disk_usage(path.parent).free < _NEARLY_FULL:
                code = errno.ENOSPC
    if code is None:
        return OSError(None, str(error), str(path))
    return OSError(code, os.strerror(code), str(path))


def write_text(path: str | Path, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically; returns ``path``."""
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(path: str | Path, payload: Any) -> Path:
    """Write ``payload`` as indented JSON (non-JSON values via ``str``) atomically."""
    return write_text(path, json.dumps(payload, indent=2, default=str) + "\n")


def format_cell(value: Any, float_format: str | None = ".6g") -> Any:
    """A CSV cell: floats by ``float_format`` (None: unchanged), NaN as an empty cell."""
    if isinstance(value, float) and float_format is not None:
        return "" if math.isnan(value) else format(value, float_format)
    return value


def write_csv(
    path: str | Path,
    rows: Iterable[Mapping[str, Any]],
    *,
    columns: Sequence[str] | None = None,
    float_format: str | None = ".6g",
) -> Path:
    """Write dict rows as CSV atomically (header = ``columns`` or the union of the row keys).

    Keys missing from a row give empty cells; keys not in ``columns`` are left out. Floats are
    written by :func:`format_cell` with ``float_format``.
    """
    rows = list(rows)
    if columns is None:
        names: list[str] = []
        for row in rows:
            names.extend(k for k in row if k not in names)
        columns = names
    buffer = io.StringIO()
    writer = csv.DictWriter(
        buffer, fieldnames=list(columns), restval="", extrasaction="ignore", lineterminator="\n"
    )
    writer.writeheader()
    for row in rows:
        writer.writerow({k: format_cell(v, float_format) for k, v in row.items()})
    return write_text(path, buffer.getvalue())
