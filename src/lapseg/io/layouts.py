"""Which dataset layout a training folder is in, so that ``lapseg train --data D`` needs no flag.

:func:`detect_layout` recognises, in this order:

- a CSV/JSON file: a ``list`` of image/mask pairs;
- a Cell Tracking Challenge dataset (``01/t000.tif`` with ``01_GT/SEG`` or ``01_ST/SEG``):
  ``ctc``;
- ``NAME/frames/*`` sequence folders, or a folder of stack files with a ``masks/`` folder of
  mask stacks: ``sequences``;
- ``images/`` + ``masks/``: ``sequences`` when the images are movies (a ``T`` axis in their
  metadata or in ``data.axes``), else ``folders``;
- one folder per sample holding the image and mask files (``data.image_name``,
  ``data.mask_name``): ``sample-folders``.

Anything else is a one-line error listing the layouts. The choice and its reason go to the run's
log.
"""

from __future__ import annotations

from pathlib import Path

from lapseg.errors import LapsegInputError
from lapseg.io.discovery import _image_files
from lapseg.io.images import TIFF_EXTENSIONS
from lapseg.io.movies import is_ctc_dataset, stack_axes

__all__ = ["detect_layout"]


def _has_movies(folder: Path, axes: str | None) -> bool:
    """True when the first TIFF image of ``folder`` has a time axis longer than 1."""
    tiffs = [f for f in _image_files(folder) if f.suffix.lower() in TIFF_EXTENSIONS]
    if not tiffs:
        return False
    try:
        chosen, shape, _ = stack_axes(tiffs[0], axes)
    except LapsegInputError:
        return False  # a 3D file without axis metadata: the still-image reader asks for axes
    return dict(zip(chosen, shape, strict=True)).get("T", 1) > 1


def detect_layout(
    root: str | Path, *, axes: str | None = None, image_name: str = "raw.tif", mask_name: str = ""
) -> tuple[str, str]:
    """The layout of the dataset at ``root`` and the reason, e.g. ``("ctc", "...")``."""
    root = Path(root)
    if not root.exists():
        raise LapsegInputError("data folder not found", path=root)
    if root.is_file():
        if root.suffix.lower() in (".csv", ".json"):
            return "list", "a CSV/JSON list of image/mask pairs"
        return "sequences", "a single stack file"
    if is_ctc_dataset(root) and any(
        (root / f"{p.name}_{kind}" / "SEG").is_dir()
        for p in root.iterdir()
        if p.is_dir() and p.name.isdigit()
        for kind in ("GT", "ST")
    ):
        return "ctc", "Cell Tracking Challenge folders (NN/ with NN_GT or NN_ST)"
    if (root / "frames").is_dir() or any((p / "frames").is_dir() for p in root.iterdir()):
        return "sequences", "sequence folders with frames/"
    if (root / "images").is_dir() and (root / "masks").is_dir():
        if _has_movies(root / "images", axes):
            return "sequences", "images/ + masks/ holding movies (a T axis)"
        return "folders", "images/ + masks/ paired by file name"
    if (root / "masks").is_dir() and _has_movies(root, axes):
        return "sequences", "movie stacks with masks/ mask stacks"
    samples = [p for p in root.iterdir() if p.is_dir() and (p / image_name).is_file()]
    if samples and all((p / mask_name).is_file() for p in samples if mask_name):
        return "sample-folders", f"one folder per sample holding {image_name}"
    raise LapsegInputError(
        "cannot tell how this dataset is laid out: expected images/ + masks/, sample folders, "
        "NAME/frames/, Cell Tracking Challenge folders or a CSV/JSON list (or set data.layout)",
        path=root,
    )
