"""The report's movie section: frames of a predicted movie with track colours and tails."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from lapseg.io.images import write_tiff
from lapseg.report.embed import Gallery
from lapseg.report.html import build_report
from lapseg.report.movies import label_colours, movie_frames, movie_rows, track_paths

N_FRAMES, SIZE = 5, 40


def _movie(root: Path) -> tuple[Path, Path]:
    """A 5-frame movie: track 1 moves right 4 px per frame, track 2 stays; its input stack."""
    labels = np.zeros((N_FRAMES, SIZE, SIZE), np.uint16)
    image = np.full((N_FRAMES, SIZE, SIZE), 10.0, np.float32)
    rows = []
    for t in range(N_FRAMES):
        x = 4 + 4 * t
        labels[t, 5:11, x : x + 6] = 1
        labels[t, 25:33, 25:33] = 2
        image[t][labels[t] > 0] = 200.0
        rows.append({"track_id": 1, "frame": t, "y": 7.5, "x": x + 2.5, "area": 36, "parent": 0})
        rows.append({"track_id": 2, "frame": t, "y": 28.5, "x": 28.5, "area": 64, "parent": 0})
    pred = root / "pred" / "cells"
    write_tiff(pred / "labels.tif", labels, axes="TYX")
    with (pred / "tracks.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    write_tiff(root / "images" / "cells.tif", image, axes="TYX")
    return root / "pred", root / "images" / "cells.tif"


def test_frames_spread_over_the_movie() -> None:
    assert movie_frames(5, 4) == [0, 1, 3, 4]
    assert movie_frames(100, 4) == [0, 33, 66, 99]
    assert movie_frames(3, 4) == [0, 1, 2]


def test_label_colours_distinct_and_background_black() -> None:
    colours = label_colours(50)
    assert colours.shape == (51, 3) and colours.dtype == np.uint8
    assert (colours[0] == 0).all()
    assert len({tuple(c) for c in colours[1:]}) == 50


def test_movie_rows_show_track_colours_and_tails(tmp_path: Path) -> None:
    pred, image = _movie(tmp_path)
    paths = track_paths(pred / "cells" / "tracks.csv")
    assert [p[0] for p in paths[1]] == list(range(N_FRAMES))
    gallery = Gallery()
    rows = movie_rows(pred, {"cells": image}, gallery)
    assert rows is not None and len(rows) == 1
    (row,) = rows
    assert row.stem == "cells"
    assert [f.caption for f in row.figures] == [
        f"cells: frame {t} of {N_FRAMES}" for t in movie_frames(N_FRAMES, 4)
    ]
    assert len(gallery.figures) == 4


def test_tail_drawn_from_past_centroids(tmp_path: Path) -> None:
    from lapseg.report.movies import _frame_rgb

    pred, _ = _movie(tmp_path)
    paths = track_paths(pred / "cells" / "tracks.csv")
    labels = np.zeros((SIZE, SIZE), np.int64)
    labels[5:11, 16:22] = 1  # frame 3 of track 1
    colours = label_colours(2)
    rgb = _frame_rgb(labels, colours, None, paths, 3)
    # the tail runs along y = 8 (7.5 rounded) from x = 6 (frame 0) to x = 18 (frame 3)
    assert (rgb[8, 6:19] == 255).all()
    # a cell pixel off the tail has its track colour (mixed with the black background)
    assert (rgb[6, 20] == (0.55 * colours[1]).astype(np.uint8)).all()
    # pixels off the cells and tails stay black
    assert (rgb[20, 20] == 0).all()


def test_report_has_movie_section_only_with_movies(tmp_path: Path) -> None:
    pred, image = _movie(tmp_path)
    run = tmp_path / "run"
    run.mkdir()
    page = build_report(run, predictions_dir=pred, images_dir=image.parent).read_text()
    assert '<section id="movies">' in page and 'data-movie="cells"' in page
    assert page.count("cells: frame") >= 4
    empty = tmp_path / "still"
    (empty / "masks").mkdir(parents=True)
    page = build_report(run, predictions_dir=empty).read_text()
    assert 'id="movies"' not in page and "Movies" not in page
