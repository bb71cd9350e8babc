"""``lapseg reproduce SEED``: each seed system's experiments as one command, measured its way.

Every seed document (``../shared/seeds/``) has one module here, ``lapseg.reproduce.seedNNN``,
exposing ``reproduce(data, out, *, minutes, progress) -> list[Path]``: it trains what the
document trained (from the configurations in ``configs/``), evaluates it with the document's own
measures and writes the document's tables and figures into ``out``, returning their paths. A
module may also accept ``overrides`` (``--set KEY=VALUE``, applied after each configuration file,
e.g. a small model for a smoke test).

:data:`SEEDS` maps a seed id to its module name; modules are imported on demand
(:func:`load_seed`), so one seed's imports never slow another and a module that does not exist
yet is a one-line error. The helpers below (:func:`seed_config`, :func:`budget_overrides`,
:func:`new_output_folder`) are shared by the seed modules.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from lapseg.config import LapsegConfig, load_config
from lapseg.errors import LapsegInputError

__all__ = [
    "SEEDS",
    "TITLES",
    "budget_overrides",
    "configs_folder",
    "load_seed",
    "new_output_folder",
    "reproduce",
    "seed_config",
    "seed_id",
]

SEEDS: dict[str, str] = {
    "000": "seed000",
    "001": "seed001",
    "002": "seed002",
    "003": "seed003",
    "004": "seed004",
}
"""Seed id -> module of :mod:`lapseg.reproduce`."""

TITLES: dict[str, str] = {
    "000": "StemNet: Network1 vs Network5 on time-lapse frames (Tables 1-3, Figs 15-23)",
    "001": "pancreas Keras U-Net vs random forest on (time, depth) stacks (Table 1)",
    "002": "compact U-Net: full images vs 4 tiles, with and without curriculum (results table)",
    "003": "lecture: normalisation, upsampling and full-image vs patch training",
    "004": "cryo-SEM U-Net: 5-fold cross-validation and external test (Tables 5.1-5.5)",
}
"""Seed id -> what its reproduction runs (for the command's help)."""


def seed_id(text: str) -> str:
    """The canonical id (``"000"``) of ``text`` (``"0"``, ``"000"``, ``"seed000"``).

    Raises
    ------
    LapsegInputError
        For anything else; the message lists the ids.
    """
    digits = str(text).strip().lower().removeprefix("seed")
    if digits.isdigit() and digits.zfill(3) in SEEDS:
        return digits.zfill(3)
    raise LapsegInputError(f"unknown seed {text!r}; valid seeds: {', '.join(SEEDS)}")


def load_seed(seed: str) -> ModuleType:
    """The module that reproduces ``seed`` (imported now).

    Raises
    ------
    LapsegInputError
        Unknown seed, or its module is not there (yet).
    """
    name = f"{__name__}.{SEEDS[seed_id(seed)]}"
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as error:
        if error.name != name:
            raise
        raise LapsegInputError(
            f"seed {seed_id(seed)} has no reproduction yet (module {name} is missing)"
        ) from None


def reproduce(
    seed: str,
    data: Path,
    out: Path,
    *,
    minutes: float | None = None,
    progress: bool = True,
    overrides: Sequence[str] = (),
) -> list[Path]:
    """Run seed ``seed``'s experiments on ``data`` into ``out``; the tables and figures written.

    ``minutes`` bounds the whole reproduction (shared between its training runs); without it
    every run trains for the seed's own number of epochs. ``overrides`` (``KEY=VALUE``) apply to
    every configuration after its file.
    """
    module = load_seed(seed)
    if minutes is not None and not minutes > 0:
        raise LapsegInputError(f"--minutes must be > 0, not {minutes}")
    if not Path(data).exists():
        raise LapsegInputError("data folder not found", path=data)
    kwargs: dict[str, object] = {"minutes": minutes, "progress": progress}
    if overrides:
        if "overrides" not in inspect.signature(module.reproduce).parameters:
            raise LapsegInputError(f"seed {seed_id(seed)}'s reproduction takes no --set overrides")
        kwargs["overrides"] = list(overrides)
    written: list[Path] = module.reproduce(Path(data), Path(out), **kwargs)
    return written


def configs_folder() -> Path:
    """The ``configs/`` folder of the lapseg checkout this package runs from.

    Raises
    ------
    LapsegInputError
        When lapseg is not installed from a checkout (no ``configs/`` beside ``src/``).
    """
    folder = Path(__file__).resolve().parents[3] / "configs"
    if not folder.is_dir():
        raise LapsegInputError(
            "lapseg reproduce reads the seed configurations of a lapseg checkout "
            "(pip install -e . in the repository)",
            path=folder,
        )
    return folder


def seed_config(name: str, overrides: Sequence[str] = ()) -> LapsegConfig:
    """``configs/<name>.yaml`` with ``overrides`` applied after it."""
    return load_config(configs_folder() / f"{name}.yaml", list(overrides))


def budget_overrides(minutes: float | None, runs: int) -> list[str]:
    """``train.time_budget_minutes`` for one of ``runs`` runs sharing ``minutes`` ([] for None).

    A budget also lifts the epoch limit, so each run trains until its share of the time ends
    (or its early stopping).

    >>> budget_overrides(30, 3)
    ['train.time_budget_minutes=10.0', 'train.epochs=null']
    """
    if minutes is None:
        return []
    return [f"train.time_budget_minutes={minutes / runs}", "train.epochs=null"]


def new_output_folder(out: Path) -> Path:
    """``out``, created; refused when it exists and is not empty (nothing is overwritten)."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise LapsegInputError(
            "output folder exists and is not empty: choose a new --out", path=out
        )
    out.mkdir(parents=True, exist_ok=True)
    return out
