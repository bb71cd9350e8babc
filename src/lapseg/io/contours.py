"""Export object outlines from a label image: edge pixels, GeoJSON polygons, ImageJ ROI zip.

Input is a ``(Y, X)`` label image (uint16 instance labels, 0 = background) or a binary mask
(every 4-connected foreground component becomes one object, labelled 1, 2, ... in scan order:
:func:`lapseg.io.labels.to_instances`).

* :func:`edge_pixels` / :func:`write_edge_pixels`: the pixels of each object that touch another
  value in their 8-neighbourhood (seed 000's ``edge_pixels`` file), as CSV ``label,y,x``.
* :func:`object_polygons` / :func:`write_geojson`: one polygon per object traced with
  :func:`skimage.measure.find_contours` at level 0.5 on the object's padded binary mask (the
  longest outline; holes are not exported). Coordinates are ``x, y`` in pixel units with the
  pixel centre at integer positions, as QuPath and GeoJSON viewers expect.
* :func:`write_imagej_rois`: the same polygons as an ImageJ/Fiji ROI zip (:mod:`roifile`), one
  polygon ROI per object named ``label_<n>``; open it in Fiji's ROI Manager over the image.

Every writer is atomic.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi
from skimage.measure import find_contours

from lapseg.errors import LapsegInputError
from lapseg.io.discovery import discover_images, output_stem
from lapseg.io.files import atomic_output, write_csv, write_text
from lapseg.io.images import read_mask
from lapseg.io.labels import to_instances

__all__ = [
    "CONTOUR_FORMATS",
    "contour_path",
    "edge_pixels",
    "object_polygons",
    "write_contours",
    "write_edge_pixels",
    "write_geojson",
    "write_imagej_rois",
]

CONTOUR_FORMATS: tuple[str, ...] = ("edges", "geojson", "roi")
"""Formats of :func:`write_contours` and their file suffixes below."""

_SUFFIX = {"edges": ".csv", "geojson": ".geojson", "roi": ".zip"}


def edge_pixels(mask: np.ndarray) -> np.ndarray:
    """Edge pixels of every object: object pixels with a different value among 8 neighbours.

    Pixels on the image border count as edges (the outside is background).

    Parameters
    ----------
    mask : (Y, X) ndarray of int or bool
        Label image or binary mask (see :func:`lapseg.io.labels.to_instances`).

    Returns
    -------
    edges : (N, 3) ndarray of int64
        Rows ``(label, y, x)`` sorted by label, then y, then x.
    """
    labels = to_instances(mask, relabel=False)
    padded = np.pad(labels, 1)
    footprint = np.ones((3, 3), bool)
    highest = ndi.maximum_filter(padded, footprint=footprint)[1:-1, 1:-1]
    lowest = ndi.minimum_filter(padded, footprint=footprint)[1:-1, 1:-1]
    is_edge = (labels > 0) & ((highest != labels) | (lowest != labels))
    ys, xs = np.nonzero(is_edge)
    rows = np.stack([labels[ys, xs], ys, xs], axis=1).astype(np.int64)
    return rows[np.lexsort((rows[:, 2], rows[:, 1], rows[:, 0]))]


def object_polygons(mask: np.ndarray) -> dict[int, np.ndarray]:
    """Outer outline of every object as a closed polygon.

    Parameters
    ----------
    mask : (Y, X) ndarray of int or bool
        Label image or binary mask.

    Returns
    -------
    polygons : dict of int to (N, 2) ndarray of float
        ``label -> (x, y)`` vertices (first vertex repeated at the end), in label order. Of
        an object with several parts or holes, the longest outline is kept.
    """
    labels = to_instances(mask, relabel=False)
    polygons: dict[int, np.ndarray] = {}
    for index, box in enumerate(ndi.find_objects(labels), start=1):
        if box is None:
            continue
        # pad by 1 so the outline closes at the crop border; offset back to image coordinates
        crop = np.pad(labels[box] == index, 1).astype(np.float64)
        contours = find_contours(crop, 0.5)
        if not contours:
            continue
        rc = max(contours, key=len) + np.array([box[0].start - 1, box[1].start - 1])
        polygons[index] = np.ascontiguousarray(rc[:, ::-1])
    return polygons


def _check_path(path: Path, suffix: str) -> Path:
    path = Path(path)
    if path.suffix.lower() != suffix:
        raise LapsegInputError(f"expected a {suffix} file name", path=path)
    return path


def write_edge_pixels(mask: np.ndarray, path: str | Path) -> Path:
    """Write :func:`edge_pixels` as CSV with header ``label,y,x``."""
    path = _check_path(Path(path), ".csv")
    rows = [{"label": n, "y": y, "x": x} for n, y, x in edge_pixels(mask).tolist()]
    return write_csv(path, rows, columns=["label", "y", "x"])


def write_geojson(mask: np.ndarray, path: str | Path) -> Path:
    """Write :func:`object_polygons` as a GeoJSON FeatureCollection.

    Each feature is a ``Polygon`` with ``properties: {"label": n}``; coordinates are
    ``[x, y]`` in pixels.
    """
    path = _check_path(Path(path), ".geojson")
    features = [
        {
            "type": "Feature",
            "geometry": {"type": "Polygon", "coordinates": [np.round(xy, 3).tolist()]},
            "properties": {"label": int(n)},
        }
        for n, xy in object_polygons(mask).items()
    ]
    payload = {"type": "FeatureCollection", "features": features}
    return write_text(path, json.dumps(payload) + "\n")


def write_imagej_rois(mask: np.ndarray, path: str | Path) -> Path:
    """Write :func:`object_polygons` as an ImageJ/Fiji ROI zip (one polygon per object).

    ROI names are ``label_<n>``. ImageJ's pixel ``(x, y)`` covers ``[x, x+1) x [y, y+1)``, so
    vertices are shifted by half a pixel from the pixel-centre convention of the GeoJSON.
    """
    from roifile import ROI_TYPE, ImagejRoi, roiwrite

    path = _check_path(Path(path), ".zip")
    rois = []
    for n, xy in object_polygons(mask).items():
        roi = ImagejRoi.frompoints(xy[:-1] + 0.5, name=f"label_{n}")
        roi.roitype = ROI_TYPE.POLYGON
        rois.append(roi)
    if not rois:
        raise LapsegInputError("no objects to export: the label image is empty", path=path)
    with atomic_output(path) as tmp:
        roiwrite(tmp, rois, mode="w")
    return path


def write_contours(mask: np.ndarray, path: str | Path, *, fmt: str) -> Path:
    """Write outlines in format ``fmt`` (one of :data:`CONTOUR_FORMATS`) to ``path``.

    The file suffix must be ``.csv`` (edges), ``.geojson`` or ``.zip`` (roi).
    """
    writers = {"edges": write_edge_pixels, "geojson": write_geojson, "roi": write_imagej_rois}
    if fmt not in writers:
        raise LapsegInputError(f"unknown contour format {fmt!r}; use {', '.join(CONTOUR_FORMATS)}")
    return writers[fmt](mask, path)


def contour_path(out_dir: str | Path, stem: str, fmt: str) -> Path:
    """Output file of ``stem`` in format ``fmt``: ``out_dir/<stem><suffix>``."""
    if fmt not in _SUFFIX:
        raise LapsegInputError(f"unknown contour format {fmt!r}; use {', '.join(CONTOUR_FORMATS)}")
    return Path(out_dir) / f"{stem}{_SUFFIX[fmt]}"


def export_contours(labels: str | Path, out_dir: str | Path, *, fmt: str) -> list[Path]:
    """Write the outlines of every label image (file or folder) ``labels`` to ``out_dir``.

    Returns the written files, one per label image (``<stem>.geojson``, ``.zip`` or ``.csv``).
    """
    return [
        write_contours(read_mask(path), contour_path(out_dir, output_stem(path), fmt), fmt=fmt)
        for path in discover_images(labels)
    ]
