"""Turn annotation masks into training targets.

Three kinds of mask are understood (:data:`MASK_KINDS`):

``"binary"``
    Foreground is any nonzero pixel (0/1, 0/255 and label images all work).
``"instance"``
    Integer labels, one per object, 0 is background.
``"classes"``
    Class indices ``0 .. num_classes - 1`` (a 0/255 mask counts as classes 0/1 when
    ``num_classes == 2``).
"""

from __future__ import annotations

import numpy as np

from lapseg.config import MASK_KINDS
from lapseg.errors import LapsegInputError
from lapseg.io.labels import check_mask


def to_binary(mask: np.ndarray) -> np.ndarray:
    """Foreground (any nonzero value) as 1, background as 0.

    Parameters
    ----------
    mask : (Y, X) ndarray
        Integer or bool mask.

    Returns
    -------
    (Y, X) ndarray of uint8
        Values in {0, 1}.
    """
    return (check_mask(mask) != 0).astype(np.uint8)


def to_class_indices(mask: np.ndarray, *, num_classes: int) -> np.ndarray:
    """Class-index target from a class mask.

    Parameters
    ----------
    mask : (Y, X) ndarray
        Class indices, or a 0/255 mask when ``num_classes == 2``.
    num_classes : int
        Number of classes, at least 2.

    Returns
    -------
    (Y, X) ndarray of int64

    Raises
    ------
    LapsegInputError
        If a value is ``>= num_classes`` (the message lists them).
    """
    if num_classes < 2:
        raise LapsegInputError(f"num_classes must be at least 2, got {num_classes}")
    mask = check_mask(mask)
    values = np.unique(mask)
    if num_classes == 2 and set(values.tolist()) <= {0, 255}:
        return (mask != 0).astype(np.int64)
    bad = values[values >= num_classes]
    if bad.size:
        shown = ", ".join(str(v) for v in bad[:10].tolist())
        raise LapsegInputError(
            f"mask has class value(s) {shown} but num_classes is {num_classes} "
            f"(valid: 0..{num_classes - 1})"
        )
    return mask.astype(np.int64)


def mask_to_target(mask: np.ndarray, *, kind: str, num_classes: int) -> np.ndarray:
    """Training target for a mask of the given kind.

    Parameters
    ----------
    mask : (Y, X) ndarray
    kind : {"binary", "instance", "classes"}
        ``"binary"`` and ``"instance"`` give foreground 0/1 (they need ``num_classes == 2``);
        ``"classes"`` gives class indices.
    num_classes : int

    Returns
    -------
    (Y, X) ndarray of int64
    """
    if kind not in MASK_KINDS:
        raise LapsegInputError(f"unknown mask kind {kind!r}; use one of {', '.join(MASK_KINDS)}")
    if kind == "classes":
        return to_class_indices(mask, num_classes=num_classes)
    if num_classes != 2:
        raise LapsegInputError(
            f"mask kind {kind!r} gives a foreground/background target (num_classes=2), "
            f"got num_classes={num_classes}"
        )
    return to_binary(mask).astype(np.int64)
