"""Hyperparameter search (Optuna) over dotted configuration keys."""

from __future__ import annotations

from lapseg.tuning.search import SearchResult, make_sampler, run_search
from lapseg.tuning.space import (
    SearchOptions,
    SearchParam,
    apply_params,
    check_space,
    load_search_file,
    load_search_space,
    parse_search_space,
)

__all__ = [
    "SearchOptions",
    "SearchParam",
    "SearchResult",
    "apply_params",
    "check_space",
    "load_search_file",
    "load_search_space",
    "make_sampler",
    "parse_search_space",
    "run_search",
]
