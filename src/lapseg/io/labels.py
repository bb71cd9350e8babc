"""What a mask file means: a binary mask or an instance label image, and its objects.

The one owner of "mask -> instances" for every layer: a binary mask (0/1, 0/255 or bool) gets
its 4-connected foreground components labelled 1..N; any other integer image is taken as
instance labels and relabelled sequentially.
"""

from __future__ import annotations

import numpy as np
from skimage.measure import label
from skimage.segmentation import relabel_sequential

from lapseg.errors import LapsegInputError

__all__ = ["check_mask", "is_binary_mask", "to_instances"]


def check_mask(mask: np.ndarray) -> np.ndarray:
    """``mask`` as an array after checking it is a 2D integer (or bool) image without negatives."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise LapsegInputError(f"mask must be 2D (Y, X), got shape {mask.shape}")
    if mask.dtype != np.bool_ and not np.issubdtype(mask.dtype, np.integer):
        raise LapsegInputError(f"mask must hold integers, got dtype {mask.dtype}")
    if mask.size and np.issubdtype(mask.dtype, np.signedinteger) and mask.min() < 0:
        raise LapsegInputError("mask has negative labels")
    return mask


def is_binary_mask(mask: np.ndarray) -> bool:
    """True if ``mask`` is bool or its values are a subset of {0, 1} or of {0, 255}."""
    mask = np.asarray(mask)
    if mask.dtype == np.bool_:
        return True
    values = set(np.unique(mask).tolist())
    return values <= {0, 1} or values <= {0, 255}


def to_instances(mask: np.ndarray, *, relabel: bool = True) -> np.ndarray:
    """Instance labels (0 background).

    A binary mask (see :func:`is_binary_mask`) is labelled by connected components with
    4-connectivity (``connectivity=1``), 1..N in scan order; any other mask is taken as instance
    labels, keeping each object as it is (even if not connected). Note that an instance mask
    holding a single object labelled 1 (or 255) counts as binary.

    Parameters
    ----------
    mask : (Y, X) ndarray
    relabel : bool, optional
        Relabel instance images sequentially (1..N); False keeps their label values (outline
        export names each object by its value).

    Returns
    -------
    (Y, X) ndarray of int32
    """
    mask = check_mask(mask)
    if is_binary_mask(mask):
        return label(mask != 0, connectivity=1).astype(np.int32)
    if not relabel:
        return mask.astype(np.int32)
    relabelled, _, _ = relabel_sequential(mask)
    return relabelled.astype(np.int32)
