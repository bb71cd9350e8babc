"""``train.patches_per_epoch: pass``: an epoch is one pass over the training images."""

from __future__ import annotations

import numpy as np
import pytest

from lapseg.config import AugmentationConfig, load_config
from lapseg.data.dataset import PatchDataset, tile_starts
from lapseg.data.samples import Sample


def _samples(shapes: list[tuple[int, int]]) -> list[Sample]:
    out = []
    for i, (y, x) in enumerate(shapes):
        image = (np.arange(y * x, dtype=np.float32).reshape(1, y, x) + 1000 * i) / 1e4
        out.append(Sample(f"s{i}", image, np.full((y, x), i % 2, np.int64)))
    return out


def _dataset(samples: list[Sample], patch: int, **kw: object) -> PatchDataset:
    return PatchDataset(
        samples,
        patch_size=(patch, patch),
        patches_per_epoch="pass",
        foreground_probability=0.5,
        augment=AugmentationConfig(preset="none"),
        seed=3,
        **kw,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("n", "size", "starts"), [(8, 8, [0]), (16, 8, [0, 8]), (20, 8, [0, 8, 12])]
)
def test_tile_starts_cover_once(n: int, size: int, starts: list[int]) -> None:
    assert tile_starts(n, size) == starts
    covered = np.zeros(n, int)
    for s in tile_starts(n, size):
        covered[s : s + size] += 1
    assert covered.min() == 1 and covered.max() <= 2


def test_whole_image_patches_visit_every_image_once_per_epoch() -> None:
    samples = _samples([(16, 16)] * 5)
    dataset = _dataset(samples, 16)
    assert len(dataset) == 5
    for epoch in (0, 1):
        dataset.set_epoch(epoch)
        seen = sorted(float(dataset[i]["image"][0, 0, 0]) for i in range(len(dataset)))
        assert seen == pytest.approx(sorted(float(s.image[0, 0, 0]) for s in samples))
    dataset.set_epoch(0)
    first = [float(dataset[i]["image"][0, 0, 0]) for i in range(5)]
    dataset.set_epoch(1)
    assert [float(dataset[i]["image"][0, 0, 0]) for i in range(5)] != first  # reshuffled


def test_tiles_cover_each_image_and_shapes_can_be_given() -> None:
    samples = _samples([(16, 24), (8, 8)])
    dataset = _dataset(samples, 8)
    assert len(dataset) == 2 * 3 + 1
    assert sorted(dataset.tiles()) == sorted(
        [(0, y, x) for y in (0, 8) for x in (0, 8, 16)] + [(1, 0, 0)]
    )
    given = _dataset(samples, 8, sample_shapes=[(16, 24), (8, 8)])
    assert given.tiles() == dataset.tiles()
    window = dataset[0]["image"][0].numpy()
    which, y0, x0 = dataset._tile(0)
    np.testing.assert_array_equal(window, samples[which].image[0, y0 : y0 + 8, x0 : x0 + 8])


def test_config_accepts_pass_and_counts() -> None:
    assert load_config(None, ["train.patches_per_epoch=pass"]).train.patches_per_epoch == "pass"
    assert load_config(None, ["train.patches_per_epoch=12"]).train.patches_per_epoch == 12
    from lapseg.errors import LapsegInputError

    with pytest.raises(LapsegInputError, match="patches_per_epoch"):
        load_config(None, ["train.patches_per_epoch=all"])
    with pytest.raises(LapsegInputError, match="patches_per_epoch"):
        load_config(None, ["train.patches_per_epoch=0"])
