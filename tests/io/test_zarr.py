"""OME-Zarr and large-TIFF reading (lapseg.io.zarr) and prediction stores (lapseg.io.zarr_store)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr

from lapseg.errors import LapsegInputError
from lapseg.io.zarr import PlaneView, open_large_image, open_lazy_tiff, read_ome_zarr
from lapseg.io.zarr_store import (
    LABELS_NAME,
    StoreLayout,
    create_prediction_store,
    dequantize_probabilities,
    open_prediction_store,
    write_ome_zarr,
)


@pytest.fixture
def arrays() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 4000, (2, 40, 56)).astype(np.uint16)
    labels = rng.integers(0, 6, (40, 56)).astype(np.int32)
    prob = rng.random((3, 40, 56)).astype(np.float32)
    return image, labels, prob


def _attributes(group: Path) -> dict:
    """The group attributes as stored on disk (Zarr v2 .zattrs or v3 zarr.json)."""
    if (group / ".zattrs").is_file():
        return json.loads((group / ".zattrs").read_text())
    return json.loads((group / "zarr.json").read_text())["attributes"]


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_round_trip_with_metadata(tmp_path: Path, arrays, version: str) -> None:
    image, labels, prob = arrays
    path = write_ome_zarr(
        tmp_path / "out.zarr",
        labels,
        image=image,
        probabilities=prob,
        pixel_size=(0.5, 0.25),
        ngff_version=version,  # type: ignore[arg-type]
    )
    read = read_ome_zarr(path)
    assert (read.axes, read.shape, read.pixel_size) == ("CYX", (2, 40, 56), (0.5, 0.25))
    assert isinstance(read.array, zarr.Array)  # lazy: nothing read yet
    np.testing.assert_array_equal(read.array[...], image)
    stored = read_ome_zarr(path / "labels" / LABELS_NAME)
    assert stored.axes == "CYX" and stored.array.dtype == np.uint16  # ids fit in uint16
    np.testing.assert_array_equal(stored.array[0], labels)
    probs = read_ome_zarr(path / "probabilities")
    assert probs.array.dtype == np.float16
    np.testing.assert_allclose(dequantize_probabilities(probs.array[...]), prob, atol=1e-3)
    # the NGFF metadata other readers need
    root = _attributes(path)
    ngff = root if version == "0.4" else root["ome"]
    (multiscale,) = ngff["multiscales"]
    assert [a["name"] for a in multiscale["axes"]] == ["c", "y", "x"]
    assert multiscale["datasets"][0]["coordinateTransformations"][0]["scale"] == [1.0, 0.5, 0.25]
    label_attrs = _attributes(path / "labels")
    assert (label_attrs if version == "0.4" else label_attrs["ome"])["labels"] == [LABELS_NAME]
    image_label = _attributes(path / "labels" / LABELS_NAME)
    image_label = image_label if version == "0.4" else image_label["ome"]
    assert image_label["image-label"]["source"] == {"image": "../../"}
    assert root["lapseg"]["complete"] is True


def test_uint8_probabilities_and_uint32_labels(tmp_path: Path, arrays) -> None:
    _, labels, prob = arrays
    labels = labels.astype(np.int64) * 20_000
    path = write_ome_zarr(
        tmp_path / "out.zarr", labels, probabilities=prob, probability_encoding="uint8"
    )
    stored = read_ome_zarr(path / "labels" / LABELS_NAME).array
    assert stored.dtype == np.uint32
    np.testing.assert_array_equal(stored[0], labels)
    quantised = read_ome_zarr(path / "probabilities").array[...]
    assert quantised.dtype == np.uint8
    np.testing.assert_allclose(dequantize_probabilities(quantised), prob, atol=0.5 / 255 + 1e-6)
    assert "multiscales" not in _attributes(path)  # no image written: the root is no image


def test_incomplete_store_is_refused_until_marked_complete(tmp_path: Path) -> None:
    store = create_prediction_store(tmp_path / "out.zarr", StoreLayout(shape=(30, 20), chunk=16))
    store.write_labels(slice(0, 10), slice(0, 10), np.ones((10, 10), np.uint32))
    for group in (store.path, store.path / "labels" / LABELS_NAME):
        with pytest.raises(LapsegInputError, match="incomplete") as info:
            read_ome_zarr(group)
        assert "\n" not in str(info.value) and str(group) in str(info.value)
    assert read_ome_zarr(store.path / "labels" / LABELS_NAME, allow_incomplete=True).shape == (
        1,
        30,
        20,
    )
    assert not open_prediction_store(store.path).complete
    store.mark_complete()
    assert open_prediction_store(store.path).complete
    assert read_ome_zarr(store.path / "labels" / LABELS_NAME).array[0, 0, 0] == 1


def test_existing_outputs_are_protected(tmp_path: Path, arrays) -> None:
    _, labels, _ = arrays
    path = write_ome_zarr(tmp_path / "out.zarr", labels)
    with pytest.raises(LapsegInputError, match="exists"):
        write_ome_zarr(path, labels)
    write_ome_zarr(path, labels + 1, overwrite=True)
    np.testing.assert_array_equal(read_ome_zarr(path / "labels" / LABELS_NAME).array[0], labels + 1)
    foreign = tmp_path / "data"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("precious")
    with pytest.raises(LapsegInputError, match="not a lapseg prediction store"):
        write_ome_zarr(foreign, labels, overwrite=True)
    assert (foreign / "keep.txt").read_text() == "precious"


# --------------------------------------------------------------------------- other stores


def _ngff_group(path: Path, data: np.ndarray, names: str, version: str) -> None:
    """A minimal NGFF image written with zarr alone (as another tool would)."""
    group = zarr.open_group(str(path), mode="w", zarr_format=2 if version == "0.4" else 3)
    group.create_array("s0", data=data)
    axes = [{"name": n, "type": {"t": "time", "c": "channel"}.get(n, "space")} for n in names]
    multiscale = {
        "axes": axes,
        "datasets": [
            {
                "path": "s0",
                "coordinateTransformations": [{"type": "scale", "scale": [1.0] * data.ndim}],
            }
        ],
    }
    if version == "0.4":
        group.attrs.update({"multiscales": [{**multiscale, "version": "0.4"}]})
    else:
        group.attrs.update({"ome": {"version": "0.5", "multiscales": [multiscale]}})


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_time_lapse_and_z_stack_axes_come_from_the_metadata(tmp_path: Path, version: str) -> None:
    movie = np.arange(3 * 2 * 12 * 10, dtype=np.uint16).reshape(3, 2, 12, 10)
    _ngff_group(tmp_path / "movie.zarr", movie, "tcyx", version)
    read = read_ome_zarr(tmp_path / "movie.zarr")
    assert read.axes == "TCYX" and read.pixel_size is None  # no units: no micrometres
    plane = read.plane(t=2)
    assert plane.shape == (2, 12, 10)
    np.testing.assert_array_equal(plane[:, 3:7, 2:5], movie[2, :, 3:7, 2:5])
    stack = np.arange(4 * 12 * 10, dtype=np.uint8).reshape(4, 12, 10)
    _ngff_group(tmp_path / "stack.zarr", stack, "zyx", version)
    read = read_ome_zarr(tmp_path / "stack.zarr")
    assert read.axes == "ZYX"
    np.testing.assert_array_equal(read.plane(z=3)[:, 1:4, :], stack[3][np.newaxis, 1:4, :])
    with pytest.raises(LapsegInputError, match="outside"):
        read.plane(z=4)


def test_store_without_ngff_metadata_needs_axes(tmp_path: Path) -> None:
    path = tmp_path / "plain.zarr"
    data = np.arange(2 * 8 * 6, dtype=np.uint16).reshape(8, 6, 2)
    zarr.create_array(str(path), data=data)
    with pytest.raises(LapsegInputError) as info:
        read_ome_zarr(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message and "pass axes" in message
    read = read_ome_zarr(path, axes="YXC")
    np.testing.assert_array_equal(read.plane()[:, 2:4, 1:3], data[2:4, 1:3].transpose(2, 0, 1))
    with pytest.raises(LapsegInputError, match="shape"):
        read_ome_zarr(path, axes="YX")
    group = tmp_path / "group.zarr"
    zarr.open_group(str(group), mode="w").create_array("a", data=data)
    with pytest.raises(LapsegInputError, match="pass axes"):
        read_ome_zarr(group)
    assert read_ome_zarr(group, axes="YXC").axes == "YXC"
    with pytest.raises(LapsegInputError, match="not a Zarr store"):
        read_ome_zarr(tmp_path / "missing.zarr")


def test_unknown_ngff_axis_names_need_axes(tmp_path: Path) -> None:
    _ngff_group(tmp_path / "odd.zarr", np.zeros((2, 5, 5), np.uint8), ["angle", "y", "x"], "0.4")  # type: ignore[arg-type]
    with pytest.raises(LapsegInputError, match="pass axes"):
        read_ome_zarr(tmp_path / "odd.zarr")
    assert read_ome_zarr(tmp_path / "odd.zarr", axes="TYX").axes == "TYX"


# --------------------------------------------------------------------------- TIFF


def test_lazy_tiff_tiled_and_contiguous(tmp_path: Path) -> None:
    data = np.random.default_rng(1).integers(0, 60000, (3, 300, 200)).astype(np.uint16)
    tiled, plain = tmp_path / "tiled.tif", tmp_path / "plain.tif"
    tifffile.imwrite(
        tiled,
        data,
        tile=(64, 64),
        compression="zlib",
        photometric="minisblack",
        metadata={"axes": "CYX"},
    )
    tifffile.imwrite(plain, data, photometric="minisblack", metadata={"axes": "CYX"})
    for path in (tiled, plain):
        with open_lazy_tiff(path) as lazy:
            assert lazy.axes == "CYX" and lazy.shape == data.shape
            view = lazy.plane()
            assert isinstance(view, PlaneView)
            np.testing.assert_array_equal(view[:, 70:190, 3:150], data[:, 70:190, 3:150])
    with open_lazy_tiff(tiled) as lazy:
        assert isinstance(lazy.array, zarr.Array)


def test_open_large_image_reads_small_tiffs_into_memory(tmp_path: Path) -> None:
    data = np.arange(50 * 40 * 3, dtype=np.uint8).reshape(50, 40, 3)
    path = tmp_path / "rgb.tif"
    tifffile.imwrite(path, data, photometric="rgb")
    small = open_large_image(path)
    assert isinstance(small.array, np.ndarray) and small.axes == "YXC"
    with open_large_image(path, lazy_from_bytes=0) as large:
        assert not isinstance(large.array, np.ndarray)
        np.testing.assert_array_equal(large.plane()[:, 5:9, :], data[5:9].transpose(2, 0, 1))
    with pytest.raises(LapsegInputError, match="OME-Zarr stores or TIFF"):
        open_large_image(tmp_path / "image.png")


def test_tiff_with_unreadable_axes_asks_for_axes(tmp_path: Path) -> None:
    path = tmp_path / "q.tif"
    tifffile.imwrite(
        path, np.zeros((2, 3, 8, 8), np.uint8), photometric="minisblack", metadata={"axes": "QQYX"}
    )
    with pytest.raises(LapsegInputError, match="pass axes") as info:
        open_lazy_tiff(path)
    assert str(path) in str(info.value)
    with open_lazy_tiff(path, axes="TCYX") as lazy:
        assert lazy.plane(t=1).shape == (3, 8, 8)
