"""Layer data <-> lapseg arrays, result layers, the learning curve: pure functions, no Qt."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.figure import Figure

from lapseg.errors import LapsegInputError
from lapseg.napari.curves import curve_series, draw_learning_curves
from lapseg.napari.layers import (
    Segmentation,
    annotation_summary,
    axes_choices,
    display_mask,
    label_frames,
    layer_frames,
    result_layers,
)


@pytest.mark.parametrize(
    ("shape", "rgb"),
    [((8, 9), False), ((3, 8, 9), False), ((2, 3, 8, 9), False), ((8, 9, 3), True)],
)
def test_every_axes_choice_gives_frames_of_the_layers_pixels(shape, rgb):
    data = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
    for axes in axes_choices(len(shape), rgb=rgb):
        frames = layer_frames(data, axes)
        sizes = dict(zip(axes, shape, strict=True))
        n = sizes.get("T", sizes.get("Z", 1))
        assert frames.array.shape == (n, sizes.get("C", 1), sizes["Y"], sizes["X"])
        assert frames.axis == ("T" if "T" in axes else "Z" if "Z" in axes else None)
        assert sorted(frames.array.ravel().tolist()) == sorted(data.ravel().tolist())


def test_frames_keep_each_pixel_in_place():
    data = np.random.default_rng(0).random((4, 2, 8, 9))
    frames = layer_frames(data, "TCYX")
    np.testing.assert_array_equal(frames.array[3, 1], data[3, 1])
    channels_last = layer_frames(np.moveaxis(data, 1, -1), "TYXC")
    np.testing.assert_array_equal(channels_last.array, frames.array)


def test_bad_axes_are_refused_with_a_reason():
    with pytest.raises(LapsegInputError, match="not both"):
        layer_frames(np.zeros((2, 3, 8, 9)), "TZYX")
    with pytest.raises(LapsegInputError, match="name 3 dimensions"):
        layer_frames(np.zeros((8, 9)), "TYX")


def test_labels_must_match_the_image_frames():
    frames = layer_frames(np.zeros((4, 2, 8, 9)), "TCYX")
    assert label_frames(np.zeros((4, 8, 9), np.uint16), "TCYX", frames).shape == (4, 8, 9)
    with pytest.raises(LapsegInputError, match="same grid"):
        label_frames(np.zeros((4, 8, 10), np.uint16), "TCYX", frames)
    with pytest.raises(LapsegInputError, match="axes TYX"):
        label_frames(np.zeros((8, 9), np.uint16), "TCYX", frames)
    with pytest.raises(LapsegInputError, match="integers"):
        label_frames(np.zeros((4, 8, 9), np.float32), "TCYX", frames)


def test_annotation_summary_counts_frames_with_objects():
    labels = np.zeros((4, 5, 5), np.uint16)
    labels[0, 1, 1] = labels[2, 3, 3] = 5
    assert annotation_summary(labels, "T") == (
        "2 of 4 frames annotated (all-zero frames are unannotated)"
    )
    assert annotation_summary(labels[:1], None) == "1 of 1 images annotated"
    assert "z-slices" in annotation_summary(labels, "Z")


def test_display_mask_maps_foreground_to_one_and_keeps_classes():
    assert display_mask(np.array([0, 255, 255], np.uint8)).tolist() == [0, 1, 1]
    assert display_mask(np.array([0, 1, 2], np.uint8)).tolist() == [0, 1, 2]
    assert display_mask(np.zeros(3, np.uint8)).tolist() == [0, 0, 0]


def test_result_layers_lie_on_the_image_and_drop_the_channel_scale():
    result = Segmentation(
        labels=np.zeros((2, 4, 4), np.uint16),
        axis="T",
        instances=True,
        probabilities=np.zeros((2, 3, 4, 4), np.float32),  # a 3-class model's classes
        tracks=np.array([[1, 0, 1.0, 1.0], [1, 1, 1.0, 2.0]]),
        graph={},
    )
    layers = result_layers(
        result, "movie", axes="TCYX", scale=(5.0, 1.0, 0.5, 0.5), translate=(0, 0, 10, 20)
    )
    kinds = {kind: kwargs for _, kwargs, kind in layers}
    assert kinds["labels"]["scale"] == (5.0, 0.5, 0.5)
    assert kinds["labels"]["translate"] == (0.0, 10.0, 20.0)
    assert kinds["tracks"]["scale"] == (5.0, 0.5, 0.5)
    assert kinds["image"]["channel_axis"] == 1
    assert kinds["image"]["name"] == [f"movie P(class {k})" for k in range(3)]
    mask = Segmentation(labels=np.zeros((4, 4), np.uint8), axis=None, instances=False)
    (only,) = result_layers(mask, "img")
    assert only[1]["name"] == "img mask" and "scale" not in only[1]
    assert mask.summary() == "mask of 1 image"


def test_learning_curve_series_and_drawing():
    history = [
        {"epoch": 1, "train_loss": 0.8, "lr": 0.01},
        {
            "epoch": 2,
            "train_loss": 0.6,
            "val_loss": 0.7,
            "val_dice": 0.5,
            "val_seg": float("nan"),  # not measured this epoch
            "val_iou": 0.4,  # in history.csv, not drawn
        },
    ]
    losses, measures = curve_series(history)
    assert losses == {"train_loss": ([1.0, 2.0], [0.8, 0.6]), "val_loss": ([2.0], [0.7])}
    assert measures == {"val_dice": ([2.0], [0.5])}
    figure = Figure()
    draw_learning_curves(figure, [])
    assert "waiting" in figure.axes[0].get_title()
    draw_learning_curves(figure, history)
    assert len(figure.axes) == 2  # losses and the validation measures' axis
    assert len(figure.axes[0].lines) == 2 and len(figure.axes[1].lines) == 1
