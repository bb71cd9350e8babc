"""The handlers of the experiment subcommands (``cv``, ``search``, ``baseline``, ``compare``,
``reproduce``): each maps its arguments to one library call and prints what it wrote."""

from __future__ import annotations

import argparse

from lapseg.cli.paths import require as _require
from lapseg.errors import LapsegInputError

__all__ = ["run_baseline", "run_compare", "run_cv", "run_reproduce", "run_search"]


def run_cv(args: argparse.Namespace) -> int:
    from lapseg.config import load_config
    from lapseg.data.sources import discover_dataset
    from lapseg.training.cv import groups_from_pattern, run_cross_validation

    config = load_config(args.config, args.overrides)
    groups = None
    if args.group_pattern:
        names = [s.name for s in discover_dataset(config, _require(args.data))[1].samples]
        groups = groups_from_pattern(names, args.group_pattern)
    result = run_cross_validation(
        config,
        _require(args.data),
        args.out,
        n_folds=args.folds,
        groups=groups,
        test_data=args.test_data,
        progress=not args.no_progress,
    )
    print((result.out_dir / "cv_summary.md").read_text(encoding="utf-8"))
    return 0


def run_search(args: argparse.Namespace) -> int:
    from lapseg.config import load_config
    from lapseg.tuning.search import load_search_file, run_search

    config = load_config(args.config, args.overrides)
    space, options, trials = load_search_file(args.space)
    flags = ("storage", "study_name", "metric", "direction", "pruner", "sampler", "seed")
    options = options.updated({name: getattr(args, name) for name in (*flags, "fold", "folds")})
    result = run_search(
        config,
        _require(args.data),
        space,
        args.out,
        n_trials=next(n for n in (args.trials, trials, 20) if n is not None),
        options=options,
    )
    print(
        f"{result.n_trials_total} trial(s) in study {result.study_name!r} "
        f"({result.n_complete} complete, {result.n_pruned} pruned)"
    )
    if result.best_value is None:
        print("no trial completed yet")
        return 0
    print(f"best {options.metric}: {result.best_value:.4f} with {result.best_params}")
    print(f"ready-to-train config: {result.best_config}")
    return 0


def run_baseline(args: argparse.Namespace) -> int:
    from lapseg.baseline.pipeline import predict_baseline, train_baseline

    if args.baseline_command == "train":
        from lapseg.config import load_config

        config = load_config(args.config, args.overrides)
        out = train_baseline(_require(args.data), args.out, config, settings=config.baseline)
        print(f"baseline model folder: {out}")
        return 0
    from tqdm.auto import tqdm

    with tqdm(unit="image", disable=args.no_progress) as bar:
        written = predict_baseline(
            args.model, [args.input], args.output, axes=args.axes, on_image=lambda _: bar.update(1)
        )
    print(f"wrote {len(written)} mask(s) to {args.output / 'masks'}")
    return 0


def run_compare(args: argparse.Namespace) -> int:
    from lapseg.config import load_config
    from lapseg.training.compare import compare_configs

    if args.config_a.stem == args.config_b.stem:
        raise LapsegInputError("the two configurations need different file names (run folders)")
    configs = {
        path.stem: load_config(path, args.overrides) for path in (args.config_a, args.config_b)
    }
    table = compare_configs(
        configs, _require(args.data), args.out, progress=not args.no_progress, log=print
    )
    print(table)
    print(f"learning curves: {args.out / 'curves.png'}")
    return 0


def run_reproduce(args: argparse.Namespace) -> int:
    from lapseg.reproduce import reproduce

    written = reproduce(
        args.seed,
        _require(args.data),
        args.out,
        minutes=args.minutes,
        progress=not args.no_progress,
        overrides=args.overrides,
    )
    for path in written:
        print(f"wrote {path}")
    return 0
