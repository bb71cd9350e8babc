"""Hyperparameter search (Optuna) over dotted configuration keys."""

from __future__ import annotations

from lapseg.tuning.search import (
    SearchParam,
    SearchResult,
    apply_params,
    check_space,
    load_search_space,
    parse_search_space,
    run_search,
)

__all__ = [
    "SearchParam",
    "SearchResult",
    "apply_params",
    "check_space",
    "load_search_space",
    "parse_search_space",
    "run_search",
]
