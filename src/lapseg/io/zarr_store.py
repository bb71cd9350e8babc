"""OME-Zarr prediction stores: labels (and optionally the image and probabilities) written in parts.

A prediction store is one OME-NGFF image group::

    out.zarr/                   root: NGFF image (a copy of the input, optional), lapseg attrs
      0/                        (C, Y, X) image, level 0
      labels/                   NGFF labels group: {"labels": ["instances"]}
        instances/              NGFF image-label group (source: ../../ when the image is there)
          0/                    (1, Y, X) uint16 or uint32 instance ids, 0 = background
      probabilities/            NGFF image (optional): (K, Y, X) float16, or uint8 = round(255 p)

One resolution level, axes ``c, y, x`` everywhere (labels keep the image's channel axis with size
1, as NGFF asks of label images), chunks of ``(1, chunk, chunk)``. NGFF 0.4 (Zarr v2, nested
chunk keys; what most viewers read today) or 0.5 (Zarr v3, metadata under ``"ome"``).

Every group carries ``"lapseg": {"complete": false}`` from its creation until
:meth:`PredictionStore.mark_complete` flips it, the root last, as the store's final write: an
interrupted write is never mistaken for a result (:func:`lapseg.io.zarr.read_ome_zarr` refuses
it). The root also records the store's :class:`StoreLayout` and the writer's progress, so a rerun
can check that it continues the same work and skip what is done
(:func:`lapseg.inference.block_run.predict_blocks`). Zarr's local store replaces each file
atomically, so a crash leaves every chunk and attribute file either old or new.

Why lapseg writes these NGFF fields itself instead of depending on the ``ome-zarr`` package: the
fields are few (``multiscales`` with axes, datasets and scales; ``labels``; ``image-label``) and
stable, while ``ome-zarr`` would add about 30 packages to the install (dask, fsspec and s3fs,
aiohttp, botocore, ome-zarr-models) and pin pydantic. The ``zarr`` package (v3) does the storage.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import zarr

from lapseg.errors import LapsegInputError
from lapseg.io.zarr import node_attributes

__all__ = [
    "LABELS_NAME",
    "NGFF_VERSIONS",
    "PROBABILITIES_NAME",
    "PredictionStore",
    "StoreLayout",
    "create_prediction_store",
    "dequantize_probabilities",
    "open_prediction_store",
    "write_ome_zarr",
]

NgffVersion = Literal["0.4", "0.5"]
LabelDtype = Literal["uint16", "uint32"]
ProbabilityEncoding = Literal["float16", "uint8"]

NGFF_VERSIONS: tuple[str, ...] = get_args(NgffVersion)
LABELS_NAME = "instances"
"""Name of the instance label image in the store's ``labels/`` group."""
PROBABILITIES_NAME = "probabilities"

_AXIS_TYPES = {"T": "time", "Z": "space", "C": "channel", "Y": "space", "X": "space"}
_UINT8_SCALE = 255.0


# --------------------------------------------------------------------------- NGFF metadata


def _axis_entries(axes: str, pixel_size: tuple[float, float] | None) -> list[dict[str, str]]:
    entries = []
    for letter in axes.lower():
        entry = {"name": letter, "type": _AXIS_TYPES[letter.upper()]}
        if pixel_size is not None and letter in "yx":
            entry["unit"] = "micrometer"
        entries.append(entry)
    return entries


def _multiscale(
    name: str, axes: str, pixel_size: tuple[float, float] | None, version: str
) -> dict[str, Any]:
    """One-level ``multiscales`` entry (NGFF puts ``version`` inside it only in 0.4)."""
    scale = [1.0] * len(axes)
    if pixel_size is not None:
        scale[axes.index("Y")], scale[axes.index("X")] = map(float, pixel_size)
    entry: dict[str, Any] = {
        "name": name,
        "axes": _axis_entries(axes, pixel_size),
        "datasets": [
            {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": scale}]}
        ],
    }
    if version == "0.4":
        entry["version"] = "0.4"
    return entry


def _ngff_attrs(version: str, **entries: Any) -> dict[str, Any]:
    """NGFF metadata placed as the version asks: top level (0.4) or under ``"ome"`` (0.5)."""
    return dict(entries) if version == "0.4" else {"ome": {"version": version, **entries}}


# --------------------------------------------------------------------------- prediction stores


@dataclass(frozen=True)
class StoreLayout:
    """What a prediction store holds: geometry, layers and their encodings.

    ``image_channels=0`` writes no copy of the image; ``probability_classes=0`` no
    probabilities. Stored in the root attributes, so a resumed write can check it.
    """

    shape: tuple[int, int]
    chunk: int = 1024
    image_channels: int = 0
    image_dtype: str = "uint16"
    label_dtype: LabelDtype = "uint32"
    probability_classes: int = 0
    probability_encoding: ProbabilityEncoding = "uint8"
    ngff_version: NgffVersion = "0.4"
    pixel_size: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if len(self.shape) != 2 or min(self.shape) < 1 or self.chunk < 1:
            raise LapsegInputError(f"invalid store shape {self.shape} / chunk {self.chunk}")
        for name, value, allowed in (
            ("label_dtype", self.label_dtype, get_args(LabelDtype)),
            ("probability_encoding", self.probability_encoding, get_args(ProbabilityEncoding)),
            ("ngff_version", self.ngff_version, NGFF_VERSIONS),
        ):
            if value not in allowed:
                raise LapsegInputError(f"{name}={value!r} is not one of {', '.join(allowed)}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StoreLayout:
        values = dict(data)
        values["shape"] = tuple(values["shape"])
        if values.get("pixel_size") is not None:
            values["pixel_size"] = tuple(values["pixel_size"])
        return cls(**values)


def dequantize_probabilities(values: np.ndarray) -> np.ndarray:
    """Stored probabilities (float16, or uint8 = round(255 p)) as float32 in [0, 1]."""
    values = np.asarray(values)
    if values.dtype == np.uint8:
        return values.astype(np.float32) / np.float32(_UINT8_SCALE)
    return values.astype(np.float32)


def _marker(node: zarr.Group) -> dict[str, Any]:
    """The ``"lapseg"`` attribute of a group (empty when absent)."""
    marker = node_attributes(node).get("lapseg")
    return dict(marker) if isinstance(marker, Mapping) else {}


def _set_marker(group: zarr.Group, **values: Any) -> None:
    group.attrs["lapseg"] = {**_marker(group), **values}


def _child(group: zarr.Group, name: str) -> Any:
    """A member of a group (Zarr types it as array-or-group)."""
    return group[name]


class PredictionStore:
    """An OME-Zarr prediction store (see the module docstring for the layout).

    Get one from :func:`create_prediction_store` or :func:`open_prediction_store`. Writes take
    global ``(rows, cols)`` slices; the labels are written as ``(h, w)`` arrays.
    """

    def __init__(self, path: Path, root: zarr.Group, layout: StoreLayout) -> None:
        self.path, self.root, self.layout = path, root, layout
        self.image: zarr.Array | None = _child(root, "0") if layout.image_channels else None
        self.label_group: zarr.Group = _child(_child(root, "labels"), LABELS_NAME)
        self.labels: zarr.Array = _child(self.label_group, "0")
        self.probability_group: zarr.Group | None = None
        self.probabilities: zarr.Array | None = None
        if layout.probability_classes:
            self.probability_group = _child(root, PROBABILITIES_NAME)
            self.probabilities = _child(self.probability_group, "0")

    @property
    def complete(self) -> bool:
        """True once :meth:`mark_complete` has run."""
        return _marker(self.root).get("complete") is True

    def progress(self) -> dict[str, Any]:
        """What the writer recorded with :meth:`set_progress` (empty at first)."""
        return dict(_marker(self.root).get("progress", {}))

    def set_progress(self, progress: Mapping[str, Any]) -> None:
        """Record the writer's progress (one small attribute write, atomic on local disks)."""
        _set_marker(self.root, progress=dict(progress))

    def read_labels(self, rows: slice, cols: slice) -> np.ndarray:
        """The ``(h, w)`` instance ids in rows, cols."""
        return np.asarray(self.labels[0, rows, cols])

    def write_labels(self, rows: slice, cols: slice, labels: np.ndarray) -> None:
        """Write ``(h, w)`` instance ids into rows, cols."""
        self.labels[0, rows, cols] = labels.astype(self.layout.label_dtype, copy=False)

    def write_probabilities(self, rows: slice, cols: slice, prob: np.ndarray) -> None:
        """Write ``(K, h, w)`` probabilities in the store's encoding."""
        if self.probabilities is None:
            raise ValueError("this store holds no probabilities")
        if self.layout.probability_encoding == "uint8":
            prob = np.rint(np.clip(prob, 0.0, 1.0) * _UINT8_SCALE)
        self.probabilities[:, rows, cols] = prob.astype(self.probabilities.dtype, copy=False)

    def write_image(self, rows: slice, cols: slice, image: np.ndarray) -> None:
        """Write ``(C, h, w)`` pixels of the image copy."""
        if self.image is None:
            raise ValueError("this store holds no image")
        self.image[:, rows, cols] = image.astype(self.image.dtype, copy=False)

    def mark_complete(self) -> None:
        """Flip every ``complete`` marker, the root's last: the final write of a store."""
        for group in (self.probability_group, self.label_group, self.root):
            if group is not None:
                _set_marker(group, complete=True)


def _create_array(
    group: zarr.Group, shape: tuple[int, ...], chunk: int, dtype: str, version: str
) -> None:
    extra: dict[str, Any] = (
        {"chunk_key_encoding": {"name": "v2", "separator": "/"}}  # NGFF 0.4: nested chunks
        if version == "0.4"
        else {"dimension_names": ["c", "y", "x"]}
    )
    chunks = (1, min(chunk, shape[1]), min(chunk, shape[2]))
    group.create_array("0", shape=shape, chunks=chunks, dtype=dtype, fill_value=0, **extra)


def _is_lapseg_store(path: Path) -> bool:
    try:
        return "layout" in _marker(zarr.open_group(str(path), mode="r"))
    except (FileNotFoundError, zarr.errors.NodeNotFoundError, ValueError, TypeError):
        return False


def create_prediction_store(
    path: str | Path, layout: StoreLayout, *, overwrite: bool = False
) -> PredictionStore:
    """Create an empty prediction store, every group marked incomplete.

    Raises
    ------
    LapsegInputError
        ``path`` exists (without ``overwrite``), or exists and is not a lapseg prediction store
        (never deleted, even with ``overwrite``).
    """
    path = Path(path)
    if path.exists():
        if not overwrite:
            raise LapsegInputError("output exists; choose another path or overwrite it", path=path)
        if not _is_lapseg_store(path):
            raise LapsegInputError(
                "output exists and is not a lapseg prediction store; refusing to overwrite it",
                path=path,
            )
    version, (ny, nx) = layout.ngff_version, layout.shape
    marker = {"lapseg": {"complete": False}}
    root = zarr.open_group(str(path), mode="w", zarr_format=2 if version == "0.4" else 3)
    root.attrs.update({"lapseg": {"complete": False, "layout": layout.to_dict(), "progress": {}}})
    if layout.image_channels:
        _create_array(
            root, (layout.image_channels, ny, nx), layout.chunk, layout.image_dtype, version
        )
        root.attrs.update(
            _ngff_attrs(
                version, multiscales=[_multiscale("image", "CYX", layout.pixel_size, version)]
            )
        )
    label_parent = root.create_group(
        "labels", attributes=_ngff_attrs(version, labels=[LABELS_NAME])
    )
    image_label: dict[str, Any] = {"version": version} if version == "0.4" else {}
    if layout.image_channels:
        image_label["source"] = {"image": "../../"}
    label_group = label_parent.create_group(
        LABELS_NAME,
        attributes={
            **_ngff_attrs(
                version,
                multiscales=[_multiscale(LABELS_NAME, "CYX", layout.pixel_size, version)],
                **{"image-label": image_label},
            ),
            **marker,
        },
    )
    _create_array(label_group, (1, ny, nx), layout.chunk, layout.label_dtype, version)
    if layout.probability_classes:
        encoding = layout.probability_encoding
        group = root.create_group(
            PROBABILITIES_NAME,
            attributes={
                **_ngff_attrs(
                    version,
                    multiscales=[
                        _multiscale(PROBABILITIES_NAME, "CYX", layout.pixel_size, version)
                    ],
                ),
                "lapseg": {"complete": False, "encoding": encoding},
            },
        )
        shape = (layout.probability_classes, ny, nx)
        _create_array(group, shape, layout.chunk, encoding, version)
    return PredictionStore(path, root, layout)


def open_prediction_store(path: str | Path) -> PredictionStore:
    """Open an existing prediction store for writing (to resume it) or reading."""
    path = Path(path)
    if not _is_lapseg_store(path):
        raise LapsegInputError("not a lapseg prediction store", path=path)
    root = zarr.open_group(str(path), mode="r+")
    layout = StoreLayout.from_dict(_marker(root)["layout"])
    return PredictionStore(path, root, layout)


def write_ome_zarr(
    path: str | Path,
    labels: np.ndarray,
    *,
    image: np.ndarray | None = None,
    probabilities: np.ndarray | None = None,
    probability_encoding: ProbabilityEncoding = "float16",
    pixel_size: tuple[float, float] | None = None,
    ngff_version: NgffVersion = "0.4",
    overwrite: bool = False,
) -> Path:
    """Write in-memory results as an OME-Zarr prediction store.

    Parameters
    ----------
    path : str or Path
        The store to create (``*.zarr``).
    labels : (Y, X) integer ndarray
        Instance ids, 0 = background; stored as uint16 when they fit, else uint32.
    image : (C, Y, X) ndarray, optional
        The image the labels belong to (the store's NGFF image).
    probabilities : (K, Y, X) float ndarray, optional
    probability_encoding : {"float16", "uint8"}, optional
    pixel_size : (float, float), optional
        ``(y, x)`` micrometres.
    ngff_version : {"0.4", "0.5"}, optional
        0.4 (Zarr v2, read by most viewers today) or 0.5 (Zarr v3).
    overwrite : bool, optional
        Replace an existing lapseg store at ``path``.
    """
    labels = np.asarray(labels)
    if labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer):
        raise LapsegInputError(f"labels must be a (Y, X) integer array, got {labels.shape}")
    if labels.size and labels.min() < 0:
        raise LapsegInputError("labels must be >= 0 (0 is background)")
    for name, array in (("image", image), ("probabilities", probabilities)):
        if array is not None and (array.ndim != 3 or array.shape[1:] != labels.shape):
            raise LapsegInputError(
                f"{name} must be (C, Y, X) with (Y, X) = {labels.shape}, got {array.shape}"
            )
    largest = int(labels.max(initial=0))
    layout = StoreLayout(
        shape=(int(labels.shape[0]), int(labels.shape[1])),
        image_channels=0 if image is None else int(image.shape[0]),
        image_dtype="uint16" if image is None else str(image.dtype),
        label_dtype="uint16" if largest <= np.iinfo(np.uint16).max else "uint32",
        probability_classes=0 if probabilities is None else int(probabilities.shape[0]),
        probability_encoding=probability_encoding,
        ngff_version=ngff_version,
        pixel_size=pixel_size,
    )
    if largest > np.iinfo(np.uint32).max:
        raise LapsegInputError(f"label id {largest} does not fit in uint32")
    store = create_prediction_store(path, layout, overwrite=overwrite)
    everything = (slice(None), slice(None))
    store.write_labels(*everything, labels)
    if image is not None:
        store.write_image(*everything, image)
    if probabilities is not None:
        store.write_probabilities(*everything, probabilities)
    store.mark_complete()
    return Path(path)
