from __future__ import annotations

import json
from pathlib import Path

import pytest

from lapseg.errors import LapsegInputError
from lapseg.io.discovery import (
    SamplePaths,
    discover_folder_pairs,
    discover_images,
    discover_sample_folders,
    natural_sort_key,
)
from lapseg.io.sample_lists import read_sample_list

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")  # discovery never opens the files
    return path


def test_natural_sort_key() -> None:
    names = ["frame10.tif", "Frame2.tif", "frame1.tif", "frame2b.tif", "a.tif"]
    assert sorted(names, key=natural_sort_key) == [
        "a.tif",
        "frame1.tif",
        "Frame2.tif",
        "frame2b.tif",
        "frame10.tif",
    ]
    # ties by case are broken deterministically
    assert sorted(["B", "b"], key=natural_sort_key) == ["B", "b"]


def test_folder_pairs_with_suffix_and_mixed_extensions(tmp_path: Path) -> None:
    for stem in ["img10", "img2", "img1"]:
        _touch(tmp_path / "images" / f"{stem}.tif")
        _touch(tmp_path / "masks" / f"{stem}_mask.png")
    _touch(tmp_path / "images" / "notes.txt")  # ignored
    _touch(tmp_path / "images" / ".hidden.tif")  # ignored
    samples = discover_folder_pairs(tmp_path, mask_suffix="_mask")
    assert [s.name for s in samples] == ["img1", "img2", "img10"]
    assert samples[1] == SamplePaths(
        name="img2",
        image=tmp_path / "images" / "img2.tif",
        mask=tmp_path / "masks" / "img2_mask.png",
    )


def test_folder_pairs_image_without_mask(tmp_path: Path) -> None:
    _touch(tmp_path / "images" / "a.tif")
    _touch(tmp_path / "images" / "b.tif")
    _touch(tmp_path / "masks" / "a.tif")
    with pytest.raises(LapsegInputError, match=r"1 image\(s\) have no mask b"):
        discover_folder_pairs(tmp_path)
    samples = discover_folder_pairs(tmp_path, require_masks=False)
    assert [(s.name, s.mask is None) for s in samples] == [("a", False), ("b", True)]


def test_folder_pairs_without_masks_folder(tmp_path: Path) -> None:
    _touch(tmp_path / "images" / "a.tif")
    with pytest.raises(LapsegInputError, match="masks folder not found"):
        discover_folder_pairs(tmp_path)
    assert discover_folder_pairs(tmp_path, require_masks=False)[0].mask is None


def test_folder_pairs_mask_without_image(tmp_path: Path) -> None:
    _touch(tmp_path / "images" / "a.tif")
    _touch(tmp_path / "masks" / "a.tif")
    _touch(tmp_path / "masks" / "zz.tif")
    with pytest.raises(LapsegInputError, match=r"mask zz\.tif has no image"):
        discover_folder_pairs(tmp_path)


def test_folder_pairs_duplicate_stem(tmp_path: Path) -> None:
    _touch(tmp_path / "images" / "a.tif")
    _touch(tmp_path / "images" / "a.png")
    _touch(tmp_path / "masks" / "a.tif")
    with pytest.raises(LapsegInputError, match="share the stem 'a'"):
        discover_folder_pairs(tmp_path)


def test_folder_pairs_missing_and_empty(tmp_path: Path) -> None:
    with pytest.raises(LapsegInputError, match="dataset folder not found"):
        discover_folder_pairs(tmp_path / "nothing")
    (tmp_path / "images").mkdir()
    with pytest.raises(LapsegInputError, match="no image files"):
        discover_folder_pairs(tmp_path)


def test_sample_folders(tmp_path: Path) -> None:
    for name in ["set10", "set2", "extra/set1"]:
        _touch(tmp_path / name / "raw.tif")
        _touch(tmp_path / name / "instances_ids.png")
    _touch(tmp_path / ".trash" / "raw.tif")  # hidden folder ignored
    samples = discover_sample_folders(tmp_path)
    assert [s.name for s in samples] == ["extra_set1", "set2", "set10"]
    assert samples[0].mask == tmp_path / "extra" / "set1" / "instances_ids.png"


def test_sample_folders_missing_mask(tmp_path: Path) -> None:
    _touch(tmp_path / "s1" / "raw.tif")
    with pytest.raises(LapsegInputError, match=r"no instances_ids\.png"):
        discover_sample_folders(tmp_path)
    assert discover_sample_folders(tmp_path, require_masks=False)[0].mask is None
    with pytest.raises(LapsegInputError, match=r"no folder below it contains img\.png"):
        discover_sample_folders(tmp_path, image_name="img.png")


@pytest.mark.shared_data
def test_sample_folders_usiigaci() -> None:
    root = SHARED_DATA / "usiigaci-phc" / "train"
    if not root.exists():
        pytest.skip(f"shared data not available: {root}")
    samples = discover_sample_folders(root)
    assert len(samples) == 45
    assert samples[0].name == "set1"
    assert samples[1].name == "set2"
    assert all(s.mask is not None and s.mask.is_file() for s in samples)


def test_sample_list_csv(tmp_path: Path) -> None:
    _touch(tmp_path / "data" / "a.tif")
    _touch(tmp_path / "data" / "a_mask.png")
    _touch(tmp_path / "data" / "b.tif")
    absolute = _touch(tmp_path / "elsewhere" / "c.png")
    listing = tmp_path / "list.csv"
    listing.write_text(
        f"image,mask,name\ndata/a.tif,data/a_mask.png,\ndata/b.tif,,bee\n{absolute},,\n"
    )
    samples = read_sample_list(listing)
    assert samples == [
        SamplePaths("a", tmp_path / "data" / "a.tif", tmp_path / "data" / "a_mask.png"),
        SamplePaths("bee", tmp_path / "data" / "b.tif", None),
        SamplePaths("c", absolute, None),
    ]


def test_sample_list_json(tmp_path: Path) -> None:
    _touch(tmp_path / "a.tif")
    _touch(tmp_path / "m.tif")
    listing = tmp_path / "list.json"
    listing.write_text(json.dumps([{"image": "a.tif", "mask": "m.tif", "name": "x"}]))
    assert read_sample_list(listing) == [SamplePaths("x", tmp_path / "a.tif", tmp_path / "m.tif")]


def test_sample_list_errors(tmp_path: Path) -> None:
    _touch(tmp_path / "a.tif")
    _touch(tmp_path / "sub" / "a.tif")
    bad = tmp_path / "bad.csv"
    bad.write_text("image,mask\na.tif,\nmissing.tif,\n")
    with pytest.raises(LapsegInputError, match=r"bad\.csv: line 3: file not found"):
        read_sample_list(bad)
    dup = tmp_path / "dup.csv"
    dup.write_text("image\na.tif\nsub/a.tif\n")
    with pytest.raises(LapsegInputError, match="line 3: duplicate sample name 'a'"):
        read_sample_list(dup)
    header = tmp_path / "header.csv"
    header.write_text("img,mask\na.tif,\n")
    with pytest.raises(LapsegInputError, match="CSV header must be"):
        read_sample_list(header)
    js = tmp_path / "bad.json"
    js.write_text(json.dumps([{"image": "a.tif"}, {"mask": "a.tif"}]))
    with pytest.raises(LapsegInputError, match="entry 1: 'image' must be"):
        read_sample_list(js)
    js.write_text(json.dumps([{"image": "a.tif", "msk": "a.tif"}]))
    with pytest.raises(LapsegInputError, match="entry 0: unknown field"):
        read_sample_list(js)
    js.write_text("{not json")
    with pytest.raises(LapsegInputError, match="invalid JSON"):
        read_sample_list(js)
    with pytest.raises(LapsegInputError, match="sample list not found"):
        read_sample_list(tmp_path / "none.csv")


def test_discover_images(tmp_path: Path) -> None:
    for name in ["b10.TIF", "b9.png", "notes.md", ".x.tif"]:
        _touch(tmp_path / name)
    assert discover_images(tmp_path) == [tmp_path / "b9.png", tmp_path / "b10.TIF"]
    assert discover_images(tmp_path / "b9.png") == [tmp_path / "b9.png"]
    with pytest.raises(LapsegInputError, match="unsupported extension"):
        discover_images(tmp_path / "notes.md")
    with pytest.raises(LapsegInputError, match="input not found"):
        discover_images(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(LapsegInputError, match="no image files"):
        discover_images(tmp_path / "empty")
