"""Cell Tracking Challenge tracking measures DET and TRA (AOGM, Matula et al. 2015).

Matula P, Maška M, Sorokin DV, Matula P, Ortiz-de-Solórzano C, Kozubek M (2015) "Cell tracking
accuracy measurement based on comparison of acyclic oriented graphs", PLoS ONE 10(12): e0144959.

A tracking (reference or result) is a graph: its *vertices* are the objects of every frame (a
label present in frame ``t``), its *edges* link a label in frame ``t`` to the same label in frame
``t + 1`` (a *track link*) and the last object of a parent track to the first object of each child
track (a *parent link*, from the track table ``L B E P``). AOGM counts the weighted operations that
turn the result graph into the reference graph:

- a reference object is *matched* by the result object covering **more than half** of it (in the
  same frame; at most one can). A result object matching no reference object is a false positive
  (FP); a reference object matched by none is a false negative (FN); a result object matching
  ``k > 1`` reference objects needs ``k - 1`` splits (NS);
- edges are compared between result objects matching exactly one reference object: a result edge
  whose two ends do not map onto a reference edge is redundant (ED, to delete); a reference edge
  that no result edge maps onto is missing (EA, to add); a mapped edge with the other semantics
  (track link vs parent link) needs a change (EC).

With the standard weights (:class:`AOGMWeights`: NS 5, FN 10, FP 1, ED 1, EA 1.5, EC 1)::

    AOGM   = 5 NS + 10 FN + 1 FP + 1 ED + 1.5 EA + 1 EC     AOGM_0   = 10 |V_ref| + 1.5 |E_ref|
    AOGM-D = 5 NS + 10 FN + 1 FP                            AOGM-D_0 = 10 |V_ref|
    TRA = 1 - min(AOGM, AOGM_0) / AOGM_0                    DET = 1 - min(AOGM-D, AOGM-D_0) / AOGM-D_0

``AOGM_0`` is the cost of building the reference from an empty result. The counting follows the
independent implementation ``py-ctcmetrics`` (Kaiser et al.), against which the tests check equal
values on the CTC DIC-C2DH-HeLa ground truth. This module works on label stacks and track tables
only (it does not depend on :mod:`lapseg.tracking`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from lapseg.errors import LapsegInputError
from lapseg.io.ctc import check_tracks

__all__ = ["AOGMWeights", "TrackingScores", "match_objects", "tracking_scores"]


@dataclass(frozen=True)
class AOGMWeights:
    """AOGM weights; the defaults are the CTC's TRA/DET weights."""

    ns: float = 5.0
    fn: float = 10.0
    fp: float = 1.0
    ed: float = 1.0
    ea: float = 1.5
    ec: float = 1.0


@dataclass(frozen=True)
class TrackingScores:
    """DET, TRA and the AOGM operation counts of one sequence; see the module docstring."""

    det: float
    tra: float
    aogm_d: float
    aogm_d0: float
    aogm: float
    aogm_0: float
    ns: int
    fn: int
    fp: int
    ed: int
    ea: int
    ec: int
    n_vertices: int
    n_edges: int

    def as_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (for CSV rows and JSON)."""
        return asdict(self)


def match_objects(reference: NDArray[np.integer], result: NDArray[np.integer]) -> NDArray[np.int64]:
    """Pairs ``(reference label, result label)`` where the result object covers more than half.

    Parameters
    ----------
    reference, result : (Y, X) ndarray of int
        Label images of one frame (0 = background).

    Returns
    -------
    (K, 2) ndarray of int64
        Sorted by reference label; a reference label appears at most once, a result label may
        appear several times (it covers more than half of several reference objects).

    Examples
    --------
    >>> ref = np.array([[1, 1, 0, 2, 2]])
    >>> res = np.array([[5, 0, 0, 5, 5]])
    >>> match_objects(ref, res).tolist()  # 5 covers half of 1 (not more) and all of 2
    [[2, 5]]
    """
    ref = np.asarray(reference)
    res = np.asarray(result)
    if ref.shape != res.shape:
        raise LapsegInputError(
            f"reference and result frames differ in shape: {ref.shape} vs {res.shape}"
        )
    inside = ref != 0
    ref_ids, ref_index = np.unique(ref[inside], return_inverse=True)
    res_ids, res_index = np.unique(res[inside], return_inverse=True)
    counts = np.bincount(
        ref_index * res_ids.size + res_index, minlength=ref_ids.size * res_ids.size
    ).reshape(ref_ids.size, res_ids.size)
    area = counts.sum(axis=1, keepdims=True)
    rows, cols = np.nonzero((2 * counts > area) & (res_ids != 0)[None, :])
    return np.stack([ref_ids[rows], res_ids[cols]], axis=1).astype(np.int64).reshape(-1, 2)


def _vertices(stack: NDArray[np.integer]) -> tuple[list[NDArray[np.int64]], NDArray[np.int64]]:
    """Sorted labels of each frame and the index of each frame's first vertex (length T + 1)."""
    per_frame = []
    for frame in stack:
        ids = np.unique(frame)
        per_frame.append(ids[ids != 0].astype(np.int64))
    offsets = np.concatenate([[0], np.cumsum([ids.size for ids in per_frame])]).astype(np.int64)
    return per_frame, offsets


def _edges(
    per_frame: list[NDArray[np.int64]], offsets: NDArray[np.int64], table: NDArray[np.int64]
) -> NDArray[np.int64]:
    """Edges ``(source vertex, target vertex, semantics)``; semantics 0 track link, 1 parent link."""
    edges = []
    for t in range(len(per_frame) - 1):
        now, nxt = per_frame[t], per_frame[t + 1]
        common = np.intersect1d(now, nxt, assume_unique=True)
        source = offsets[t] + np.searchsorted(now, common)
        target = offsets[t + 1] + np.searchsorted(nxt, common)
        edges.append(np.stack([source, target, np.zeros_like(source)], axis=1))
    end_of = {int(L): int(E) for L, _, E, _ in table}
    for L, B, _, P in table.tolist():
        if P == 0:
            continue
        E = end_of[P]
        source = offsets[E] + np.searchsorted(per_frame[E], P)
        target = offsets[B] + np.searchsorted(per_frame[B], L)
        edges.append(np.array([[source, target, 1]], dtype=np.int64))
    if not edges:
        return np.zeros((0, 3), dtype=np.int64)
    return np.concatenate(edges).astype(np.int64)


def tracking_scores(
    reference: NDArray[np.integer],
    reference_tracks: ArrayLike,
    result: NDArray[np.integer],
    result_tracks: ArrayLike,
    *,
    weights: AOGMWeights = AOGMWeights(),
) -> TrackingScores:
    """CTC DET and TRA of a tracking result against a reference.

    Parameters
    ----------
    reference : (T, Y, X) ndarray of int
        Reference label stack (CTC ``man_track*.tif``); its labels are its track labels.
    reference_tracks : (N, 4) array_like of int
        Reference track table ``L B E P`` (``man_track.txt``).
    result : (T, Y, X) ndarray of int
        Result label stack (CTC ``mask*.tif``), same shape as ``reference``.
    result_tracks : (M, 4) array_like of int
        Result track table (``res_track.txt``).
    weights : AOGMWeights, optional
        AOGM weights (default: the CTC's).

    Returns
    -------
    TrackingScores

    Raises
    ------
    LapsegInputError
        Shapes differ, a stack and its table disagree (:func:`lapseg.io.ctc.check_tracks`), or
        the reference has no object (DET and TRA are undefined).
    """
    ref = np.asarray(reference)
    res = np.asarray(result)
    if ref.shape != res.shape:
        raise LapsegInputError(
            f"reference and result stacks differ in shape: {ref.shape} vs {res.shape}"
        )
    try:
        ref_table = check_tracks(ref, reference_tracks)
    except LapsegInputError as error:
        raise LapsegInputError(f"reference: {error}") from None
    try:
        res_table = check_tracks(res, result_tracks)
    except LapsegInputError as error:
        raise LapsegInputError(f"result: {error}") from None

    ref_frames, ref_offsets = _vertices(ref)
    res_frames, res_offsets = _vertices(res)
    n_ref, n_res = int(ref_offsets[-1]), int(res_offsets[-1])
    if n_ref == 0:
        raise LapsegInputError("the reference has no objects: DET and TRA are undefined")

    # Detection test: pairs of global vertex indices.
    pair_ref, pair_res = [], []
    for t in range(ref.shape[0]):
        pairs = match_objects(ref[t], res[t])
        pair_ref.append(ref_offsets[t] + np.searchsorted(ref_frames[t], pairs[:, 0]))
        pair_res.append(res_offsets[t] + np.searchsorted(res_frames[t], pairs[:, 1]))
    matched_ref = np.concatenate(pair_ref).astype(np.int64)
    matched_res = np.concatenate(pair_res).astype(np.int64)
    per_result = np.bincount(matched_res, minlength=n_res)
    fn = n_ref - matched_ref.size
    fp = int(np.count_nonzero(per_result == 0))
    ns = int(np.maximum(per_result - 1, 0).sum())

    # Edges between result objects matching exactly one reference object, mapped onto it.
    res_to_ref = np.full(n_res, -1, dtype=np.int64)
    unique = per_result[matched_res] == 1
    res_to_ref[matched_res[unique]] = matched_ref[unique]
    ref_edges = _edges(ref_frames, ref_offsets, ref_table)
    res_edges = _edges(res_frames, res_offsets, res_table)
    mapped = res_to_ref[res_edges[:, :2]]
    kept = np.all(mapped >= 0, axis=1)
    res_keys = mapped[kept, 0] * n_ref + mapped[kept, 1]
    ref_keys = ref_edges[:, 0] * n_ref + ref_edges[:, 1]
    _, in_ref, in_res = np.intersect1d(ref_keys, res_keys, return_indices=True)
    ed = int(res_keys.size - in_res.size)
    ea = int(ref_keys.size - in_ref.size)
    ec = int(np.count_nonzero(ref_edges[in_ref, 2] != res_edges[kept][in_res, 2]))

    w = weights
    aogm_d = w.ns * ns + w.fn * fn + w.fp * fp
    aogm_d0 = w.fn * n_ref
    aogm = aogm_d + w.ed * ed + w.ea * ea + w.ec * ec
    aogm_0 = aogm_d0 + w.ea * ref_edges.shape[0]
    return TrackingScores(
        det=1.0 - min(aogm_d, aogm_d0) / aogm_d0,
        tra=1.0 - min(aogm, aogm_0) / aogm_0,
        aogm_d=float(aogm_d),
        aogm_d0=float(aogm_d0),
        aogm=float(aogm),
        aogm_0=float(aogm_0),
        ns=ns,
        fn=int(fn),
        fp=fp,
        ed=ed,
        ea=ea,
        ec=ec,
        n_vertices=n_ref,
        n_edges=int(ref_edges.shape[0]),
    )
