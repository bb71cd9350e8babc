"""What the widgets run, without Qt: segmenting frames, training from layers, the reader."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
from napari_testdata import TINY, image, movie, trained_model, write_movie_output

from lapseg.config import load_config
from lapseg.data.sources import discover_dataset
from lapseg.errors import LapsegInputError
from lapseg.inference.predict import load_model, model_instances, predict_probabilities
from lapseg.io.images import write_tiff
from lapseg.napari.layers import label_frames, layer_frames
from lapseg.napari.reader import get_reader, read_lapseg
from lapseg.napari.segment import Cancelled, SegmentOptions, segment_frames
from lapseg.napari.train import (
    output_folders,
    parse_settings,
    train_model,
    training_config,
    training_progress,
    write_training_data,
)

MANIFEST = Path(__file__).resolve().parents[2] / "src" / "lapseg" / "napari" / "napari.yaml"


@pytest.fixture(scope="module")
def instance_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return trained_model("instances", tmp_path_factory)


@pytest.fixture(scope="module")
def binary_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return trained_model("binary", tmp_path_factory)


# --------------------------------------------------------------------------- segment


def test_a_single_image_gets_the_models_instances_and_probability(instance_model):
    loaded = load_model(instance_model, device="cpu")
    pixels, _ = image()
    frames = layer_frames(pixels, "YX")
    result = segment_frames([loaded], frames, options=SegmentOptions(probabilities=True))
    expected = model_instances(loaded, predict_probabilities([loaded], frames.array[0]))
    np.testing.assert_array_equal(result.labels, expected)
    assert result.axis is None and result.instances and result.tracks is None
    assert result.probabilities is not None and result.probabilities.shape == (96, 96)
    assert result.probabilities.min() >= 0.0 and result.probabilities.max() <= 1.0


def test_a_movie_is_segmented_frame_by_frame_and_linked_into_tracks(instance_model):
    loaded = load_model(instance_model, device="cpu")
    pixels, _ = movie()
    frames = layer_frames(pixels, "TYX")
    seen: list[tuple[int, int]] = []
    result = segment_frames([loaded], frames, on_frame=lambda d, t: seen.append((d, t)))
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert result.labels.shape == (4, 96, 96) and result.axis == "T"
    for t in range(4):  # linking relabels the model's objects, it does not change them
        alone = model_instances(loaded, predict_probabilities([loaded], frames.array[t]))
        np.testing.assert_array_equal(result.labels[t] > 0, alone > 0)
    assert result.tracks is not None and len(result.tracks)
    for track_id, t, y, x in result.tracks:  # every track point is its label's centroid
        ys, xs = np.nonzero(result.labels[int(t)] == track_id)
        assert (ys.mean(), xs.mean()) == pytest.approx((y, x), abs=1e-3)  # CSV: 6 digits
    ids = set(result.tracks[:, 0].tolist())
    assert all(d in ids and all(p in ids for p in ps) for d, ps in result.graph.items())


def test_a_z_stack_is_not_tracked_and_a_mask_model_gives_a_mask(instance_model, binary_model):
    pixels, _ = movie()
    stack = segment_frames([load_model(instance_model, device="cpu")], layer_frames(pixels, "ZYX"))
    assert stack.tracks is None and stack.axis == "Z" and stack.labels.shape == (4, 96, 96)
    mask = segment_frames([load_model(binary_model, device="cpu")], layer_frames(pixels, "TYX"))
    assert not mask.instances and mask.tracks is None
    assert set(np.unique(mask.labels).tolist()) <= {0, 1}


def test_a_model_with_temporal_context_segments_a_movie(tmp_path_factory):
    loaded = load_model(trained_model("temporal", tmp_path_factory), device="cpu")
    assert loaded.config.temporal.context == 1
    result = segment_frames([loaded], layer_frames(movie()[0], "TYX"))
    assert result.labels.shape == (4, 96, 96) and result.tracks is not None


def test_a_one_frame_movie_keeps_its_frame_axis(instance_model):
    pixels, _ = movie()
    result = segment_frames(
        [load_model(instance_model, device="cpu")], layer_frames(pixels[:1], "TYX")
    )
    assert result.labels.shape == (1, 96, 96) and result.axis == "T"


def test_cancel_stops_a_movie_and_leaves_no_scratch_files(instance_model, monkeypatch, tmp_path):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    frames = layer_frames(movie()[0], "TYX")
    done: list[int] = []
    with pytest.raises(Cancelled):
        segment_frames(
            [load_model(instance_model, device="cpu")],
            frames,
            on_frame=lambda d, _: done.append(d),
            should_stop=lambda: len(done) >= 2,
        )
    assert done == [1, 2]
    assert list(tmp_path.iterdir()) == []


def test_channels_the_model_does_not_take_are_refused(instance_model):
    two_channels = np.stack([image()[0]] * 2)
    with pytest.raises(LapsegInputError, match="channel"):
        segment_frames(
            [load_model(instance_model, device="cpu")], layer_frames(two_channels, "CYX")
        )


# --------------------------------------------------------------------------- train


def _count_annotated(data, settings=()):
    config, _ = training_config(data, minutes=None, settings=[*TINY, *settings])
    _, sources = discover_dataset(config, data.root)
    if sources.is_timelapse:
        return sum(len(s.annotated) for s in sources.sequences), sources.layout
    return len(sources.samples), sources.layout


@pytest.mark.parametrize(
    ("axes", "layout"), [("TYX", "sequences"), ("ZYX", "folders"), ("TCYX", "folders")]
)
def test_layers_become_a_dataset_lapseg_train_reads_with_the_same_annotations(
    tmp_path, axes, layout
):
    pixels, labels = movie()
    labels = labels.copy()
    labels[1] = 0  # a sparsely annotated movie: frame 1 unannotated
    if "C" in axes:
        pixels = np.stack([pixels, 1 - pixels], axis=1)
    frames = layer_frames(pixels, axes)
    data = write_training_data(
        frames, label_frames(labels, axes, frames), tmp_path, name="my movie"
    )
    assert data.annotated == (0, 2, 3) and data.n_frames == 4
    assert _count_annotated(data) == (3, layout)


def test_a_single_image_is_a_folders_dataset_and_empty_labels_are_refused(tmp_path):
    pixels, labels = image()
    frames = layer_frames(pixels, "YX")
    data = write_training_data(frames, label_frames(labels, "YX", frames), tmp_path / "a")
    assert _count_annotated(data) == (1, "folders")
    with pytest.raises(LapsegInputError, match="paint some cells"):
        write_training_data(frames, np.zeros((1, 96, 96), np.uint16), tmp_path / "b")


def test_few_annotated_frames_train_without_validation_unless_asked(tmp_path):
    pixels, labels = movie()
    frames = layer_frames(pixels, "TYX")
    data = write_training_data(frames, label_frames(labels, "TYX", frames), tmp_path)
    config, notes = training_config(data, minutes=2.0, settings=[])
    assert config.data.val_fraction == 0 and "without validation" in notes[0]
    assert config.train.time_budget_minutes == 2.0
    config, notes = training_config(data, minutes=None, settings=["data.val_fraction=0.3"])
    assert config.data.val_fraction == 0.3 and notes == []


def test_settings_parse_like_set_and_bad_ones_are_named():
    assert parse_settings("a.b=1 'c.d=[1, 2]'") == ["a.b=1", "c.d=[1, 2]"]
    with pytest.raises(LapsegInputError, match="not key=value"):
        parse_settings("model.depth")


def test_progress_follows_epochs_or_the_budget():
    config = load_config(None, ["train.time_budget_minutes=1"])
    assert training_progress(config, 3, 30.0) == 0.5
    assert training_progress(load_config(None, ["train.epochs=10"]), 3, 1e6) == 0.3
    both = load_config(None, ["train.epochs=10", "train.time_budget_minutes=1"])
    assert training_progress(both, 3, 1e6) == 1.0  # the budget ends it first


def test_output_folders_never_reuse_a_folder(tmp_path):
    (tmp_path / "data").mkdir()
    assert output_folders(tmp_path) == (tmp_path / "data-2", tmp_path / "run")


def test_cancel_after_the_first_epoch_keeps_the_checkpoints(tmp_path):
    pixels, labels = image()
    frames = layer_frames(pixels, "YX")
    data = write_training_data(frames, label_frames(labels, "YX", frames), tmp_path / "data")
    config, _ = training_config(data, minutes=None, settings=[*TINY, "train.epochs=50"])
    rows: list[dict] = []
    outcome = train_model(
        config, data, tmp_path / "run", on_epoch=rows.append, should_stop=lambda: True
    )
    assert outcome.cancelled and outcome.stopped_because == "cancelled"
    assert [r["epoch"] for r in rows] == [1] and len(outcome.history) == 1
    assert outcome.checkpoint == tmp_path / "run" / "best.pt"
    assert (tmp_path / "run" / "last.pt").is_file()
    load_model(outcome.checkpoint, device="cpu")  # the cancelled run's model loads


# --------------------------------------------------------------------------- reader


def test_reader_opens_a_movie_prediction_as_labels_probabilities_and_tracks(tmp_path):
    folder = write_movie_output(tmp_path / "movie")
    reader = get_reader(str(folder))
    assert reader is read_lapseg
    layers = {kind: (data, kwargs) for data, kwargs, kind in reader(str(folder))}
    assert (
        layers["labels"][0].shape == (3, 16, 16) and layers["labels"][1]["name"] == "movie labels"
    )
    assert layers["image"][1]["visible"] is False
    tracks, kwargs = layers["tracks"]
    assert tracks.shape == (4, 4) and kwargs["graph"] == {2: [1]}
    # the predict output folder holding it opens the same layers
    assert [k for _, _, k in read_lapseg(str(tmp_path))] == ["image", "labels", "tracks"]


def test_reader_opens_still_predictions_and_a_run_folder(tmp_path, instance_model):
    mask = np.zeros((16, 16), np.uint8)
    mask[4:8, 4:8] = 255
    write_tiff(tmp_path / "out" / "masks" / "a.tif", mask)
    write_tiff(tmp_path / "out" / "masks" / "b.tif", mask)
    write_tiff(tmp_path / "out" / "labels" / "b.tif", (mask > 0).astype(np.uint16) * 3)
    layers = read_lapseg(str(tmp_path / "out"))
    assert [(kw["name"], int(d.max())) for d, kw, _ in layers] == [("a mask", 1), ("b labels", 3)]
    run_layers = read_lapseg(str(instance_model))
    assert run_layers[0][1]["rgb"] is True and "learning curves" in run_layers[0][1]["name"]


def test_reader_leaves_other_paths_to_other_readers(tmp_path):
    assert get_reader(str(tmp_path)) is None
    (tmp_path / "image.tif").write_bytes(b"")
    assert get_reader(str(tmp_path / "image.tif")) is None
    assert get_reader([]) is None


def test_the_npe2_manifest_is_valid_and_names_the_reader():
    npe2 = pytest.importorskip("npe2")
    manifest = npe2.PluginManifest.from_file(MANIFEST)
    assert manifest.name == "lapseg"
    assert {w.display_name for w in manifest.contributions.widgets} == {"Segment", "Train"}
    (reader,) = manifest.contributions.readers
    assert reader.accepts_directories
    names = {c.id: c.python_name for c in manifest.contributions.commands}
    assert names[reader.command] == "lapseg.napari.reader:get_reader"
    # the widgets' module needs Qt: tests/napari/test_napari_widgets.py docks them in napari
