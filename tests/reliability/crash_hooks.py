"""Run ``lapseg`` in a child process that kills itself (SIGKILL) at a chosen point.

The crash tests start ``python -c "<CHILD>" SPEC lapseg-arguments...``; :func:`child_main`
installs the hook named by ``SPEC`` and runs the command. A process killing itself at an exact
point makes every crash test deterministic (no sleeps racing a timer):

``batch:N``
    SIGKILL after the N-th training step (in the middle of an epoch).
``checkpoint:NAME:N``
    the N-th save of checkpoint ``NAME`` writes half its bytes, then SIGKILL.
``validate:N``
    SIGKILL when the N-th validation pass starts.
``write:N``
    the N-th TIFF written (masks, probabilities) gets half its bytes, then SIGKILL.
``wait:PATH``
    at the first training step, create ``PATH.ready`` and wait for ``PATH.go``.
"""

from __future__ import annotations

import io
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

CHILD = (
    f"import sys; sys.path.insert(0, {str(HERE)!r}); import crash_hooks; "
    "sys.exit(crash_hooks.child_main(sys.argv[1:]))"
)
"""The ``-c`` program of a child process."""


def command(spec: str, args: Sequence[object]) -> list[str]:
    """The child's command line: ``lapseg ARGS`` with the hook ``spec``."""
    return [sys.executable, "-c", CHILD, spec, *(str(a) for a in args)]


def _die() -> None:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def _on_call(target: Any, name: str, n: int, before: Callable[..., None]) -> None:
    """Call ``before(*args)`` (which may kill) on the ``n``-th call of ``target.name``."""
    real = getattr(target, name)
    calls = {"n": 0}

    def patched(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == n:
            before(*args, **kwargs)
        return real(*args, **kwargs)

    setattr(target, name, patched)


def _half_then_die(write: Callable[..., None], destination: Any, *args: Any, **kw: Any) -> None:
    """Serialise with ``write`` to memory, put half the bytes into ``destination``, die."""
    buffer = io.BytesIO()
    write(buffer, *args, **kw)
    data = buffer.getvalue()[: len(buffer.getvalue()) // 2]
    if hasattr(destination, "write"):
        destination.write(data)
        destination.flush()
    else:
        Path(destination).write_bytes(data)
    _die()


def install(spec: str) -> None:
    """Install the hook ``spec`` (see the module docstring)."""
    import tifffile
    import torch

    from lapseg.training import trainer

    kind, _, rest = spec.partition(":")
    if kind == "batch":
        _on_call(trainer, "advance", int(rest), lambda *a, **k: _die())
    elif kind == "validate":
        _on_call(trainer, "validate", int(rest), lambda *a, **k: _die())
    elif kind == "checkpoint":
        name, _, n = rest.partition(":")
        real_save, calls = torch.save, {"n": 0}

        def save(obj: Any, f: Any, *args: Any, **kwargs: Any) -> None:
            if Path(str(getattr(f, "name", f))).name.startswith(f".{name}."):
                calls["n"] += 1
                if calls["n"] == int(n):
                    _half_then_die(lambda b: real_save(obj, b), f)
            real_save(obj, f, *args, **kwargs)

        torch.save = save
    elif kind == "write":
        real_write = tifffile.imwrite

        def half_tiff(path: Any, data: Any, *args: Any, **kwargs: Any) -> None:
            _half_then_die(lambda b: real_write(b, data, *args, **kwargs), path)

        _on_call(tifffile, "imwrite", int(rest), half_tiff)
    elif kind == "wait":
        path = Path(rest)

        def wait(*args: Any, **kwargs: Any) -> None:
            path.with_name(path.name + ".ready").touch()
            deadline = time.monotonic() + 120
            while not path.with_name(path.name + ".go").exists() and time.monotonic() < deadline:
                time.sleep(0.05)

        _on_call(trainer, "advance", 1, wait)
    else:
        raise ValueError(f"unknown hook {spec!r}")


def child_main(argv: Sequence[str]) -> int:
    """Install ``argv[0]``'s hook, run ``lapseg argv[1:]`` on one thread (like the tests)."""
    import torch

    torch.set_num_threads(1)
    install(argv[0])
    from lapseg.cli import main

    return main(list(argv[1:]))
