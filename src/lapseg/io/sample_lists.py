"""Samples listed explicitly: a CSV or JSON list of image (and mask) files
(:func:`read_sample_list`; the folder layouts are in :mod:`lapseg.io.discovery`), and what
``lapseg predict --input`` names: an image, a folder or such a list
(:func:`discover_prediction_inputs`).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

from lapseg.errors import LapsegInputError
from lapseg.io.discovery import (
    SamplePaths,
    _image_files,
    _listing,
    discover_images,
    discover_sample_folders,
    output_stem,
)
from lapseg.io.images import is_image_file

__all__ = ["PredictionInputs", "discover_prediction_inputs", "read_sample_list"]


def _resolve(entry: str, base: Path) -> Path:
    path = Path(entry).expanduser()
    return path if path.is_absolute() else base / path


def _sample_from_entry(
    entry: dict[str, object], base: Path, where: str, list_path: Path
) -> SamplePaths:
    unknown = sorted(set(entry) - {"image", "mask", "name"})
    if unknown:
        raise LapsegInputError(
            f"{where}: unknown field(s) {', '.join(unknown)}; use image, mask, name",
            path=list_path,
        )
    image_value = entry.get("image")
    if not isinstance(image_value, str) or not image_value.strip():
        raise LapsegInputError(f"{where}: 'image' must be a non-empty path", path=list_path)
    mask_value = entry.get("mask")
    if mask_value is not None and not isinstance(mask_value, str):
        raise LapsegInputError(f"{where}: 'mask' must be a path", path=list_path)
    name_value = entry.get("name")
    if name_value is not None and not isinstance(name_value, str):
        raise LapsegInputError(f"{where}: 'name' must be text", path=list_path)
    image = _resolve(image_value.strip(), base)
    mask = _resolve(mask_value.strip(), base) if mask_value and mask_value.strip() else None
    for file in (image, mask):
        if file is None:
            continue
        if not file.is_file():
            raise LapsegInputError(f"{where}: file not found: {file}", path=list_path)
        if not is_image_file(file):
            raise LapsegInputError(f"{where}: not an image file: {file}", path=list_path)
    name = name_value.strip() if name_value and name_value.strip() else image.stem
    return SamplePaths(name=name, image=image, mask=mask)


def read_sample_list(path: str | Path) -> list[SamplePaths]:
    """Read samples from a CSV or JSON list.

    CSV: a header ``image,mask[,name]`` (``mask`` and ``name`` optional; an empty cell means no
    mask / the image stem). JSON: a list of objects with ``"image"`` and optional ``"mask"`` and
    ``"name"``. Relative paths are resolved against the list file's folder.

    Parameters
    ----------
    path : str or Path
        ``.csv`` or ``.json`` file.

    Returns
    -------
    list of SamplePaths
        In the order of the list.

    Raises
    ------
    LapsegInputError
        Unreadable or malformed list (naming the line or entry), missing files, duplicate names.
    """
    path = Path(path)
    if not path.is_file():
        raise LapsegInputError("sample list not found", path=path)
    base = path.parent
    suffix = path.suffix.lower()
    entries: list[tuple[str, dict[str, object]]] = []
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise LapsegInputError(f"cannot read sample list ({exc})", path=path) from exc
    if suffix == ".csv":
        reader = csv.DictReader(text.splitlines())
        fields = [f.strip() for f in reader.fieldnames or []]
        if "image" not in fields or set(fields) - {"image", "mask", "name"}:
            raise LapsegInputError(
                f"CSV header must be image,mask[,name], got {','.join(fields) or 'nothing'}",
                path=path,
            )
        for line, row in enumerate(reader, start=2):
            if None in row:
                raise LapsegInputError(f"line {line}: too many columns", path=path)
            entries.append((f"line {line}", {k.strip(): (v or "").strip() for k, v in row.items()}))
    elif suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise LapsegInputError(f"invalid JSON ({exc})", path=path) from exc
        if not isinstance(data, list):
            raise LapsegInputError("JSON sample list must be a list of objects", path=path)
        for index, item in enumerate(data):
            if not isinstance(item, dict):
                raise LapsegInputError(f"entry {index}: expected an object", path=path)
            entries.append((f"entry {index}", item))
    else:
        raise LapsegInputError("sample list must be a .csv or .json file", path=path)
    if not entries:
        raise LapsegInputError("sample list is empty", path=path)
    samples: list[SamplePaths] = []
    seen: dict[str, str] = {}
    for where, entry in entries:
        sample = _sample_from_entry(entry, base, where, path)
        if sample.name in seen:
            raise LapsegInputError(
                f"{where}: duplicate sample name {sample.name!r} (also at {seen[sample.name]}); "
                "add a name column",
                path=path,
            )
        seen[sample.name] = where
        samples.append(sample)
    return samples


@dataclass(frozen=True)
class PredictionInputs:
    """Still images to predict, each with the name its outputs get, and how they were found."""

    images: list[Path]
    names: list[str]
    layout: str


def discover_prediction_inputs(
    path: str | Path, *, image_name: str = "raw.tif"
) -> PredictionInputs:
    """The still images at ``path``, read the way ``lapseg train`` reads a dataset.

    Parameters
    ----------
    path : str or Path
        An image file; a CSV/JSON sample list (its ``image`` column; outputs named by its
        ``name``); a training folder with ``images/`` (the images; ``masks/`` is ignored); a
        folder of sample folders each holding ``image_name`` (outputs named by the folder); or
        a folder of image files.
    image_name : str
        File name of the image inside each sample folder (``data.image_name``).

    Returns
    -------
    PredictionInputs
        Names are unique (two inputs never share an output).
    """
    path = Path(path)
    if not path.exists():
        raise LapsegInputError("input not found", path=path)
    if path.is_file() and path.suffix.lower() in (".csv", ".json"):
        samples = read_sample_list(path)
        return PredictionInputs(
            [s.image for s in samples], [s.name for s in samples], "a CSV/JSON sample list"
        )
    if path.is_dir() and (path / "images").is_dir() and not _image_files(path):
        images = discover_images(path / "images")
        layout = "the images/ folder of a training dataset"
        return PredictionInputs(images, [output_stem(p) for p in images], layout)
    if path.is_dir() and not _image_files(path) and next(path.rglob(image_name), None):
        samples = discover_sample_folders(path, image_name=image_name, require_masks=False)
        layout = f"{len(samples)} sample folder(s) holding {image_name}"
        return PredictionInputs([s.image for s in samples], [s.name for s in samples], layout)
    images = discover_images(path)
    names = [output_stem(p) for p in images]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise LapsegInputError(
            f"two inputs would write the same output name ({_listing(duplicates)}); rename one",
            path=path,
        )
    return PredictionInputs(images, names, "image files")
