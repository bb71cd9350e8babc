"""What every training image/mask pair must be before lapseg learns from it.

Reading already refuses what cannot be an image at all (unreadable files, absurd sizes, NaN or
infinite pixels: :func:`lapseg.io.images.read_image`) and pairs whose shapes differ
(:func:`lapseg.data.samples.read_raw_sample`). :func:`check_training_pair` adds what only makes
sense for training, each a one-line :class:`~lapseg.errors.LapsegInputError` naming the file:

- a constant image whose mask marks objects (nothing in the image can show them: a blank or
  wrongly exported file); a constant image with an empty mask is a legitimate background-only
  example and is only logged;
- mask values the mask kind does not allow: class values ``>= num_classes``; for masks detected
  as binary, a mask with other values than 0 and one foreground value (1 or 255), since 255 in a
  0/1 mask is usually an "ignore" label and a label image among binary masks a mix-up.

Every check is a few passes over arrays already in memory (min, max, a count), no sorting of
whole images unless a problem is found.
"""

from __future__ import annotations

import logging

import numpy as np

from lapseg.errors import LapsegInputError
from lapseg.io.discovery import SamplePaths

__all__ = ["check_training_pair"]

log = logging.getLogger(__name__)

_SHOWN = 8
"""Mask values listed in an error message."""


def _listed(values: np.ndarray) -> str:
    shown = ", ".join(str(v) for v in values[:_SHOWN].tolist())
    return shown + (f", ... ({values.size} values)" if values.size > _SHOWN else "")


def _check_constant(paths: SamplePaths, image: np.ndarray, mask: np.ndarray) -> None:
    low, high = image.min(), image.max()
    if low != high:
        return
    foreground = int(np.count_nonzero(mask))
    if foreground:
        raise LapsegInputError(
            f"image is constant (every pixel is {low}) but its mask {paths.mask} marks "
            f"{foreground} foreground pixel(s) that nothing in the image shows; a blank or "
            "wrongly exported file? Fix or remove the pair",
            path=paths.image,
        )
    log.warning(
        "%s: constant image (every pixel is %s) with an empty mask: trained on as background",
        paths.image,
        low,
    )


def _check_classes(paths: SamplePaths, mask: np.ndarray, num_classes: int) -> None:
    if mask.size == 0 or int(mask.max()) < num_classes:
        return
    values = np.unique(mask)
    if num_classes == 2 and set(values.tolist()) <= {0, 255}:
        return  # a 0/255 mask is classes 0/1
    bad = values[values >= num_classes]
    raise LapsegInputError(
        f"mask has class value(s) {_listed(bad)} but there are {num_classes} classes "
        f"(valid: 0..{num_classes - 1}); fix the mask or set model.out_channels",
        path=paths.mask,
    )


def _check_binary(paths: SamplePaths, mask: np.ndarray) -> None:
    if mask.dtype == np.bool_ or mask.size == 0:
        return
    high = int(mask.max())
    if high <= 1 or (high == 255 and np.count_nonzero(mask) == np.count_nonzero(mask == 255)):
        return
    values = np.unique(mask)
    raise LapsegInputError(
        f"mask holds the values {_listed(values)}, but the masks were detected as binary "
        "(0 and one foreground value, 1 or 255); fix the file, or set data.mask_kind=binary "
        "(every nonzero value is foreground) or data.mask_kind=instance",
        path=paths.mask,
    )


def check_training_pair(
    paths: SamplePaths,
    image: np.ndarray,
    mask: np.ndarray,
    *,
    kind: str,
    num_classes: int,
    detected: bool,
) -> None:
    """Refuse a training pair whose values cannot be learnt from (see the module docstring).

    Parameters
    ----------
    paths : SamplePaths
        Where the pair was read from (named in the messages).
    image : (C, Y, X) ndarray
        The raw image (finite: :func:`lapseg.io.images.read_image` refuses NaN and Inf).
    mask : (Y, X) ndarray
        The raw mask.
    kind : {"binary", "instance", "classes"}
        The run's (resolved) mask kind.
    num_classes : int
        Classes of a class-index target (``max(model.outputs, 2)``).
    detected : bool
        True when the mask kind was detected from the masks rather than configured: only then
        are binary masks held to one foreground value.

    Raises
    ------
    LapsegInputError
        Naming the image or mask file and the problem.
    """
    _check_constant(paths, image, mask)
    if kind == "classes":
        _check_classes(paths, mask, num_classes)
    elif kind == "binary" and detected:
        _check_binary(paths, mask)
