"""A checkpoint written by lapseg 0.1 (before the configuration moved to pydantic) still loads
and predicts exactly what it predicted then."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile

from lapseg.inference.predict import load_model, predict_files

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "checkpoint_v0_1"


def test_version_0_1_checkpoint_predicts_what_it_predicted(tmp_path: Path) -> None:
    loaded = load_model(FIXTURE / "best.pt", device="cpu")
    assert loaded.config.data.target == "three_class"
    predict_files([loaded], [FIXTURE / "image.tif"], tmp_path)
    probabilities = tifffile.imread(tmp_path / "probabilities" / "image.tif")
    expected = tifffile.imread(FIXTURE / "probabilities.tif")
    np.testing.assert_allclose(probabilities, expected, atol=1e-5)
    labels = tifffile.imread(tmp_path / "labels" / "image.tif")
    np.testing.assert_array_equal(labels, tifffile.imread(FIXTURE / "labels.tif"))
