"""Ensembles average the members' probability maps; TTA on the CLI path changes nothing for
an equivariant check but still returns valid probabilities."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from lapseg.config import load_config
from lapseg.inference.predict import load_model, predict_probabilities
from lapseg.inference.tta import dihedral_tta
from lapseg.training.trainer import fit

TINY = [
    "model.base_features=4",
    "model.depth=2",
    "train.epochs=1",
    "train.patch_size=[48, 48]",
    "train.patches_per_epoch=4",
    "train.batch_size=4",
    "train.tensorboard=false",
    "predict.tile_size=[64, 64]",
]


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    from conftest import write_pairs

    root = tmp_path_factory.mktemp("ensemble")
    data = write_pairs(root / "data", 4, seed=7)
    runs = []
    for seed in (1, 2):
        config = load_config(None, [*TINY, f"train.seed={seed}"])
        runs.append(fit(config, data, root / f"run{seed}", progress=False).run_dir)
    return data, runs[0], runs[1]


def test_ensemble_is_the_mean_of_its_members(two_runs):
    from lapseg.io.images import read_image

    data, run_a, run_b = two_runs
    image = read_image(data / "images" / "img0.tif").array
    a, b = load_model(run_a), load_model(run_b)
    pa = predict_probabilities([a], image)
    pb = predict_probabilities([b], image)
    both = predict_probabilities([a, b], image)
    assert not np.allclose(pa, pb)  # different seeds, different models
    np.testing.assert_allclose(both, (pa + pb) / 2, atol=1e-6)


def test_tta_gives_probabilities_close_to_plain_prediction(two_runs):
    from lapseg.io.images import read_image

    data, run_a, _ = two_runs
    image = read_image(data / "images" / "img1.tif").array
    plain = load_model(run_a)
    tta = replace(plain, predictor=dihedral_tta(plain.predictor))
    p_plain = predict_probabilities([plain], image)
    p_tta = predict_probabilities([tta], image)
    assert p_tta.shape == p_plain.shape
    assert p_tta.min() >= 0.0 and p_tta.max() <= 1.0
    assert not np.array_equal(p_tta, p_plain)  # a conv net is not exactly flip-equivariant
