"""Argument definitions of the experiment subcommands: ``cv``, ``search``, ``baseline``,
``compare``, ``reproduce`` (handlers in :mod:`lapseg.cli.experiments`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from lapseg.cli.parents import OVERRIDES, PROGRESS, config_and_data

__all__ = ["add_baseline", "add_compare", "add_cv", "add_reproduce", "add_search"]


def add_cv(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "cv",
        parents=[OVERRIDES, PROGRESS],
        help="k-fold cross-validation with a per-fold table (004's protocol)",
        description=(
            "Deterministic k-fold cross-validation: fold k's held-out part is its test set, the "
            "rest is split into training and validation; with --test-data (004's protocol) the "
            "held-out part validates and every fold is tested on that set. Time-lapse data is "
            "folded by sequence, or by time blocks with temporal.gap frames left out. One run "
            "folder per fold, then cv_summary.csv/.md and cv_boxplot.png. Rerun to resume."
        ),
    )
    config_and_data(p)
    p.add_argument("--out", required=True, type=Path, help="CV folder")
    p.add_argument("--folds", type=int, default=5, help="number of folds (default 5)")
    p.add_argument(
        "--test-data",
        type=Path,
        help="external test set: each fold's held-out part validates, all folds test on this",
    )
    p.add_argument(
        "--group-pattern",
        help="regex whose first group names a sample's group; no group is split across folds",
    )


def add_search(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "search",
        parents=[OVERRIDES],
        help="Bayesian hyperparameter search (Optuna TPE or Gaussian process + pruning)",
        description=(
            "Optuna search (TPE or Gaussian-process sampler) over a YAML search space of dotted "
            "config keys; trials can be pruned on the per-epoch validation metric. Options not "
            "given here come from the file's search: section, else the defaults below. The "
            "study lives in SQLite (OUT/study.db) so the same command resumes it. Writes "
            "best_config.yaml, trials.csv and plots."
        ),
    )
    config_and_data(p)
    p.add_argument("--space", required=True, type=Path, help="YAML search space")
    p.add_argument("--trials", type=int, help="trials to add in this call (default 20)")
    p.add_argument("--out", required=True, type=Path, help="search folder")
    p.add_argument("--storage", help="Optuna storage URL (default sqlite:///OUT/study.db)")
    p.add_argument("--study-name", help="study name (default: from the folder)")
    p.add_argument("--metric", help="history column to optimise (default val_dice)")
    p.add_argument("--direction", choices=("maximize", "minimize"), help="default maximize")
    p.add_argument("--pruner", choices=("hyperband", "median", "none"), help="default hyperband")
    p.add_argument("--sampler", choices=("tpe", "gp"), help="TPE (default) or Gaussian process")
    p.add_argument("--seed", type=int, help="sampler seed (default 0)")
    p.add_argument(
        "--fold",
        type=int,
        help="train every trial on this fold's split of `lapseg cv --test-data` (0-based)",
    )
    p.add_argument("--folds", type=int, help="number of folds for --fold (default 5)")


def add_baseline(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "baseline",
        help="random-forest pixel classifier (the ilastik approach) to compare with",
    )
    baseline = p.add_subparsers(dest="baseline_command", required=True, metavar="ACTION")
    train = baseline.add_parser("train", parents=[OVERRIDES], help="train the forest")
    train.add_argument("--data", required=True, type=Path, help="dataset folder (as for train)")
    train.add_argument("--out", required=True, type=Path, help="model folder to create")
    train.add_argument("--config", type=Path, help="YAML configuration (baseline.* section)")
    predict = baseline.add_parser("predict", parents=[PROGRESS], help="apply a trained forest")
    predict.add_argument("--model", required=True, type=Path, help="model folder")
    predict.add_argument("--input", required=True, type=Path, help="image file or folder")
    predict.add_argument("--output", required=True, type=Path, help="output folder")
    predict.add_argument("--axes", help="axes of the input files (default: from metadata)")


def add_compare(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compare",
        parents=[OVERRIDES, PROGRESS],
        help="train two configurations on the same split and budget; their per-frame cell "
        "measures (error rate, F1, false white, white-pixel accuracy, ...) side by side",
    )
    p.add_argument("config_a", type=Path, help="first YAML configuration")
    p.add_argument("config_b", type=Path, help="second YAML configuration")
    p.add_argument("--data", required=True, type=Path, help="dataset (same for both)")
    p.add_argument("--out", required=True, type=Path, help="comparison folder")


def add_reproduce(sub: argparse._SubParsersAction) -> None:
    from lapseg.reproduce import SEEDS, TITLES

    p = sub.add_parser(
        "reproduce",
        parents=[OVERRIDES, PROGRESS],
        help="run one seed system's experiments and write its tables and figures",
        description=(
            "Train and evaluate what one seed document reports, measured its way, on --data: "
            "the runs, their tables (Markdown and CSV) and figures land in --out (new or empty). "
            "docs/seeds.md says what each seed writes and which of its numbers it reproduces. "
            + " ".join(f"{seed}: {title}." for seed, title in TITLES.items())
        ),
    )
    p.add_argument("seed", metavar="SEED", help=f"seed id: {', '.join(SEEDS)}")
    p.add_argument("--data", required=True, type=Path, help="dataset folder")
    p.add_argument("--out", required=True, type=Path, help="output folder (new or empty)")
    p.add_argument(
        "--minutes",
        type=float,
        help="wall-clock budget of the whole reproduction, shared by its runs (default: the "
        "seed's own epochs)",
    )
