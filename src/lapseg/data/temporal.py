"""Temporal context for time-lapse sequences: which neighbouring frames feed the network."""

from __future__ import annotations

import numpy as np

from lapseg.config import EDGE_MODES
from lapseg.errors import LapsegInputError


def context_indices(t: int, n_frames: int, k: int, mode: str = "replicate") -> list[int]:
    """Frame indices ``t-k .. t+k`` fed to the network for frame ``t``, kept inside the sequence.

    Parameters
    ----------
    t : int
        Centre frame, ``0 <= t < n_frames``.
    n_frames : int
        Number of frames in the sequence (>= 1).
    k : int
        Context on each side (>= 0); ``2k+1`` indices are returned.
    mode : str
        "replicate" repeats the edge frame (000's rule: ``[-2, -1] -> [0, 0]``); "reflect"
        mirrors about the edge frame without repeating it (``[-2, -1] -> [2, 1]``), wrapping
        back and forth when ``k`` exceeds the sequence.

    Returns
    -------
    indices : list of int
        ``2k+1`` indices in ``[0, n_frames)``, in time order; the middle one is ``t``.
    """
    if n_frames < 1:
        raise LapsegInputError(f"a sequence needs at least one frame, got n_frames={n_frames}")
    if not 0 <= t < n_frames:
        raise LapsegInputError(f"frame index {t} is outside the sequence of {n_frames} frames")
    if k < 0:
        raise LapsegInputError(f"temporal context k={k} must be >= 0")
    if mode not in EDGE_MODES:
        raise LapsegInputError(f"edge mode {mode!r} is not one of {', '.join(EDGE_MODES)}")
    raw = range(t - k, t + k + 1)
    if mode == "replicate" or n_frames == 1:
        return [min(max(i, 0), n_frames - 1) for i in raw]
    period = 2 * (n_frames - 1)
    out = []
    for i in raw:
        i = i % period
        out.append(period - i if i > n_frames - 1 else i)
    return out


def stack_context(frames: np.ndarray, t: int, k: int, mode: str = "replicate") -> np.ndarray:
    """The network input of frame ``t``: frames ``t-k .. t+k`` as channels.

    Parameters
    ----------
    frames : (T, Y, X) ndarray
        One sequence (a memory map works: only the ``2k+1`` frames needed are read).
    t, k, mode
        As in :func:`context_indices`.

    Returns
    -------
    stacked : (2k+1, Y, X) ndarray
        A new array (the input is never changed); channel ``k`` is frame ``t``.
    """
    if frames.ndim != 3:
        raise LapsegInputError(f"frames must be (T, Y, X), got shape {frames.shape}")
    indices = context_indices(t, frames.shape[0], k, mode)
    return np.stack([np.asarray(frames[i]) for i in indices])
