"""Find time-lapse sequences on disk and read their frames.

A :class:`SequenceSource` says where the frames of one sequence are (one file per frame, or one
multi-page stack) and which frames have a mask. Layouts found by :func:`discover_sequences`:

``"sequences"``
    ``root/<name>/frames/*`` (natural sort; one file per frame) with optional
    ``root/<name>/masks/<same stem>.*`` for some or all frames; or stacks ``root/<name>.tif``
    (axes from ``axes``, default ``"TYX"``) with an optional mask stack ``root/masks/<name>.tif``.
    A ``(T, Z, Y, X)`` stack (``axes`` e.g. ``"TZYX"`` or ``"ZTYX"``) gives one sequence per
    z-slice, named ``<name>/z00``, ``<name>/z01``, ... ``root`` may also be a single sequence
    folder or a single stack file.
``"ctc"``
    The Cell Tracking Challenge: ``root/01/t000.tif``, gold truth ``root/01_GT/SEG/man_seg000.tif``
    on some frames, silver truth ``root/01_ST/SEG/man_seg000.tif``; ``truth`` picks "GT", "ST" or
    "GT+ST" (gold where present, silver elsewhere).

Frame numbers in file names (``t007``, ``frame_12``) must be consecutive: a missing number is an
error, as is a mask for a frame that does not exist. Frames are read as ``(Y, X)`` float32
(:mod:`lapseg.io.sequence_frames`, re-exported here).
"""

from __future__ import annotations

import re
from pathlib import Path

from lapseg.errors import LapsegInputError
from lapseg.io.discovery import _image_files, natural_sort_key, output_stem
from lapseg.io.movies import stack_axes
from lapseg.io.sequence_frames import (
    SequenceSource,
    check_frame_sizes,
    frame_reader,
    read_frame,
    read_frame_mask,
    read_frames,
    stack_tzyx,
)

__all__ = [
    "SEQUENCE_LAYOUTS",
    "SequenceSource",
    "check_frame_sizes",
    "discover_sequences",
    "frame_reader",
    "read_frame",
    "read_frame_mask",
    "read_frames",
]

_TRAILING_NUMBER = re.compile(r"(\d+)$")
_CTC_FRAME = re.compile(r"^t(\d+)$")
_CTC_MASK = re.compile(r"^man_seg(\d+)$")
SEQUENCE_LAYOUTS = ("sequences", "ctc")
"""Data layouts holding time-lapse sequences."""


# --------------------------------------------------------------------------- discovery


def _check_consecutive(numbers: list[int], files: list[Path]) -> None:
    """Frame numbers must increase by one; name the file after a gap."""
    for previous, current, file in zip(numbers, numbers[1:], files[1:], strict=False):
        if current != previous + 1:
            raise LapsegInputError(
                f"gap in frame numbers: {previous} is followed by {current} (missing frames "
                "would shift the temporal context; rename or add the missing frames)",
                path=file,
            )


def _folder_sequence(folder: Path, name: str) -> SequenceSource:
    frames_dir = folder / "frames"
    frames = _image_files(frames_dir)
    if not frames:
        raise LapsegInputError("no image files in the frames folder", path=frames_dir)
    stems = [f.stem for f in frames]
    if len(set(stems)) != len(stems):
        raise LapsegInputError("two frame files share a stem", path=frames_dir)
    numbers = [_TRAILING_NUMBER.search(s) for s in stems]
    if all(numbers):
        _check_consecutive([int(m.group(1)) for m in numbers if m], frames)
    index = {stem: t for t, stem in enumerate(stems)}
    masks: dict[int, Path] = {}
    masks_dir = folder / "masks"
    if masks_dir.is_dir():
        for mask in _image_files(masks_dir):
            if mask.stem not in index:
                raise LapsegInputError(
                    f"mask has no frame with the stem {mask.stem!r} in {frames_dir}", path=mask
                )
            masks[index[mask.stem]] = mask
    return SequenceSource(
        name=name, frame_names=tuple(stems), frame_files=tuple(frames), masks=masks
    )


def _stack_sequences(path: Path, axes: str | None, mask_stack: Path | None) -> list[SequenceSource]:
    axes, _, _ = stack_axes(path, axes)
    if "T" not in axes:
        raise LapsegInputError(
            f"stack axes {axes!r} have no time axis 'T'; set data.axes (e.g. TYX)", path=path
        )
    volume = stack_tzyx(path, axes)
    n_t, n_z = volume.shape[:2]
    if mask_stack is not None:
        mask_volume = stack_tzyx(mask_stack, axes)
        if mask_volume.shape != volume.shape:
            raise LapsegInputError(
                f"mask stack shape {mask_volume.shape} (T, Z, Y, X) differs from the image "
                f"stack's {volume.shape}",
                path=mask_stack,
            )
    width = max(3, len(str(n_t - 1)))
    names = tuple(f"t{t:0{width}d}" for t in range(n_t))
    stem = path.name.split(".")[0]
    return [
        SequenceSource(
            name=stem if "Z" not in axes else f"{stem}/z{z:02d}",
            frame_names=names,
            stack=path,
            stack_axes=axes,
            z_index=z if "Z" in axes else None,
            mask_stack=mask_stack,
        )
        for z in range(n_z)
    ]


def _mask_for(stack: Path, masks_dir: Path) -> Path | None:
    """The mask stack of ``stack`` in ``masks_dir``: the same file name, or the same stem."""
    if (masks_dir / stack.name).is_file():
        return masks_dir / stack.name
    stem = output_stem(stack)
    matches = (
        [m for m in _image_files(masks_dir) if output_stem(m) == stem] if masks_dir.is_dir() else []
    )
    return matches[0] if matches else None


def _discover_plain(root: Path, axes: str | None) -> list[SequenceSource]:
    if root.is_file():
        return _stack_sequences(root, axes, None)
    if (root / "frames").is_dir():
        return [_folder_sequence(root, root.name)]
    sources: list[SequenceSource] = []
    if (root / "images").is_dir():  # movies in the images/ + masks/ layout
        for stack in _image_files(root / "images"):
            sources.extend(_stack_sequences(stack, axes, _mask_for(stack, root / "masks")))
        return sources
    masks_dir = root / "masks"
    for entry in sorted(root.iterdir(), key=lambda p: natural_sort_key(p.name)):
        if entry.name.startswith("."):
            continue
        if entry.is_dir() and (entry / "frames").is_dir():
            sources.append(_folder_sequence(entry, entry.name))
        elif entry.is_file() and entry.suffix.lower() in (".tif", ".tiff"):
            mask = masks_dir / entry.name
            sources.extend(_stack_sequences(entry, axes, mask if mask.is_file() else None))
    return sources


def _ctc_sequence(root: Path, name: str, truth: str) -> SequenceSource:
    folder = root / name
    frames: list[tuple[int, Path]] = []
    for file in _image_files(folder):
        match = _CTC_FRAME.match(file.stem)
        if match:
            frames.append((int(match.group(1)), file))
    if not frames:
        raise LapsegInputError("no tTTT frame files in this CTC sequence folder", path=folder)
    frames.sort()
    numbers = [n for n, _ in frames]
    _check_consecutive(numbers, [f for _, f in frames])
    index = {n: t for t, n in enumerate(numbers)}
    masks: dict[int, Path] = {}
    for kind in ("ST", "GT") if truth == "GT+ST" else (truth,):  # GT last: gold wins
        seg = root / f"{name}_{kind}" / "SEG"
        if not seg.is_dir():
            continue
        for mask in _image_files(seg):
            match = _CTC_MASK.match(mask.stem)
            if not match:
                continue  # e.g. 3D 'man_seg_000_012' slices are not frame masks
            number = int(match.group(1))
            if number not in index:
                raise LapsegInputError(
                    f"ground truth for frame {number} but {folder} has no t{match.group(1)} image",
                    path=mask,
                )
            masks[index[number]] = mask
    width = max(3, len(str(numbers[-1])))
    return SequenceSource(
        name=name,
        frame_names=tuple(f"t{n:0{width}d}" for n in numbers),
        frame_files=tuple(f for _, f in frames),
        masks=masks,
    )


def discover_sequences(
    root: str | Path, *, layout: str = "sequences", axes: str | None = None, truth: str = "GT"
) -> list[SequenceSource]:
    """Every sequence under ``root``, in natural order of their names.

    Parameters
    ----------
    root : str or Path
        Dataset folder (or, for "sequences", one sequence folder or stack file).
    layout : str
        "sequences" or "ctc" (see the module docstring).
    axes : str, optional
        Axes of stack files (``data.axes``), e.g. "TYX", "TZYX", "ZTYX"; default: from each
        file's metadata (a stack that does not say is an error asking for the axes).
    truth : str
        CTC annotations: "GT", "ST" or "GT+ST".

    Raises
    ------
    LapsegInputError
        Missing folder, no sequence found, a gap in frame numbers, a mask without its frame.
    """
    root = Path(root)
    if layout not in SEQUENCE_LAYOUTS:
        raise LapsegInputError(f"layout {layout!r} is not one of {', '.join(SEQUENCE_LAYOUTS)}")
    if not root.exists():
        raise LapsegInputError("data folder not found", path=root)
    if layout == "ctc":
        if not root.is_dir():
            raise LapsegInputError("a CTC dataset must be a folder", path=root)
        names = [
            p.name
            for p in root.iterdir()
            if p.is_dir() and re.fullmatch(r"\d+", p.name) is not None
        ]
        sources = [_ctc_sequence(root, n, truth) for n in sorted(names, key=natural_sort_key)]
    else:
        sources = _discover_plain(root, axes)
    if not sources:
        raise LapsegInputError(f"no time-lapse sequence found (layout {layout!r})", path=root)
    return sources
