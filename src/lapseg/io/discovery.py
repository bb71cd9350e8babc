"""Find images and their masks on disk.

Three dataset layouts are supported, each returning a naturally sorted list of
:class:`SamplePaths`:

- :func:`discover_folder_pairs`: ``root/images/<stem>.<ext>`` and
  ``root/masks/<stem><suffix>.<ext>``.
- :func:`discover_sample_folders`: one folder per sample holding e.g. ``raw.tif`` and
  ``instances_ids.png`` (the Usiigaci layout).
- :func:`lapseg.io.sample_lists.read_sample_list`: an explicit CSV or JSON list of files.

Hidden files (names starting with ``"."``) and files without an image extension are ignored.
"""

from __future__ import annotations

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
