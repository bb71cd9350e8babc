"""Sequence discovery in every layout, and its bad-input errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from lapseg.errors import LapsegInputError
from lapseg.io.sequences import discover_sequences, read_frame, read_frame_mask, read_frames


def _frame(t: int, shape: tuple[int, int] = (12, 10)) -> np.ndarray:
    return np.full(shape, t, dtype=np.uint16)


def make_ctc(root: Path, frames: list[int], gt: list[int], st: list[int], name: str = "01") -> Path:
    (root / name).mkdir(parents=True)
    for t in frames:
        tifffile.imwrite(root / name / f"t{t:03d}.tif", _frame(t))
    for kind, numbers, value in (("GT", gt, 7), ("ST", st, 3)):
        seg = root / f"{name}_{kind}" / "SEG"
        seg.mkdir(parents=True)
        for t in numbers:
            tifffile.imwrite(seg / f"man_seg{t:03d}.tif", np.full((12, 10), value, np.uint16))
    return root


def test_ctc_sparse_gt_and_truth_choice(tmp_path: Path):
    root = make_ctc(tmp_path / "ctc", list(range(6)), gt=[1, 4], st=[0, 1, 2, 3, 4, 5])
    make_ctc(root, list(range(3)), gt=[2], st=[], name="02")
    (gt_01, gt_02) = discover_sequences(root, layout="ctc", truth="GT")
    assert gt_01.name == "01" and gt_01.n_frames == 6 and gt_01.annotated == [1, 4]
    assert gt_02.annotated == [2] and gt_02.sample_name(2) == "02/t002"
    st = discover_sequences(root, layout="ctc", truth="ST")[0]
    assert st.annotated == list(range(6))
    both = discover_sequences(root, layout="ctc", truth="GT+ST")[0]
    assert both.annotated == list(range(6))
    # gold wins where both exist, silver elsewhere
    assert read_frame_mask(both, 4).max() == 7 and read_frame_mask(both, 3).max() == 3
    assert read_frame(both, 5)[0, 0] == 5


def test_ctc_gap_and_gt_without_image(tmp_path: Path):
    gap = make_ctc(tmp_path / "gap", [0, 1, 3], gt=[], st=[])
    with pytest.raises(
        LapsegInputError, match=r"t003.tif: gap in frame numbers: 1 is followed by 3"
    ):
        discover_sequences(gap, layout="ctc")
    orphan = make_ctc(tmp_path / "orphan", [0, 1, 2], gt=[5], st=[])
    with pytest.raises(LapsegInputError, match=r"man_seg005.tif: ground truth for frame 5"):
        discover_sequences(orphan, layout="ctc")


def test_real_ctc_dataset(shared_data: Path):
    root = shared_data / "ctc-DIC-C2DH-HeLa"
    if not root.is_dir():
        pytest.skip("ctc-DIC-C2DH-HeLa is not available")
    sources = discover_sequences(root, layout="ctc", truth="GT")
    assert [s.name for s in sources] == ["01", "02"]
    assert [len(s.annotated) for s in sources] == [9, 9]
    assert sources[0].annotated[:2] == [2, 5] and sources[0].n_frames == 84
    assert len(discover_sequences(root, layout="ctc", truth="GT+ST")[1].annotated) == 84


def test_folder_sequences_with_partial_masks(tmp_path: Path):
    for name, n in (("b", 4), ("a", 3)):
        (tmp_path / name / "frames").mkdir(parents=True)
        (tmp_path / name / "masks").mkdir()
        for t in range(n):
            tifffile.imwrite(tmp_path / name / "frames" / f"frame{t}.tif", _frame(t))
        tifffile.imwrite(tmp_path / name / "masks" / "frame1.tif", np.ones((12, 10), np.uint8))
    # frame10 sorts after frame3 (natural sort)
    for t in range(4, 11):
        tifffile.imwrite(tmp_path / "b" / "frames" / f"frame{t}.tif", _frame(t))
    a, b = discover_sequences(tmp_path)
    assert (a.name, b.name) == ("a", "b")
    assert b.frame_names[-2:] == ("frame9", "frame10") and b.annotated == [1]
    frames, shapes = read_frames(b)
    assert frames.shape == (11, 12, 10) and frames[10, 0, 0] == 10 and shapes[0] == (12, 10)


def test_folder_mask_without_frame_and_size_mismatch(tmp_path: Path):
    seq = tmp_path / "s"
    (seq / "frames").mkdir(parents=True)
    (seq / "masks").mkdir()
    tifffile.imwrite(seq / "frames" / "t0.tif", _frame(0))
    tifffile.imwrite(seq / "frames" / "t1.tif", _frame(1, (14, 10)))
    (source,) = discover_sequences(tmp_path)
    with pytest.raises(LapsegInputError, match=r"t1.tif: frame size \(14, 10\) differs"):
        read_frames(source)
    frames, shapes = read_frames(source, grid=lambda f: f[:12])
    assert frames.shape == (2, 12, 10) and shapes[1] == (14, 10)
    tifffile.imwrite(seq / "masks" / "t5.tif", np.ones((12, 10), np.uint8))
    with pytest.raises(LapsegInputError, match=r"t5.tif: mask has no frame"):
        discover_sequences(tmp_path)


def test_tyx_stack_with_mask_stack(tmp_path: Path):
    stack = np.stack([_frame(t) for t in range(5)])
    tifffile.imwrite(tmp_path / "movie.tif", stack)
    (tmp_path / "masks").mkdir()
    tifffile.imwrite(tmp_path / "masks" / "movie.tif", (stack > 2).astype(np.uint8))
    (source,) = discover_sequences(tmp_path, axes="TYX")
    assert source.name == "movie" and source.n_frames == 5 and source.annotated == list(range(5))
    assert read_frame(source, 3)[0, 0] == 3
    assert read_frame_mask(source, 3).max() == 1 and read_frame_mask(source, 1).max() == 0
    # a single stack file as the root
    assert discover_sequences(tmp_path / "movie.tif", axes="TYX")[0].frame_names[0] == "t000"
    # the file does not say which axis is time: asked for, never guessed
    with pytest.raises(LapsegInputError, match="pass --axes"):
        discover_sequences(tmp_path / "movie.tif")


@pytest.mark.parametrize("axes", ["TZYX", "ZTYX"])
def test_tzyx_stack_one_sequence_per_slice(tmp_path: Path, axes: str):
    t_size, z_size = 4, 3
    tzyx = np.zeros((t_size, z_size, 6, 5), dtype=np.uint16)
    for t in range(t_size):
        for z in range(z_size):
            tzyx[t, z] = 10 * z + t
    stored = tzyx if axes == "TZYX" else np.transpose(tzyx, (1, 0, 2, 3))
    tifffile.imwrite(tmp_path / "pancreas.tif", stored, photometric="minisblack")
    sources = discover_sequences(tmp_path, axes=axes)
    assert [s.name for s in sources] == ["pancreas/z00", "pancreas/z01", "pancreas/z02"]
    assert all(s.n_frames == t_size for s in sources)
    assert read_frame(sources[2], 3)[0, 0] == 23


def test_bad_layout_and_missing_root(tmp_path: Path):
    with pytest.raises(LapsegInputError, match="not one of"):
        discover_sequences(tmp_path, layout="folders")
    with pytest.raises(LapsegInputError, match="data folder not found"):
        discover_sequences(tmp_path / "nope")
    with pytest.raises(LapsegInputError, match="no time-lapse sequence found"):
        discover_sequences(tmp_path)
