"""One writer per folder: the lock file of a training run, and which processes are still alive.

``lapseg train`` holds :data:`LOCK_NAME` in its run folder while it runs, so a second
``lapseg train`` (or ``--resume``) on the same folder refuses instead of interleaving its files
with the first. The lock is a small JSON file created with ``O_CREAT | O_EXCL`` (atomic on local
and NFS v3+ file systems) holding the owner's process id and host name; it is removed when the
run ends, however it ends, short of the process being killed. A lock left by a killed process on
this machine is detected (its process id is no longer running) and taken over with a log line; a
lock held by another machine is reported, because lapseg cannot see its processes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import time
from collections.abc import Collection, Iterator
from pathlib import Path

from lapseg.errors import LapsegInputError

__all__ = ["LOCK_NAME", "folder_lock", "process_running", "this_host"]

LOCK_NAME = ".lapseg.lock"
"""File name of the lock inside a locked folder."""

log = logging.getLogger(__name__)


def this_host() -> str:
    """The machine's host name (what a lock records besides the process id)."""
    return socket.gethostname()


def process_running(pid: int) -> bool:
    """True if a process with id ``pid`` exists on this machine (a zombie counts as running).

    >>> process_running(os.getpid())
    True
    """
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by another user
        return True
    return True


def _owner(lock: Path) -> dict[str, object] | None:
    """What a lock file says about its owner, or None if it cannot be read or parsed."""
    try:
        owner = json.loads(lock.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return owner if isinstance(owner, dict) else None


def _stale(owner: dict[str, object] | None) -> bool:
    """True if the lock's owner was a process of this machine that is no longer running."""
    if owner is None or owner.get("host") != this_host():
        return False
    pid = owner.get("pid")
    return isinstance(pid, int) and not process_running(pid)


def _refusal(lock: Path, owner: dict[str, object] | None) -> LapsegInputError:
    if owner is None:
        who = "an unknown process (its lock file cannot be read)"
    else:
        where = "this machine" if owner.get("host") == this_host() else owner.get("host")
        who = f"{owner.get('command', 'lapseg')} (process {owner.get('pid')} on {where}, "
        who += f"started {owner.get('started', '?')})"
    return LapsegInputError(
        f"the folder is in use by {who}; wait for it to finish, or if no lapseg process uses "
        f"the folder any more, delete {lock.name} in it",
        path=lock.parent,
    )


def _acquire(lock: Path, what: str) -> None:
    """Create ``lock`` for this process; take over a stale one; refuse a live one."""
    record = {
        "pid": os.getpid(),
        "host": this_host(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "command": what,
    }
    for _ in range(3):
        try:
            handle = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
        except FileExistsError:
            owner = _owner(lock)
            if not _stale(owner):
                raise _refusal(lock, owner) from None
            log.warning(
                "took over the lock of process %s, which is no longer running (an interrupted "
                "run): %s",
                owner and owner.get("pid"),
                lock,
            )
            lock.unlink(missing_ok=True)
            continue
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            json.dump(record, stream)
        return
    raise _refusal(lock, _owner(lock))  # pragma: no cover - a race lost three times


def _remove_if_disposable(folder: Path, disposable: Collection[str]) -> None:
    """Remove ``folder`` if it holds nothing but ``disposable`` files (a run that failed before
    it wrote anything)."""
    with contextlib.suppress(OSError):
        entries = list(folder.iterdir())
        if all(e.name in disposable and e.is_file() for e in entries):
            for entry in entries:
                entry.unlink()
            folder.rmdir()


@contextlib.contextmanager
def folder_lock(
    folder: str | Path, *, what: str = "lapseg train", disposable: Collection[str] = ()
) -> Iterator[Path]:
    """Hold ``folder/.lapseg.lock`` for the block (the folder is created if needed).

    Parameters
    ----------
    folder : str or Path
        The folder to lock (a run folder).
    what : str, optional
        The command holding the lock (recorded in the file, named in the refusal).
    disposable : collection of str, optional
        File names that alone are no result: when the block fails and the folder was created
        here, it is removed again if it holds nothing else (bad input leaves no run folder).

    Yields
    ------
    lock : Path
        The lock file.

    Raises
    ------
    LapsegInputError
        When another running process holds the lock.
    """
    folder = Path(folder)
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    lock = folder / LOCK_NAME
    try:
        _acquire(lock, what)
    except BaseException:
        if created:
            _remove_if_disposable(folder, disposable)
        raise
    try:
        yield lock
    except BaseException:
        lock.unlink(missing_ok=True)
        if created:
            _remove_if_disposable(folder, disposable)
        raise
    lock.unlink(missing_ok=True)
