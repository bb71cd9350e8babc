"""Intensity transforms of the image only (never the target or the weight map).

Each function returns a new float32 ``(C, Y, X)`` array. A drawn parameter is shared by all
channels (channels may be the temporal frames of one sample); noise is drawn per pixel.
:func:`random_intensity` applies, each with its probability, gamma, contrast, brightness, blur
and noise, in that order.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from lapseg.config import AugmentationConfig


def adjust_brightness(image: np.ndarray, shift: float) -> np.ndarray:
    """``image + shift``.

    Parameters
    ----------
    image : (C, Y, X) ndarray
    shift : float

    Returns
    -------
    out : (C, Y, X) ndarray of float32
    """
    return (np.asarray(image, dtype=np.float32) + np.float32(shift)).astype(np.float32)


def adjust_contrast(image: np.ndarray, factor: float) -> np.ndarray:
    """Scale each channel's deviations from its own mean: ``mean + factor * (image - mean)``.

    Parameters
    ----------
    image : (C, Y, X) ndarray
    factor : float
        >= 0; 1 leaves the image unchanged, 0 makes each channel constant.

    Returns
    -------
    out : (C, Y, X) ndarray of float32
    """
    image = np.asarray(image, dtype=np.float32)
    mean = image.mean(axis=(-2, -1), keepdims=True)
    return (mean + np.float32(factor) * (image - mean)).astype(np.float32)


def adjust_gamma(image: np.ndarray, gamma: float) -> np.ndarray:
    """Gamma correction of each channel rescaled to [0, 1], then mapped back to its own range.

    Parameters
    ----------
    image : (C, Y, X) ndarray
    gamma : float
        > 0; < 1 brightens the mid-tones, > 1 darkens them. A constant channel is unchanged.

    Returns
    -------
    out : (C, Y, X) ndarray of float32
    """
    image = np.asarray(image, dtype=np.float32)
    low = image.min(axis=(-2, -1), keepdims=True)
    span = image.max(axis=(-2, -1), keepdims=True) - low
    safe = np.where(span > 0, span, np.float32(1.0))
    unit = np.clip((image - low) / safe, 0.0, 1.0)
    return (low + np.power(unit, np.float32(gamma)) * safe).astype(np.float32)


def add_gaussian_noise(image: np.ndarray, std: float, *, rng: np.random.Generator) -> np.ndarray:
    """``image + N(0, std)`` drawn independently per pixel and channel.

    Returns
    -------
    out : (C, Y, X) ndarray of float32
    """
    image = np.asarray(image, dtype=np.float32)
    noise = rng.standard_normal(size=image.shape, dtype=np.float32)
    return image + np.float32(std) * noise


def gaussian_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of each channel along Y and X (``sigma`` in pixels, mirror boundary).

    Returns
    -------
    out : (C, Y, X) ndarray of float32
    """
    image = np.asarray(image, dtype=np.float32)
    return ndimage.gaussian_filter(image, sigma=(0.0, sigma, sigma), mode="mirror")


def random_intensity(
    image: np.ndarray, config: AugmentationConfig, rng: np.random.Generator
) -> np.ndarray:
    """Apply each intensity transform of ``config`` with its probability (see the module doc).

    Parameters
    ----------
    image : (C, Y, X) ndarray of float32
    config : AugmentationConfig
    rng : numpy.random.Generator

    Returns
    -------
    out : (C, Y, X) ndarray of float32
        ``image`` itself when no transform fired.
    """

    def fires(probability: float) -> bool:
        return probability > 0 and bool(rng.random() < probability)

    out = image
    if fires(config.gamma.probability):
        out = adjust_gamma(out, float(rng.uniform(*config.gamma.gamma)))
    if fires(config.contrast.probability):
        out = adjust_contrast(out, float(rng.uniform(*config.contrast.factor)))
    if fires(config.brightness.probability):
        out = adjust_brightness(out, float(rng.uniform(*config.brightness.shift)))
    if fires(config.blur.probability):
        out = gaussian_blur(out, float(rng.uniform(*config.blur.sigma)))
    if fires(config.noise.probability):
        out = add_gaussian_noise(out, float(rng.uniform(*config.noise.std)), rng=rng)
    return out
