"""Round-trip tests of the contour exports (edge pixels, GeoJSON, ImageJ ROI zip)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from roifile import roiread
from skimage.draw import disk, ellipse, polygon
from skimage.segmentation import find_boundaries

from lapseg.errors import LapsegInputError
from lapseg.io.contours import (
    contour_path,
    edge_pixels,
    object_polygons,
    write_contours,
    write_edge_pixels,
    write_geojson,
    write_imagej_rois,
)
from lapseg.io.labels import to_instances


def _labels() -> np.ndarray:
    """Convex-ish objects, two of them touching, one at the image border."""
    labels = np.zeros((80, 90), np.uint16)
    labels[disk((20, 20), 10, shape=labels.shape)] = 3
    labels[ellipse(55, 30, 12, 18, shape=labels.shape, rotation=0.4)] = 7
    labels[10:30, 32:45] = 9  # touches object 3
    labels[60:80, 70:90] = 12  # at the image corner
    return labels


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sum(a & b) / np.sum(a | b))


def _rasterise(xy: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    out = np.zeros(shape, bool)
    rr, cc = polygon(xy[:, 1], xy[:, 0], shape=shape)
    out[rr, cc] = True
    return out


def test_edge_pixels_exact() -> None:
    labels = _labels()
    rows = edge_pixels(labels)
    expected = find_boundaries(np.pad(labels, 1), mode="inner", connectivity=2)[1:-1, 1:-1]
    got = np.zeros(labels.shape, bool)
    got[rows[:, 1], rows[:, 2]] = True
    np.testing.assert_array_equal(got, expected & (labels > 0))
    np.testing.assert_array_equal(rows[:, 0], labels[rows[:, 1], rows[:, 2]])
    assert set(rows[:, 0].tolist()) == {3, 7, 9, 12}


def test_edge_pixels_hand_computed() -> None:
    mask = np.zeros((5, 5), bool)
    mask[1:4, 1:4] = True  # 3x3 square: 8 edge pixels, the centre is interior
    rows = edge_pixels(mask)
    assert rows.shape == (8, 3)
    assert (1, 2, 2) not in {tuple(r) for r in rows.tolist()}
    assert rows[0].tolist() == [1, 1, 1]


def test_edge_csv_roundtrip(tmp_path: Path) -> None:
    labels = _labels()
    path = write_edge_pixels(labels, tmp_path / "edges.csv")
    with path.open(newline="") as handle:
        table = list(csv.DictReader(handle))
    back = np.array([[int(r["label"]), int(r["y"]), int(r["x"])] for r in table])
    np.testing.assert_array_equal(back, edge_pixels(labels))


def test_geojson_roundtrip(tmp_path: Path) -> None:
    labels = _labels()
    path = write_geojson(labels, tmp_path / "objects.geojson")
    data = json.loads(path.read_text())
    assert data["type"] == "FeatureCollection"
    assert [f["properties"]["label"] for f in data["features"]] == [3, 7, 9, 12]
    for feature in data["features"]:
        assert feature["geometry"]["type"] == "Polygon"
        ring = np.array(feature["geometry"]["coordinates"][0])
        np.testing.assert_array_equal(ring[0], ring[-1])  # closed ring
        n = feature["properties"]["label"]
        assert _iou(_rasterise(ring, labels.shape), labels == n) > 0.95


def test_imagej_roi_roundtrip(tmp_path: Path) -> None:
    labels = _labels()
    path = write_imagej_rois(labels, tmp_path / "rois.zip")
    rois = roiread(path)
    assert [r.name for r in rois] == ["label_3", "label_7", "label_9", "label_12"]
    for roi in rois:
        n = int(roi.name.split("_")[1])
        xy = roi.coordinates() - 0.5  # ImageJ pixel corners -> pixel centres
        assert _iou(_rasterise(xy, labels.shape), labels == n) > 0.95


def test_binary_mask_becomes_components() -> None:
    mask = np.zeros((20, 20), np.uint8)
    mask[2:6, 2:6] = 255
    mask[10:15, 10:15] = 255
    labels = to_instances(mask)
    assert labels.max() == 2
    assert set(object_polygons(mask)) == {1, 2}
    # a label image keeps its own labels
    assert set(object_polygons(_labels())) == {3, 7, 9, 12}


def test_write_contours_dispatch(tmp_path: Path) -> None:
    labels = _labels()
    for fmt in ("edges", "geojson", "roi"):
        path = write_contours(labels, contour_path(tmp_path, "img", fmt), fmt=fmt)
        assert path.is_file() and path.stem == "img"
    assert not list(tmp_path.glob(".*"))  # no temporary files left behind


def test_bad_inputs(tmp_path: Path) -> None:
    with pytest.raises(LapsegInputError, match="format"):
        write_contours(_labels(), tmp_path / "a.csv", fmt="svg")
    with pytest.raises(LapsegInputError, match=r"\.geojson"):
        write_geojson(_labels(), tmp_path / "a.json")
    with pytest.raises(LapsegInputError, match="Y, X"):
        edge_pixels(np.zeros((2, 3, 4), np.uint8))
    with pytest.raises(LapsegInputError, match="integers"):
        edge_pixels(np.zeros((3, 4), np.float32))
    with pytest.raises(LapsegInputError, match="negative"):
        edge_pixels(-np.ones((3, 4), np.int32))
    with pytest.raises(LapsegInputError, match="empty"):
        write_imagej_rois(np.zeros((5, 5), np.uint16), tmp_path / "r.zip")
    assert not (tmp_path / "r.zip").exists()
