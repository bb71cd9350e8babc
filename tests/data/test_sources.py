"""What a dataset holds: layout detection, sparse annotation of movies, empty masks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from lapseg.config import load_config
from lapseg.data.sources import discover_dataset
from lapseg.errors import LapsegInputError
from lapseg.io.layouts import detect_layout


def write_movie(root: Path, *, annotated: tuple[int, ...] = (2, 9, 17), n_frames: int = 20) -> Path:
    """images/movie.tif (T, Y, X) and masks/movie.tif where only some frames have cells."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    frames = np.random.default_rng(0).integers(0, 100, (n_frames, 24, 24)).astype(np.uint16)
    masks = np.zeros((n_frames, 24, 24), np.uint16)
    for t in annotated:
        masks[t, 5:12, 5:12] = 1
        masks[t, 14:20, 14:20] = 2
    tifffile.imwrite(root / "images" / "movie.tif", frames, metadata={"axes": "TYX"})
    tifffile.imwrite(root / "masks" / "movie.tif", masks, metadata={"axes": "TYX"})
    return root


def test_a_movie_with_a_few_annotated_frames(tmp_path: Path) -> None:
    root = write_movie(tmp_path / "d")
    assert detect_layout(root)[0] == "sequences"
    config, sources = discover_dataset(load_config(), root)
    assert config.data.layout == "sequences"
    (movie,) = sources.sequences
    assert movie.annotated == [2, 9, 17]
    assert any("3 of 20 frame(s) annotated (17 all-zero" in note for note in sources.notes)
    _, truly_empty = discover_dataset(load_config(None, ["data.empty_masks=empty"]), root)
    assert truly_empty.sequences[0].annotated == list(range(20))


def test_annotated_frames_list(tmp_path: Path) -> None:
    root = write_movie(tmp_path / "d")
    listing = tmp_path / "annotated.csv"
    listing.write_text("sequence,frame\nmovie,t002\nmovie,5\n")
    _, sources = discover_dataset(load_config(None, [f"data.annotated_frames={listing}"]), root)
    assert sources.sequences[0].annotated == [2, 5]  # frame 5 listed: a truly empty frame
    listing.write_text("sequence,frame\nmovie,t099\n")
    with pytest.raises(LapsegInputError, match="has no frame 't099'"):
        discover_dataset(load_config(None, [f"data.annotated_frames={listing}"]), root)
    listing.write_text("sequence,frame\nother,t001\n")
    with pytest.raises(LapsegInputError, match="no sequence named 'other'"):
        discover_dataset(load_config(None, [f"data.annotated_frames={listing}"]), root)


def test_layouts_are_recognised(tmp_path: Path, tiny_dataset: Path) -> None:
    assert detect_layout(tiny_dataset)[0] == "folders"
    ctc = tmp_path / "ctc"
    (ctc / "01").mkdir(parents=True)
    (ctc / "01_ST" / "SEG").mkdir(parents=True)
    tifffile.imwrite(ctc / "01" / "t000.tif", np.zeros((8, 8), np.uint8))
    assert detect_layout(ctc)[0] == "ctc"
    samples = tmp_path / "samples"
    (samples / "set1").mkdir(parents=True)
    tifffile.imwrite(samples / "set1" / "raw.tif", np.zeros((8, 8), np.uint8))
    tifffile.imwrite(samples / "set1" / "instances_ids.png", np.zeros((8, 8), np.uint8))
    assert detect_layout(samples, mask_name="instances_ids.png")[0] == "sample-folders"
    (tmp_path / "empty").mkdir()
    with pytest.raises(LapsegInputError, match="cannot tell how this dataset is laid out"):
        detect_layout(tmp_path / "empty")


def test_all_zero_still_masks_are_unannotated_unless_asked(tiny_dataset: Path) -> None:
    tifffile.imwrite(tiny_dataset / "masks" / "img0.tif", np.zeros((96, 96), np.uint16))
    _, sources = discover_dataset(load_config(), tiny_dataset)
    assert [s.name for s in sources.samples] == [f"img{i}" for i in range(1, 6)]
    assert "5 of 6 image(s) annotated (1 all-zero" in sources.notes[-1]
    _, everything = discover_dataset(load_config(None, ["data.empty_masks=empty"]), tiny_dataset)
    assert len(everything.samples) == 6
