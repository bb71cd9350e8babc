"""Options shared by several commands, as parent parsers, so they read the same everywhere:
``--set KEY=VALUE`` (configuration overrides), ``--device``, ``--no-progress``."""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["DEVICE", "OVERRIDES", "PROGRESS", "config_and_data"]


def _overrides() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one option, e.g. --set train.lr=1e-3 --set model.preset=stemnet "
        "(repeatable; applied after the configuration file)",
    )
    return parent


def _device() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--device", default=None, help="cpu, cuda, cuda:1, mps (default: auto-detect)"
    )
    return parent


def _progress() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bar (long work prints one line per epoch or file instead)",
    )
    return parent


OVERRIDES, DEVICE, PROGRESS = _overrides(), _device(), _progress()


def config_and_data(p: argparse.ArgumentParser) -> None:
    """The optional YAML configuration and the required ``--data`` folder."""
    p.add_argument("config", type=Path, nargs="?", help="YAML configuration (optional)")
    p.add_argument("--data", required=True, type=Path, help="dataset folder (as for train)")
