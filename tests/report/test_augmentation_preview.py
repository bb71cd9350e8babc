"""The augmentation preview grid."""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from lapseg.config import AUGMENTATION_PRESETS
from lapseg.data.samples import Sample
from lapseg.report.preview import GAP, write_augmentation_preview


def samples() -> list[Sample]:
    image = np.zeros((1, 40, 40), dtype=np.float32)
    image[0, 10:30, 10:30] = 1.0
    return [Sample(name="square", image=image, target=(image[0] > 0.5).astype(np.int64))]


def test_preview_png_is_written_with_outlines(tmp_path: Path) -> None:
    path = write_augmentation_preview(
        samples(),
        AUGMENTATION_PRESETS["seed002"],
        tmp_path / "sub" / "preview.png",
        n=4,
        patch_size=(32, 32),
        rng=0,
    )
    grid = iio.imread(path)
    assert grid.shape == (2 * 32 + 3 * GAP, 2 * 32 + 3 * GAP, 3)
    yellow = np.all(grid == (255, 255, 0), axis=-1)
    assert yellow.sum() > 4 * 20  # an outline in every tile


def test_preview_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no samples"):
        write_augmentation_preview([], AUGMENTATION_PRESETS["default"], tmp_path / "p.png")
    with pytest.raises(ValueError, match="n=0"):
        write_augmentation_preview(
            samples(), AUGMENTATION_PRESETS["default"], tmp_path / "p.png", n=0
        )
