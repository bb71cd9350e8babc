"""Intensity normalisation whose statistics come from training data only.

The statistics (:class:`NormalizationStats`) are fitted once on the training images with
:func:`fit_normalization`, stored with the model, and applied unchanged to validation, test and
new images with :func:`apply_normalization`.

Modes (:data:`NORMALIZATION_MODES`):

``"percentile"``
    Per image and channel, ``(x - p_low) / (p_high - p_low)`` (see :func:`percentile_normalize`).
``"percentile+meanstd"``
    The percentile step, then ``(x - mean) / std`` per channel with mean and std of the
    percentile-normalised training images.
``"meanstd"``
    ``(x - mean) / std`` per channel with mean and std of the raw training images.
``"mean-only"``
    ``x - mean`` per channel with the mean of the raw training images (zero-centred, not
    rescaled: VGG's per-channel mean; stored as std 1).
``"mean-image"``
    ``x - mean_image`` with the pixel-wise ``(C, Y, X)`` mean of the raw training images
    (AlexNet's mean image): every image must have the training images' size.
``"none"``
    Cast to float32 only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lapseg.errors import LapsegInputError

NORMALIZATION_MODES: tuple[str, ...] = (
    "percentile",
    "percentile+meanstd",
    "meanstd",
    "mean-only",
    "mean-image",
    "none",
)

_EPS = 1e-6
_MAX_PERCENTILE_SAMPLES = 1 << 22  # 4M pixels per channel; larger images are subsampled


def _uses_meanstd(mode: str) -> bool:
    return mode in ("percentile+meanstd", "meanstd", "mean-only")


def _uses_percentile(mode: str) -> bool:
    return mode.startswith("percentile")


def _check_settings(mode: str, low: float, high: float) -> None:
    if mode not in NORMALIZATION_MODES:
        raise LapsegInputError(
            f"unknown normalisation mode {mode!r}; use one of {', '.join(NORMALIZATION_MODES)}"
        )
    if not 0.0 <= low < high <= 100.0:
        raise LapsegInputError(
            f"normalisation percentiles need 0 <= low < high <= 100, got low={low}, high={high}"
        )


@dataclass(frozen=True)
class NormalizationStats:
    """Normalisation mode and the statistics fitted on training data.

    Attributes
    ----------
    mode : str
        One of :data:`NORMALIZATION_MODES`.
    low_percentile, high_percentile : float
        Percentiles for the percentile step, ``0 <= low < high <= 100``.
    mean, std : tuple of float
        Per-channel statistics for the mean/std modes (empty otherwise); ``std > 0`` (all 1
        for ``"mean-only"``).
    mean_image : (C, Y, X) ndarray of float32 or None
        The pixel-wise training mean of ``"mean-image"`` (read-only; None for other modes).
    """

    mode: str
    low_percentile: float = 1.0
    high_percentile: float = 99.8
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    mean_image: np.ndarray | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        _check_settings(self.mode, self.low_percentile, self.high_percentile)
        object.__setattr__(self, "low_percentile", float(self.low_percentile))
        object.__setattr__(self, "high_percentile", float(self.high_percentile))
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))
        if len(self.mean) != len(self.std):
            raise LapsegInputError(
                f"normalisation mean has {len(self.mean)} values but std has {len(self.std)}"
            )
        if _uses_meanstd(self.mode) and not self.mean:
            raise LapsegInputError(f"normalisation mode {self.mode!r} needs mean and std")
        if not all(np.isfinite(v) for v in self.mean + self.std) or any(v <= 0 for v in self.std):
            raise LapsegInputError("normalisation mean/std must be finite and std positive")
        object.__setattr__(self, "mean_image", _checked_mean_image(self.mode, self.mean_image))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, NormalizationStats):
            return NotImplemented
        fields = (self.mode, self.low_percentile, self.high_percentile, self.mean, self.std)
        other_fields = (other.mode, other.low_percentile, other.high_percentile)
        if fields != (*other_fields, other.mean, other.std):
            return False
        if self.mean_image is None or other.mean_image is None:
            return self.mean_image is other.mean_image
        return bool(np.array_equal(self.mean_image, other.mean_image))

    __hash__ = None  # type: ignore[assignment]  # holds an array: not hashable

    @property
    def num_channels(self) -> int | None:
        """Channel count the statistics were fitted on, None when no per-channel data."""
        if self.mean_image is not None:
            return int(self.mean_image.shape[0])
        return len(self.mean) or None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-compatible dict (str, float, list) for configs and checkpoints; the mean
        image (``"mean-image"`` only) as nested ``(C, Y, X)`` lists."""
        data: dict[str, Any] = {
            "mode": self.mode,
            "low_percentile": self.low_percentile,
            "high_percentile": self.high_percentile,
            "mean": list(self.mean),
            "std": list(self.std),
        }
        if self.mean_image is not None:
            data["mean_image"] = self.mean_image.tolist()
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NormalizationStats:
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        known = {"mode", "low_percentile", "high_percentile", "mean", "std", "mean_image"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise LapsegInputError(
                f"unknown normalisation key(s) {', '.join(unknown)}; use {', '.join(sorted(known))}"
            )
        if "mode" not in data:
            raise LapsegInputError("normalisation settings need a 'mode'")
        return cls(
            mode=str(data["mode"]),
            low_percentile=float(data.get("low_percentile", 1.0)),
            high_percentile=float(data.get("high_percentile", 99.8)),
            mean=tuple(data.get("mean", ())),
            std=tuple(data.get("std", ())),
            mean_image=None if data.get("mean_image") is None else np.asarray(data["mean_image"]),
        )


def _checked_mean_image(mode: str, image: Any) -> np.ndarray | None:
    """The mean image as a read-only float32 ``(C, Y, X)`` copy; present iff ``"mean-image"``."""
    if mode != "mean-image":
        if image is not None:
            raise LapsegInputError(f"normalisation mode {mode!r} takes no mean image")
        return None
    if image is None:
        raise LapsegInputError("normalisation mode 'mean-image' needs its mean image")
    try:
        array = np.array(image, dtype=np.float32)
    except (TypeError, ValueError):
        raise LapsegInputError("the normalisation mean image is not a numeric array") from None
    if array.ndim != 3 or array.size == 0 or not np.isfinite(array).all():
        raise LapsegInputError(
            f"the normalisation mean image must be a finite (C, Y, X) array, got shape {array.shape}"
        )
    array.setflags(write=False)
    return array


def _check_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3:
        raise LapsegInputError(f"image must be (C, Y, X), got shape {image.shape}")
    if image.size == 0:
        raise LapsegInputError(f"image is empty (shape {image.shape})")
    return image


def percentile_range(image: np.ndarray, *, low: float = 1.0, high: float = 99.8) -> np.ndarray:
    """Per-channel ``(offset, scale)`` of :func:`percentile_normalize`, shape ``(C, 2)``.

    ``offset = p_low`` and ``scale = p_high - p_low``; when ``scale < 1e-6`` (e.g. a sparse
    image whose percentiles coincide) it falls back to ``max - min`` so rare bright pixels map
    to at most 1 instead of exploding, and a constant channel gets scale 1 (zeros, never NaN).
    Channels with more than 4M pixels use a regular strided subsample of about 4M pixels.

    >>> percentile_range(np.arange(101, dtype=np.float32).reshape(1, 1, 101), low=0, high=100)
    array([[  0., 100.]])
    """
    image = _check_image(image)
    _check_settings("percentile", low, high)
    ranges = np.empty((image.shape[0], 2))
    for c, channel in enumerate(image):
        flat = channel.reshape(-1)
        step = max(1, -(-flat.size // _MAX_PERCENTILE_SAMPLES))
        p_low, p_high = np.percentile(flat[::step], [low, high])
        scale = float(p_high - p_low)
        if scale < _EPS:
            scale = float(flat.max()) - float(flat.min())
        if scale < _EPS:
            scale = 1.0
        ranges[c] = (float(p_low), scale)
    return ranges


def percentile_normalize(
    image: np.ndarray,
    *,
    low: float = 1.0,
    high: float = 99.8,
    reference: np.ndarray | None = None,
) -> np.ndarray:
    """Scale each channel so its ``low`` percentile maps to 0 and ``high`` to 1.

    ``out = (x - p_low) / scale`` with the ``(offset, scale)`` of :func:`percentile_range`.
    Values outside the percentiles are not clipped.

    Parameters
    ----------
    image : (C, Y, X) ndarray
    low, high : float
        Percentiles, ``0 <= low < high <= 100``.
    reference : (C, Y', X') ndarray, optional
        Take the percentiles from these pixels instead of ``image``: a sample of a whole
        slide when ``image`` is one block of it, so every block is scaled alike.

    Returns
    -------
    (C, Y, X) ndarray of float32
    """
    image = _check_image(image)
    ranges = percentile_range(image if reference is None else reference, low=low, high=high)
    if len(ranges) != image.shape[0]:
        raise LapsegInputError(
            f"reference has {len(ranges)} channel(s), the image {image.shape[0]}"
        )
    out = image.astype(np.float32)  # always a copy: the input is never changed
    for c in range(out.shape[0]):
        out[c] = (out[c] - np.float32(ranges[c, 0])) / np.float32(ranges[c, 1])
    return out


def fit_normalization(
    images: Iterable[np.ndarray], *, mode: str, low: float = 1.0, high: float = 99.8
) -> NormalizationStats:
    """Fit normalisation statistics on training images.

    Mean and std per channel are accumulated in float64 image by image (Chan et al.'s parallel
    update, so the whole set never sits in memory) after the percentile step when the mode
    includes it. A std below 1e-6 (a constant channel) is stored as 1.

    Parameters
    ----------
    images : iterable of (C, Y, X) ndarray
        Training images only; all with the same channel count.
    mode : str
        One of :data:`NORMALIZATION_MODES`.
    low, high : float
        Percentiles for the percentile step.

    Returns
    -------
    NormalizationStats
    """
    _check_settings(mode, low, high)
    if mode == "mean-image":
        return NormalizationStats(
            mode=mode, low_percentile=low, high_percentile=high, mean_image=_mean_image(images)
        )
    if not _uses_meanstd(mode):
        return NormalizationStats(mode=mode, low_percentile=low, high_percentile=high)
    count = 0
    mean: np.ndarray | None = None
    m2: np.ndarray | None = None
    for index, image in enumerate(images):
        image = _check_image(image)
        if _uses_percentile(mode):
            image = percentile_normalize(image, low=low, high=high)
        values = image.reshape(image.shape[0], -1).astype(np.float64)
        n_b = values.shape[1]
        mean_b = values.mean(axis=1)
        m2_b = ((values - mean_b[:, None]) ** 2).sum(axis=1)
        if mean is None or m2 is None:
            count, mean, m2 = n_b, mean_b, m2_b
            continue
        if mean_b.shape != mean.shape:
            raise LapsegInputError(
                f"training image {index} has {mean_b.size} channels, earlier ones {mean.size}"
            )
        total = count + n_b
        delta = mean_b - mean
        mean = mean + delta * (n_b / total)
        m2 = m2 + m2_b + delta**2 * (count * n_b / total)
        count = total
    if mean is None or m2 is None:
        raise LapsegInputError("cannot fit normalisation on zero training images")
    std = np.sqrt(m2 / count)
    std = np.where(std < _EPS, 1.0, std)
    if mode == "mean-only":
        std = np.ones_like(std)
    return NormalizationStats(
        mode=mode,
        low_percentile=low,
        high_percentile=high,
        mean=tuple(mean.tolist()),
        std=tuple(std.tolist()),
    )


def _mean_image(images: Iterable[np.ndarray]) -> np.ndarray:
    """Pixel-wise mean ``(C, Y, X)`` of the training images, summed in float64."""
    total: np.ndarray | None = None
    count = 0
    for index, image in enumerate(images):
        image = _check_image(image)
        if total is None:
            total = np.zeros(image.shape, dtype=np.float64)
        elif image.shape != total.shape:
            raise LapsegInputError(
                f"mean-image normalisation needs training images of one size: image {index} is "
                f"{image.shape} (C, Y, X), the first {total.shape}; set data.resize or "
                "data.crop_or_pad, or use normalization.mode=mean-only"
            )
        total += image
        count += 1
    if total is None:
        raise LapsegInputError("cannot fit normalisation on zero training images")
    return (total / count).astype(np.float32)


def apply_normalization(
    image: np.ndarray, stats: NormalizationStats, *, reference: np.ndarray | None = None
) -> np.ndarray:
    """Normalise one image with statistics fitted by :func:`fit_normalization`.

    Parameters
    ----------
    image : (C, Y, X) ndarray
    stats : NormalizationStats
    reference : (C, Y', X') ndarray, optional
        Pixels the percentile step takes its percentiles from instead of ``image``
        (:func:`percentile_normalize`).

    Returns
    -------
    (C, Y, X) ndarray of float32

    Raises
    ------
    LapsegInputError
        If the channel count differs from the one the statistics were fitted on.
    """
    image = _check_image(image)
    if stats.num_channels is not None and image.shape[0] != stats.num_channels:
        raise LapsegInputError(
            f"image has {image.shape[0]} channel(s) but the normalisation was fitted on "
            f"{stats.num_channels}"
        )
    if _uses_percentile(stats.mode):
        out = percentile_normalize(
            image, low=stats.low_percentile, high=stats.high_percentile, reference=reference
        )
    else:
        out = image.astype(np.float32)
    if stats.mean_image is not None:
        if image.shape != stats.mean_image.shape:
            raise LapsegInputError(
                f"image shape {image.shape} (C, Y, X) differs from the mean image "
                f"{stats.mean_image.shape} of the model's mean-image normalisation: give images "
                "of the training size"
            )
        out -= stats.mean_image
    if _uses_meanstd(stats.mode):
        mean = np.asarray(stats.mean, dtype=np.float32)[:, None, None]
        std = np.asarray(stats.std, dtype=np.float32)[:, None, None]
        out = (out - mean) / std
    return out
