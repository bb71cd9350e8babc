from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import SMALLEST_TRAINING
from lapseg.config import load_config
from lapseg.models.checkpoint import load_checkpoint
from lapseg.training import trainer as trainer_module
from lapseg.training.trainer import fit

TINY = [*SMALLEST_TRAINING, "train.epochs=2"]


def test_run_folder_contents_and_checkpoint(tiny_dataset: Path, tmp_path: Path):
    result = fit(load_config(None, TINY), tiny_dataset, tmp_path / "run", progress=False)
    run = result.run_dir
    for name in (
        "config.yaml",
        "split.json",
        "best.pt",
        "last.pt",
        "history.csv",
        "curves.png",
        "run.json",
        "normalization.json",
    ):
        assert (run / name).is_file(), name
    assert len(result.history) == 2
    assert {"train_loss", "val_loss", "val_dice", "lr"} <= set(result.history[0])
    checkpoint = load_checkpoint(run / "best.pt")
    assert checkpoint["normalization"]["mode"] == "percentile"
    assert checkpoint["config"]["model"]["base_features"] == 4
    # the split is by name, disjoint, and covers the six samples
    split = checkpoint["split"]
    assert sorted(split["train"] + split["val"] + split["test"]) == sorted(
        f"img{i}" for i in range(6)
    )


def test_refuses_non_empty_run_folder(tiny_dataset: Path, tmp_path: Path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "something").write_text("x")
    with pytest.raises(Exception, match="not empty"):
        fit(load_config(None, TINY), tiny_dataset, run, progress=False)


@pytest.mark.parametrize("ema_decay", [0.0, 0.9])
def test_resume_after_interrupt_equals_uninterrupted_run(
    tiny_dataset: Path, tmp_path: Path, monkeypatch, ema_decay: float
):
    overrides = ["train.epochs=3", "model.dropout=0.2", f"train.ema_decay={ema_decay}"]
    config = load_config(None, [*TINY, *overrides])
    full = fit(config, tiny_dataset, tmp_path / "full", progress=False)

    real = trainer_module.train_one_epoch
    calls = {"n": 0}

    def interrupted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(trainer_module, "train_one_epoch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        fit(config, tiny_dataset, tmp_path / "resumed", progress=False)
    assert load_checkpoint(tmp_path / "resumed" / "last.pt")["epoch"] == 1
    monkeypatch.setattr(trainer_module, "train_one_epoch", real)
    resumed = fit(config, tiny_dataset, tmp_path / "resumed", resume=True, progress=False)

    full_state = load_checkpoint(full.last_checkpoint)
    resumed_state = load_checkpoint(resumed.last_checkpoint)
    kinds = ["model_state", "trained_model_state"] if ema_decay else ["model_state"]
    assert ("trained_model_state" in full_state) == bool(ema_decay)
    for kind in kinds:  # the average and the trained weights both continue exactly
        a, b = full_state[kind], resumed_state[kind]
        for key in a:
            torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=f"{kind} {key}")
    assert [round(r["train_loss"], 6) for r in full.history] == [
        round(r["train_loss"], 6) for r in resumed.history
    ]


@pytest.mark.slow
def test_end_to_end_training_reaches_high_held_out_dice(tmp_path: Path):
    from conftest import write_pairs
    from lapseg.inference.predict import load_model, model_mask, predict_probabilities
    from lapseg.io.images import read_image, read_mask

    train_root = write_pairs(tmp_path / "train", 12, seed=1)
    test_root = write_pairs(tmp_path / "test", 4, seed=2)
    config = load_config(
        None,
        [
            "data.task=binary",
            "model.base_features=8",
            "model.depth=3",
            "train.epochs=15",
            "train.patch_size=[96, 96]",
            "train.patches_per_epoch=32",
            "train.batch_size=8",
            "train.lr=0.003",
            "train.tensorboard=false",
            "predict.tile_size=[96, 96]",
        ],
    )
    result = fit(config, train_root, tmp_path / "run", progress=False)
    model = load_model(result.run_dir)
    tp = fp = fn = 0
    for path in sorted((test_root / "images").glob("*.tif")):
        prob = predict_probabilities([model], read_image(path).array)
        truth = read_mask(test_root / "masks" / path.name) > 0
        pred = model_mask(model, prob) > 0
        tp += np.sum(pred & truth)
        fp += np.sum(pred & ~truth)
        fn += np.sum(~pred & truth)
    dice = 2 * tp / (2 * tp + fp + fn)
    assert dice > 0.85, dice


def test_curriculum_stage_switch_is_logged_and_survives_resume(tiny_dataset: Path, tmp_path: Path):
    import yaml

    config_file = tmp_path / "c.yaml"
    config_file.write_text(
        yaml.safe_dump(
            {
                "augment": {
                    "preset": "seed002",
                    "curriculum": [
                        {"name": "elastic", "transforms": ["elastic"], "after_epoch": 1}
                    ],
                }
            }
        )
    )
    config = load_config(config_file, [*TINY, "train.epochs=3"])
    result = fit(config, tiny_dataset, tmp_path / "run", progress=False)
    assert [row["stage"] for row in result.history] == [0, 1, 1]
    assert load_checkpoint(result.last_checkpoint)["curriculum"]["stage"] == 1


def test_valid_padding_model_trains_on_context_patches(tiny_dataset: Path, tmp_path: Path):
    config = load_config(None, [*TINY, "model.padding=valid", "train.patch_size=[60, 60]"])
    result = fit(config, tiny_dataset, tmp_path / "run", progress=False)
    assert np.isfinite(result.history[-1]["train_loss"])
    assert 0.0 <= result.history[-1]["val_dice"] <= 1.0


def test_tensorboard_events_are_written_when_enabled(tiny_dataset: Path, tmp_path: Path):
    pytest.importorskip("tensorboard")
    config = load_config(None, [*TINY, "train.epochs=1", "train.tensorboard=true"])
    result = fit(config, tiny_dataset, tmp_path / "run", progress=False)
    events = list((result.run_dir / "tensorboard").glob("events.out.tfevents.*"))
    assert len(events) == 1 and events[0].stat().st_size > 0
