"""The handlers of the ``lapseg`` subcommands: each maps its arguments to one library call
and prints what it wrote. Bad input raises :class:`~lapseg.errors.LapsegInputError` (the entry
point turns it into one line on stderr and exit code 2)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from lapseg.cli.experiments import (
    run_baseline,
    run_compare,
    run_cv,
    run_reproduce,
    run_search,
)
from lapseg.cli.paths import require as _require
from lapseg.data.channels import parse_channels
from lapseg.errors import LapsegInputError


def _write_report_or_warn(
    run_dir: Path,
    *,
    evaluation_dir: Path | None = None,
    predictions_dir: Path | None = None,
    truth_dir: Path | None = None,
    images_dir: Path | None = None,
) -> None:
    """The run report after train/evaluate; a report problem never fails the finished work."""
    from lapseg.report.html import build_report

    try:
        path = build_report(
            run_dir,
            evaluation_dir=evaluation_dir,
            predictions_dir=predictions_dir,
            truth_dir=truth_dir,
            images_dir=images_dir,
        )
        print(f"report: {path}")
    except Exception as error:  # the training result stands; say what failed
        print(
            f"lapseg: warning: no report written ({type(error).__name__}: {error})", file=sys.stderr
        )


def run_train(args: argparse.Namespace) -> int:
    from lapseg.config import load_config
    from lapseg.training.distributed import is_main
    from lapseg.training.held_out import HELD_OUT_FOLDER, evaluate_held_out
    from lapseg.training.trainer import fit

    if args.nproc is not None and args.nproc != 1:
        return _launch_processes(args)
    if args.resume and (args.config or args.overrides):
        raise LapsegInputError("--resume uses the run's stored configuration; drop --config/--set")
    overrides = [*args.overrides, *([f"train.device={args.device}"] if args.device else [])]
    if args.channels:
        channels = parse_channels(args.channels)
        overrides.append(f"data.channels={list(channels) if channels != 'mean' else 'mean'}")
    config = load_config(args.config, overrides)
    result = fit(
        config, _require(args.data), args.out, resume=args.resume, progress=not args.no_progress
    )
    if not is_main():
        return 0  # under torchrun, rank 0 alone reports
    held_out = evaluate_held_out(result.run_dir, args.data, device=args.device or "auto")
    test = result.run_dir / HELD_OUT_FOLDER
    if held_out is not None and (test / "predictions").is_dir():  # still images
        _write_report_or_warn(
            result.run_dir,
            evaluation_dir=test / "evaluation",
            predictions_dir=test / "predictions",
            truth_dir=test / "truth",
            images_dir=test / "images",
        )
    else:
        _write_report_or_warn(result.run_dir)
    print(f"run folder: {result.run_dir}")
    print(
        f"best epoch {result.best_epoch}: {result.best_metric:.4f} ({result.monitor}); "
        f"stopped by {result.stopped_because}"
    )
    return 0


def _launch_processes(args: argparse.Namespace) -> int:
    """``lapseg train --nproc N ...``: this command line again, under torchrun on N processes."""
    import os
    import subprocess

    from lapseg.cli.parsers import build_parser
    from lapseg.training.distributed import torchrun_command

    if args.nproc < 1:
        raise LapsegInputError(f"--nproc must be >= 1, not {args.nproc}")
    if "WORLD_SIZE" in os.environ:
        raise LapsegInputError("--nproc starts torchrun itself: drop it when torchrun runs lapseg")
    argv = _without_nproc(sys.argv[1:])
    expected = argparse.Namespace(**{**vars(args), "nproc": None})
    if argv[:1] != ["train"] or build_parser().parse_args(argv) != expected:
        raise LapsegInputError(
            "--nproc runs this process's command line again (write it as --nproc N); from "
            "Python, start `torchrun --nproc-per-node N -m lapseg train ...` instead"
        )
    command = torchrun_command(args.nproc, argv, python=sys.executable)
    with subprocess.Popen(command) as process:
        try:
            return process.wait()
        except KeyboardInterrupt:  # the processes got Ctrl-C too: rank 0 saves last.pt
            process.wait()
            raise


def _without_nproc(argv: list[str]) -> list[str]:
    """``argv`` without ``--nproc N`` / ``--nproc=N``."""
    kept: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            kept.append(arg)
    return kept


def run_predict(args: argparse.Namespace) -> int:
    from functools import partial

    from tqdm.auto import tqdm

    from lapseg.inference.apply import predict_path
    from lapseg.inference.distributed import ModelSpec, predict_path_distributed
    from lapseg.inference.movies import MovieOutputs
    from lapseg.inference.predict import with_overrides

    spec = ModelSpec(  # how the models load, here and on every Dask worker
        tuple(args.model),
        device=args.device or "auto",
        engine=args.engine,
        overrides=tuple(args.overrides),
        channels=parse_channels(args.channels) if args.channels else None,
        tta=args.tta,
    )
    models = spec.load()
    settings = with_overrides(
        models[0].config.predict,
        tile_size=tuple(args.tile_size) if args.tile_size else None,
        overlap=args.overlap,
        blend=args.blend,
        batch_size=args.batch_size,
        threshold_method=args.threshold_method,
        threshold=args.threshold,
        scale=args.scale,
        rescale=False if args.no_rescale else None,
    )
    if settings.threshold_method == "tuned" and models[0].config.model.outputs != 1:
        raise LapsegInputError("--threshold-method tuned applies to binary (sigmoid) models only")
    bars: dict[str, tqdm] = {}

    def on_progress(item: str, done: int, total: int) -> None:
        if item not in bars:
            bars[item] = tqdm(
                total=total or None, desc=item, unit="frame", disable=args.no_progress
            )
        bars[item].update(1)

    run = predict_path
    if args.scheduler is not None:  # the same files spread over a Dask cluster
        run = partial(predict_path_distributed, spec=spec, scheduler=args.scheduler)
    try:
        summary = run(
            models,
            args.input,
            args.output,
            axes=args.axes,
            predict=settings,
            labels=args.labels,
            movie=args.movie,
            outputs=MovieOutputs(
                track=args.track, probabilities=args.probabilities, per_frame=args.per_frame
            ),
            on_progress=on_progress,
        )
    finally:
        for bar in bars.values():
            bar.close()
    for line in summary.lines(args.output):
        print(line)
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    if args.tracks:
        from lapseg.metrics.evaluate_tracks import evaluate_tracks, format_tracking

        if args.run is not None or args.images is not None:
            raise LapsegInputError("--run and --images report image evaluations, not --tracks")
        print(format_tracking(evaluate_tracks(args.pred, args.truth, out_dir=args.out)))
        return 0
    from lapseg.metrics.evaluate import evaluate_folders, format_metrics_table
    from lapseg.report.plots import save_evaluation_boxplots

    if args.run is not None and args.out is None:
        raise LapsegInputError("--run needs --out (the report reads the evaluation files)")
    if args.instances:
        from lapseg.metrics.evaluate_instances import (
            evaluate_instance_folders,
            format_instance_table,
        )

        instance_result = evaluate_instance_folders(args.pred, args.truth, out_dir=args.out)
        print(format_instance_table(instance_result))
    result = evaluate_folders(args.pred, args.truth, num_classes=args.num_classes, out_dir=args.out)
    print(format_metrics_table(result))
    if args.out is not None:
        save_evaluation_boxplots(result, args.out)
        written = "per_image.csv, summary.json, boxplots"
        if args.instances:
            written += ", instances_per_image.csv and instances_summary.json"
        print(f"wrote {written} to {args.out}")
    if args.run is not None:
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
        args.out,
        minutes=args.minutes,
        device=args.device or "auto",
        progress=not args.no_progress,
        log=print,
    )
    return 0


def run_report(args: argparse.Namespace) -> int:
    from lapseg.report.html import build_report

    path = build_report(
        _require(args.run, "run folder"),
        evaluation_dir=args.evaluation,
        predictions_dir=args.predictions,
        images_dir=args.images,
        truth_dir=args.truth,
        feature_maps=args.feature_maps,
        max_overlays=args.max_overlays,
    )
    print(f"wrote {path}")
    return 0


def run_export_contours(args: argparse.Namespace) -> int:
    from lapseg.io.contours import export_contours

    files = export_contours(args.labels, args.out, fmt=args.format)
    print(f"wrote {len(files)} {args.format} file(s) to {args.out}")
    return 0


def run_augment_preview(args: argparse.Namespace) -> int:
    from lapseg.config import load_config
    from lapseg.report.preview import preview_dataset_augmentation

    if args.n < 1:
        raise LapsegInputError("--n must be >= 1")
    config = load_config(args.config, args.overrides)
    path = preview_dataset_augmentation(
        config, _require(args.data), args.out, n=args.n, stage=args.stage, rng=args.seed
    )
    print(f"wrote {path}")
    return 0


def run_config(args: argparse.Namespace) -> int:
    from lapseg.config import dump_config, load_config
    from lapseg.config.reference import configuration_reference, json_schema

    if args.schema:
        print(json.dumps(json_schema(), indent=2))
    elif args.reference:
        print(configuration_reference(), end="")
    else:
        print(dump_config(load_config(args.config, args.overrides)), end="")
    return 0


def run_predict_large(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from lapseg.inference.large import predict_large_image
    from lapseg.inference.predict import load_model

    models = [load_model(path, device=args.device or "auto") for path in args.model]
    _require(args.input, "input image")
    with tqdm(total=None, unit="block", disable=args.no_progress) as bar:

        def on_block(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        run = predict_large_image(
            models,
            args.input,
            args.output,
            axes=args.axes,
            t=args.t,
            z=args.z,
            block_size=args.block_size,
            halo=args.halo,
            probabilities=args.probabilities,
            if_exists="overwrite" if args.overwrite else "resume",
            progress=on_block,
        )
    resumed = "" if run.predicted == run.blocks else f" ({run.predicted} predicted now)"
    print(f"{run.path}: {run.objects} objects in {run.blocks} blocks{resumed}, {run.seconds:.1f} s")
    return 0


def run_export(args: argparse.Namespace) -> int:
    from lapseg.export import export_model

    metadata = {
        key: value
        for key, value in (
            ("name", args.name),
            ("authors", args.authors),
            ("license", args.license),
            ("tags", args.tags),
        )
        if value is not None
    }
    path = export_model(
        _require(args.run, "run folder"),
        fmt=args.fmt,
        out=args.out,
        sample_image=args.sample_image,
        data=args.data,
        calibration_data=args.calibration_data,
        max_drop=args.max_accuracy_drop,
        **metadata,
    )
    print(f"exported: {path}")
    return 0


COMMANDS = {
    "train": run_train,
    "predict": run_predict,
    "predict-large": run_predict_large,
    "evaluate": run_evaluate,
    "demo": run_demo,
    "cv": run_cv,
    "search": run_search,
    "report": run_report,
    "baseline": run_baseline,
    "export": run_export,
    "export-contours": run_export_contours,
    "augment-preview": run_augment_preview,
    "compare": run_compare,
    "reproduce": run_reproduce,
    "config": run_config,
}
