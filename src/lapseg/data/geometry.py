"""Array geometry: padding, cropping, resizing and patches (numpy only).

Every function works on the last two axes, so it takes ``(Y, X)`` masks and ``(C, Y, X)``
images alike. Pads are written ``((y_before, y_after), (x_before, x_after))``.

Padding mode ``"reflect"`` mirrors the image without repeating the edge pixel (U-Net's
overlap-tile strategy). It is only well defined for a pad smaller than the axis (torch's reflect
padding refuses anything else, and numpy's repeated reflection of a 1-pixel axis degenerates), so
when a pad reaches the axis length lapseg uses ``"symmetric"`` instead, which repeats the edge
pixel and is defined for any pad. Other numpy modes (``"constant"``, ``"edge"``,
``"symmetric"``) are passed through.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from skimage.transform import resize

from lapseg.errors import LapsegInputError

Pads = tuple[tuple[int, int], tuple[int, int]]


def _check_array(array: np.ndarray) -> np.ndarray:
    array = np.asarray(array)
    if array.ndim not in (2, 3):
        raise LapsegInputError(f"expected a (Y, X) or (C, Y, X) array, got shape {array.shape}")
    if array.shape[-2] == 0 or array.shape[-1] == 0:
        raise LapsegInputError(f"array has an empty spatial axis (shape {array.shape})")
    return array


def _check_size(size_yx: tuple[int, int], what: str) -> tuple[int, int]:
    if len(size_yx) != 2 or any(int(s) != s or s < 1 for s in size_yx):
        raise LapsegInputError(f"{what} must be two positive integers (y, x), got {size_yx}")
    return int(size_yx[0]), int(size_yx[1])


def _pad(array: np.ndarray, pads: Pads, mode: str) -> np.ndarray:
    """Pad the last two axes; ``"reflect"`` becomes ``"symmetric"`` where a pad is too large."""
    if not any(any(p) for p in pads):
        return array.copy()
    if mode == "reflect":
        too_large = any(max(pad) >= size for pad, size in zip(pads, array.shape[-2:], strict=True))
        mode = "symmetric" if too_large else "reflect"
    full = ((0, 0),) * (array.ndim - 2) + pads
    try:
        return np.pad(array, full, mode=mode)  # type: ignore[call-overload]
    except ValueError as exc:
        raise LapsegInputError(f"cannot pad with mode {mode!r}: {exc}") from exc


def pad_to_multiple(
    image: np.ndarray, multiple: int | tuple[int, int], *, mode: str = "reflect"
) -> tuple[np.ndarray, Pads]:
    """Pad at the end (bottom, right) so Y and X are multiples of ``multiple``.

    Parameters
    ----------
    image : (Y, X) or (C, Y, X) ndarray
    multiple : int or (int, int)
        E.g. ``2 ** depth`` of a U-Net.
    mode : str
        ``"reflect"`` (see the module notes), or a numpy pad mode.

    Returns
    -------
    padded : ndarray
        A new array (also when no padding is needed).
    pads : ((int, int), (int, int))
        ``((0, y_after), (0, x_after))``; undo with :func:`crop_to_shape`.

    Examples
    --------
    >>> padded, pads = pad_to_multiple(np.zeros((1022, 1023)), 16)
    >>> padded.shape, pads
    ((1024, 1024), ((0, 2), (0, 1)))
    """
    image = _check_array(image)
    my, mx = _check_size(multiple if isinstance(multiple, tuple) else (multiple,) * 2, "multiple")
    y, x = image.shape[-2:]
    pads: Pads = ((0, -y % my), (0, -x % mx))
    return _pad(image, pads, mode), pads


def pad_to_at_least(
    image: np.ndarray, size_yx: tuple[int, int], *, mode: str = "reflect"
) -> tuple[np.ndarray, Pads]:
    """Pad at the end so Y and X are at least ``size_yx`` (e.g. an image smaller than a patch).

    Returns the padded array (a new array) and the pads, as :func:`pad_to_multiple`.
    """
    image = _check_array(image)
    ty, tx = _check_size(size_yx, "size")
    y, x = image.shape[-2:]
    pads: Pads = ((0, max(0, ty - y)), (0, max(0, tx - x)))
    return _pad(image, pads, mode), pads


def crop_to_shape(array: np.ndarray, shape_yx: tuple[int, int], pads: Pads) -> np.ndarray:
    """Undo a padding: cut ``shape_yx`` out of ``array`` after the ``before`` pads.

    Parameters
    ----------
    array : (..., Y', X') ndarray
        Padded array or a prediction on the padded grid (any leading axes).
    shape_yx : (int, int)
        Original spatial shape.
    pads : ((int, int), (int, int))
        As returned by :func:`pad_to_multiple` or :func:`pad_to_at_least`.

    Returns
    -------
    (..., Y, X) ndarray
        A view.
    """
    (yb, ya), (xb, xa) = pads
    y, x = _check_size(shape_yx, "shape")
    if array.shape[-2:] != (yb + y + ya, xb + x + xa):
        raise LapsegInputError(
            f"array of spatial shape {array.shape[-2:]} does not match shape {shape_yx} "
            f"with pads {pads}"
        )
    return array[..., yb : yb + y, xb : xb + x]


@dataclass(frozen=True)
class CropPad:
    """How :func:`center_crop_or_pad` changed an image, per axis (y, x).

    Attributes
    ----------
    original_yx : (int, int)
        Spatial shape before.
    size_yx : (int, int)
        Spatial shape after.
    pad_before_yx : (int, int)
        Pixels added at the start of an axis that was padded (0 otherwise).
    crop_before_yx : (int, int)
        Pixels removed at the start of an axis that was cropped (0 otherwise).
    """

    original_yx: tuple[int, int]
    size_yx: tuple[int, int]
    pad_before_yx: tuple[int, int]
    crop_before_yx: tuple[int, int]


def center_crop_or_pad(
    image: np.ndarray, size_yx: tuple[int, int], *, mode: str = "reflect"
) -> tuple[np.ndarray, CropPad]:
    """Centre-crop axes longer than ``size_yx`` and centre-pad shorter ones.

    An odd difference puts the extra pixel at the end.

    Returns
    -------
    out : ndarray
        Spatial shape ``size_yx`` (a new array).
    crop_pad : CropPad
        Pass to :func:`undo_center_crop_or_pad`.
    """
    image = _check_array(image)
    size = _check_size(size_yx, "size")
    original = image.shape[-2:]
    pads = []
    crops = []
    for n, target in zip(original, size, strict=True):
        diff = target - n
        pads.append((diff // 2, diff - diff // 2) if diff > 0 else (0, 0))
        crops.append((-diff) // 2 if diff < 0 else 0)
    cropped = image[
        ...,
        crops[0] : crops[0] + min(original[0], size[0]),
        crops[1] : crops[1] + min(original[1], size[1]),
    ]
    out = _pad(cropped, (pads[0], pads[1]), mode)
    crop_pad = CropPad(
        original_yx=(original[0], original[1]),
        size_yx=size,
        pad_before_yx=(pads[0][0], pads[1][0]),
        crop_before_yx=(crops[0], crops[1]),
    )
    return out, crop_pad


def undo_center_crop_or_pad(array: np.ndarray, crop_pad: CropPad, *, fill: float = 0) -> np.ndarray:
    """Map an array on the cropped/padded grid back to the original grid.

    Parameters
    ----------
    array : (..., Y', X') ndarray
        Spatial shape ``crop_pad.size_yx`` (e.g. a prediction; any leading axes).
    crop_pad : CropPad
    fill : scalar
        Value for the parts that were cropped away (nothing was predicted there).

    Returns
    -------
    (..., Y, X) ndarray
        Spatial shape ``crop_pad.original_yx``, same dtype as ``array``.
    """
    if array.shape[-2:] != crop_pad.size_yx:
        raise LapsegInputError(
            f"array of spatial shape {array.shape[-2:]} does not match {crop_pad.size_yx}"
        )
    src: list[slice] = []
    dst: list[slice] = []
    for axis in range(2):
        n = crop_pad.original_yx[axis]
        target = crop_pad.size_yx[axis]
        if target >= n:
            start = crop_pad.pad_before_yx[axis]
            src.append(slice(start, start + n))
            dst.append(slice(0, n))
        else:
            start = crop_pad.crop_before_yx[axis]
            src.append(slice(0, target))
            dst.append(slice(start, start + target))
    out = np.full(array.shape[:-2] + crop_pad.original_yx, fill, dtype=array.dtype)
    out[..., dst[0], dst[1]] = array[..., src[0], src[1]]
    return out


def resize_to(image: np.ndarray, size_yx: tuple[int, int], *, order: int) -> np.ndarray:
    """Resize the last two axes to ``size_yx`` (channels are resized independently).

    Uses :func:`skimage.transform.resize` with ``preserve_range=True``; anti-aliasing only when
    shrinking with ``order > 0``. ``order=0`` (nearest neighbour) keeps labels and the dtype, for
    masks; ``order > 0`` returns float32. To map a prediction made on a resized image back to
    the original grid, call ``resize_to(prediction, original_yx, order=...)`` (order 0 for
    labels, 1 for probabilities).

    Parameters
    ----------
    image : (Y, X) or (C, Y, X) ndarray
    size_yx : (int, int)
    order : int
        Spline order 0..5.

    Returns
    -------
    (size_y, size_x) or (C, size_y, size_x) ndarray
    """
    image = _check_array(image)
    size = _check_size(size_yx, "size")
    if not 0 <= order <= 5:
        raise LapsegInputError(f"interpolation order must be 0..5, got {order}")
    shrinking = size[0] < image.shape[-2] or size[1] < image.shape[-1]
    anti_aliasing = shrinking and order > 0
    source = image.astype(np.uint8) if image.dtype == np.bool_ else image
    channels = source[None] if source.ndim == 2 else source
    resized = np.stack(
        [
            resize(
                channel,
                size,
                order=order,
                preserve_range=True,
                anti_aliasing=anti_aliasing,
                mode="edge",
            )
            for channel in channels
        ]
    )
    resized = resized[0] if image.ndim == 2 else resized
    if order == 0:
        return resized.astype(image.dtype)
    return resized.astype(np.float32)


def sample_patch_origin(
    mask: np.ndarray,
    patch_yx: tuple[int, int],
    *,
    foreground_probability: float,
    rng: int | np.random.Generator | None = None,
) -> tuple[int, int]:
    """Pick the top-left corner of a training patch.

    With probability ``foreground_probability`` (and if the mask has any foreground) a random
    foreground pixel is drawn and the patch is placed uniformly among the positions that contain
    it and fit in the image; otherwise the origin is uniform over all valid positions.

    Parameters
    ----------
    mask : (Y, X) ndarray
        Nonzero is foreground. Must be at least ``patch_yx`` in both axes: pad smaller images
        first with :func:`pad_to_at_least`.
    patch_yx : (int, int)
    foreground_probability : float
        In ``[0, 1]``.
    rng : int, Generator or None

    Returns
    -------
    (int, int)
        ``(y0, x0)`` with ``0 <= y0 <= Y - patch_y`` and ``0 <= x0 <= X - patch_x``.
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise LapsegInputError(f"mask must be (Y, X), got shape {mask.shape}")
    py, px = _check_size(patch_yx, "patch size")
    y, x = mask.shape
    if y < py or x < px:
        raise LapsegInputError(
            f"image {mask.shape} is smaller than the patch {(py, px)}; pad it first "
            "(pad_to_at_least)"
        )
    if not 0.0 <= foreground_probability <= 1.0:
        raise LapsegInputError(
            f"foreground_probability must be in [0, 1], got {foreground_probability}"
        )
    rng = np.random.default_rng(rng)
    if rng.random() < foreground_probability:
        foreground = np.flatnonzero(mask)
        if foreground.size:
            fy, fx = divmod(int(foreground[rng.integers(foreground.size)]), x)
            y0 = int(rng.integers(max(0, fy - py + 1), min(fy, y - py) + 1))
            x0 = int(rng.integers(max(0, fx - px + 1), min(fx, x - px) + 1))
            return y0, x0
    return int(rng.integers(0, y - py + 1)), int(rng.integers(0, x - px + 1))


def extract_patch(
    array: np.ndarray, origin_yx: tuple[int, int], patch_yx: tuple[int, int]
) -> np.ndarray:
    """Cut a patch out of the last two axes of ``array`` (a view).

    Parameters
    ----------
    array : (Y, X) or (C, Y, X) ndarray
    origin_yx : (int, int)
        Top-left corner, as from :func:`sample_patch_origin`.
    patch_yx : (int, int)

    Returns
    -------
    (patch_y, patch_x) or (C, patch_y, patch_x) ndarray
    """
    array = _check_array(array)
    py, px = _check_size(patch_yx, "patch size")
    y0, x0 = (int(v) for v in origin_yx)
    y, x = array.shape[-2:]
    if y0 < 0 or x0 < 0 or y0 + py > y or x0 + px > x:
        raise LapsegInputError(
            f"patch {(py, px)} at {(y0, x0)} does not fit in an image of size {(y, x)}"
        )
    return array[..., y0 : y0 + py, x0 : x0 + px]
