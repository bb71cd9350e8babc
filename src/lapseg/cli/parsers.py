"""The ``lapseg`` command line: argument definitions only (handlers are in ``commands``).

Options shared by several commands come from parent parsers, so they read the same everywhere:
``--set KEY=VALUE`` (configuration overrides), ``--device``, ``--no-progress``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from lapseg import __version__
from lapseg.cli.experiment_parsers import (
    add_baseline,
    add_compare,
    add_cv,
    add_reproduce,
    add_search,
)
from lapseg.cli.parents import DEVICE, OVERRIDES, PROGRESS, config_and_data


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        parents=[OVERRIDES, DEVICE, PROGRESS],
        help="train a U-Net on a folder of images and masks",
        description=(
            "Train a U-Net. The data folder holds images/ and masks/ paired by file stem "
            "(or set data.layout). Configuration: defaults <- --config YAML <- --set overrides. "
            "The run folder receives config.yaml, split.json, best.pt, last.pt, history.csv, "
            "curves.png and run.json."
        ),
    )
    p.add_argument("--data", required=True, type=Path, help="dataset folder (or CSV/JSON list)")
    p.add_argument(
        "--out",
        required=True,
        type=Path,
        help="run folder to create (new or empty unless --resume)",
    )
    p.add_argument("--config", type=Path, help="YAML configuration file (see configs/)")
    p.add_argument(
        "--resume", action="store_true", help="continue the run in --out from its last.pt exactly"
    )
    p.add_argument(
        "--nproc",
        type=int,
        metavar="N",
        help="train on N processes of this machine (one per GPU; gloo processes on the CPU): "
        "shorthand for `torchrun --standalone --nproc-per-node N -m lapseg train ...`; "
        "train.batch_size stays the global batch (docs/distributed.md)",
    )
    p.add_argument(
        "--channels",
        help="channels of multi-channel images the network sees: 0-based indices (0 or 1,0) or "
        "'mean' (default: all; stored with the model)",
    )


def _add_predict(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict",
        parents=[OVERRIDES, DEVICE, PROGRESS],
        help="segment images of any size with a trained model",
        description=(
            "Apply one model (or an ensemble: several --model paths, probabilities averaged) to "
            "images, movies and stacks: an image file or folder (OUTPUT/masks/, labels/, "
            "probabilities/), a TIFF movie or z-stack (T or Z axis; --axes when the file does not "
            "say), a folder of frames (--movie), or a Cell Tracking Challenge folder "
            "(OUTPUT/NAME/masks.tif, labels.tif, tracks.csv; CTC: OUTPUT/NN_RES)."
        ),
    )
    p.add_argument(
        "--model", required=True, nargs="+", type=Path, help="checkpoint file(s) or run folder(s)"
    )
    p.add_argument("--input", required=True, type=Path, help="image file or folder of images")
    p.add_argument("--output", required=True, type=Path, help="output folder (never the input's)")
    p.add_argument("--axes", help="axes of the input files, e.g. YX, YXC, CYX (default: metadata)")
    p.add_argument("--tile-size", type=int, nargs=2, metavar=("Y", "X"), help="tile size")
    p.add_argument("--overlap", type=float, help="tile overlap fraction in [0, 1)")
    p.add_argument("--blend", choices=("gaussian", "constant", "crop"), help="tile blending")
    p.add_argument("--batch-size", type=int, help="tiles per forward pass")
    p.add_argument(
        "--threshold-method",
        choices=("fixed", "otsu", "tuned"),
        help="fixed (--threshold), otsu (per image) or tuned (stored with the model)",
    )
    p.add_argument("--threshold", type=float, help="probability threshold for the fixed method")
    p.add_argument(
        "--labels",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also write instance label images to OUTPUT/labels/ (default: on for instance "
        "models; binary models use connected components, see postprocess.* settings)",
    )
    p.add_argument(
        "--tta", action="store_true", help="test-time augmentation: the 8 flips/rotations (~8x)"
    )
    p.add_argument(
        "--movie",
        action="store_true",
        help="a folder of 2D images is one movie (frames in natural order): stacks and tracks",
    )
    p.add_argument(
        "--track",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="link the instances of a movie into tracks (default: for movies of 2+ frames)",
    )
    p.add_argument("--per-frame", action="store_true", help="movies: also write one file per frame")
    p.add_argument(
        "--probabilities",
        action="store_true",
        help="movies: also write the probability stack (still images always get theirs)",
    )
    p.add_argument(
        "--engine", choices=("torch", "onnx"), help="inference engine (default: the model's)"
    )
    p.add_argument(
        "--channels",
        help="channels the model sees: 0-based indices (0 or 1,0) or 'mean' (default: the ones "
        "it was trained on)",
    )
    p.add_argument(
        "--scale",
        type=float,
        help="zoom images by this factor before the network, results mapped back (default: from "
        "the pixel sizes of the image and the training images)",
    )
    p.add_argument(
        "--no-rescale",
        action="store_true",
        help="use images at their own scale even when their pixel size differs from training",
    )
    p.add_argument(
        "--scheduler",
        help="spread the files over a Dask cluster: local:N (N worker processes here) or a "
        "scheduler address such as tcp://HOST:8786 (needs the dask extra)",
    )


def _add_predict_large(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict-large",
        parents=[DEVICE, PROGRESS],
        help="instance labels of a slide or mosaic too large for memory (OME-Zarr out)",
        description=(
            "Predict one plane of an OME-Zarr store or a (large) TIFF block by block into an "
            "OME-Zarr store: labels/instances (seam-free ids over the whole image), optionally "
            "probabilities. Memory does not grow with the image; an interrupted run resumes when "
            "the same command is run again. Percentile normalisation takes its percentiles from "
            "windows spread over the whole plane, not per block."
        ),
    )
    p.add_argument(
        "--model", required=True, nargs="+", type=Path, help="checkpoint file(s) or run folder(s)"
    )
    p.add_argument("--input", required=True, type=Path, help="OME-Zarr store or TIFF")
    p.add_argument("--output", required=True, type=Path, help="output store, e.g. labels.zarr")
    p.add_argument("--axes", help="axes of a TIFF without axis metadata, e.g. YXC")
    p.add_argument("--t", type=int, default=0, help="time point of a time series (default 0)")
    p.add_argument("--z", type=int, default=0, help="z-slice of a stack (default 0)")
    p.add_argument("--block-size", type=int, default=2048, help="block core in pixels (2048)")
    p.add_argument(
        "--halo", type=int, help="context around each block (default: from the objects' size)"
    )
    p.add_argument(
        "--probabilities",
        choices=("none", "uint8", "float16"),
        default="none",
        help="also store the probabilities (uint8 = round(255 p))",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing output store (default: resume it)",
    )


def _add_export(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="a trained model as a bioimage.io package, ONNX or TorchScript",
        description=(
            "Export a run's best.pt. bioimageio: a model-zoo package (.zip) other tools "
            "(deepImageJ, ilastik, bioimageio.core) run, validated before it is written; needs "
            "--sample-image. onnx / torchscript: one file that `lapseg predict --model` loads "
            "with its normalisation and post-processing settings. onnx-int8: the ONNX network "
            "quantised to INT8 (ONNX Runtime, calibrated on the training split of --data), "
            "written only when validation Dice/SEG drop by at most --max-accuracy-drop."
        ),
    )
    p.add_argument("run", type=Path, help="run folder or checkpoint file")
    p.add_argument(
        "--format",
        dest="fmt",
        choices=("bioimageio", "onnx", "onnx-int8", "torchscript"),
        required=True,
    )
    p.add_argument("--out", required=True, type=Path, help="file to write (.zip, .onnx, .pt)")
    p.add_argument("--sample-image", type=Path, help="bioimageio: a real image of the run's data")
    p.add_argument("--name", help="bioimageio: model name (default: from the task)")
    p.add_argument(
        "--author", dest="authors", action="append", help="bioimageio: author (repeatable)"
    )
    p.add_argument("--license", help="bioimageio: SPDX licence id (default MIT)")
    p.add_argument("--tag", dest="tags", action="append", help="bioimageio: tag (repeatable)")
    p.add_argument("--data", type=Path, help="onnx-int8: the run's dataset (as for train)")
    p.add_argument(
        "--calibration-data",
        type=Path,
        help="onnx-int8: folder of images to calibrate on (default: the training split of --data)",
    )
    p.add_argument(
        "--max-accuracy-drop",
        type=float,
        help="onnx-int8: largest allowed drop of validation Dice/SEG (default 0.005)",
    )


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="pixel (or instance) metrics of predictions against ground truth",
        description=(
            "Compare predicted masks with ground-truth masks paired by file stem. Prints pooled "
            "metrics (confusion counts summed over all images) and per-image means; writes "
            "per_image.csv, summary.json and boxplots to --out."
        ),
    )
    p.add_argument("--pred", required=True, type=Path, help="prediction folder")
    p.add_argument("--truth", required=True, type=Path, help="ground-truth mask folder")
    p.add_argument("--out", type=Path, help="folder for per_image.csv, summary.json, boxplots")
    p.add_argument("--num-classes", type=int, default=2, help="classes incl. background")
    p.add_argument("--run", type=Path, help="run folder whose report.html is rewritten")
    p.add_argument("--images", type=Path, help="input images of the predictions (overlays)")
    p.add_argument(
        "--tracks",
        action="store_true",
        help="tracking measures instead: CTC DET and TRA of a result folder (NN_RES or a movie "
        "folder of lapseg predict) against a CTC tracking truth (NN_GT/TRA)",
    )
    p.add_argument(
        "--instances",
        action="store_true",
        help="instance metrics instead: CTC SEG, matching at IoU 0.5:0.95 (precision, recall, "
        "F1, AP = TP/(TP+FP+FN), panoptic quality), splits and merges",
    )


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        parents=[DEVICE, PROGRESS],
        help="generate synthetic cells, train, predict, evaluate (a few minutes on a CPU)",
        description="The whole pipeline on built-in synthetic microscopy data.",
    )
    p.add_argument("--out", type=Path, default=Path("runs/demo"), help="demo folder")
    p.add_argument("--minutes", type=float, default=3.0, help="training budget (default 3)")


def _add_report(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="write RUN_DIR/report.html (self-contained: config, curves, metrics, overlays)",
    )
    p.add_argument("run", type=Path, help="run folder (from lapseg train)")
    p.add_argument("--evaluation", type=Path, help="folder written by lapseg evaluate --out")
    p.add_argument("--predictions", type=Path, help="folder written by lapseg predict")
    p.add_argument("--images", type=Path, help="input images of the predictions (for overlays)")
    p.add_argument("--truth", type=Path, help="ground-truth masks (for overlays)")
    p.add_argument("--feature-maps", action="store_true", help="add per-level feature maps")
    p.add_argument("--max-overlays", type=int, default=8, help="overlays to show (default 8)")


def _add_export_contours(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export-contours",
        help="object outlines as GeoJSON, ImageJ/Fiji ROI zip or edge-pixel CSV",
    )
    p.add_argument("--labels", required=True, type=Path, help="label image file or folder")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--format", choices=("geojson", "roi", "edges"), default="geojson")


def _add_augment_preview(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "augment-preview",
        parents=[OVERRIDES],
        help="PNG grid of augmented training patches with the mask outline",
    )
    config_and_data(p)
    p.add_argument("--out", type=Path, default=Path("augment-preview.png"), help="PNG to write")
    p.add_argument("--n", type=int, default=16, help="number of samples (default 16)")
    p.add_argument("--stage", type=int, help="curriculum stage (default: every transform on)")
    p.add_argument("--seed", type=int, default=0, help="random seed")


def _add_config(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "config",
        parents=[OVERRIDES],
        help="print the resolved configuration (or the reference / JSON schema)",
    )
    p.add_argument("config", type=Path, nargs="?", help="YAML configuration (optional)")
    shown = p.add_mutually_exclusive_group()
    shown.add_argument("--schema", action="store_true", help="the JSON schema of config files")
    shown.add_argument(
        "--reference", action="store_true", help="the Markdown reference of every key"
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``lapseg`` command."""
    parser = argparse.ArgumentParser(
        prog="lapseg",
        description="Train, apply and evaluate U-Nets for microscopy segmentation.",
    )
    parser.add_argument("--version", action="version", version=f"lapseg {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (
        _add_train,
        _add_predict,
        _add_predict_large,
        _add_evaluate,
        _add_demo,
        add_cv,
        add_search,
        _add_report,
        add_baseline,
        _add_export,
        _add_export_contours,
        _add_augment_preview,
        add_compare,
        add_reproduce,
        _add_config,
    ):
        add(sub)
    return parser
