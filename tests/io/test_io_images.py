from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile

from lapseg.errors import LapsegInputError
from lapseg.io.images import (
    IMAGE_EXTENSIONS,
    read_image,
    read_mask,
    write_png,
    write_tiff,
)

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def _shared(relative: str) -> Path:
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(f"shared data not available: {path}")
    return path


def test_extensions_cover_formats() -> None:
    assert set(IMAGE_EXTENSIONS) == {".tif", ".tiff", ".png", ".jpg", ".jpeg", ".bmp"}


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
@pytest.mark.parametrize("compression", [None, "lzw", "zlib"])
def test_tiff_round_trip(tmp_path: Path, dtype: type, compression: str | None) -> None:
    array = (np.arange(35).reshape(5, 7) * 3).astype(dtype)
    path = write_tiff(tmp_path / "a.tif", array, compression=compression)
    image = read_image(path)
    assert image.array.dtype == dtype
    assert image.array.shape == (1, 5, 7)
    np.testing.assert_array_equal(image.array[0], array)
    assert image.pixel_size is None
    assert image.path == path
    with tifffile.TiffFile(path) as tif:
        expected = {None: 1, "lzw": 5, "zlib": 8}[compression]
        assert tif.pages[0].compression == expected


def test_plain_tifffile_uppercase_extension(tmp_path: Path) -> None:
    array = np.arange(12, dtype=np.int32).reshape(3, 4)
    tifffile.imwrite(tmp_path / "B.TIFF", array, compression="zlib")
    np.testing.assert_array_equal(read_image(tmp_path / "B.TIFF").array[0], array)


def test_ome_pixel_size_and_axes_round_trip(tmp_path: Path) -> None:
    array = np.arange(2 * 3 * 4, dtype=np.uint16).reshape(3, 4, 2)  # YXC
    path = write_tiff(tmp_path / "c.tif", array, axes="YXC", pixel_size=(0.25, 0.5))
    image = read_image(path)
    assert image.pixel_size == pytest.approx((0.25, 0.5))
    np.testing.assert_array_equal(image.array, np.moveaxis(array, -1, 0))


def test_ome_pixel_size_unit_conversion(tmp_path: Path) -> None:
    path = tmp_path / "nm.ome.tif"
    metadata = {
        "axes": "YX",
        "PhysicalSizeX": 650.0,
        "PhysicalSizeXUnit": "nm",
        "PhysicalSizeY": 0.001,
        "PhysicalSizeYUnit": "mm",
    }
    tifffile.imwrite(
        path, np.zeros((4, 5), np.uint8), ome=True, photometric="minisblack", metadata=metadata
    )
    assert read_image(path).pixel_size == pytest.approx((1.0, 0.65))


def test_imagej_resolution_micron(tmp_path: Path) -> None:
    path = tmp_path / "ij.tif"
    tifffile.imwrite(
        path,
        np.zeros((2, 4, 5), np.float32),
        imagej=True,
        resolution=(2.0, 4.0),  # pixels per micron in x, y
        metadata={"axes": "CYX", "unit": "micron"},
    )
    image = read_image(path)
    assert image.array.shape == (2, 4, 5)
    assert image.pixel_size == pytest.approx((0.25, 0.5))


def test_metadata_axes_vs_explicit_axes(tmp_path: Path) -> None:
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = tmp_path / "m.tif"
    tifffile.imwrite(path, array, photometric="minisblack", metadata={"axes": "CYX"})
    np.testing.assert_array_equal(read_image(path).array, array)  # from metadata
    # explicit axes override: the same data named Y, X, C
    explicit = read_image(path, axes="YXC").array
    assert explicit.shape == (4, 2, 3)
    np.testing.assert_array_equal(explicit, np.moveaxis(array, -1, 0))


def test_tiff_without_axes_metadata_needs_axes(tmp_path: Path) -> None:
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    path = tmp_path / "q.tif"
    tifffile.imwrite(path, array, photometric="minisblack")  # shaped file, axes "QYX"
    with pytest.raises(LapsegInputError, match=r"q\.tif.*pass axes"):
        read_image(path)
    np.testing.assert_array_equal(read_image(path, axes="CYX").array, array)


def test_explicit_axes_wrong_length(tmp_path: Path) -> None:
    path = write_tiff(tmp_path / "a.tif", np.zeros((3, 4), np.uint8))
    with pytest.raises(LapsegInputError, match=r"a\.tif"):
        read_image(path, axes="CYX")


def test_time_axis_rejected(tmp_path: Path) -> None:
    path = write_tiff(tmp_path / "t.tif", np.zeros((2, 3, 4), np.uint8), axes="TYX")
    with pytest.raises(LapsegInputError, match="T=2"):
        read_image(path)


def test_png_rgb_and_rgba(tmp_path: Path) -> None:
    rgb = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)
    iio.imwrite(tmp_path / "rgb.png", rgb)
    np.testing.assert_array_equal(read_image(tmp_path / "rgb.png").array, np.moveaxis(rgb, -1, 0))
    rgba = np.concatenate([rgb, np.full((4, 5, 1), 255, np.uint8)], axis=-1)
    iio.imwrite(tmp_path / "rgba.png", rgba)
    image = read_image(tmp_path / "rgba.png").array
    assert image.shape == (3, 4, 5)  # alpha dropped
    np.testing.assert_array_equal(image, np.moveaxis(rgb, -1, 0))


def test_png_gray_and_bmp(tmp_path: Path) -> None:
    gray = np.arange(20, dtype=np.uint8).reshape(4, 5)
    write_png(tmp_path / "g.png", gray)
    np.testing.assert_array_equal(read_image(tmp_path / "g.png").array, gray[None])
    iio.imwrite(tmp_path / "g.bmp", gray)
    np.testing.assert_array_equal(read_image(tmp_path / "g.bmp").array, gray[None])


def test_write_png_uint16_and_bad_dtype(tmp_path: Path) -> None:
    array = np.array([[0, 1000], [65535, 7]], np.uint16)
    write_png(tmp_path / "u16.png", array)
    assert read_mask(tmp_path / "u16.png").dtype == np.uint16
    np.testing.assert_array_equal(read_mask(tmp_path / "u16.png"), array)
    with pytest.raises(LapsegInputError, match="uint8 or uint16"):
        write_png(tmp_path / "f.png", array.astype(np.float32))
    assert not (tmp_path / "f.png").exists()


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(LapsegInputError, match=r"nope\.tif: file not found"):
        read_image(tmp_path / "nope.tif")


def test_unsupported_extension(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(LapsegInputError, match=r"a\.txt: unsupported extension"):
        read_image(tmp_path / "a.txt")


@pytest.mark.parametrize("name", ["x.tif", "x.png"])
def test_corrupt_file(tmp_path: Path, name: str) -> None:
    (tmp_path / name).write_bytes(b"this is not an image" * 20)
    with pytest.raises(LapsegInputError, match=rf"{name}: cannot read image"):
        read_image(tmp_path / name)


def test_empty_image(tmp_path: Path) -> None:
    path = tmp_path / "e.tif"
    with pytest.warns(UserWarning, match="zero-size"):
        tifffile.imwrite(path, np.zeros((0, 4), np.uint8))
    with pytest.raises(LapsegInputError, match=r"e\.tif"):
        read_image(path)


def test_read_mask_dtypes(tmp_path: Path) -> None:
    labels = np.array([[0, 1], [2, 300]], np.uint16)
    write_tiff(tmp_path / "u16.tif", labels)
    assert read_mask(tmp_path / "u16.tif").dtype == np.uint16
    write_tiff(tmp_path / "b.tif", np.array([[True, False]]))
    bool_mask = read_mask(tmp_path / "b.tif")
    assert bool_mask.dtype == np.uint8
    np.testing.assert_array_equal(bool_mask, [[1, 0]])
    write_tiff(tmp_path / "f.tif", labels.astype(np.float32))
    float_mask = read_mask(tmp_path / "f.tif")
    assert float_mask.dtype == np.int32
    np.testing.assert_array_equal(float_mask, labels)


def test_read_mask_rejects_fractional_and_colour(tmp_path: Path) -> None:
    write_tiff(tmp_path / "frac.tif", np.array([[0.0, 0.5]], np.float32))
    with pytest.raises(LapsegInputError, match=r"frac\.tif: mask has fractional"):
        read_mask(tmp_path / "frac.tif")
    colour = np.zeros((3, 4, 3), np.uint8)
    colour[0, 0] = (255, 0, 0)
    iio.imwrite(tmp_path / "colour.png", colour)
    with pytest.raises(LapsegInputError, match="mask has colour channels"):
        read_mask(tmp_path / "colour.png")


def test_read_mask_grey_rgb_becomes_one_channel(tmp_path: Path) -> None:
    grey = np.array([[0, 3], [3, 7]], np.uint8)
    iio.imwrite(tmp_path / "grey.png", np.stack([grey] * 3, axis=-1))
    mask = read_mask(tmp_path / "grey.png")
    assert mask.shape == (2, 2)
    np.testing.assert_array_equal(mask, grey)


@pytest.mark.shared_data
def test_ctc_lzw_tiff() -> None:
    path = _shared("ctc-DIC-C2DH-HeLa/01/t000.tif")
    image = read_image(path)
    assert image.array.shape == (1, 512, 512)
    assert image.array.dtype == np.uint8
    assert image.array.std() > 0
    mask = read_mask(_shared("ctc-DIC-C2DH-HeLa/01_GT/SEG/man_seg002.tif"))
    assert mask.dtype == np.uint16
    assert mask.shape == (512, 512)
    assert mask.max() > 1


@pytest.mark.shared_data
def test_usiigaci_image_and_mask() -> None:
    folder = _shared("usiigaci-phc/train/set1")
    image = read_image(folder / "raw.tif")
    assert image.array.shape == (1, 1022, 1024)
    assert image.array.dtype == np.uint16
    mask = read_mask(folder / "instances_ids.png")
    assert mask.shape == (1022, 1024)
    assert mask.dtype == np.uint8


def test_read_mask_palette_png_gives_indices(tmp_path: Path) -> None:
    from PIL import Image

    indices = np.array([[0, 1], [2, 3]], np.uint8)
    image = Image.fromarray(indices, mode="P")
    image.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255])
    image.save(tmp_path / "palette.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "palette.png"), indices)
    assert read_image(tmp_path / "palette.png").array.shape == (3, 2, 2)  # colours for images
