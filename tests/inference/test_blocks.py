"""Block-wise prediction (lapseg.inference.blocks): seam-free labels, resumable stores."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import zarr
from scipy import ndimage
from skimage.segmentation import find_boundaries

from lapseg.config import PostprocessConfig
from lapseg.errors import LapsegInputError
from lapseg.inference.block_run import BlockSettings, predict_blocks
from lapseg.inference.blocks import block_grid, halo_for, stitch_block
from lapseg.inference.instances import instances_from_probabilities
from lapseg.io.zarr import read_ome_zarr
from lapseg.io.zarr_store import LABELS_NAME, PredictionStore

BLOCK = 64
HALO = 24  # > largest radius (10) + 1: every object lies whole in its owner's region


def synthetic_labels(shape: tuple[int, int], *, rng: int = 0) -> np.ndarray:
    """Touching and separate disks (radius 4-10), many crossing the 64-pixel block borders."""
    generator = np.random.default_rng(rng)
    labels = np.zeros(shape, dtype=np.int32)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    for index in range(1, 90):
        cy, cx = generator.integers(0, shape[0]), generator.integers(0, shape[1])
        if index % 3 == 0:  # put every third disk right on a block border
            cy = BLOCK * max(1, round(cy / BLOCK)) - 1
        disk = (yy - cy) ** 2 + (xx - cx) ** 2 <= generator.integers(4, 11) ** 2
        labels[disk & (labels == 0)] = index
    return labels


def three_class_image(labels: np.ndarray) -> np.ndarray:
    """A (1, Y, X) image whose values are the 3-class target: 0 bg, 1 interior, 2 boundary."""
    boundary = find_boundaries(labels, mode="inner") & (labels > 0)
    return np.where(boundary, 2, (labels > 0).astype(np.uint8))[np.newaxis].astype(np.uint8)


def fake_probabilities(pixels: np.ndarray) -> np.ndarray:
    """(1, h, w) classes -> (3, h, w) one-hot probabilities, smoothed a little (a local op)."""
    one_hot = np.stack([pixels[0] == k for k in range(3)]).astype(np.float32)
    smooth = ndimage.uniform_filter(one_hot, size=(1, 3, 3), mode="nearest")
    return smooth / smooth.sum(axis=0, keepdims=True)


def interior_components(prob: np.ndarray) -> np.ndarray:
    """A local labelling: 4-connected components of P(interior) > 0.5."""
    return ndimage.label(prob[1] > 0.5)[0]


POSTPROCESS = PostprocessConfig(min_size=5)


def lapseg_labels(prob: np.ndarray) -> np.ndarray:
    """lapseg's own route: seeds grown by a watershed (not exactly local: see the test)."""
    return instances_from_probabilities(prob, POSTPROCESS)


def assert_same_instances(a: np.ndarray, b: np.ndarray) -> None:
    """Equal up to a renumbering: same foreground, and the id pairs form a bijection."""
    np.testing.assert_array_equal(a > 0, b > 0)
    fg = a > 0
    pairs = np.unique(np.stack([a[fg], b[fg]]), axis=1)
    assert pairs.shape[1] == np.unique(a[fg]).size == np.unique(b[fg]).size


def stored_labels(path: Path) -> np.ndarray:
    return read_ome_zarr(path / "labels" / LABELS_NAME).array[0]


@pytest.fixture(scope="module")
def scene() -> tuple[np.ndarray, np.ndarray]:
    """(image, whole-image labels) of a 200 x 260 synthetic scene: 4 x 5 blocks of 64."""
    labels = synthetic_labels((200, 260))
    image = three_class_image(labels)
    return image, interior_components(fake_probabilities(image))


# --------------------------------------------------------------------------- geometry


def test_block_grid_covers_the_image_once() -> None:
    blocks = block_grid((200, 260), block_size=BLOCK, halo=HALO)
    cover = np.zeros((200, 260), dtype=int)
    for block in blocks:
        cover[block.core] += 1
        region = np.zeros_like(cover, dtype=bool)
        region[block.region] = True
        assert region[block.core].all()
        rows, _ = block.core_in_region
        assert rows.stop - rows.start == block.core[0].stop - block.core[0].start
    assert (cover == 1).all() and len(blocks) == 4 * 5
    assert blocks[0].cut == (False, True, False, True)
    assert blocks[-1].cut == (True, False, True, False)


def test_halo_covers_tile_overlap_and_diameter() -> None:
    from lapseg.config import PredictConfig

    assert halo_for(30, PredictConfig(tile_size=(512, 512), overlap=0.25)) == 128 + 32
    assert halo_for(1) % 16 == 0


# --------------------------------------------------------------------------- seam-free labels


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_block_labels_equal_whole_image_labels(tmp_path: Path, scene, version: str) -> None:
    image, whole = scene
    crossing = [
        i
        for i, (rows, cols) in enumerate(ndimage.find_objects(whole), 1)
        if rows.start // BLOCK != (rows.stop - 1) // BLOCK
        or cols.start // BLOCK != (cols.stop - 1) // BLOCK
    ]
    assert len(crossing) >= 10  # the test is about objects cut by block borders
    settings = BlockSettings(
        block_size=BLOCK,
        halo=HALO,
        probabilities="uint8",
        ngff_version=version,  # type: ignore[arg-type]
    )
    run = predict_blocks(
        image, tmp_path / "out.zarr", fake_probabilities, interior_components, settings=settings
    )
    labels = stored_labels(run.path)
    assert_same_instances(labels, whole)
    ids = np.unique(labels[labels > 0])
    np.testing.assert_array_equal(ids, np.arange(1, ids.size + 1))  # unique, sequential
    assert (run.blocks, run.predicted, run.objects, run.oversized) == (20, 20, ids.size, 0)
    np.testing.assert_array_equal(read_ome_zarr(run.path).array[...], image)
    prob = read_ome_zarr(run.path / "probabilities").array[...]
    expected = np.rint(fake_probabilities(image) * 255)
    assert np.abs(prob.astype(int) - expected).max() <= 1  # float rounding at .5


def test_lazy_ome_zarr_input(tmp_path: Path, scene) -> None:
    """The input read block by block from an OME-Zarr store (chunks unaligned with blocks)."""
    image, whole = scene
    source = tmp_path / "in.zarr"
    group = zarr.open_group(str(source), mode="w", zarr_format=2)
    group.create_array("0", data=image[0], chunks=(50, 50))
    axis = {"type": "space", "unit": "micrometer"}
    group.attrs["multiscales"] = [
        {
            "version": "0.4",
            "axes": [{"name": "y", **axis}, {"name": "x", **axis}],
            "datasets": [
                {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [0.5, 0.5]}]}
            ],
        }
    ]
    lazy = read_ome_zarr(source)  # a LazyImage: its plane is read, its pixel size kept
    settings = BlockSettings(block_size=BLOCK, halo=HALO, copy_image=False)
    run = predict_blocks(
        lazy, tmp_path / "out.zarr", fake_probabilities, interior_components, settings=settings
    )
    assert_same_instances(stored_labels(run.path), whole)
    assert read_ome_zarr(run.path / "labels" / LABELS_NAME).pixel_size == (0.5, 0.5)


def test_lapseg_instances_match_whole_image_instances(tmp_path: Path, scene) -> None:
    """lapseg's watershed route: the same objects, up to a few tied boundary pixels.

    A watershed breaks ties between equally good pixels by the order it reaches them, which
    depends on the whole connected cluster it floods, so a boundary pixel between two touching
    cells may go either way in a block and in the whole image. Objects are never split,
    duplicated or lost.
    """
    image, _ = scene
    whole = lapseg_labels(fake_probabilities(image))
    settings = BlockSettings(block_size=BLOCK, halo=HALO, copy_image=False)
    run = predict_blocks(
        image, tmp_path / "out.zarr", fake_probabilities, lapseg_labels, settings=settings
    )
    labels = stored_labels(run.path)
    assert run.objects == whole.max() and np.unique(labels[labels > 0]).size == run.objects
    assert ((labels > 0) != (whole > 0)).mean() < 1e-3
    ious, partners = [], set()
    for index, box in enumerate(ndimage.find_objects(whole), start=1):
        mine = whole[box] == index
        ids, counts = np.unique(labels[box][mine], return_counts=True)
        best = int(ids[np.argmax(counts)])
        theirs = labels[box] == best
        ious.append((theirs & mine).sum() / (theirs | mine).sum())
        partners.add(best)
    assert 0 not in partners and len(partners) == run.objects  # one-to-one
    assert min(ious) > 0.8 and np.mean(ious) > 0.97  # these probabilities are full of ties


def test_stitch_drops_an_object_stored_by_an_earlier_block() -> None:
    (block,) = block_grid((20, 20), block_size=20, halo=0)
    labels = np.zeros((20, 20), dtype=np.int32)
    labels[2:8, 2:8] = 7  # already stored (seen slightly shifted) by a neighbour: dropped
    labels[12:18, 12:18] = 3  # new
    existing = np.zeros((20, 20), dtype=np.uint32)
    existing[2:8, 3:9] = 5
    existing[0, 0] = 9  # >= first_id: a leftover of an interrupted attempt, cleared
    out = stitch_block(labels, existing, block, first_id=9, max_id=2**32 - 1)
    assert out.new_objects == 1 and out.labels[0, 0] == 0
    assert (out.labels[2:8, 3:9] == 5).all() and (out.labels[2:8, 2] == 0).all()
    assert (out.labels[12:18, 12:18] == 9).all()
    with pytest.raises(LapsegInputError, match="uint32"):
        stitch_block(labels, existing, block, first_id=9, max_id=8)


def test_stitch_adopts_a_missing_object_centred_in_an_earlier_block() -> None:
    block = block_grid((40, 20), block_size=20, halo=10)[1]  # rows 20-40, region rows 10-40
    labels = np.zeros((30, 20), dtype=np.int32)
    labels[2:8, 4:10] = 1  # centre in block 0's core, seen whole here, not stored: adopted
    labels[0:4, 12:16] = 2  # centre in block 0's core but cut by the region's edge: left alone
    labels[20:26, 4:10] = 3  # this block's own
    existing = np.zeros((30, 20), dtype=np.uint32)
    out = stitch_block(labels, existing, block, first_id=1, max_id=100)
    assert out.new_objects == 2 and set(np.unique(out.labels)) == {0, 1, 2}
    assert (out.labels[0:4, 12:16] == 0).all()


def test_oversized_objects_are_counted(tmp_path: Path) -> None:
    labels = np.zeros((1, 96, 96), dtype=np.uint8)
    labels[0, 10:90, 40:50] = 1  # a bar 80 px long, halo 8: no block sees it whole

    def identity(pixels: np.ndarray) -> np.ndarray:
        return pixels.astype(np.float32)

    def components(prob: np.ndarray) -> np.ndarray:
        return ndimage.label(prob[0] > 0.5)[0]

    settings = BlockSettings(block_size=32, halo=8, copy_image=False)
    run = predict_blocks(labels, tmp_path / "out.zarr", identity, components, settings=settings)
    assert run.oversized > 0
    assert (stored_labels(run.path) > 0).sum() == 800  # every pixel still labelled


# --------------------------------------------------------------------------- resuming


class BoomError(RuntimeError):
    pass


def failing_after(calls: int, function: Callable[[np.ndarray], np.ndarray]) -> Callable:
    count = {"n": 0}

    def wrapped(x: np.ndarray) -> np.ndarray:
        count["n"] += 1
        if count["n"] > calls:
            raise BoomError("interrupted")
        return function(x)

    return wrapped


def counting(function: Callable[[np.ndarray], np.ndarray], calls: list[int]) -> Callable:
    def wrapped(x: np.ndarray) -> np.ndarray:
        calls.append(1)
        return function(x)

    return wrapped


SETTINGS = BlockSettings(block_size=BLOCK, halo=HALO, probabilities="float16")


def assert_same_store(a: Path, b: Path) -> None:
    for member in ("", "labels/" + LABELS_NAME, "probabilities"):
        np.testing.assert_array_equal(
            read_ome_zarr(a / member).array[...], read_ome_zarr(b / member).array[...]
        )


def test_interrupted_run_is_marked_incomplete_and_resumes(tmp_path: Path, scene) -> None:
    image, _ = scene
    reference = predict_blocks(
        image, tmp_path / "ref.zarr", fake_probabilities, lapseg_labels, settings=SETTINGS
    )
    path = tmp_path / "out.zarr"
    with pytest.raises(BoomError):
        predict_blocks(
            image, path, failing_after(7, fake_probabilities), lapseg_labels, settings=SETTINGS
        )
    with pytest.raises(LapsegInputError, match="incomplete"):
        read_ome_zarr(path / "labels" / LABELS_NAME)
    calls: list[int] = []
    run = predict_blocks(
        image, path, counting(fake_probabilities, calls), lapseg_labels, settings=SETTINGS
    )
    assert len(calls) == run.predicted == 20 - 7
    assert run.objects == reference.objects
    assert_same_store(path, reference.path)
    again = predict_blocks(
        image, path, counting(fake_probabilities, calls), lapseg_labels, settings=SETTINGS
    )
    assert again.predicted == 0 and len(calls) == 13  # a finished store is not redone


def test_crash_between_label_write_and_progress_record(tmp_path: Path, scene, monkeypatch) -> None:
    """Labels of a block written, its progress not: the rerun clears them and redoes it."""
    image, _ = scene
    reference = predict_blocks(
        image, tmp_path / "ref.zarr", fake_probabilities, lapseg_labels, settings=SETTINGS
    )
    original = PredictionStore.set_progress
    count = {"n": 0}

    def flaky(self: PredictionStore, progress: dict) -> None:
        count["n"] += 1
        if count["n"] == 6:  # creation, blocks 0-3 recorded; block 4's labels already written
            raise BoomError("power cut")
        original(self, progress)

    monkeypatch.setattr(PredictionStore, "set_progress", flaky)
    path = tmp_path / "out.zarr"
    with pytest.raises(BoomError):
        predict_blocks(image, path, fake_probabilities, lapseg_labels, settings=SETTINGS)
    monkeypatch.setattr(PredictionStore, "set_progress", original)
    partial = read_ome_zarr(path / "labels" / LABELS_NAME, allow_incomplete=True).array[0]
    assert partial.max() > 0
    run = predict_blocks(image, path, fake_probabilities, lapseg_labels, settings=SETTINGS)
    assert run.predicted == 20 - 4
    assert_same_store(path, reference.path)


def test_resume_with_other_settings_is_refused(tmp_path: Path, scene) -> None:
    image, _ = scene
    path = tmp_path / "out.zarr"
    with pytest.raises(BoomError):
        predict_blocks(
            image, path, failing_after(2, fake_probabilities), lapseg_labels, settings=SETTINGS
        )
    other = BlockSettings(block_size=BLOCK, halo=HALO + 8, probabilities="float16")
    with pytest.raises(LapsegInputError, match="other settings"):
        predict_blocks(image, path, fake_probabilities, lapseg_labels, settings=other)
    with pytest.raises(LapsegInputError, match="exists"):
        predict_blocks(
            image, path, fake_probabilities, lapseg_labels, settings=other, if_exists="error"
        )
    run = predict_blocks(
        image, path, fake_probabilities, lapseg_labels, settings=other, if_exists="overwrite"
    )
    assert run.predicted == 20


def test_bad_callables_and_images_are_reported(tmp_path: Path, scene) -> None:
    image, _ = scene
    with pytest.raises(LapsegInputError, match=r"\(C, Y, X\)"):
        predict_blocks(image[0], tmp_path / "a.zarr", fake_probabilities, lapseg_labels)
    with pytest.raises(LapsegInputError, match="probabilities returned shape"):
        predict_blocks(image, tmp_path / "b.zarr", lambda x: x[0, :5], lapseg_labels)
    with pytest.raises(LapsegInputError, match="integer labels"):
        predict_blocks(image, tmp_path / "c.zarr", fake_probabilities, lambda p: p[0])
