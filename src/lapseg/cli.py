"""The ``lapseg`` command line: thin subcommands, each mapping its arguments to one library call.

Bad input of any kind ends with one line ``lapseg: error: <file>: <problem>`` on stderr and exit
code 2, never a traceback. Ctrl-C during training saves a checkpoint and exits with code 130.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from lapseg import __version__
from lapseg.errors import LapsegInputError

EXIT_INPUT_ERROR = 2
EXIT_INTERRUPTED = 130


def _add_overrides(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one option, e.g. --set train.lr=1e-3 --set model.preset=stemnet "
        "(repeatable; applied after --config / CONFIG)",
    )


def _add_config_and_data(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", type=Path, nargs="?", help="YAML configuration (optional)")
    p.add_argument("--data", required=True, type=Path, help="dataset folder (as for train)")


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a U-Net on a folder of images and masks",
        description=(
            "Train a U-Net. The data folder holds images/ and masks/ paired by file stem "
            "(or set data.layout). Configuration: defaults <- --config YAML <- --set overrides. "
            "The run folder receives config.yaml, split.json, best.pt, last.pt, history.csv, "
            "curves.png and run.json."
        ),
    )
    p.add_argument(
        "--data",
        required=True,
        type=Path,
        help="dataset folder (or CSV/JSON list with data.layout=list)",
    )
    p.add_argument(
        "--out",
        required=True,
        type=Path,
        help="run folder to create (must be new or empty unless --resume)",
    )
    p.add_argument(
        "--config",
        type=Path,
        help="YAML configuration file (see configs/ and docs/configuration.md)",
    )
    _add_overrides(p)
    p.add_argument(
        "--resume", action="store_true", help="continue the run in --out from its last.pt exactly"
    )
    p.add_argument(
        "--device",
        help="cpu, cuda, cuda:1, mps (default: auto-detect; same as --set train.device=...)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _add_predict(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict",
        help="segment images of any size with a trained model",
        description=(
            "Apply one model (or an ensemble: several --model paths, probabilities averaged) to an "
            "image file or a folder of images. Writes OUTPUT/masks/<stem>.tif (0/255 for binary "
            "models, class indices otherwise) and OUTPUT/probabilities/<stem>.tif (float32)."
        ),
    )
    p.add_argument(
        "--model",
        required=True,
        nargs="+",
        type=Path,
        help="checkpoint file(s) or run folder(s) (uses best.pt)",
    )
    p.add_argument("--input", required=True, type=Path, help="image file or folder of images")
    p.add_argument(
        "--output", required=True, type=Path, help="output folder (never the input's files)"
    )
    p.add_argument(
        "--axes", help="axes of the input files, e.g. YX, YXC, CYX (default: from file metadata)"
    )
    p.add_argument(
        "--tile-size", type=int, nargs=2, metavar=("Y", "X"), help="sliding-window tile size"
    )
    p.add_argument("--overlap", type=float, help="tile overlap fraction in [0, 1)")
    p.add_argument(
        "--blend",
        choices=("gaussian", "constant", "crop"),
        help="how overlapping tiles are combined",
    )
    p.add_argument("--batch-size", type=int, help="tiles per forward pass")
    p.add_argument(
        "--threshold-method",
        choices=("fixed", "otsu", "tuned"),
        help="fixed (--threshold), otsu (per image) or tuned (stored with the model)",
    )
    p.add_argument(
        "--threshold", type=float, help="probability threshold for the fixed method (default 0.5)"
    )
    p.add_argument(
        "--labels",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also write instance label images to OUTPUT/labels/ (default: on for 3-class "
        "models; binary models use connected components, see postprocess.* settings)",
    )
    p.add_argument(
        "--tta",
        action="store_true",
        help="test-time augmentation: average the 8 flips/rotations (dihedral group); ~8x slower",
    )
    p.add_argument(
        "--engine",
        choices=("torch", "onnx"),
        help="inference engine (default: the model's; onnx = ONNX Runtime on the CPU, ~2x faster)",
    )
    p.add_argument("--device", default="auto", help="cpu, cuda, mps (default: auto)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="pixel metrics of predicted masks against ground truth",
        description=(
            "Compare predicted masks with ground-truth masks paired by file stem. Prints pooled "
            "metrics (confusion counts summed over all images) and per-image means; writes "
            "per_image.csv, summary.json and boxplots to --out."
        ),
    )
    p.add_argument(
        "--pred", required=True, type=Path, help="prediction folder (uses PRED/masks if present)"
    )
    p.add_argument("--truth", required=True, type=Path, help="ground-truth mask folder")
    p.add_argument("--out", type=Path, help="folder for per_image.csv, summary.json, boxplots")
    p.add_argument(
        "--num-classes", type=int, default=2, help="number of classes incl. background (default 2)"
    )
    p.add_argument(
        "--run",
        type=Path,
        help="run folder of the model: its report.html is rewritten with these results",
    )
    p.add_argument("--images", type=Path, help="input images of the predictions (report overlays)")
    p.add_argument(
        "--instances",
        action="store_true",
        help="instance metrics instead: CTC SEG, matching at IoU 0.5:0.95 (precision, recall, "
        "F1, AP = TP/(TP+FP+FN), panoptic quality), splits and merges; label images are read "
        "from PRED/labels when present",
    )


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="generate synthetic cells, train, predict, evaluate (a few minutes on a CPU)",
        description="The whole pipeline on built-in synthetic microscopy data.",
    )
    p.add_argument(
        "--out", type=Path, default=Path("runs/demo"), help="demo folder (default runs/demo)"
    )
    p.add_argument(
        "--minutes", type=float, default=3.0, help="training time budget in minutes (default 3)"
    )
    p.add_argument("--device", default="auto", help="cpu, cuda, mps (default: auto)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _add_cv(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "cv",
        help="k-fold cross-validation with a per-fold table (004's protocol)",
        description=(
            "Deterministic k-fold cross-validation: fold k's held-out part is its test set, the "
            "rest is split into training and validation. One run folder per fold, then "
            "cv_summary.csv/.md (best validation loss and epoch, test recall/precision/Dice "
            "averaged per image, mean and std) and cv_boxplot.png. Rerun the same command to "
            "resume an interrupted CV at the fold where it stopped."
        ),
    )
    _add_config_and_data(p)
    p.add_argument("--out", required=True, type=Path, help="CV folder")
    p.add_argument("--folds", type=int, default=5, help="number of folds (default 5)")
    p.add_argument(
        "--group-pattern",
        help="regex whose first group names a sample's group (e.g. its sequence); "
        "no group is split across folds",
    )
    _add_overrides(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _add_search(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "search",
        help="Bayesian hyperparameter search (Optuna TPE + pruning)",
        description=(
            "Optuna TPE search over a YAML search space of dotted config keys; trials are pruned "
            "on the per-epoch validation metric. The study lives in SQLite (OUT/study.db) so the "
            "same command resumes it; --storage takes any RDB URL to share a study between "
            "machines. Writes best_config.yaml, trials.csv and plots."
        ),
    )
    _add_config_and_data(p)
    p.add_argument("--space", required=True, type=Path, help="YAML search space")
    p.add_argument("--trials", type=int, default=20, help="trials to add in this call")
    p.add_argument("--out", required=True, type=Path, help="search folder")
    p.add_argument("--storage", help="Optuna storage URL (default sqlite:///OUT/study.db)")
    p.add_argument("--study-name", help="study name (default: from the folder)")
    p.add_argument("--metric", default="val_dice", help="history column to optimise")
    p.add_argument("--direction", choices=("maximize", "minimize"), default="maximize")
    p.add_argument("--pruner", choices=("hyperband", "median", "none"), default="hyperband")
    p.add_argument("--seed", type=int, default=0, help="sampler seed")
    _add_overrides(p)


def _add_report(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="write RUN_DIR/report.html (self-contained: config, curves, metrics, overlays)",
        description=(
            "One self-contained HTML page for a run folder: resolved config, data summary, "
            "environment and training time, learning curves, metrics table, per-image boxplots, "
            "best/worst images and overlays (ground truth yellow, prediction red). Evaluation and "
            "prediction folders default to RUN_DIR/evaluation and RUN_DIR/predictions."
        ),
    )
    p.add_argument("run", type=Path, help="run folder (from lapseg train)")
    p.add_argument("--evaluation", type=Path, help="folder written by lapseg evaluate --out")
    p.add_argument("--predictions", type=Path, help="folder written by lapseg predict")
    p.add_argument("--images", type=Path, help="input images of the predictions (for overlays)")
    p.add_argument("--truth", type=Path, help="ground-truth masks (for overlays)")
    p.add_argument("--feature-maps", action="store_true", help="add per-level feature maps")
    p.add_argument("--max-overlays", type=int, default=8, help="overlays to show (default 8)")


def _add_baseline(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "baseline",
        help="random-forest pixel classifier (the ilastik approach) to compare with",
        description=(
            "Train or apply a random forest on ilastik-like multi-scale pixel features (plus "
            "Sobel edges, 001). Same data layout, split and outputs as train/predict, so "
            "lapseg evaluate compares both on the same images."
        ),
    )
    baseline = p.add_subparsers(dest="baseline_command", required=True, metavar="ACTION")
    train = baseline.add_parser("train", help="train the forest on a dataset")
    train.add_argument("--data", required=True, type=Path, help="dataset folder (as for train)")
    train.add_argument("--out", required=True, type=Path, help="model folder to create")
    train.add_argument("--config", type=Path, help="YAML configuration (baseline.* section)")
    _add_overrides(train)
    predict = baseline.add_parser("predict", help="apply a trained forest")
    predict.add_argument("--model", required=True, type=Path, help="model folder")
    predict.add_argument("--input", required=True, type=Path, help="image file or folder")
    predict.add_argument("--output", required=True, type=Path, help="output folder")
    predict.add_argument("--axes", help="axes of the input files (default: from metadata)")
    predict.add_argument("--no-progress", action="store_true", help="no progress bar")


def _add_export_contours(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export-contours",
        help="object outlines as GeoJSON, ImageJ/Fiji ROI zip or edge-pixel CSV",
        description=(
            "Export the outline of every object of label images (or binary masks: connected "
            "components) for Fiji/ImageJ (ROI zip), QuPath/GIS tools (GeoJSON) or as the edge "
            "pixels (CSV label,y,x; 000)."
        ),
    )
    p.add_argument("--labels", required=True, type=Path, help="label image file or folder")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--format", choices=("geojson", "roi", "edges"), default="geojson")


def _add_augment_preview(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "augment-preview",
        help="PNG grid of augmented training patches with the mask outline",
        description=(
            "See what the network is trained on: random training patches of DATA augmented by "
            "the configuration's augmentation (augment.* / augment.preset), mask outlines drawn."
        ),
    )
    _add_config_and_data(p)
    p.add_argument("--out", type=Path, default=Path("augment-preview.png"), help="PNG to write")
    p.add_argument("--n", type=int, default=16, help="number of samples (default 16)")
    p.add_argument("--stage", type=int, help="curriculum stage (default: every transform on)")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    _add_overrides(p)


def _add_compare(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compare",
        help="train two configurations on the same split and budget; 000's Table 3 side by side",
        description=(
            "Train CONFIG_A and CONFIG_B with identical seeds, split and budget (e.g. StemNet "
            "Network1 vs Network5: configs/stemnet-n1.yaml configs/stemnet-n5.yaml), then score "
            "both on the same held-out frames: error rate, F1, false white, white-pixel "
            "accuracy, IoU; both learning curves on one plot (OUT/curves.png)."
        ),
    )
    p.add_argument("config_a", type=Path, help="first YAML configuration")
    p.add_argument("config_b", type=Path, help="second YAML configuration")
    p.add_argument("--data", required=True, type=Path, help="dataset (same for both)")
    p.add_argument("--out", required=True, type=Path, help="comparison folder")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="applied to both configurations (e.g. train.time_budget_minutes=10)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``lapseg`` command."""
    parser = argparse.ArgumentParser(
        prog="lapseg",
        description="Train, apply and evaluate U-Nets for microscopy segmentation.",
    )
    parser.add_argument("--version", action="version", version=f"lapseg {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_train(sub)
    _add_predict(sub)
    _add_evaluate(sub)
    _add_demo(sub)
    _add_cv(sub)
    _add_search(sub)
    _add_report(sub)
    _add_baseline(sub)
    _add_export_contours(sub)
    _add_augment_preview(sub)
    _add_compare(sub)
    return parser


def _write_report_or_warn(run_dir: Path, **inputs: Path | None) -> None:
    """The run report after train/evaluate; a report problem never fails the finished work."""
    from lapseg.report.html import build_report

    try:
        print(f"report: {build_report(run_dir, **inputs)}")
    except Exception as error:  # the training result stands; say what failed
        print(
            f"lapseg: warning: no report written ({type(error).__name__}: {error})", file=sys.stderr
        )


def run_train(args: argparse.Namespace) -> int:
    from lapseg.config import load_config
    from lapseg.training.trainer import fit

    overrides = list(args.overrides)
    if args.device:
        overrides.append(f"train.device={args.device}")
    config = load_config(args.config, overrides) if not args.resume else load_config(None, [])
    if args.resume and (args.config or args.overrides):
        raise LapsegInputError("--resume uses the run's stored configuration; drop --config/--set")
    if not args.data.exists():
        raise LapsegInputError("data folder not found", path=args.data)
    result = fit(config, args.data, args.out, resume=args.resume, progress=not args.no_progress)
    _write_report_or_warn(result.run_dir)
    print(f"run folder: {result.run_dir}")
    print(
        f"best epoch {result.best_epoch}: {result.best_metric:.4f} ({config.train.monitor}); stopped by {result.stopped_because}"
    )
    return 0


def run_predict(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from lapseg.inference.predict import load_model, predict_files, with_overrides
    from lapseg.io.discovery import discover_images

    models = [load_model(path, device=args.device, engine=args.engine) for path in args.model]
    if args.tta:
        from dataclasses import replace

        from lapseg.inference.tta import dihedral_tta

        models = [replace(m, predictor=dihedral_tta(m.predictor)) for m in models]
    settings = with_overrides(
        models[0].config.predict,
        tile_size=tuple(args.tile_size) if args.tile_size else None,
        overlap=args.overlap,
        blend=args.blend,
        batch_size=args.batch_size,
        threshold_method=args.threshold_method,
        threshold=args.threshold,
    )
    if settings.threshold_method == "tuned" and models[0].config.model.out_channels != 1:
        raise LapsegInputError("--threshold-method tuned applies to binary (sigmoid) models only")
    data = models[0].config.data
    if data.layout in ("sequences", "ctc"):  # a time-lapse model: one mask per frame
        from lapseg.inference.sequences import predict_sequences
        from lapseg.io.sequences import discover_sequences

        sources = discover_sequences(
            args.input,
            layout=data.layout,
            axes=args.axes or data.axes,
            truth=models[0].config.temporal.truth,
        )
        with tqdm(unit="frame", disable=args.no_progress) as bar:

            def on_frame(done: int, total: int) -> None:
                bar.total = total  # of the current sequence
                bar.update(1)

            masks = predict_sequences(
                models, sources, args.output, predict=settings, on_frame=on_frame
            )
        n_frames = sum(len(paths) for paths in masks.values())
        print(
            f"wrote {n_frames} frame mask(s) of {len(masks)} sequence(s) to {args.output / 'masks'}"
        )
        return 0
    inputs = discover_images(args.input)
    with tqdm(total=len(inputs), unit="image", disable=args.no_progress) as bar:
        written = predict_files(
            models,
            inputs,
            args.output,
            axes=args.axes,
            predict=settings,
            labels=args.labels,
            on_image=lambda _: bar.update(1),
        )
    print(
        f"wrote {len(written)} mask(s) to {args.output / 'masks'} and probabilities to {args.output / 'probabilities'}"
    )
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    from lapseg.metrics.evaluate import evaluate_folders, format_metrics_table

    if args.instances:
        from lapseg.metrics.evaluate_instances import (
            evaluate_instance_folders,
            format_instance_table,
        )

        instance_result = evaluate_instance_folders(args.pred, args.truth, out_dir=args.out)
        print(format_instance_table(instance_result))
        if args.out is not None:
            print(f"wrote instances_per_image.csv and instances_summary.json to {args.out}")
        return 0

    result = evaluate_folders(args.pred, args.truth, num_classes=args.num_classes, out_dir=args.out)
    print(format_metrics_table(result))
    if args.out is not None:
        from lapseg.report.plots import save_evaluation_boxplots

        save_evaluation_boxplots(result, args.out)
        print(f"wrote per_image.csv, summary.json and boxplots to {args.out}")
    if args.run is not None:
        if args.out is None:
            raise LapsegInputError("--run needs --out (the report reads the evaluation files)")
        _write_report_or_warn(
            args.run,
            evaluation_dir=args.out,
            predictions_dir=args.pred,
            truth_dir=args.truth,
            images_dir=args.images,
        )
    return 0


def run_demo(args: argparse.Namespace) -> int:
    from lapseg.demo import run_demo as demo

    demo(
        args.out, minutes=args.minutes, device=args.device, progress=not args.no_progress, log=print
    )
    return 0


def run_cv(args: argparse.Namespace) -> int:
    from lapseg.config import load_config
    from lapseg.data.setup import discover_samples
    from lapseg.training.cv import groups_from_pattern, run_cross_validation

    config = load_config(args.config, args.overrides)
    groups = None
    if args.group_pattern:
        names = [s.name for s in discover_samples(args.data, config)]
        groups = groups_from_pattern(names, args.group_pattern)
    run_cross_validation(
        config,
        args.data,
        args.out,
        n_folds=args.folds,
        groups=groups,
        progress=not args.no_progress,
    )
    print((args.out / "cv_summary.md").read_text(encoding="utf-8"))
    return 0


def run_search_command(args: argparse.Namespace) -> int:
    from lapseg.config import load_config
    from lapseg.tuning.search import load_search_space, run_search

    config = load_config(args.config, args.overrides)
    result = run_search(
        config,
        args.data,
        load_search_space(args.space),
        args.out,
        n_trials=args.trials,
        storage=args.storage,
        study_name=args.study_name,
        metric=args.metric,
        direction=args.direction,
        pruner=args.pruner,
        seed=args.seed,
    )
    print(
        f"{result.n_trials_total} trial(s) in study {result.study_name!r} "
        f"({result.n_complete} complete, {result.n_pruned} pruned)"
    )
    if result.best_value is None:
        print("no trial completed yet")
        return 0
    print(f"best {args.metric}: {result.best_value:.4f} with {result.best_params}")
    print(f"ready-to-train config: {result.best_config}")
    return 0


def run_report(args: argparse.Namespace) -> int:
    from lapseg.report.html import build_report

    if not args.run.is_dir():
        raise LapsegInputError("run folder not found", path=args.run)
    path = build_report(
        args.run,
        evaluation_dir=args.evaluation,
        predictions_dir=args.predictions,
        images_dir=args.images,
        truth_dir=args.truth,
        feature_maps=args.feature_maps,
        max_overlays=args.max_overlays,
    )
    print(f"wrote {path}")
    return 0


def run_baseline(args: argparse.Namespace) -> int:
    from lapseg.baseline.pipeline import predict_baseline, train_baseline

    if args.baseline_command == "train":
        from lapseg.config import load_config

        config = load_config(args.config, args.overrides)
        if not args.data.exists():
            raise LapsegInputError("data folder not found", path=args.data)
        out = train_baseline(args.data, args.out, config, settings=config.baseline)
        print(f"baseline model folder: {out}")
        return 0
    from tqdm.auto import tqdm

    with tqdm(unit="image", disable=args.no_progress) as bar:
        written = predict_baseline(
            args.model, [args.input], args.output, axes=args.axes, on_image=lambda _: bar.update(1)
        )
    print(f"wrote {len(written)} mask(s) to {args.output / 'masks'}")
    return 0


def run_export_contours(args: argparse.Namespace) -> int:
    from lapseg.inference.predict import output_stem
    from lapseg.io.contours import contour_path, write_contours
    from lapseg.io.discovery import discover_images
    from lapseg.io.images import read_mask

    files = discover_images(args.labels)
    for path in files:
        target = contour_path(args.out, output_stem(path), args.format)
        write_contours(read_mask(path), target, fmt=args.format)
    print(f"wrote {len(files)} {args.format} file(s) to {args.out}")
    return 0


def run_augment_preview(args: argparse.Namespace) -> int:
    from lapseg.config import load_config
    from lapseg.data.setup import prepare_run_data
    from lapseg.report.preview import write_augmentation_preview

    if args.n < 1:
        raise LapsegInputError("--n must be >= 1")
    config = load_config(args.config, args.overrides)
    if not args.data.exists():
        raise LapsegInputError("data folder not found", path=args.data)
    run_data = prepare_run_data(config, args.data)
    path = write_augmentation_preview(
        run_data.train,
        config.augment,
        args.out,
        n=args.n,
        patch_size=tuple(config.train.patch_size),
        stage=args.stage,
        rng=args.seed,
    )
    print(f"wrote {path}")
    return 0


def run_compare(args: argparse.Namespace) -> int:
    from lapseg.config import load_config
    from lapseg.training.compare import compare_runs, format_comparison, save_compared_curves
    from lapseg.training.trainer import fit

    if args.config_a.stem == args.config_b.stem:
        raise LapsegInputError("the two configurations need different file names (run folders)")
    configs = [load_config(path, args.overrides) for path in (args.config_a, args.config_b)]
    if not args.data.exists():
        raise LapsegInputError("data folder not found", path=args.data)
    runs = []
    for path, config in zip((args.config_a, args.config_b), configs, strict=True):
        print(f"training {path.stem}")
        runs.append(
            fit(config, args.data, args.out / path.stem, progress=not args.no_progress).run_dir
        )
    table = format_comparison(compare_runs(runs, args.data))
    save_compared_curves(runs, args.out / "curves.png")
    (args.out / "comparison.md").write_text(table + "\n", encoding="utf-8")
    print(table)
    print(f"learning curves: {args.out / 'curves.png'}")
    return 0


COMMANDS = {
    "train": run_train,
    "predict": run_predict,
    "evaluate": run_evaluate,
    "demo": run_demo,
    "cv": run_cv,
    "search": run_search_command,
    "report": run_report,
    "baseline": run_baseline,
    "export-contours": run_export_contours,
    "augment-preview": run_augment_preview,
    "compare": run_compare,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``lapseg`` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except LapsegInputError as error:
        print(f"lapseg: error: {error}", file=sys.stderr)
        return EXIT_INPUT_ERROR
    except KeyboardInterrupt:
        print(
            "lapseg: interrupted; a checkpoint was saved where training was running "
            "(continue with: lapseg train --resume --data ... --out RUN_DIR)",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    except OSError as error:  # unwritable output folder, disk full, ...
        where = f"{error.filename}: " if getattr(error, "filename", None) else ""
        print(f"lapseg: error: {where}{error.strerror or error}", file=sys.stderr)
        return EXIT_INPUT_ERROR


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
