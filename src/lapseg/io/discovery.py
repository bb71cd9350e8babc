"""Find images and their masks on disk.

Three dataset layouts are supported, each returning a naturally sorted list of
:class:`SamplePaths`:

- :func:`discover_folder_pairs`: ``root/images/<stem>.<ext>`` and
  ``root/masks/<stem><suffix>.<ext>``.
- :func:`discover_sample_folders`: one folder per sample holding e.g. ``raw.tif`` and
  ``instances_ids.png`` (the Usiigaci layout).
- :func:`read_sample_list`: an explicit CSV or JSON list of files.

Hidden files (names starting with ``"."``) and files without an image extension are ignored.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from lapseg.errors import LapsegInputError
from lapseg.io.images import IMAGE_EXTENSIONS, is_image_file

_MAX_LISTED = 5


@dataclass(frozen=True)
class SamplePaths:
    """One training/evaluation sample on disk.

    Attributes
    ----------
    name : str
        Unique sample name (used in splits and reports).
    image : Path
        Image file.
    mask : Path or None
        Mask file, None when the sample has no annotation.
    """

    name: str
    image: Path
    mask: Path | None


def natural_sort_key(text: str) -> tuple:
    """Key that sorts ``"frame2"`` before ``"frame10"``, ignoring case.

    Digit runs compare as integers, the rest as lower-case text; the original string breaks ties
    so the order is total and deterministic.
    """
    parts = re.split(r"(\d+)", text.lower())
    key = tuple(int(part) if i % 2 else part for i, part in enumerate(parts))
    return (key, text)


def _listing(items: Iterable[str]) -> str:
    items = sorted(items, key=natural_sort_key)
    shown = ", ".join(items[:_MAX_LISTED])
    more = len(items) - _MAX_LISTED
    return f"{shown} (and {more} more)" if more > 0 else shown


def _image_files(folder: Path) -> list[Path]:
    """Non-hidden image files directly in ``folder``, naturally sorted by name."""
    files = [
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and is_image_file(p)
    ]
    return sorted(files, key=lambda p: natural_sort_key(p.name))


def _require_dir(folder: Path, what: str) -> None:
    if not folder.exists():
        raise LapsegInputError(f"{what} folder not found", path=folder)
    if not folder.is_dir():
        raise LapsegInputError(f"{what} path is not a folder", path=folder)


def _by_stem(files: list[Path], folder: Path) -> dict[str, Path]:
    by_stem: dict[str, Path] = {}
    for file in files:
        if file.stem in by_stem:
            raise LapsegInputError(
                f"two files share the stem {file.stem!r}: {by_stem[file.stem].name} and "
                f"{file.name}; keep one",
                path=folder,
            )
        by_stem[file.stem] = file
    return by_stem


def discover_folder_pairs(
    root: str | Path,
    *,
    images_subdir: str = "images",
    masks_subdir: str = "masks",
    mask_suffix: str = "",
    require_masks: bool = True,
) -> list[SamplePaths]:
    """Pair ``root/images_subdir`` files with ``root/masks_subdir`` files by stem.

    The mask of ``a.tif`` is any image file with stem ``"a" + mask_suffix`` (extensions may
    differ, e.g. ``images/a.tif`` with ``masks/a_mask.png``).

    Parameters
    ----------
    root : str or Path
        Dataset folder.
    images_subdir, masks_subdir : str
        Sub-folder names.
    mask_suffix : str
        Appended to the image stem to form the mask stem.
    require_masks : bool
        If True every image needs a mask; if False, images without one get ``mask=None`` and
        the masks folder may be absent.

    Returns
    -------
    list of SamplePaths
        Named by image stem, naturally sorted.

    Raises
    ------
    LapsegInputError
        Missing folder, no images, an image without a mask (when required), a mask without an
        image, or two files with the same stem in one folder.
    """
    root = Path(root)
    _require_dir(root, "dataset")
    images_dir = root / images_subdir
    masks_dir = root / masks_subdir
    _require_dir(images_dir, "images")
    images = _by_stem(_image_files(images_dir), images_dir)
    if not images:
        raise LapsegInputError(
            f"no image files ({', '.join(IMAGE_EXTENSIONS)}) found", path=images_dir
        )
    masks: dict[str, Path] = {}
    if require_masks or masks_dir.exists():
        _require_dir(masks_dir, "masks")
        for stem, file in _by_stem(_image_files(masks_dir), masks_dir).items():
            if mask_suffix and not stem.endswith(mask_suffix):
                key = None
            else:
                key = stem[: len(stem) - len(mask_suffix)]
            if key is None or key not in images:
                raise LapsegInputError(
                    f"mask {file.name} has no image {key or stem}.* in {images_subdir}/ "
                    f"(mask suffix {mask_suffix!r})",
                    path=masks_dir,
                )
            masks[key] = file
    unmatched = [stem for stem in images if stem not in masks]
    if require_masks and unmatched:
        raise LapsegInputError(
            f"{len(unmatched)} image(s) have no mask {_listing(unmatched)} "
            f"(expected {masks_subdir}/<stem>{mask_suffix}.<ext>)",
            path=root,
        )
    return [
        SamplePaths(name=stem, image=file, mask=masks.get(stem)) for stem, file in images.items()
    ]


def discover_sample_folders(
    root: str | Path,
    *,
    image_name: str = "raw.tif",
    mask_name: str = "instances_ids.png",
    require_masks: bool = True,
) -> list[SamplePaths]:
    """Find one sample per folder below ``root`` that holds ``image_name``.

    Parameters
    ----------
    root : str or Path
        Searched recursively; hidden folders are skipped.
    image_name, mask_name : str
        File names inside each sample folder.
    require_masks : bool
        If True a folder without ``mask_name`` is an error; else its mask is None.

    Returns
    -------
    list of SamplePaths
        Named by the folder path relative to ``root`` with ``"/"`` replaced by ``"_"`` (the
        root's own name if the root itself is a sample), naturally sorted.
    """
    root = Path(root)
    _require_dir(root, "dataset")
    samples: dict[str, SamplePaths] = {}
    for image in root.rglob(image_name):
        relative = image.parent.relative_to(root)
        if not image.is_file() or any(part.startswith(".") for part in relative.parts):
            continue
        name = "_".join(relative.parts) if relative.parts else root.resolve().name
        mask_path = image.parent / mask_name
        if require_masks and not mask_path.is_file():
            raise LapsegInputError(f"sample folder has no {mask_name}", path=image.parent)
        mask = mask_path if mask_path.is_file() else None
        if name in samples:
            raise LapsegInputError(
                f"two sample folders map to the name {name!r}; rename one", path=image.parent
            )
        samples[name] = SamplePaths(name=name, image=image, mask=mask)
    if not samples:
        raise LapsegInputError(f"no folder below it contains {image_name}", path=root)
    return [samples[name] for name in sorted(samples, key=natural_sort_key)]


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


def discover_images(path: str | Path) -> list[Path]:
    """Images to predict on: one image file, or the image files directly in a folder.

    Parameters
    ----------
    path : str or Path
        An image file or a folder (not searched recursively; hidden files ignored).

    Returns
    -------
    list of Path
        Naturally sorted.
    """
    path = Path(path)
    if not path.exists():
        raise LapsegInputError("input not found", path=path)
    if path.is_file():
        if not is_image_file(path):
            raise LapsegInputError(
                f"unsupported extension {path.suffix!r}; use one of {', '.join(IMAGE_EXTENSIONS)}",
                path=path,
            )
        return [path]
    files = _image_files(path)
    if not files:
        raise LapsegInputError(
            f"no image files ({', '.join(IMAGE_EXTENSIONS)}) in folder", path=path
        )
    return files


def output_stem(image_path: Path) -> str:
    """File stem of an input (``a.ome.tif`` -> ``a``)."""
    name = image_path.name
    ome = next((s for s in (".ome.tiff", ".ome.tif") if name.lower().endswith(s)), None)
    return name[: -len(ome)] if ome else image_path.stem


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
