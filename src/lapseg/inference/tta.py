"""Test-time augmentation over the dihedral group: the 8 flips and 90-degree rotations.

Each tile batch is transformed, predicted, transformed back and the 8 outputs are averaged (as
nnU-Net's mirroring and the U-Net ImageJ plugin do). The average is taken over the predictor's
raw outputs (logits): for a sigmoid/softmax model this is the geometric-mean style ensemble
nnU-Net uses; probabilities follow by the usual activation afterwards.

A U-Net with square-pixel convolutions is not exactly rotation-equivariant, so TTA smooths its
orientation bias at 8x the prediction cost. Rotations swap the tile's height and width, so the
predictor must accept both orientations (a U-Net does whenever both sizes are multiples of its
``size_multiple``, which the sliding window guarantees; an ONNX model needs dynamic spatial
axes).

Use it on a loaded model's predictor (any engine)::

    loaded = dataclasses.replace(loaded, predictor=dihedral_tta(loaded.predictor))
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from lapseg.inference.sliding_window import Predictor

DIHEDRAL: tuple[tuple[int, bool], ...] = tuple((k, f) for f in (False, True) for k in range(4))
"""The 8 elements of the dihedral group as ``(quarter_turns, flip_x)``; identity first."""


def dihedral_transform(batch: torch.Tensor, quarter_turns: int, flip: bool) -> torch.Tensor:
    """Flip the last axis (if ``flip``), then rotate by ``quarter_turns * 90`` degrees.

    Parameters
    ----------
    batch : (B, C, Y, X) tensor
    quarter_turns : int
        Counter-clockwise quarter turns in the (Y, X) plane.
    flip : bool
        Mirror the X axis first.

    Returns
    -------
    (B, C, Y, X) or (B, C, X, Y) tensor
        A new tensor (the input is not modified).
    """
    out = torch.flip(batch, dims=(-1,)) if flip else batch
    return torch.rot90(out, k=quarter_turns % 4, dims=(-2, -1))


def inverse_dihedral_transform(batch: torch.Tensor, quarter_turns: int, flip: bool) -> torch.Tensor:
    """Undo :func:`dihedral_transform` with the same arguments."""
    out = torch.rot90(batch, k=-(quarter_turns % 4), dims=(-2, -1))
    return torch.flip(out, dims=(-1,)) if flip else out


def _check_transforms(transforms: Sequence[tuple[int, bool]]) -> tuple[tuple[int, bool], ...]:
    checked = tuple((int(k) % 4, bool(f)) for k, f in transforms)
    if not checked:
        raise ValueError("transforms is empty: give at least the identity (0, False)")
    if len(set(checked)) != len(checked):
        raise ValueError(f"transforms has duplicates: {list(transforms)}")
    return checked


def dihedral_tta(
    predictor: Predictor, *, transforms: Sequence[tuple[int, bool]] = DIHEDRAL
) -> Predictor:
    """Wrap ``predictor`` so that it averages its outputs over dihedral transforms.

    Parameters
    ----------
    predictor : callable
        ``predictor(tiles (B, C, h, w)) -> (B, K, h', w')``; spatial output sizes may differ
        from the input (a 'valid' U-Net) but must follow the input's orientation.
    transforms : sequence of (int, bool), optional
        ``(quarter_turns, flip_x)`` pairs; all 8 of :data:`DIHEDRAL` by default, e.g.
        ``[(0, False), (0, True)]`` for a mirror-only TTA.

    Returns
    -------
    callable
        ``tta(tiles (B, C, h, w)) -> (B, K, h', w')``: the mean over the transforms of
        ``inverse(predictor(transform(tiles)))``, on the input's device.
    """
    chosen = _check_transforms(transforms)

    def tta(batch: torch.Tensor) -> torch.Tensor:
        if batch.ndim != 4:
            raise ValueError(f"expected a (B, C, Y, X) batch, got shape {tuple(batch.shape)}")

        def one(k: int, flip: bool) -> torch.Tensor:
            out = predictor(dihedral_transform(batch, k, flip))
            return inverse_dihedral_transform(out, k, flip).float()

        total = one(*chosen[0])
        for k, flip in chosen[1:]:
            total = total + one(k, flip)
        return total / len(chosen)

    return tta


class DihedralTTA(nn.Module):
    """An ``nn.Module`` view of :func:`dihedral_tta` around a model.

    It keeps the wrapped model's ``size_multiple`` and ``output_margin`` attributes, so it can
    replace the model anywhere (e.g. ``predict_logits(DihedralTTA(model), image, predict)``).
    """

    def __init__(self, model: nn.Module, *, transforms: Sequence[tuple[int, bool]] = DIHEDRAL):
        super().__init__()
        self.model = model
        self.transforms = _check_transforms(transforms)
        self.size_multiple = int(getattr(model, "size_multiple", 1))
        self.output_margin = int(getattr(model, "output_margin", 0))

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        """``(B, C, h, w) -> (B, K, h', w')`` averaged over the transforms."""
        return dihedral_tta(self.model, transforms=self.transforms)(batch)


__all__ = [
    "DIHEDRAL",
    "DihedralTTA",
    "dihedral_transform",
    "dihedral_tta",
    "inverse_dihedral_transform",
]
