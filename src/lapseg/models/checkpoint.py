"""Checkpoints: plain dicts of tensors and plain Python values, loadable with ``weights_only``.

A checkpoint holds everything prediction needs (``format``, ``config`` — the resolved run
configuration —, ``model_state``, ``normalization``, ``threshold``, ``in_channels``) and, for
``last.pt``, everything an exact resume needs (optimiser state, epoch, history, RNG states).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lapseg.errors import LapsegInputError
from lapseg.io.files import atomic_output

CHECKPOINT_FORMAT = "lapseg-checkpoint/1"


def save_checkpoint(path: str | Path, checkpoint: dict[str, Any]) -> Path:
    """Write ``checkpoint`` to ``path`` atomically (:func:`lapseg.io.files.atomic_output`).

    The data go through a Python file object, so a full disk raises ``OSError(ENOSPC)`` naming
    ``path`` (torch's own file writer reports it as an obscure ``RuntimeError``).
    """
    with atomic_output(path) as tmp, tmp.open("wb") as stream:
        torch.save({"format": CHECKPOINT_FORMAT, **checkpoint}, stream)
    return Path(path)


def resolve_checkpoint_path(path: str | Path, *, name: str = "best.pt") -> Path:
    """A checkpoint file, or ``name`` inside a run folder."""
    path = Path(path)
    if path.is_dir():
        candidate = path / name
        if not candidate.is_file():
            raise LapsegInputError(f"run folder has no {name}", path=path)
        return candidate
    if not path.is_file():
        raise LapsegInputError("model checkpoint not found", path=path)
    return path


def load_checkpoint(
    path: str | Path, *, map_location: str | torch.device = "cpu"
) -> dict[str, Any]:
    """Load a lapseg checkpoint with ``weights_only=True`` (no arbitrary code can run)."""
    path = Path(path)
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # corrupt file, not a torch file, unsafe pickle content
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise LapsegInputError(
            f"not a readable lapseg checkpoint ({first[:200]})", path=path
        ) from None
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise LapsegInputError(f"not a {CHECKPOINT_FORMAT} checkpoint", path=path)
    return checkpoint


def check_model_state(
    model: torch.nn.Module, state: Any, *, path: str | Path | None = None
) -> dict[str, torch.Tensor]:
    """``state`` if it fits ``model`` exactly: the same tensor names and shapes, floating-point
    tensors where the model has them (any float precision), finite values.

    A checkpoint is data from outside: one whose tensors do not fit the network its own
    configuration builds (edited, truncated, from another program) is refused with one line
    naming the first problem, instead of a traceback or a model that predicts nothing.
    """
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise LapsegInputError("model_state is not a mapping of tensors", path=path)
    expected = model.state_dict()
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    if missing or unexpected:
        which = f"lacks {missing[0]}" if missing else f"has an unknown tensor {unexpected[0]}"
        more = len(missing) + len(unexpected) - 1
        raise LapsegInputError(
            f"model_state {which}{f' (and {more} more)' if more else ''}: it does not fit the "
            "network of the checkpoint's configuration",
            path=path,
        )
    for key, reference in expected.items():
        tensor = state[key]
        if tensor.shape != reference.shape:
            raise LapsegInputError(
                f"model_state tensor {key} has shape {tuple(tensor.shape)}, the network of the "
                f"checkpoint's configuration needs {tuple(reference.shape)}",
                path=path,
            )
        if tensor.is_floating_point() != reference.is_floating_point() or tensor.is_complex():
            raise LapsegInputError(
                f"model_state tensor {key} has dtype {tensor.dtype}, expected {reference.dtype}",
                path=path,
            )
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise LapsegInputError(
                f"model_state tensor {key} holds NaN or infinite values (a diverged model)",
                path=path,
            )
    return state


def load_model_state(
    model: torch.nn.Module, state: Any, *, path: str | Path | None = None
) -> torch.nn.Module:
    """Load ``state`` into ``model`` after :func:`check_model_state`; returns ``model``."""
    model.load_state_dict(check_model_state(model, state, path=path))
    return model


def capture_rng_states(numpy_rng: np.random.Generator) -> dict[str, Any]:
    """RNG states of torch, Python's ``random`` and the loop's numpy generator (plain types)."""
    states: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": _to_lists(random.getstate()),
        "numpy": numpy_rng.bit_generator.state,
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict[str, Any], numpy_rng: np.random.Generator) -> None:
    """Restore what :func:`capture_rng_states` captured."""
    torch.set_rng_state(states["torch"].cpu())
    random.setstate(_to_tuples(states["python"]))
    numpy_rng.bit_generator.state = states["numpy"]
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in states["cuda"]])


def _to_lists(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_to_lists(v) for v in value]
    return value


def _to_tuples(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_to_tuples(v) for v in value)
    return value
