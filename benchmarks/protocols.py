"""The shared real-data protocols (../shared/data/README.md) as prepared dataset folders.

Each ``prepare_<name>(out)`` writes links (or small converted files) into ``out`` and returns a
:class:`Protocol`: the training folder as a user would hand it to ``lapseg train``, the
options that folder's layout needs, the test images and their ground truth. Nothing is copied
into the repository; the sources stay in ../shared/data.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lapseg.io.images import read_mask, write_png, write_tiff

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@dataclass(frozen=True)
class Protocol:
    """A prepared protocol.

    train : the dataset folder given to ``lapseg train --data``.
    options : ``--set`` overrides its layout needs (not tuning: layout and truth only).
    test_images : images to predict.
    truth : folder of ground-truth masks, one per test image (same stem).
    kind : "instances" (SEG, AP@0.5) or "membranes" (pixel error, F1 of the membranes).
    """

    name: str
    train: Path
    test_images: list[Path]
    truth: Path
    kind: str
    options: list[str] = field(default_factory=list)


def _link(source: Path, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        os.symlink(source.resolve(), target)
    return target


def prepare_hela(out: Path) -> Protocol:
    """DIC-HeLa: train on sequence 01 silver truth (84 frames), test on sequence 02 GT.

    The test folder holds every frame of sequence 02, so temporal context and tracking see the
    real movie; only the 9 GT frames are scored."""
    root = SHARED / "ctc-DIC-C2DH-HeLa"
    train = out / "train"
    for frame in sorted((root / "01").glob("t*.tif")):
        _link(frame, train / "01" / frame.name)
    for mask in sorted((root / "01_ST" / "SEG").glob("man_seg*.tif")):
        _link(mask, train / "01_ST" / "SEG" / mask.name)
    test_images, truth = [], out / "test_truth"
    for gt in sorted((root / "02_GT" / "SEG").glob("man_seg*.tif")):
        frame = gt.stem.removeprefix("man_seg")
        test_images.append(_link(root / "02" / f"t{frame}.tif", out / "test" / f"t{frame}.tif"))
        _link(gt, truth / f"t{frame}.tif")
    for frame_file in sorted((root / "02").glob("t*.tif")):  # the whole movie: temporal context
        _link(frame_file, out / "test" / frame_file.name)
    return Protocol(
        "hela", train, test_images, truth, "instances", ["data.layout=ctc", "temporal.truth=ST"]
    )


def prepare_psc(out: Path) -> Protocol:
    """PhC-C2DL-PSC seq 02: train on ST t150-174 and t190-250, test on the GT frame t182.

    The test folder holds the unannotated frames t175-189 too, so a model with temporal context
    sees the real neighbours of t182 (the movie is predicted; only t182 is scored)."""
    root = SHARED / "ctc-PhC-C2DL-PSC-02"
    train = out / "train"
    for frame in sorted((root / "02").glob("t*.tif")):
        _link(frame, train / "02" / frame.name)
    for t in [*range(150, 175), *range(190, 251)]:
        name = f"man_seg{t:03d}.tif"
        _link(root / "02_ST" / "SEG" / name, train / "02_ST" / "SEG" / name)
    test = _link(root / "02" / "t182.tif", out / "test" / "t182.tif")
    for t in range(175, 190):  # the held-out frames around t182: temporal context, not scored
        _link(root / "02" / f"t{t:03d}.tif", out / "test" / f"t{t:03d}.tif")
    truth = out / "test_truth"
    _link(root / "02_GT" / "SEG" / "man_seg182.tif", truth / "t182.tif")
    return Protocol(
        "psc", train, [test], truth, "instances", ["data.layout=ctc", "temporal.truth=ST"]
    )


def prepare_usiigaci(out: Path) -> Protocol:
    """Usiigaci phase contrast: train on train/ (45 images), test on val/ (5 images)."""
    root = SHARED / "usiigaci-phc"
    train = out / "train"
    for folder in sorted((root / "train").iterdir()):
        if (folder / "raw.tif").is_file():
            _link(folder / "raw.tif", train / "images" / f"{folder.name}.tif")
            _link(folder / "instances_ids.png", train / "masks" / f"{folder.name}.png")
    test_images, truth = [], out / "test_truth"
    for folder in sorted((root / "val").iterdir()):
        if (folder / "raw.tif").is_file():
            test_images.append(_link(folder / "raw.tif", out / "test" / f"{folder.name}.tif"))
            _link(folder / "instances_ids.png", truth / f"{folder.name}.png")
    return Protocol("usiigaci", train, test_images, truth, "instances")


def prepare_isbi(out: Path) -> Protocol:
    """ISBI 2012 EM: train on slices 0-23, test on 24-29; the target is the membranes."""
    root = SHARED / "isbi2012-em" / "train"
    train, truth, test_images = out / "train", out / "test_truth", []
    for i in range(30):
        membranes = (read_mask(root / "label" / f"{i}.png") == 0).astype(np.uint8) * 255
        if i < 24:
            _link(root / "image" / f"{i}.png", train / "images" / f"{i}.png")
            if not (train / "masks" / f"{i}.png").exists():
                write_png(train / "masks" / f"{i}.png", membranes)
        else:
            test_images.append(_link(root / "image" / f"{i}.png", out / "test" / f"{i}.png"))
            if not (truth / f"{i}.tif").exists():
                write_tiff(truth / f"{i}.tif", membranes)
    return Protocol("isbi", train, test_images, truth, "membranes")


PROTOCOLS = {
    "hela": prepare_hela,
    "psc": prepare_psc,
    "usiigaci": prepare_usiigaci,
    "isbi": prepare_isbi,
}
