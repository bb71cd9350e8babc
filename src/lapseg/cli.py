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
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one option, e.g. --set train.lr=1e-3 --set model.preset=stemnet (repeatable)",
    )
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
    return parser


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
        print(f"wrote per_image.csv, summary.json and boxplots to {args.out}")
    return 0


def run_demo(args: argparse.Namespace) -> int:
    from lapseg.demo import run_demo as demo

    demo(
        args.out, minutes=args.minutes, device=args.device, progress=not args.no_progress, log=print
    )
    return 0


COMMANDS = {"train": run_train, "predict": run_predict, "evaluate": run_evaluate, "demo": run_demo}


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
