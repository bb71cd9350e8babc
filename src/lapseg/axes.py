"""One axes vocabulary for every array lapseg reads: a string over ``"TZCYX"``.

``T`` time, ``Z`` depth, ``C`` channel, ``Y`` rows, ``X`` columns. Axes are always given (by the
user, or by the file's own metadata); lapseg never guesses which axis is the channel.
"""

from __future__ import annotations

import numpy as np

from lapseg.errors import LapsegInputError

AXES_VOCABULARY = "TZCYX"
"""Allowed axis letters, in canonical order."""


def validate_axes(axes: str, *, ndim: int | None = None) -> str:
    """Return ``axes`` upper-cased after checking it.

    Parameters
    ----------
    axes : str
        Axis letters from ``"TZCYX"``, each at most once, containing ``Y`` and ``X``.
    ndim : int, optional
        If given, the number of dimensions of the array the axes describe.

    Raises
    ------
    LapsegInputError
        If a letter is unknown or repeated, ``Y``/``X`` are missing, or the length differs
        from ``ndim``.
    """
    normalised = axes.upper()
    unknown = sorted(set(normalised) - set(AXES_VOCABULARY))
    if unknown:
        raise LapsegInputError(
            f"axes {axes!r} contain unknown letter(s) {''.join(unknown)!r}; "
            f"use letters from {AXES_VOCABULARY!r}"
        )
    if len(set(normalised)) != len(normalised):
        raise LapsegInputError(f"axes {axes!r} repeat a letter")
    if "Y" not in normalised or "X" not in normalised:
        raise LapsegInputError(f"axes {axes!r} must contain both 'Y' and 'X'")
    if ndim is not None and len(normalised) != ndim:
        raise LapsegInputError(
            f"axes {axes!r} name {len(normalised)} dimensions but the array has {ndim}"
        )
    return normalised


def to_canonical(array: np.ndarray, axes: str) -> np.ndarray:
    """Reorder ``array`` to ``(T, Z, C, Y, X)``, inserting missing axes with size 1.

    Parameters
    ----------
    array : ndarray
        Any array whose dimensions are named by ``axes``.
    axes : str
        Axis letters of ``array``.

    Returns
    -------
    out : (T, Z, C, Y, X) ndarray
        A view of ``array`` where possible (no copy is made).
    """
    axes = validate_axes(axes, ndim=array.ndim)
    missing = [a for a in AXES_VOCABULARY if a not in axes]
    expanded = array.reshape(array.shape + (1,) * len(missing))
    order = [(axes + "".join(missing)).index(a) for a in AXES_VOCABULARY]
    return np.transpose(expanded, order)


def to_cyx(array: np.ndarray, axes: str) -> np.ndarray:
    """Reorder a 2D (possibly multi-channel) image to ``(C, Y, X)``.

    Parameters
    ----------
    array : ndarray
        An image whose axes are named by ``axes``; any ``T`` or ``Z`` axis must have size 1.
    axes : str
        Axis letters of ``array``, e.g. ``"YX"``, ``"YXC"``, ``"CYX"``.

    Returns
    -------
    out : (C, Y, X) ndarray

    Raises
    ------
    LapsegInputError
        If the image has more than one time point or z-slice.
    """
    canonical = to_canonical(array, axes)
    t, z = canonical.shape[:2]
    if t != 1 or z != 1:
        raise LapsegInputError(
            f"expected a 2D image but axes {axes!r} give T={t}, Z={z}; "
            "select one frame/slice or use the time-lapse commands"
        )
    return canonical[0, 0]
